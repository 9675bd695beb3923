"""Session resumption (RFC 5723): IKE_SESSION_RESUME + IKE_AUTH + the first
Child SA against a full handshake with the same suite and endpoints, in the
same run; PSK always, RSA-2048 certificates in the full run."""
from __future__ import annotations

from .registry import Case, Options, Result, measure_pair
from .resumption import full_handshake_fn, resumption_fn   # ImportError where resumption is not in this build

ORDER = 45


def _resume(auth: str, options: Options) -> list[Result]:
    o, b, samples = measure_pair(resumption_fn(auth), full_handshake_fn(auth), options)
    return [Result(name=f"resumption[{auth}-x25519]", group="resumption", unit="SAs", ours_per_s=o,
                   baseline=f"full handshake ({auth}, x25519)", baseline_per_s=b, params={"auth": auth},
                   samples=samples,
                   extra={"what": "IKE_SESSION_RESUME + IKE_AUTH + Child SA, the ticket spent in a store"})]


def cases(options: Options) -> list[Case]:
    auths = ("psk",) if options.quick else ("psk", "rsa2048")
    return [Case(f"session resumption ({auth}) vs full handshake", lambda a=auth: _resume(a, options))
            for auth in auths]
