"""Key schedule and SK payload protection against stdlib hmac and `cryptography`.

Targets (issue: C crypto core): keymat >= 4x stdlib hmac; SK seal+open AES-GCM
>= 1.2x and AES-CBC + HMAC >= 5x `cryptography`.
"""
import hashlib
import hmac
import os
import struct

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as c_hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ikecore.crypto import Encr, IkeKeySchedule, Integ, Prf, SkCipher, ike_keys_initial

NI, NR, GIR = os.urandom(32), os.urandom(32), os.urandom(32)
SPI_I, SPI_R = os.urandom(8), os.urandom(8)


def stdlib_keymat(integ_len, encr_len):
    """The same derivation a Python IKE daemon would write with stdlib hmac."""
    skeyseed = hmac.new(NI + NR, GIR, hashlib.sha256).digest()
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


@pytest.mark.parametrize("api", ["schedule", "function"])
@pytest.mark.parametrize("suite", ["aes256gcm16", "aes256-sha256"])
def test_ike_keymat(compare, suite, api):
    if suite == "aes256gcm16":
        kw, lens = dict(encr_id=Encr.AES_GCM_16, encr_key_bits=256), (0, 36)
    else:
        kw, lens = dict(encr_id=Encr.AES_CBC, encr_key_bits=256, integ_id=Integ.HMAC_SHA2_256_128), (32, 32)
    if api == "schedule":
        # made once per negotiated suite, as a pyca cipher object is made once per key
        schedule = IkeKeySchedule(Prf.HMAC_SHA2_256, **kw)
        ours = lambda: schedule.initial(NI, NR, GIR, SPI_I, SPI_R)  # noqa: E731
    else:
        ours = lambda: ike_keys_initial(Prf.HMAC_SHA2_256, NI, NR, GIR, SPI_I, SPI_R, **kw)  # noqa: E731
    k = ours()
    assert [k.sk_d, k.sk_ai, k.sk_ar, k.sk_ei, k.sk_er, k.sk_pi, k.sk_pr] == stdlib_keymat(*lens)
    compare(ours, lambda: stdlib_keymat(*lens), label=f"IKE keymat prf-sha256 {suite} ({api})",
            target=4.0 if api == "schedule" else None, baseline_name="stdlib hmac")


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


@pytest.mark.parametrize("size", [200, 1200])
def test_sk_message_aes_gcm(compare, size):
    """The targeted figure: protect and open a whole IKE message."""
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

    assert ours() == baseline() == inner
    compare(ours, baseline, label=f"SK message seal+open AES-256-GCM-16 {size} B", target=1.2,
            baseline_name="cryptography AESGCM")


@pytest.mark.parametrize("size", [200, 1200])
def test_sk_message_aes_cbc_hmac(compare, size):
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

    assert ours() == baseline() == inner
    compare(ours, baseline, label=f"SK message seal+open AES-256-CBC+HMAC-SHA256-128 {size} B", target=5.0,
            baseline_name="cryptography Cipher+HMAC")


@pytest.mark.parametrize("size", [200, 1200])
def test_sk_aes_gcm(compare, size):
    """Informational: the bare split-form calls against bare AEAD calls."""
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

    assert ours() == baseline() == plain
    compare(ours, baseline, label=f"SK seal+open (bare) AES-256-GCM-16 {size} B",
            baseline_name="cryptography AESGCM")
