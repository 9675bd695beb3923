"""ESP measurement: ikecore's batch and single-packet APIs and the `cryptography`
baselines, for `ikecore bench` and bench/bench_esp.py.

Implementations per (suite, size, direction) (see esp_impls):
- ``batch``: ``EspSA.encrypt_batch`` / ``decrypt_batch`` over a 64-packet
  PacketVector, out of place (one C call per 64 packets, GIL released);
- ``single``: ``EspSA.encrypt(payload, nh)`` / ``decrypt(packet)``, new bytes each;
- ``crypto``: one `cryptography` AEAD object per SA, nonce and AAD built per
  packet (no ESP framing); for CBC a new Cipher + HMAC per packet (with the ESP
  trailer, an os.urandom IV and the header);
- ``crypto_esp``: a whole Python ESP on `cryptography` (AEAD: the above plus the
  RFC 4303 trailer and header concatenated, as ikecore does);
- ``crypto_bare``: the bare AEAD call with nonce/AAD prebuilt (AEAD suites only).
Decryption runs with the replay window off (the same packets are opened every
round); everything else (ESN inference, ICV, padding check) runs.
"""
from __future__ import annotations

import hmac as _stdlib_hmac
import os
import threading
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as chmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from ..esp import EspSA, PacketVector

SPI = 0x12345678
BATCH = 64

SUITES = {
    "AES-128-GCM": (20, 20, None, 0),
    "AES-256-GCM": (20, 36, None, 0),
    "ChaCha20-Poly1305": (28, 36, None, 0),
    "AES-128-CBC+HMAC-SHA2-256-128": (12, 16, 12, 32),
}
# simple IMIX 7:4:1 of 40/576/1500-octet IP packets
SIZES = {"64": [64] * BATCH, "512": [512] * BATCH, "1400": [1400] * BATCH,
         "IMIX": ([40] * 7 + [576] * 4 + [1500]) * 5 + [40] * 4}
assert all(len(v) == BATCH for v in SIZES.values())

def keys(name):
    encr, klen, integ, ilen = SUITES[name]
    return encr, os.urandom(klen), integ, os.urandom(ilen) if ilen else None


def _trailer(n, align):
    pad = -(n + 2) % align
    return bytes(range(1, pad + 1)) + bytes([pad, 17])


# ---- the `cryptography` ESP baseline ----

class CryptoEsp:
    def __init__(self, encr, key, integ, ikey):
        self.spi = SPI.to_bytes(4, "big")
        self.seq = 0
        self.aead = encr != 12
        if self.aead:
            self.obj = (AESGCM if encr == 20 else ChaCha20Poly1305)(key[:-4])
            self.salt = key[-4:]
            self.align = 4
        else:
            self.key, self.ikey = key, ikey
            self.align = 16
        self.trailers = {}

    def trailer(self, n):
        t = self.trailers.get(n)
        if t is None:
            t = self.trailers[n] = _trailer(n, self.align)
        return t

    def encrypt(self, payload):
        self.seq += 1
        sb = self.seq.to_bytes(8, "big")
        hdr = self.spi + sb[4:]
        if self.aead:
            return hdr + sb + self.obj.encrypt(self.salt + sb, payload + self.trailer(len(payload)), hdr)
        iv = os.urandom(16)
        enc = Cipher(algorithms.AES(self.key), modes.CBC(iv)).encryptor()
        ct = enc.update(payload + self.trailer(len(payload))) + enc.finalize()
        h = chmac.HMAC(self.ikey, hashes.SHA256())
        h.update(hdr + iv + ct)
        return hdr + iv + ct + h.finalize()[:16]

    def decrypt(self, packet):
        if self.aead:
            pt = self.obj.decrypt(self.salt + packet[8:16], packet[16:], packet[:8])
        else:
            h = chmac.HMAC(self.ikey, hashes.SHA256())
            h.update(packet[:-16])
            mac = h.finalize()[:16]
            if not _stdlib_hmac.compare_digest(mac, packet[-16:]):
                raise ValueError("ICV")
            dec = Cipher(algorithms.AES(self.key), modes.CBC(packet[8:24])).decryptor()
            pt = dec.update(packet[24:-16]) + dec.finalize()
        return pt[:-2 - pt[-2]], pt[-1]


