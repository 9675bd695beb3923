"""IKE key schedules and SK payload protection, each with its same-run baseline
(stdlib hmac, `cryptography`), for `ikecore bench` and bench/bench_crypto.py.

Every *_pair function returns (ours, baseline): two callables doing the same
work, checked once to give the same result."""
from __future__ import annotations

import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as c_hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..crypto import Encr, IkeKeySchedule, Integ, Prf, SkCipher, ike_keys_initial

NI, NR, GIR = os.urandom(32), os.urandom(32), os.urandom(32)
SPI_I, SPI_R = os.urandom(8), os.urandom(8)
KEYMAT_SUITES = ("aes256gcm16", "aes256-sha256")


SK_D_OLD = os.urandom(32)


def stdlib_keymat(integ_len, encr_len, kind: str = "initial"):
    """The same derivation a Python IKE daemon would write with stdlib hmac:
    SKEYSEED of an initial exchange (RFC 7296 section 2.14), of a rekey or clone
    (section 2.18, RFC 7791) or of a resumption (RFC 5723 section 5.1), then prf+."""
    if kind == "initial":
        skeyseed = hmac.new(NI + NR, GIR, hashlib.sha256).digest()
    elif kind == "rekey":
        skeyseed = hmac.new(SK_D_OLD, GIR + NI + NR, hashlib.sha256).digest()
    else:
        skeyseed = hmac.new(SK_D_OLD, b"Resumption" + NI + NR, hashlib.sha256).digest()
    seed = NI + NR + SPI_I + SPI_R
    need = 3 * 32 + 2 * integ_len + 2 * encr_len
    out, t, n = b"", b"", 1
    while len(out) < need:
        t = hmac.new(skeyseed, t + seed + bytes([n]), hashlib.sha256).digest()
        out += t
        n += 1
    lens = [32, integ_len, integ_len, encr_len, encr_len, 32, 32]
    keys, at = [], 0
    for n in lens:
        keys.append(out[at:at + n])
        at += n
    return keys


KEYSCHEDULE_KINDS = ("initial", "rekey", "resume")


def keymat_pair(suite: str, api: str = "schedule", kind: str = "initial"):
    """SKEYSEED and the seven keys (prf-sha256) for `suite`: through an
    IkeKeySchedule made once per suite ("schedule") or the one-shot function;
    kind "rekey" (also what a clone does) and "resume" use the schedule."""
    if suite == "aes256gcm16":
        kw, lens = dict(encr_id=Encr.AES_GCM_16, encr_key_bits=256), (0, 36)
    else:
        kw, lens = dict(encr_id=Encr.AES_CBC, encr_key_bits=256, integ_id=Integ.HMAC_SHA2_256_128), (32, 32)
    # made once per negotiated suite, as a pyca cipher object is made once per key
    schedule = IkeKeySchedule(Prf.HMAC_SHA2_256, **kw)
    if kind == "rekey":
        ours = lambda: schedule.rekey(Prf.HMAC_SHA2_256, SK_D_OLD, GIR, NI, NR, SPI_I, SPI_R)  # noqa: E731
    elif kind == "resume":
        ours = lambda: schedule.resume(SK_D_OLD, NI, NR, SPI_I, SPI_R)  # noqa: E731
    elif api == "schedule":
        ours = lambda: schedule.initial(NI, NR, GIR, SPI_I, SPI_R)  # noqa: E731
    else:
        ours = lambda: ike_keys_initial(Prf.HMAC_SHA2_256, NI, NR, GIR, SPI_I, SPI_R, **kw)  # noqa: E731
    k = ours()
    if [k.sk_d, k.sk_ai, k.sk_ar, k.sk_ei, k.sk_er, k.sk_pi, k.sk_pr] != stdlib_keymat(*lens, kind):
        raise AssertionError(f"ikecore's {kind} key schedule differs from the stdlib hmac derivation")
    return ours, lambda: stdlib_keymat(*lens, kind)


AAD = os.urandom(32)
# IKE header (28) + SK generic header (4); lengths are filled in when sealing
PREFIX = os.urandom(16) + bytes([46, 0x20, 37, 0x08, 0, 0, 0, 5]) + bytes(4) + bytes([41, 0, 0, 0])


