"""IKEv2 protocol numbers (IANA "Internet Key Exchange Version 2 (IKEv2) Parameters").

Every enum is an ``IntEnum``: values compare equal to the plain ints found on
the wire. The codec keeps unknown values as plain ints (so a notify type or a
transform id nobody registered survives a parse/serialize round trip); use
:func:`name_of` to print either kind.
"""
from __future__ import annotations

from enum import IntEnum, IntFlag

from ..crypto.transforms import TransformType  # noqa: F401  (re-exported)

IKE_HEADER_LENGTH = 28
GENERIC_HEADER_LENGTH = 4
IKEV2_VERSION = 0x20          # MjVer 2, MnVer 0 (RFC 7296 §3.1)
MAX_MESSAGE_LENGTH = 65535    # what one UDP datagram can carry (RFC 7296 §2, §3.1)
MIN_NONCE_LENGTH = 16         # RFC 7296 §3.9
MAX_NONCE_LENGTH = 256


class ExchangeType(IntEnum):
    """RFC 7296 §3.1; RFC 5723 §4.3.2."""
    IKE_SA_INIT = 34
    IKE_AUTH = 35
    CREATE_CHILD_SA = 36
    INFORMATIONAL = 37
    IKE_SESSION_RESUME = 38


class Flags(IntFlag):
    """IKE header flags (RFC 7296 §3.1)."""
    NONE = 0
    INITIATOR = 0x08   # I: sent by the original initiator of the IKE SA
    VERSION = 0x10     # V: higher version possible; MUST be 0 in IKEv2, ignored on receipt
    RESPONSE = 0x20    # R: this message is a response


class PayloadType(IntEnum):
    """RFC 7296 §3.2; RFC 7383 §2.5 (SKF)."""
    NONE = 0
    SA = 33
    KE = 34
    IDI = 35
    IDR = 36
    CERT = 37
    CERTREQ = 38
    AUTH = 39
    NONCE = 40
    NOTIFY = 41
    DELETE = 42
    VENDOR_ID = 43
    TSI = 44
    TSR = 45
    SK = 46
    CP = 47
    EAP = 48
    SKF = 53


class ProtocolId(IntEnum):
    """Security protocol identifiers (RFC 7296 §3.3.1)."""
    NONE = 0   # Notify about the IKE SA itself (§3.10)
    IKE = 1
    AH = 2
    ESP = 3


class AttributeType(IntEnum):
    """Transform attribute types (RFC 7296 §3.3.5)."""
    KEY_LENGTH = 14


class NotifyType(IntEnum):
    """Notify message types: errors < 16384, status >= 16384.

    RFC 7296 §3.10.1; RFC 4555 §4 (MOBIKE); RFC 5723 §7 (resumption);
    RFC 7383 §2.3 (fragmentation); RFC 7427 §4 (signature hashes);
    RFC 7791 §6-7 (clone); RFC 5685 (redirect) for reference.
    """
    UNSUPPORTED_CRITICAL_PAYLOAD = 1
    INVALID_IKE_SPI = 4
    INVALID_MAJOR_VERSION = 5
    INVALID_SYNTAX = 7
    INVALID_MESSAGE_ID = 9
    INVALID_SPI = 11
    NO_PROPOSAL_CHOSEN = 14
    INVALID_KE_PAYLOAD = 17
    AUTHENTICATION_FAILED = 24
    SINGLE_PAIR_REQUIRED = 34
    NO_ADDITIONAL_SAS = 35
    INTERNAL_ADDRESS_FAILURE = 36
    FAILED_CP_REQUIRED = 37
    TS_UNACCEPTABLE = 38
    INVALID_SELECTORS = 39
    UNACCEPTABLE_ADDRESSES = 40
    UNEXPECTED_NAT_DETECTED = 41
    TEMPORARY_FAILURE = 43
    CHILD_SA_NOT_FOUND = 44
    INITIAL_CONTACT = 16384
    SET_WINDOW_SIZE = 16385
    ADDITIONAL_TS_POSSIBLE = 16386
    IPCOMP_SUPPORTED = 16387
    NAT_DETECTION_SOURCE_IP = 16388
    NAT_DETECTION_DESTINATION_IP = 16389
    COOKIE = 16390
    USE_TRANSPORT_MODE = 16391
    HTTP_CERT_LOOKUP_SUPPORTED = 16392
    REKEY_SA = 16393
    ESP_TFC_PADDING_NOT_SUPPORTED = 16394
    NON_FIRST_FRAGMENTS_ALSO = 16395
    MOBIKE_SUPPORTED = 16396
    ADDITIONAL_IP4_ADDRESS = 16397
    ADDITIONAL_IP6_ADDRESS = 16398
    NO_ADDITIONAL_ADDRESSES = 16399
    UPDATE_SA_ADDRESSES = 16400
    COOKIE2 = 16401
    NO_NATS_ALLOWED = 16402
    TICKET_LT_OPAQUE = 16409
    TICKET_REQUEST = 16410
    TICKET_ACK = 16411
    TICKET_NACK = 16412
    TICKET_OPAQUE = 16413
    IKEV2_FRAGMENTATION_SUPPORTED = 16430
    SIGNATURE_HASH_ALGORITHMS = 16431
    CLONE_IKE_SA_SUPPORTED = 16432
    CLONE_IKE_SA = 16433