def esp_impls(name, sizes, direction):
    """The implementations above for one case, checked against each other
    once; returns (impls, payloads)."""
    encr, key, integ, ikey = keys(name)
    payloads = [os.urandom(n) for n in sizes]
    tx = EspSA(SPI, encr, key, integ_id=integ, integ_key=ikey, direction="out")
    rx = EspSA(SPI, encr, key, integ_id=integ, integ_key=ikey, direction="in", replay_window=0)
    ref = CryptoEsp(encr, key, integ, ikey)
    src, dst = PacketVector(BATCH), PacketVector(BATCH)
    if direction == "encrypt":
        src.load(payloads, next_header=17)
        batch = lambda: tx.encrypt_batch(src, out=dst)  # noqa: E731

        def single():
            enc = tx.encrypt
            for p in payloads:
                enc(p, 17)

        def crypto_esp():
            enc = ref.encrypt
            for p in payloads:
                enc(p)

        def crypto_aead():
            e, salt, spi = ref.obj.encrypt, ref.salt, ref.spi
            seq = ref.seq
            for p in payloads:
                seq += 1
                sb = seq.to_bytes(8, "big")
                e(salt + sb, p, spi + sb[4:])
            ref.seq = seq
        bare_inputs = [(ref.salt + i.to_bytes(8, "big") if ref.aead else None, p,
                        ref.spi + i.to_bytes(4, "big")) for i, p in enumerate(payloads, 1)]

        def crypto_bare():
            e = ref.obj.encrypt
            for n, p, a in bare_inputs:
                e(n, p, a)
    else:
        packets = [tx.encrypt(p, 17) for p in payloads]
        assert [ref.decrypt(p)[0] for p in packets] == payloads
        src.load(packets)
        batch = lambda: rx.decrypt_batch(src, out=dst)  # noqa: E731

        def single():
            dec = rx.decrypt
            for p in packets:
                dec(p)

        def crypto_esp():
            dec = ref.decrypt
            for p in packets:
                dec(p)

        def crypto_aead():
            d, salt = ref.obj.decrypt, ref.salt
            for p in packets:
                d(salt + p[8:16], p[16:], p[:8])
        bare_inputs = [(ref.salt + p[8:16] if ref.aead else None, p[16:], p[:8]) for p in packets]

        def crypto_bare():
            d = ref.obj.decrypt
            for n, c, a in bare_inputs:
                d(n, c, a)
    impls = {"batch": batch, "single": single,
             "crypto": crypto_aead if ref.aead else crypto_esp, "crypto_esp": crypto_esp}
    if ref.aead:
        impls["crypto_bare"] = crypto_bare
    assert batch() == BATCH
    if direction == "decrypt":
        assert dst.ok_packets() == payloads
    return impls, payloads


def thread_rate(nthreads, size, seconds=0.4):
    """Packets/s of batch AES-128-GCM encryption on n threads, one SA each."""
    workers = []
    for _ in range(nthreads):
        _, key, _, _ = keys("AES-128-GCM")
        sa = EspSA(SPI, 20, key, direction="out")
        src, dst = PacketVector(BATCH), PacketVector(BATCH)
        src.load([os.urandom(size)] * BATCH, next_header=17)
        workers.append((sa, src, dst))
    counts = [0] * nthreads
    start = threading.Barrier(nthreads + 1)
    stop = threading.Event()

    def run(k):
        sa, src, dst = workers[k]
        enc = sa.encrypt_batch
        start.wait()
        n = 0
        while not stop.is_set():
            for _ in range(20):
                enc(src, out=dst)
            n += 20 * BATCH
        counts[k] = n

    threads = [threading.Thread(target=run, args=(k,)) for k in range(nthreads)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - t0)
