"""pyca-style cryptographic API over ikecore's C core.

Only the IKE key schedule and SK payload protection live here; DH/ECDH and
signatures go through `cryptography` (see ``ikecore.crypto.dh``).
"""
from ..errors import InvalidKey, InvalidTag, LimitExceeded, UnsupportedAlgorithm
from .keyschedule import (ChildKeys, IkeKeys, IkeKeySchedule, child_keymat, child_sa_keys,
                          ike_keys_initial, ike_keys_rekey, ike_keys_resume, key_schedule)
from .prf import prf, prf_plus
from .sk import SkCipher
from .ticket import TicketCipher
from .transforms import (Encr, Integ, Prf, TransformType, encr_key_length, integ_icv_length,
                         integ_key_length, is_aead, prf_length)

__all__ = [
    "prf", "prf_plus", "IkeKeys", "ChildKeys", "IkeKeySchedule", "key_schedule", "ike_keys_initial", "ike_keys_rekey",
    "ike_keys_resume", "child_keymat", "child_sa_keys", "SkCipher", "TicketCipher", "Encr", "Integ", "Prf",
    "TransformType", "encr_key_length", "integ_key_length", "integ_icv_length", "prf_length",
    "is_aead", "InvalidTag", "InvalidKey", "LimitExceeded", "UnsupportedAlgorithm",
]
