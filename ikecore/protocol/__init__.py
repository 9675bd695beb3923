"""ikecore's sans-I/O IKEv2 protocol layer: the message codec, rules and fragmentation.

Typical use::

    from ikecore.protocol import parse_message, check_rules, PayloadType, NotifyType

    msg = parse_message(datagram)           # ParseError on anything malformed
    check_rules(msg)                         # which payloads this exchange allows
    if msg.sk is not None:
        msg.decrypt(peer_sk_cipher)          # IntegrityCheckFailed on a bad ICV
        check_rules(msg)
    nonce = msg.find(PayloadType.NONCE).data
    cookie = msg.notify(NotifyType.COOKIE)

    reply = Message(msg.spi_i, my_spi, msg.exchange_type, Flags.RESPONSE, msg.message_id,
                    inner=[NotifyPayload(notify_type=NotifyType.SET_WINDOW_SIZE, data=b"...")])
    datagram = encode_message(reply, my_sk_cipher)
"""
from .constants import (GENERIC_HEADER_LENGTH, IKE_HEADER_LENGTH, IKEV2_VERSION,
                        MAX_MESSAGE_LENGTH, AttributeType, AuthMethod, CertEncoding, CfgType,
                        CpAttributeType, EapCode, ExchangeType, Flags, IdType, NotifyType,
                        PayloadType, ProtocolId, TransformType, TsType, is_error_notify, name_of)
from .fragments import FRAGMENT_SIZE_IPV4, FRAGMENT_SIZE_IPV6, Reassembler, fragment_message
from .message import (MAX_PAYLOADS, Message, decrypt_message, encode_message, encode_payloads,
                      parse_message)
from .payloads import (KE_DATA_LENGTH, KEY_LENGTH_ATTRIBUTE, AuthPayload, CertPayload,
                       CertReqPayload, CpAttribute, CpPayload, DeletePayload, EapPayload,
                       IdiPayload, IdPayload, IdrPayload, KePayload, NoncePayload,
                       NotifyPayload, Payload, Proposal, SaPayload, SkfPayload, SkPayload,
                       TrafficSelector, Transform, TransformAttribute, TsiPayload, TsPayload,
                       TsrPayload, UnknownPayload, UnknownTrafficSelector, VendorIdPayload,
                       parse_payload_body)
from .rules import RULES, MessageRules, check_rules, rules_for

__all__ = [
    # entry points
    "parse_message", "encode_message", "decrypt_message", "encode_payloads", "check_rules",
    "rules_for", "RULES", "MessageRules", "fragment_message", "Reassembler",
    "parse_payload_body",
    # message and payloads
    "Message", "Payload", "SaPayload", "Proposal", "Transform", "TransformAttribute",
    "KePayload", "IdPayload", "IdiPayload", "IdrPayload", "CertPayload", "CertReqPayload",
    "AuthPayload", "NoncePayload", "NotifyPayload", "DeletePayload", "VendorIdPayload",
    "TsPayload", "TsiPayload", "TsrPayload", "TrafficSelector", "UnknownTrafficSelector",
    "SkPayload", "SkfPayload", "CpPayload", "CpAttribute", "EapPayload", "UnknownPayload",
    # numbers
    "ExchangeType", "Flags", "PayloadType", "ProtocolId", "TransformType", "AttributeType",
    "NotifyType", "IdType", "CertEncoding", "AuthMethod", "TsType", "CfgType",
    "CpAttributeType", "EapCode", "is_error_notify", "name_of", "KE_DATA_LENGTH",
    "KEY_LENGTH_ATTRIBUTE", "IKE_HEADER_LENGTH", "GENERIC_HEADER_LENGTH", "IKEV2_VERSION",
    "MAX_MESSAGE_LENGTH", "MAX_PAYLOADS", "FRAGMENT_SIZE_IPV4", "FRAGMENT_SIZE_IPV6",
]
