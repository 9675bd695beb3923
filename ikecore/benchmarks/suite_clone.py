"""Cloning an IKE SA (RFC 7791): CREATE_CHILD_SA with N(CLONE_IKE_SA) and a
new key exchange, both ends' clone set up, against a full IKE_SA_INIT +
IKE_AUTH + Child SA with the same suite; PSK always, RSA-2048 certificates in
the full run."""
from __future__ import annotations

from .clone import Cloner, handshake_fn   # ImportError where cloning is not in this build
from .registry import Case, Options, Result, measure_pair

ORDER = 50
AUTH_NAMES = {"psk": "psk", "rsa": "rsa2048"}


def _clone(auth: str, options: Options) -> list[Result]:
    o, b, samples = measure_pair(Cloner(auth), handshake_fn(auth), options)
    name = AUTH_NAMES[auth]
    return [Result(name=f"clone[{name}-x25519]", group="clone", unit="SAs", ours_per_s=o,
                   baseline=f"full handshake ({name}, x25519)", baseline_per_s=b, params={"auth": name},
                   samples=samples, extra={"what": "one IKE SA cloned (RFC 7791), both ends"})]


def cases(options: Options) -> list[Case]:
    auths = ("psk",) if options.quick else ("psk", "rsa")
    return [Case(f"IKE SA clone ({AUTH_NAMES[a]}) vs full handshake", lambda a=a: _clone(a, options))
            for a in auths]
