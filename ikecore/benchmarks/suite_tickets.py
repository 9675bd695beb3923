"""Session resumption tickets (RFC 5723): one ticket sealed and opened with the
C core's TicketCipher against `cryptography`'s AESGCM doing the same AEAD on the
same plaintext, header and nonce."""
from __future__ import annotations

import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..crypto import TicketCipher          # ImportError where tickets are not in this build
from ..resumption import HEADER_LENGTH
from .registry import Case, Options, Result, measure_pair

ORDER = 40
PLAIN_LENGTH = 120                         # a by-value ticket's encoded state, about
HEADER = b"\x01\x01KEY1"


def _seal_open(key_len: int, options: Options) -> list[Result]:
    key, nonce, plain = os.urandom(key_len), os.urandom(12), os.urandom(PLAIN_LENGTH)
    ours_c, ref = TicketCipher(key, b"KEY1"), AESGCM(key)

    def ours():
        return ours_c.open(ours_c.seal(plain, nonce, HEADER), HEADER_LENGTH)

    def baseline():
        ticket = HEADER + nonce + ref.encrypt(nonce, plain, HEADER)
        return ref.decrypt(ticket[HEADER_LENGTH:HEADER_LENGTH + 12], ticket[HEADER_LENGTH + 12:],
                           ticket[:HEADER_LENGTH])

    if ours_c.seal(plain, nonce, HEADER) != HEADER + nonce + ref.encrypt(nonce, plain, HEADER):
        raise AssertionError("TicketCipher's ticket differs from the AESGCM construction")
    if not ours() == baseline() == plain:
        raise AssertionError("ticket round trip differs")
    o, b, samples = measure_pair(ours, baseline, options)
    return [Result(name=f"ticket[AES-{key_len * 8}-GCM-{PLAIN_LENGTH}]", group="ticket", unit="tickets",
                   ours_per_s=o, baseline="cryptography AESGCM", baseline_per_s=b, bytes_per_unit=PLAIN_LENGTH,
                   params={"key_bits": key_len * 8, "size": PLAIN_LENGTH}, samples=samples,
                   extra={"what": "seal + open of one ticket"})]


def cases(options: Options) -> list[Case]:
    key_lens = (32,) if options.quick else (32, 16)
    return [Case(f"ticket seal+open AES-{k * 8}-GCM", lambda k=k: _seal_open(k, options)) for k in key_lens]
