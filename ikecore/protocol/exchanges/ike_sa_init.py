"""IKE_SA_INIT (RFC 7296 §1.2, §2.6 cookies, §2.23 NAT detection, RFC 7383, RFC 7427 §4).

    Initiator                         Responder
    HDR, [N(COOKIE),] SAi1, KEi, Ni,
         N(NAT_D_S), N(NAT_D_D), ...  -->
                                      <--  HDR, SAr1, KEr, Nr, N(NAT_D_S), N(NAT_D_D), [CERTREQ]
    or  <--  HDR(A,0), N(COOKIE)   /  N(INVALID_KE_PAYLOAD)  /  N(NO_PROPOSAL_CHOSEN)
"""
from __future__ import annotations

import functools
import hashlib
import ipaddress
import logging
import weakref

from ...crypto.dh import KeyExchange
from ...crypto.keyschedule import ike_keys_initial
from ...errors import InvalidKePayload, NoProposalChosen, ParseError, ProtocolError
from ..auth import decode_hash_algorithms, encode_hash_algorithms
from ..config import IkeConfig
from ..constants import CertEncoding, ExchangeType, Flags, NotifyType, PayloadType
from ..ike_sa import IkeConnection, State     # module level: a per-call import costs ~0.6 us a message
from ..message import Message
from ..negotiation import accept_ike_reply, ike_sa_payload, select_ike
from ..payloads import CertReqPayload, KePayload, NoncePayload, NotifyPayload, SaPayload
from ..limits import unauthenticated_log
from ..rules import check_rules
from .task import Task

log = logging.getLogger("ikecore.ike")

from ..describe import config_proposals_text, message_summary, refusal_text, sa_text  # noqa: E402
# members the per-message code uses, bound once (NotifyType.X goes through
# EnumType.__getattr__, about 75 ns a lookup on CPython 3.11)
_NAT_D_SOURCE, _NAT_D_DESTINATION = NotifyType.NAT_DETECTION_SOURCE_IP, NotifyType.NAT_DETECTION_DESTINATION_IP
_FRAGMENTATION_SUPPORTED = NotifyType.IKEV2_FRAGMENTATION_SUPPORTED
_SIGNATURE_HASH_ALGORITHMS = NotifyType.SIGNATURE_HASH_ALGORITHMS
NONCE_LENGTH = 32           # >= half the largest PRF key (SHA-512: 64), RFC 7296 §2.10
MIN_NONCE, MAX_NONCE = 16, 256


@functools.lru_cache(maxsize=4096)
def _endpoint_bytes(host: str, port: int) -> bytes:
    # parsing the address text costs more than the hash: a handful of peers
    # and our own addresses come back on every handshake
    return ipaddress.ip_address(host).packed + int(port).to_bytes(2, "big")


def nat_detection_hash(spi_i: bytes, spi_r: bytes, address) -> bytes:
    """NAT_DETECTION_*_IP data (RFC 7296 §2.23): SHA-1(SPIi | SPIr | IP | port)."""
    return hashlib.sha1(spi_i + spi_r + _endpoint_bytes(address[0], address[1])).digest()


def _nat_notifies(conn, spi_r: bytes, source, destination) -> list[NotifyPayload]:
    src = nat_detection_hash(conn.spi_i, spi_r, source)
    if conn.config.force_encap:
        src = conn.rng(20)      # claim a NAT so that both sides encapsulate (as strongSwan does)
    return [NotifyPayload(notify_type=_NAT_D_SOURCE, data=src),
            NotifyPayload(notify_type=_NAT_D_DESTINATION,
                          data=nat_detection_hash(conn.spi_i, spi_r, destination))]


def uses_signatures(config: IkeConfig) -> bool:
    return config.local_auth.private_key is not None or config.remote_auth.psk is None


def _capability_notifies(config: IkeConfig) -> list[NotifyPayload]:
    out = []
    if config.fragmentation:
        out.append(NotifyPayload(notify_type=_FRAGMENTATION_SUPPORTED))
    # RFC 7427 §4: announce the hashes we verify; pointless (bytes on every
    # handshake) when neither side signs
    if config.signature_hashes and uses_signatures(config):
        out.append(NotifyPayload(notify_type=_SIGNATURE_HASH_ALGORITHMS,
                                 data=_hash_algorithms_data(tuple(config.signature_hashes))))
    return out


@functools.lru_cache(maxsize=64)
def _hash_algorithms_data(hash_ids: tuple) -> bytes:
    # the same few lists on every handshake of a configuration: encoded once (keyed by content)
    return encode_hash_algorithms(hash_ids)


_CERTREQ_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()   # trust store -> hashes


