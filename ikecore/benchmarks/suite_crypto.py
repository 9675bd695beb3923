"""SK payload protection of whole IKE messages against `cryptography`, and
the IKE key schedule against the same derivation on stdlib hmac."""
from __future__ import annotations

from .crypto import KEYMAT_SUITES, KEYSCHEDULE_KINDS, keymat_pair, sk_cbc_message_pair, sk_gcm_message_pair
from .registry import Case, Options, Result, measure_pair

ORDER = 20


def _sk(kind: str, size: int, options: Options) -> list[Result]:
    if kind == "AES-256-GCM-16":
        ours, base = sk_gcm_message_pair(size)
        baseline = "cryptography AESGCM"
    else:
        ours, base = sk_cbc_message_pair(size)
        baseline = "cryptography Cipher+HMAC"
    o, b, samples = measure_pair(ours, base, options)
    return [Result(name=f"sk[{kind}-{size}]", group="sk", unit="messages", ours_per_s=o, baseline=baseline,
                   baseline_per_s=b, bytes_per_unit=size, params={"suite": kind, "size": size},
                   samples=samples, extra={"what": "seal + open of one IKE message"})]


WHAT = {"initial": "SKEYSEED = prf(Ni | Nr, g^ir) and the seven IKE SA keys",
        "rekey": "IKE SA rekey or clone: SKEYSEED = prf(SK_d, g^ir | Ni | Nr) and the seven keys",
        "resume": "session resumption: SKEYSEED = prf(SK_d, \"Resumption\" | Ni | Nr) and the seven keys"}


def _keymat(suite: str, kind: str, options: Options) -> list[Result]:
    ours, base = keymat_pair(suite, "schedule", kind)
    o, b, samples = measure_pair(ours, base, options)
    return [Result(name=f"keyschedule[prfsha256-{suite}-{kind}]", group="keyschedule", unit="key schedules",
                   ours_per_s=o, baseline="stdlib hmac", baseline_per_s=b, params={"suite": suite, "kind": kind},
                   samples=samples, extra={"what": WHAT[kind]})]


def cases(options: Options) -> list[Case]:
    sizes = (1200,) if options.quick else (200, 1200)
    out = [Case(f"SK {kind} {size} B seal+open", lambda k=kind, n=size: _sk(k, n, options))
           for kind in ("AES-256-GCM-16", "AES-256-CBC+HMAC-SHA2-256-128") for size in sizes]
    out += [Case(f"key schedule prf-sha256 {suite} {kind}", lambda s=suite, k=kind: _keymat(s, k, options))
            for suite in KEYMAT_SUITES for kind in KEYSCHEDULE_KINDS
            if kind == "initial" or suite == "aes256gcm16" or not options.quick]
    return out
