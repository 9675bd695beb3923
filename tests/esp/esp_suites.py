"""ESP test helpers (imported by the tests as a plain module): the suites the issue asks for, keyed like IKEv2 KEYMAT."""
from __future__ import annotations

import random
import zlib

from ikecore.esp import EspSA

# name: (encr_id, encr key length incl. salt, integ_id, integ key length, scapy crypt, scapy auth)
SUITES = {
    "aes128gcm16": (20, 20, None, 0, "AES-GCM", "NULL"),
    "aes256gcm16": (20, 36, None, 0, "AES-GCM", "NULL"),
    "chacha20poly1305": (28, 36, None, 0, "CHACHA20-POLY1305", "NULL"),
    "aes128-sha256": (12, 16, 12, 32, "AES-CBC", "SHA2-256-128"),
    "aes256-sha256": (12, 32, 12, 32, "AES-CBC", "SHA2-256-128"),
    "aes128-sha384": (12, 16, 13, 48, "AES-CBC", "SHA2-384-192"),
    "aes256-sha512": (12, 32, 14, 64, "AES-CBC", "SHA2-512-256"),
}


class Suite:
    def __init__(self, name: str, seed: int = 0) -> None:
        self.name = name
        (self.encr_id, klen, self.integ_id, ilen, self.scapy_crypt,
         self.scapy_auth) = SUITES[name]
        rnd = random.Random(zlib.crc32(name.encode()) ^ seed)
        self.key = bytes(rnd.randrange(256) for _ in range(klen))
        self.integ_key = bytes(rnd.randrange(256) for _ in range(ilen)) if ilen else None

    def sa(self, spi: int = 0x1000, **kw) -> EspSA:
        return EspSA(spi, self.encr_id, self.key, integ_id=self.integ_id,
                     integ_key=self.integ_key, **kw)

    def pair(self, spi: int = 0x1000, **kw) -> tuple[EspSA, EspSA]:
        return self.sa(spi, direction="out", **kw), self.sa(spi, direction="in", **kw)


def forge(s: Suite, spi: int, seq: int, body: bytes, *, esn: bool = False, iv: bytes | None = None,
          tamper_icv: bool = False) -> bytes:
    """An ESP packet built with `cryptography`, independently of ikecore, around an
    arbitrary encrypted part ``body`` (payload | padding | pad length | next
    header): for malformed-but-authentic packets (bad padding, odd lengths)."""
    import hashlib
    import hmac

    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

    hdr = spi.to_bytes(4, "big") + (seq & 0xFFFFFFFF).to_bytes(4, "big")
    if s.encr_id in (20, 28):
        iv = iv if iv is not None else seq.to_bytes(8, "big")
        aad = spi.to_bytes(4, "big") + (seq.to_bytes(8, "big") if esn else hdr[4:])
        aead = (AESGCM if s.encr_id == 20 else ChaCha20Poly1305)(s.key[:-4])
        sealed = aead.encrypt(s.key[-4:] + iv, body, aad)
        pkt = hdr + iv + sealed
    else:
        iv = iv if iv is not None else bytes(16)
        enc = Cipher(algorithms.AES(s.key), modes.CBC(iv)).encryptor()
        ct = enc.update(body) + enc.finalize()
        md, icv_len = {12: (hashlib.sha256, 16), 13: (hashlib.sha384, 24), 14: (hashlib.sha512, 32)}[s.integ_id]
        signed = hdr + iv + ct
        mac = hmac.new(s.integ_key, signed + ((seq >> 32).to_bytes(4, "big") if esn else b""), md).digest()
        pkt = signed + mac[:icv_len]
    if tamper_icv:
        pkt = pkt[:-1] + bytes([pkt[-1] ^ 1])
    return pkt


def trailer(payload: bytes, nh: int, align: int) -> bytes:
    """payload | 1,2,3,... | pad length | next header, aligned as RFC 4303 §2.4 says."""
    pad = -(len(payload) + 2) % align
    return payload + bytes(range(1, pad + 1)) + bytes([pad, nh])