def certificate_request(config: IkeConfig) -> CertReqPayload | None:
    """CERTREQ naming our trust anchors: SHA-1 of each CA's SubjectPublicKeyInfo
    (RFC 7296 §3.7), so that the peer can pick the right certificate."""
    store = config.remote_auth.trust_store
    if store is None:
        return None
    hashes = _CERTREQ_CACHE.get(store)
    if hashes is None:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
        hashes = b"".join(hashlib.sha1(ca.public_key().public_bytes(
            Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).digest() for ca in store.anchors)
        _CERTREQ_CACHE[store] = hashes      # computed once per trust store
    return CertReqPayload(CertEncoding.X509_SIGNATURE, hashes)


def _take_capabilities(conn, msg: Message) -> None:
    conn.peer_fragmentation = msg.has_notify(_FRAGMENTATION_SUPPORTED)
    sig = msg.notify(_SIGNATURE_HASH_ALGORITHMS)
    if sig is not None:
        try:
            conn.peer_signature_hashes = decode_hash_algorithms(sig.data)
        except ParseError:
            conn.peer_signature_hashes = []


def _detect_nat(conn, msg: Message, spi_r: bytes, observed_source, our_address) -> None:
    """Compare the peer's NAT_DETECTION hashes with the addresses as we see them."""
    sources, dest = [], None
    for n in msg.notifies():
        if n.notify_type == _NAT_D_SOURCE:
            sources.append(n.data)
        elif dest is None and n.notify_type == _NAT_D_DESTINATION:
            dest = n
    if not sources or dest is None:
        return   # the peer does not do NAT-T
    conn.nat_remote = nat_detection_hash(conn.spi_i, spi_r, observed_source) not in sources
    conn.nat_local = dest.data != nat_detection_hash(conn.spi_i, spi_r, our_address)


def _derive(conn, suite, shared_secret: bytes) -> None:
    keys = ike_keys_initial(suite.prf_id, conn.ni, conn.nr, shared_secret, conn.spi_i, conn.spi_r,
                            encr_id=suite.encr_id, encr_key_bits=suite.key_bits,
                            integ_id=suite.integ_id)
    conn.install_keys(suite, keys)


class IkeSaInitTask(Task):
    """The initiator's IKE_SA_INIT, with its COOKIE and INVALID_KE_PAYLOAD retries."""

    MAX_RETRIES = 5

    def __init__(self) -> None:
        self.group: int | None = None
        self.cookie: bytes | None = None
        self.kex: KeyExchange | None = None
        self.offer: SaPayload | None = None
        self.retries = 0

    def ready(self, conn) -> bool:
        return True

    def build_request(self, conn, now: float) -> Message:
        cfg = conn.config
        if self.group is None:
            self.group = cfg.default_group
        # a COOKIE retry resends the same KEi (§2.6); only a new group needs a new key
        if self.kex is None or self.kex.group != self.group:
            self.kex = KeyExchange.generate(self.group, conn.rng)
        if not conn.ni:
            conn.ni = conn.rng(NONCE_LENGTH)
        self.offer = ike_sa_payload(cfg.proposals, group_first=self.group)
        payloads = []
        if self.cookie is not None:   # RFC 7296 §2.6: the cookie comes first
            payloads.append(NotifyPayload(notify_type=NotifyType.COOKIE, data=self.cookie))
        payloads += [self.offer, KePayload(self.group, self.kex.public_bytes), NoncePayload(conn.ni)]
        payloads += _nat_notifies(conn, bytes(8), conn.local, conn.remote)
        payloads += _capability_notifies(cfg)
        conn.state = State.INIT_SENT
        return Message(conn.spi_i, bytes(8), ExchangeType.IKE_SA_INIT, Flags.INITIATOR, 0,
                       payloads=payloads)

    def sent(self, conn, msg, datagrams) -> None:
        conn.init_request = datagrams[0]      # RealMessage1: the last version sent

    def _retry(self, conn, now: float, why: str) -> None:
        self.retries += 1
        if self.retries > self.MAX_RETRIES:
            conn.terminate(f"IKE_SA_INIT: too many retries ({why})", now)
            return
        conn.send_request(self, self.build_request(conn, now), now, message_id=0)

    def on_response(self, conn, msg: Message, now: float) -> None:
        cookie = msg.notify(NotifyType.COOKIE)
        if cookie is not None:
            if not 1 <= len(cookie.data) <= 64:
                return self.failed(conn, now, "malformed COOKIE")
            self.cookie = cookie.data
            return self._retry(conn, now, "cookie")
        invalid_ke = msg.notify(NotifyType.INVALID_KE_PAYLOAD)
        if invalid_ke is not None:
            wanted = int.from_bytes(invalid_ke.data[:2], "big") if len(invalid_ke.data) >= 2 else 0
            offered = {g for p in conn.config.proposals for g in p.dh}
            if wanted in offered and wanted != self.group:
                log.info("%s: responder wants group %d", conn.name, wanted)
                self.group = wanted
                return self._retry(conn, now, "INVALID_KE_PAYLOAD")
            return self.failed(conn, now, f"INVALID_KE_PAYLOAD for group {wanted} we cannot use",
                               NotifyType.INVALID_KE_PAYLOAD)
        error = msg.error_notify()
        if error is not None:
            ours = (f"we offered {config_proposals_text(conn.config.proposals)}"
                    if error.notify_type == NotifyType.NO_PROPOSAL_CHOSEN else None)
            return self.failed(conn, now, "IKE_SA_INIT refused: " + refusal_text(error.notify_type, ours=ours),
                               error.notify_type)
        if not any(msg.spi_r):
            return self.failed(conn, now, "IKE_SA_INIT response without a responder SPI")
        sa, ke, nonce = msg.find(PayloadType.SA), msg.find(PayloadType.KE), msg.find(PayloadType.NONCE)
        _, suite = accept_ike_reply(sa, self.offer)
        if ke.group != suite.dh_group or suite.dh_group != self.group:
            raise ProtocolError("KEr does not match the chosen group", notify_type=NotifyType.INVALID_SYNTAX)
        if not MIN_NONCE <= len(nonce.data) <= MAX_NONCE:
            raise ProtocolError("Nr of a bad length", notify_type=NotifyType.INVALID_SYNTAX)
        conn.spi_r = msg.spi_r
        conn.nr = nonce.data
        conn.init_response = msg.raw
        _take_capabilities(conn, msg)
        _detect_nat(conn, msg, conn.spi_r, conn.remote, conn.local)
        _derive(conn, suite, self.kex.shared_secret(ke.data))
        self.kex = None
        conn.state = State.INIT_DONE
        if conn.nat_detected or (conn.config.mobike and msg.has_notify(_NAT_D_DESTINATION)):
            conn.float_to_natt()     # MOBIKE and NAT-T: the NAT-T port even without a NAT (RFC 4555 §3.3)


def stateless_reply(msg: Message, notify_type: int, data: bytes = b"") -> bytes:
    """An unprotected error (or COOKIE) answer to an IKE_SA_INIT request, with no state kept."""
    return Message(msg.spi_i, bytes(8), ExchangeType.IKE_SA_INIT, Flags.RESPONSE, 0,
                   payloads=[NotifyPayload(notify_type=notify_type, data=data)]).encode()


def respond(config: IkeConfig, msg: Message, *, local, remote, rng, now: float,
            natt_port: int = 4500):
    """The responder's IKE_SA_INIT. Returns (connection or None, reply bytes or None);
    INVALID_KE_PAYLOAD, NO_PROPOSAL_CHOSEN and INVALID_SYNTAX answers keep no state."""
    if msg.is_response or msg.message_id != 0 or any(msg.spi_r) or not msg.is_initiator:
        return None, None
    if log.isEnabledFor(logging.DEBUG):
        log.debug("received %s from %s", message_summary(msg), remote[0])
    try:
        check_rules(msg)
    except ParseError as exc:
        unauthenticated_log.info("malformed IKE_SA_INIT", "malformed IKE_SA_INIT from %s: %s", remote, exc)
        if exc.notify_type is None:
            return None, None
        return None, stateless_reply(msg, exc.notify_type, exc.notify_data)
    sa, ke, nonce = msg.find(PayloadType.SA), msg.find(PayloadType.KE), msg.find(PayloadType.NONCE)
    if not MIN_NONCE <= len(nonce.data) <= MAX_NONCE:
        return None, stateless_reply(msg, NotifyType.INVALID_SYNTAX)
    try:
        chosen, suite = select_ike(sa, config.proposals, ke_group=ke.group)
    except NoProposalChosen:
        log.info("IKE_SA_INIT from %s: sending NO_PROPOSAL_CHOSEN: the peer offered %s; %s accepts %s",
                 remote[0], sa_text(sa), config.name, config_proposals_text(config.proposals))
        return None, stateless_reply(msg, NotifyType.NO_PROPOSAL_CHOSEN)
    if ke.group != suite.dh_group:
        err = InvalidKePayload(suite.dh_group)
        return None, stateless_reply(msg, err.notify_type, err.notify_data)
    kex = KeyExchange.generate(suite.dh_group, rng)
    try:
        shared = kex.shared_secret(ke.data)
    except ParseError:
        return None, stateless_reply(msg, NotifyType.INVALID_SYNTAX)
    conn = IkeConnection(config, initiator=False, local=local, remote=remote, rng=rng, now=now,
                         spi_i=msg.spi_i, natt_port=natt_port)
    conn.spi_r = conn.new_spi()
    conn.ni, conn.nr = nonce.data, rng(NONCE_LENGTH)
    conn.init_request = msg.raw
    _take_capabilities(conn, msg)
    _detect_nat(conn, msg, bytes(8), remote, local)
    _derive(conn, suite, shared)
    payloads = [SaPayload([chosen]), KePayload(suite.dh_group, kex.public_bytes), NoncePayload(conn.nr)]
    payloads += _nat_notifies(conn, conn.spi_r, local, remote)
    certreq = certificate_request(config)
    if certreq is not None:
        payloads.append(certreq)
    payloads += _capability_notifies(config)
    conn._send_response(msg, payloads, now, encrypted=False)
    conn.init_response = conn.response_cache[0][0]
    conn.expected_request_id = 1
    conn.state = State.INIT_DONE
    conn.expire_at = now + max(30.0, config.retransmit_timeout * 20)   # half-open limit
    return conn, conn.init_response