NOTIFY_ERROR_MAX = 16383   # error types are 0..16383 (RFC 7296 §3.10.1)


def is_error_notify(notify_type: int) -> bool:
    return 0 < notify_type <= NOTIFY_ERROR_MAX


class IdType(IntEnum):
    """Identification types (RFC 7296 §3.5)."""
    ID_IPV4_ADDR = 1
    ID_FQDN = 2
    ID_RFC822_ADDR = 3
    ID_IPV6_ADDR = 5
    ID_DER_ASN1_DN = 9
    ID_DER_ASN1_GN = 10
    ID_KEY_ID = 11


class CertEncoding(IntEnum):
    """Certificate encodings (RFC 7296 §3.6)."""
    PKCS7_X509 = 1
    PGP = 2
    DNS_SIGNED_KEY = 3
    X509_SIGNATURE = 4
    KERBEROS_TOKEN = 6
    CRL = 7
    ARL = 8
    SPKI = 9
    X509_ATTRIBUTE = 10
    RAW_RSA_KEY = 11          # deprecated by RFC 7296
    HASH_URL_X509_CERT = 12
    HASH_URL_X509_BUNDLE = 13
    OCSP_CONTENT = 14         # RFC 4806
    RAW_PUBLIC_KEY = 15       # RFC 7670


class AuthMethod(IntEnum):
    """Authentication methods (RFC 7296 §3.8; RFC 4754 §7; RFC 7427 §3)."""
    RSA_DIGITAL_SIGNATURE = 1
    SHARED_KEY_MIC = 2
    DSS_DIGITAL_SIGNATURE = 3
    ECDSA_SHA256_P256 = 9
    ECDSA_SHA384_P384 = 10
    ECDSA_SHA512_P521 = 11
    GENERIC_SECURE_PASSWORD = 12
    NULL_AUTH = 13            # RFC 7619
    DIGITAL_SIGNATURE = 14


class TsType(IntEnum):
    """Traffic selector types (RFC 7296 §3.13.1)."""
    TS_IPV4_ADDR_RANGE = 7
    TS_IPV6_ADDR_RANGE = 8


class CfgType(IntEnum):
    """Configuration payload types (RFC 7296 §3.15)."""
    CFG_REQUEST = 1
    CFG_REPLY = 2
    CFG_SET = 3
    CFG_ACK = 4


class CpAttributeType(IntEnum):
    """Configuration attribute types (RFC 7296 §3.15.1)."""
    INTERNAL_IP4_ADDRESS = 1
    INTERNAL_IP4_NETMASK = 2
    INTERNAL_IP4_DNS = 3
    INTERNAL_IP4_NBNS = 4
    INTERNAL_IP4_DHCP = 6
    APPLICATION_VERSION = 7
    INTERNAL_IP6_ADDRESS = 8
    INTERNAL_IP6_DNS = 10
    INTERNAL_IP6_DHCP = 12
    INTERNAL_IP4_SUBNET = 13
    SUPPORTED_ATTRIBUTES = 14
    INTERNAL_IP6_SUBNET = 15


class EapCode(IntEnum):
    """EAP packet codes (RFC 3748 §4)."""
    REQUEST = 1
    RESPONSE = 2
    SUCCESS = 3
    FAILURE = 4


_ENUMS_BY_FIELD = {
    "exchange": ExchangeType, "payload": PayloadType, "notify": NotifyType,
    "protocol": ProtocolId, "id": IdType, "cert": CertEncoding, "auth": AuthMethod,
    "ts": TsType, "cfg": CfgType, "cp_attr": CpAttributeType, "transform": TransformType,
}


def name_of(kind: str, value: int) -> str:
    """``name_of("notify", 16390) == "COOKIE"``; unknown values print as ``"notify#1234"``."""
    enum = _ENUMS_BY_FIELD[kind]
    try:
        return enum(value).name
    except ValueError:
        return f"{kind}#{value}"


__all__ = [
    "ExchangeType", "Flags", "PayloadType", "ProtocolId", "AttributeType", "NotifyType",
    "IdType", "CertEncoding", "AuthMethod", "TsType", "CfgType", "CpAttributeType", "EapCode",
    "TransformType", "is_error_notify", "name_of", "IKE_HEADER_LENGTH",
    "GENERIC_HEADER_LENGTH", "IKEV2_VERSION", "MAX_MESSAGE_LENGTH", "NOTIFY_ERROR_MAX",
    "MIN_NONCE_LENGTH", "MAX_NONCE_LENGTH",
]