def frame_prefix(sealed_len):
    """What an encoder does around the cipher: fill in the IKE and SK lengths."""
    hdr = bytearray(PREFIX)
    struct.pack_into(">I", hdr, 24, len(PREFIX) + sealed_len)
    struct.pack_into(">H", hdr, 30, 4 + sealed_len)
    return bytes(hdr)


def check_lengths(msg):
    if int.from_bytes(msg[24:28], "big") != len(msg) or int.from_bytes(msg[30:32], "big") != len(msg) - 28:
        raise ValueError("length mismatch")


def sk_gcm_message_pair(size: int):
    """Protect and open a whole IKE message (AES-256-GCM-16) against `cryptography` AESGCM."""
    keymat = os.urandom(36)
    key, salt = keymat[:32], keymat[32:]
    inner = os.urandom(size)
    ours_sk = SkCipher(Encr.AES_GCM_16, keymat)
    ref = AESGCM(key)
    counter = iter(range(1, 1 << 62))

    def ours():
        return ours_sk.open_message(ours_sk.seal_message(PREFIX, inner), 28)

    def baseline():
        iv = next(counter).to_bytes(8, "big")
        aad = frame_prefix(8 + len(inner) + 1 + 16)
        msg = aad + iv + ref.encrypt(salt + iv, inner + b"\x00", aad)
        check_lengths(msg)
        pt = ref.decrypt(salt + msg[32:40], msg[40:], msg[:32])
        return pt[:len(pt) - 1 - pt[-1]]

    if not ours() == baseline() == inner:
        raise AssertionError("SK AES-GCM round trip differs")
    return ours, baseline


def sk_cbc_message_pair(size: int):
    """The same with AES-256-CBC + HMAC-SHA2-256-128 against `cryptography` Cipher + HMAC."""
    key, integ_key = os.urandom(32), os.urandom(32)
    inner = os.urandom(size)
    ours_sk = SkCipher(Encr.AES_CBC, key, Integ.HMAC_SHA2_256_128, integ_key)

    def ours():
        return ours_sk.open_message(ours_sk.seal_message(PREFIX, inner), 28)

    def baseline():
        iv = os.urandom(16)
        pad = (16 - (len(inner) + 1) % 16) % 16
        framed = inner + bytes(range(1, pad + 1)) + bytes([pad])
        aad = frame_prefix(16 + len(framed) + 16)
        enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        body = iv + enc.update(framed) + enc.finalize()
        mac = c_hmac.HMAC(integ_key, hashes.SHA256())
        mac.update(aad + body)
        msg = aad + body + mac.finalize()[:16]
        check_lengths(msg)
        check = c_hmac.HMAC(integ_key, hashes.SHA256())
        check.update(msg[:-16])
        if not hmac.compare_digest(check.finalize()[:16], msg[-16:]):
            raise AssertionError
        dec = Cipher(algorithms.AES(key), modes.CBC(msg[32:48])).decryptor()
        pt = dec.update(msg[48:-16]) + dec.finalize()
        return pt[:len(pt) - 1 - pt[-1]]

    if not ours() == baseline() == inner:
        raise AssertionError("SK AES-CBC round trip differs")
    return ours, baseline


def sk_gcm_bare_pair(size: int):
    """The bare split-form calls against bare AEAD calls."""
    keymat = os.urandom(36)
    key, salt = keymat[:32], keymat[32:]
    plain = os.urandom(size)
    ours_sk = SkCipher(Encr.AES_GCM_16, keymat)
    ref = AESGCM(key)
    counter = iter(range(1, 1 << 62))

    def ours():
        return ours_sk.open(AAD, ours_sk.seal(AAD, plain))

    def baseline():
        iv = next(counter).to_bytes(8, "big")
        ct = ref.encrypt(salt + iv, plain + b"\x00", AAD)
        pt = ref.decrypt(salt + iv, ct, AAD)
        return pt[:len(pt) - 1 - pt[-1]]

    if not ours() == baseline() == plain:
        raise AssertionError("SK bare round trip differs")
    return ours, baseline
