"""ESP (RFC 4303) data path in the C core.

- :class:`EspSA`: one SA; ``encrypt(payload, next_header) -> bytes`` and
  ``decrypt(packet) -> (payload, next_header)``, plus ``encrypt_batch`` /
  ``decrypt_batch`` over a :class:`PacketVector`.
- :class:`PacketVector`: many packets in one C buffer, processed by one C call
  (GIL released) and filled/drained with recvmmsg/sendmmsg.
- :class:`InboundSATable`: SPI demultiplexing in C for a shared socket.
- :class:`SelectorTable`: traffic-selector checks and routing over a vector, in C.
- :mod:`ikecore.esp.udpencap`: ESP-in-UDP (RFC 3948).
"""
from __future__ import annotations

from . import udpencap
from .batch import (DUMMY, EMPTY, IKE, KEEPALIVE, OK, PENDING, SENT, InboundSATable,
                    PacketVector, decrypt_batch, status_error)
from .policy import ERR_POLICY, PARKED, SelectorTable
from .sa import EspSA

# IANA ids (RFC 7296 §3.3.2) the ESP core implements
ENCR_AES_CBC = 12
ENCR_AES_GCM_16 = 20
ENCR_CHACHA20_POLY1305 = 28
AUTH_HMAC_SHA1_96 = 2          # RFC 2404, legacy peers
AUTH_HMAC_SHA2_256_128 = 12
AUTH_HMAC_SHA2_384_192 = 13
AUTH_HMAC_SHA2_512_256 = 14

NEXT_HEADER_IPV4 = 4
NEXT_HEADER_IPV6 = 41
NEXT_HEADER_NONE = 59   # dummy / TFC-only packet (RFC 4303 §2.6)

__all__ = [
    "EspSA", "PacketVector", "InboundSATable", "SelectorTable", "decrypt_batch", "status_error", "udpencap",
    "OK", "PENDING", "IKE", "KEEPALIVE", "DUMMY", "SENT", "EMPTY", "PARKED", "ERR_POLICY",
    "ENCR_AES_CBC", "ENCR_AES_GCM_16", "ENCR_CHACHA20_POLY1305",
    "AUTH_HMAC_SHA1_96", "AUTH_HMAC_SHA2_256_128", "AUTH_HMAC_SHA2_384_192", "AUTH_HMAC_SHA2_512_256",
    "NEXT_HEADER_IPV4", "NEXT_HEADER_IPV6", "NEXT_HEADER_NONE",
]
