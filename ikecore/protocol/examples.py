"""Typical IKEv2 messages, built with the codec: for tests, benchmarks and docs.

Deterministic (fixed SPIs, nonces and key shares) so that byte-level
comparisons with other codecs are repeatable.
"""
from __future__ import annotations

from ..crypto.transforms import Encr, Integ, Prf, TransformType as T
from .constants import AuthMethod, ExchangeType, Flags, IdType, NotifyType, ProtocolId
from .message import Message
from .payloads import (AuthPayload, IdrPayload, KePayload, NoncePayload,
                       NotifyPayload, Proposal, SaPayload, TrafficSelector, Transform,
                       TsiPayload, TsrPayload, VendorIdPayload)

SPI_I = bytes.fromhex("0123456789abcdef")
SPI_R = bytes.fromhex("fedcba9876543210")


def ike_proposals() -> list:
    """strongSwan-like IKE proposals: AEAD first, then CBC + HMAC."""
    return [
        Proposal(1, ProtocolId.IKE, b"", [
            Transform.with_key_length(T.ENCR, Encr.AES_GCM_16, 256),
            Transform.with_key_length(T.ENCR, Encr.AES_GCM_16, 128),
            Transform(T.ENCR, Encr.CHACHA20_POLY1305),
            Transform(T.PRF, Prf.HMAC_SHA2_384),
            Transform(T.PRF, Prf.HMAC_SHA2_256),
            Transform(T.DH, 31), Transform(T.DH, 19), Transform(T.DH, 14)]),
        Proposal(2, ProtocolId.IKE, b"", [
            Transform.with_key_length(T.ENCR, Encr.AES_CBC, 256),
            Transform.with_key_length(T.ENCR, Encr.AES_CBC, 128),
            Transform(T.PRF, Prf.HMAC_SHA2_256),
            Transform(T.INTEG, Integ.HMAC_SHA2_256_128),
            Transform(T.INTEG, Integ.HMAC_SHA2_384_192),
            Transform(T.DH, 31), Transform(T.DH, 19)]),
    ]


def ike_sa_init_request() -> Message:
    """HDR, SAi1, KEi, Ni, N(NAT_DETECTION_SOURCE_IP), N(NAT_DETECTION_DESTINATION_IP),
    N(IKEV2_FRAGMENTATION_SUPPORTED), N(SIGNATURE_HASH_ALGORITHMS), V"""
    return Message(SPI_I, bytes(8), ExchangeType.IKE_SA_INIT, Flags.INITIATOR, 0, [
        SaPayload(ike_proposals()),
        KePayload(31, bytes(range(32))),
        NoncePayload(bytes(range(100, 132))),
        NotifyPayload(notify_type=NotifyType.NAT_DETECTION_SOURCE_IP, data=bytes(range(20))),
        NotifyPayload(notify_type=NotifyType.NAT_DETECTION_DESTINATION_IP,
                      data=bytes(range(20, 40))),
        NotifyPayload(notify_type=NotifyType.IKEV2_FRAGMENTATION_SUPPORTED),
        NotifyPayload(notify_type=NotifyType.SIGNATURE_HASH_ALGORITHMS,
                      data=bytes.fromhex("0002000300040005")),
        VendorIdPayload(bytes.fromhex("882fe56d6fd20dbc2251613b2ebe5beb")),
    ])


def ike_auth_response_payloads() -> list:
    """SK { IDr, AUTH, SAr2, TSi, TSr, N(AUTH_LIFETIME-like status), N(MOBIKE_SUPPORTED),
    N(CLONE_IKE_SA_SUPPORTED) }"""
    return [
        IdrPayload(IdType.ID_FQDN, b"gateway.example.org"),
        AuthPayload(AuthMethod.SHARED_KEY_MIC, bytes(range(48))),
        SaPayload([Proposal(1, ProtocolId.ESP, bytes.fromhex("c1a0b2f3"), [
            Transform.with_key_length(T.ENCR, Encr.AES_GCM_16, 256),
            Transform(T.ESN, 0)])]),
        TsiPayload([TrafficSelector.from_network("10.1.0.0/16")]),
        TsrPayload([TrafficSelector.from_network("10.2.0.0/16"),
                    TrafficSelector.from_network("fd00::/64")]),
        NotifyPayload(notify_type=NotifyType.MOBIKE_SUPPORTED),
        NotifyPayload(notify_type=NotifyType.CLONE_IKE_SA_SUPPORTED),
        NotifyPayload(notify_type=NotifyType.TICKET_LT_OPAQUE,
                      data=bytes.fromhex("00000e10") + bytes(range(64))),
    ]


def ike_auth_response(encrypted: bool = True) -> Message:
    """The IKE_AUTH response; with ``encrypted=False`` the same payloads in the
    clear (what a codec without crypto, e.g. scapy's, can be compared on)."""
    inner = ike_auth_response_payloads()
    if encrypted:
        return Message(SPI_I, SPI_R, ExchangeType.IKE_AUTH, Flags.RESPONSE, 1, [], inner)
    return Message(SPI_I, SPI_R, ExchangeType.IKE_AUTH, Flags.RESPONSE, 1, inner)


__all__ = ["SPI_I", "SPI_R", "ike_proposals", "ike_sa_init_request",
           "ike_auth_response_payloads", "ike_auth_response"]
