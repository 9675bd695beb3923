"""IKE_AUTH with the first Child SA (RFC 7296 §1.2, §2.15, §2.9, §3.15; RFC 7427).

    Initiator                         Responder
    HDR, SK {IDi, [CERT,] [CERTREQ,] [IDr,] AUTH, [CP(CFG_REQUEST),]
             [N(INITIAL_CONTACT),] [N(USE_TRANSPORT_MODE),] SAi2, TSi, TSr}  -->
                                      <--  HDR, SK {IDr, [CERT,] AUTH, [CP(CFG_REPLY),]
                                                    [N(USE_TRANSPORT_MODE),] SAr2, TSi, TSr}
"""
from __future__ import annotations

import ipaddress
import logging

from ...crypto.keyschedule import child_sa_keys
from ...errors import (AuthenticationFailed, IkeError, NoProposalChosen, ParseError, ProtocolError,
                       UnsupportedAlgorithm)
from .. import events as ev
from ..auth import (check_identity_matches_certificate, psk_auth, sign_signature_auth, signed_octets,
                    verify_psk_auth, verify_signature_auth)
from ..child_sa import ChildSa
from ..config import ChildConfig, Identity
from ..constants import (AuthMethod, CertEncoding, CfgType, CpAttributeType, ExchangeType,
                         NotifyType, PayloadType, ProtocolId)
from ..ike_sa import State     # module level: a per-call import costs ~0.6 us a message
from ..limits import unauthenticated_log
from ..message import Message
from ..negotiation import accept_esp_reply, esp_sa_payload, select_esp
from ..payloads import (AuthPayload, CertPayload, CpAttribute, CpPayload, DeletePayload,
                        IdiPayload, IdrPayload, NotifyPayload, SaPayload, TsiPayload, TsrPayload)
from ..selectors import covered_by, host_selector, narrow, to_payload
from . import resumption
from .ike_sa_init import certificate_request
from .task import Task

log = logging.getLogger("ikecore.ike")

from ..describe import config_proposals_text, notify_name, refusal_text, sa_text, selectors_text  # noqa: E402

HASH_IDENTITY = 5
# members the per-message code uses, bound once (PayloadType.X and the like go
# through EnumType.__getattr__, about 75 ns a lookup on CPython 3.11)
_SA, _TSI, _TSR, _IDI, _IDR, _AUTH, _CP, _CERT = (
    PayloadType.SA, PayloadType.TSI, PayloadType.TSR, PayloadType.IDI, PayloadType.IDR, PayloadType.AUTH,
    PayloadType.CP, PayloadType.CERT)
_USE_TRANSPORT_MODE, _INITIAL_CONTACT, _TICKET_REQUEST, _SET_WINDOW_SIZE = (
    NotifyType.USE_TRANSPORT_MODE, NotifyType.INITIAL_CONTACT, NotifyType.TICKET_REQUEST,
    NotifyType.SET_WINDOW_SIZE)
_MOBIKE_SUPPORTED, _CLONE_IKE_SA_SUPPORTED = NotifyType.MOBIKE_SUPPORTED, NotifyType.CLONE_IKE_SA_SUPPORTED
_INIT_DONE, _ESTABLISHED = State.INIT_DONE, State.ESTABLISHED
_SHARED_KEY_MIC = AuthMethod.SHARED_KEY_MIC
_CFG_REQUEST, _CFG_REPLY = CfgType.CFG_REQUEST, CfgType.CFG_REPLY
_IKE_AUTH = ExchangeType.IKE_AUTH
# what a failed peer authentication may raise: each ends the SA with AUTHENTICATION_FAILED
AUTH_ERRORS = (AuthenticationFailed, ParseError, UnsupportedAlgorithm)


def _id_body(id_type: int, data: bytes) -> bytes:
    return bytes([id_type, 0, 0, 0]) + data      # IDx' of RFC 7296 §2.15


# ------------------------------------------------------------------ AUTH data --

def own_auth(conn, *, initiator_side: bool, id_type: int, id_data: bytes) -> tuple[AuthPayload, list]:
    """Our AUTH payload (and CERT payloads) for the signed octets of our side."""
    if conn.resumed is not None:          # after IKE_SESSION_RESUME: prf(SK_px, ...), no CERT
        return resumption.resumed_auth(conn, initiator_side=initiator_side, id_type=id_type,
                                       id_data=id_data), []
    keys, suite = conn.keys, conn.suite
    if initiator_side:
        octets = signed_octets(conn.init_request, conn.nr, suite.prf_id, keys.sk_pi, _id_body(id_type, id_data))
    else:
        octets = signed_octets(conn.init_response, conn.ni, suite.prf_id, keys.sk_pr, _id_body(id_type, id_data))
    local = conn.config.local_auth
    if local.psk is not None:
        return AuthPayload(_SHARED_KEY_MIC, psk_auth(suite.prf_id, local.psk, octets)), []
    certs = [CertPayload(CertEncoding.X509_SIGNATURE, der) for der in local.certificates]
    hash_alg = _signature_hash(local.private_key, conn.peer_signature_hashes)
    if hash_alg is not None:
        data = sign_signature_auth(AuthMethod.DIGITAL_SIGNATURE, local.private_key, octets,
                                   hash_alg=hash_alg, rsa_pss=local.rsa_pss)
        return AuthPayload(AuthMethod.DIGITAL_SIGNATURE, data), certs
    method = _legacy_method(local.private_key)
    return AuthPayload(method, sign_signature_auth(method, local.private_key, octets)), certs


def _signature_hash(private_key, peer_hashes) -> int | None:
    """The RFC 7427 hash to sign with: one the peer announced, the key's natural
    one first (SHA-256 for RSA, the curve's size for ECDSA, Identity for EdDSA).
    None: the peer announced nothing usable, so a legacy method is used."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519
    if not peer_hashes:
        return None
    if isinstance(private_key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
        return HASH_IDENTITY if HASH_IDENTITY in peer_hashes else None
    natural = 2
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        natural = {384: 3, 521: 4}.get(private_key.curve.key_size, 2)
    return next((h for h in (natural, 2, 3, 4) if h in peer_hashes), None)


def _legacy_method(private_key) -> int:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    if isinstance(private_key, rsa.RSAPrivateKey):
        return AuthMethod.RSA_DIGITAL_SIGNATURE
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return {"secp256r1": AuthMethod.ECDSA_SHA256_P256, "secp384r1": AuthMethod.ECDSA_SHA384_P384,
                "secp521r1": AuthMethod.ECDSA_SHA512_P521}[private_key.curve.name]
    raise IkeError("this key can only sign with RFC 7427 (the peer announced no usable "
                   "SIGNATURE_HASH_ALGORITHMS)")


def verify_peer_auth(conn, msg: Message, *, peer_is_initiator: bool, id_payload,
                     now: float | None = None) -> None:
    """Check the peer's AUTH against its identity and credentials; raise AuthenticationFailed.

    A responder may have seen more than one version of the initiator's IKE_SA_INIT
    (with and without a COOKIE, when the half-open count crosses the cookie
    threshold under a flood) and answered an older one; the initiator signs the
    version it sent last (RFC 7296 §2.15). The endpoint keeps those versions in
    ``exchange_state["init_request_versions"]``: AUTH may cover any of them."""
    if conn.resumed is not None:
        return resumption.verify_resumed_auth(conn, msg, peer_is_initiator=peer_is_initiator,
                                              id_payload=id_payload)
    versions = conn.exchange_state.get("init_request_versions", ()) if peer_is_initiator else ()
    try:
        return _verify_peer_auth_over(conn, msg, conn.init_request, peer_is_initiator=peer_is_initiator,
                                      id_payload=id_payload, now=now)
    except AuthenticationFailed:
        for version in versions:
            try:
                _verify_peer_auth_over(conn, msg, version, peer_is_initiator=True,
                                       id_payload=id_payload, now=now)
            except AuthenticationFailed:
                continue
            conn.init_request = version
            return
        raise


def _verify_peer_auth_over(conn, msg: Message, init_request: bytes, *, peer_is_initiator: bool,
                           id_payload, now: float | None) -> None:
    auth = msg.find(_AUTH)
    if auth is None:
        raise AuthenticationFailed("no AUTH payload")
    keys, suite = conn.keys, conn.suite
    body = _id_body(id_payload.id_type, id_payload.data)
    if peer_is_initiator:
        octets = signed_octets(init_request, conn.nr, suite.prf_id, keys.sk_pi, body)
    else:
        octets = signed_octets(conn.init_response, conn.ni, suite.prf_id, keys.sk_pr, body)
    cfg = conn.config
    remote = cfg.remote_auth
    if remote.psk is not None:
        if auth.method != _SHARED_KEY_MIC:
            raise AuthenticationFailed(f"expected a PSK AUTH, got method {auth.method}")
        verify_psk_auth(suite.prf_id, remote.psk, octets, auth.data)
        return
    if auth.method == _SHARED_KEY_MIC:
        raise AuthenticationFailed("the peer used a PSK where a signature is required")
    # the peer must sign with a hash we announced (RFC 7427 §4)
    allowed = set(cfg.signature_hashes)
    certs = [c for c in msg.find_all(_CERT) if c.encoding == CertEncoding.X509_SIGNATURE]
    if remote.public_key is not None:
        key = remote.public_key      # pinned: whatever CERT the peer sends, this key must verify
    else:
        if not certs:
            raise AuthenticationFailed("the peer sent no certificate")
        at = cfg.certificate_time(now) if cfg.certificate_time is not None and now is not None else None
        leaf = remote.trust_store.verify_chain(certs[0].data, [c.data for c in certs[1:]], at_time=at)
        check_identity_matches_certificate(id_payload.id_type, id_payload.data, leaf)
        key = leaf
    try:
        verify_signature_auth(auth.method, key, auth.data, octets, allowed_hashes=allowed)
    except UnsupportedAlgorithm as exc:
        raise AuthenticationFailed(str(exc)) from exc


def _check_identity(conn, id_payload, expected: Identity | None) -> Identity:
    if expected is not None:
        # field by field: what Identity equality compares; the expected object is the
        # peer's identity then (no Identity built and compared, twice a handshake)
        if id_payload.id_type == expected.id_type and id_payload.data == expected.data:
            return expected
        peer = Identity(id_payload.id_type, id_payload.data)
        raise AuthenticationFailed(f"peer identity {peer} is not the configured {expected}")
    return Identity(id_payload.id_type, id_payload.data)


# ------------------------------------------------------------------ Child SAs --

def child_keys(conn, suite, ni: bytes, nr: bytes, shared_secret: bytes | None = None):
    return child_sa_keys(conn.suite.prf_id, conn.keys.sk_d, ni, nr, encr_id=suite.encr_id,
                         encr_key_bits=suite.key_bits, integ_id=suite.integ_id,
                         shared_secret=shared_secret)


def new_child(conn, cfg: ChildConfig, suite, *, spi_in: bytes, spi_out: bytes, keys, initiator: bool,
              local_ts: list, remote_ts: list, now: float, mode: str | None = None) -> ChildSa:
    jitter = (conn.rng(1)[0] / 255.0) * 0.1 * cfg.rekey_time
    child = ChildSa(name=cfg.name, mode=mode or cfg.mode, suite=suite, spi_in=spi_in, spi_out=spi_out,
                    keys=keys, initiator=initiator, local_ts=local_ts, remote_ts=remote_ts,
                    created_at=now, rekey_at=now + cfg.rekey_time - jitter,
                    expire_at=now + cfg.life_time, replay_window=cfg.replay_window,
                    udp_encap=conn.nat_detected, config=cfg)
    conn.children[spi_in] = child
    return child


def new_child_spi(conn) -> bytes:
    """A random inbound SPI that no Child SA of this IKE SA, nor any installed
    one of the endpoint's (``conn.inbound_spis``), uses: with 100,000 Child SAs
    a random 32-bit SPI collides with one of them about one time in 43."""
    while True:
        spi = conn.rng(4)
        # SPIs 1-255 are reserved by IANA (RFC 4303 §2.1)
        if int.from_bytes(spi, "big") > 255 and spi not in conn.children and spi not in conn.inbound_spis:
            return spi


def child_request_payloads(conn, cfg: ChildConfig, spi_in: bytes, *, pfs_group: int | None = None,
                           local_ts=None) -> tuple[SaPayload, list]:
    offer = esp_sa_payload(cfg.esp_proposals, spi_in, pfs=pfs_group is not None, group_first=pfs_group)
    tsi = local_ts or [to_payload(t) for t in cfg.local_ts]
    tsr = [to_payload(t) for t in cfg.remote_ts]
    extra = [NotifyPayload(notify_type=_USE_TRANSPORT_MODE)] if cfg.mode == "transport" else []
    return offer, extra + [offer, TsiPayload(tsi), TsrPayload(tsr)]


def choose_child(conn, msg: Message, *, allow_dh: bool = False, assigned_ip: str | None = None,
                 ke_group: int | None = None, ignore_dh: bool = False):
    """Responder: (child config, reply proposal, suite, narrowed TSi, TSr, mode) for a
    request's SA/TSi/TSr, or raise a ProtocolError that carries the notify."""
    sa = msg.find(_SA)
    tsi, tsr = msg.find(_TSI), msg.find(_TSR)
    transport = msg.has_notify(_USE_TRANSPORT_MODE)
    last_error: ProtocolError | None = None
    ts_tried = []
    for cfg in conn.config.children:
        # the peer's TSi is its side: our remote selectors; its TSr our local ones
        remote_allowed = ([host_selector(assigned_ip)] if assigned_ip
                          else [to_payload(t) for t in cfg.remote_ts])
        n_tsi = narrow(tsi.selectors, remote_allowed)
        n_tsr = narrow(tsr.selectors, [to_payload(t) for t in cfg.local_ts])
        if not n_tsi or not n_tsr:
            ts_tried.append(f"{cfg.name}: {selectors_text(remote_allowed)} === {selectors_text(cfg.local_ts)}")
            continue
        try:
            proposal, suite = select_esp(sa, cfg.esp_proposals, allow_dh=allow_dh, ke_group=ke_group,
                                         ignore_dh=ignore_dh)
        except NoProposalChosen as exc:
            last_error = NoProposalChosen(
                f"NO_PROPOSAL_CHOSEN: the peer offered {sa_text(sa)}; child {cfg.name} accepts "
                f"{config_proposals_text(cfg.esp_proposals)} ({exc})")
            continue
        mode = "transport" if transport and cfg.mode == "transport" else "tunnel"
        return cfg, proposal, suite, n_tsi, n_tsr, mode
    if last_error is None:
        last_error = ProtocolError(
            f"TS_UNACCEPTABLE: the peer's TSi {selectors_text(tsi.selectors)} TSr {selectors_text(tsr.selectors)}"
            f" match none of ours ({'; '.join(ts_tried) or 'no children'}; ours as TSi === TSr)",
            notify_type=NotifyType.TS_UNACCEPTABLE)
    # the one log line of this refusal (IKE_AUTH and CREATE_CHILD_SA responders)
    log.info("%s: refusing a Child SA from %s: %s", conn.name, conn.remote_id, last_error)
    raise last_error


def _child_refusal(notify, cfg, offer, tsi, tsr) -> str:
    """What we asked for, next to the peer's refusal of it."""
    if notify == NotifyType.NO_PROPOSAL_CHOSEN:
        return refusal_text(notify, ours=f"we offered {sa_text(offer)}")
    if notify == NotifyType.TS_UNACCEPTABLE:
        return refusal_text(notify, ours=f"we proposed TSi {selectors_text(tsi)} TSr {selectors_text(tsr)}")
    if notify is None:
        return "no Child SA and no notify"
    return refusal_text(notify)


# ------------------------------------------------------------------ initiator --

class IkeAuthTask(Task):
    def __init__(self, child_name: str | None = None) -> None:
        self.child_name = child_name
        self.child_cfg: ChildConfig | None = None
        self.offer = None
        self.spi_in = b""
        self.tsi: list = []
        self.tsr: list = []

    def ready(self, conn) -> bool:
        return conn.state == _INIT_DONE

    def build_request(self, conn, now: float) -> Message:
        cfg = conn.config
        resumed = conn.resumed
        # after a resumption IDi and IDr are the ticket's (RFC 5723 §4.3.3)
        local_id = resumed.local_id if resumed is not None else cfg.local_id
        remote_id = resumed.remote_id if resumed is not None else cfg.remote_id
        auth, certs = own_auth(conn, initiator_side=True, id_type=local_id.id_type, id_data=local_id.data)
        payloads = [IdiPayload(local_id.id_type, local_id.data)] + certs
        certreq = certificate_request(cfg) if resumed is None else None
        if certreq is not None:
            payloads.append(certreq)
        if remote_id is not None:
            payloads.append(IdrPayload(remote_id.id_type, remote_id.data))
        payloads.append(auth)
        if cfg.request_virtual_ip:
            payloads.append(CpPayload(_CFG_REQUEST, [CpAttribute(CpAttributeType.INTERNAL_IP4_ADDRESS)]))
        # only the first SA to a peer says INITIAL_CONTACT: the endpoint clears it
        # when another SA with that peer is up (RFC 7296 §2.4)
        if cfg.initial_contact and not conn.exchange_state.get("no_initial_contact"):
            payloads.append(NotifyPayload(notify_type=_INITIAL_CONTACT))
        if cfg.children:
            self.child_cfg = cfg.child(self.child_name)
            self.spi_in = new_child_spi(conn)
            local_ts = None
            if cfg.request_virtual_ip:   # any address: the responder narrows to the one it assigns
                local_ts = [to_payload(t) for t in _any_v4()]
            self.offer, child_payloads = child_request_payloads(conn, self.child_cfg, self.spi_in,
                                                                local_ts=local_ts)
            self.tsi, self.tsr = child_payloads[-2].selectors, child_payloads[-1].selectors
            payloads += child_payloads
        payloads += _feature_notifies(cfg)
        if cfg.resumption:
            conn.ticket_client = True
            payloads.append(resumption.ticket_request())
        return Message(conn.spi_i, conn.spi_r, _IKE_AUTH, inner=payloads)

    def on_response(self, conn, msg: Message, now: float) -> None:
        error = msg.error_notify()
        if error is not None and error.notify_type == NotifyType.AUTHENTICATION_FAILED:
            if conn.resumed is not None:     # e.g. a gateway that signs the other octets
                return resumption.fall_back(conn, now, "the gateway refused the resumed AUTH",
                                            error.notify_type, child=self.child_name)
            log.warning("%s: received AUTHENTICATION_FAILED: the responder refused us as %s (%s)", conn.name,
                        conn.config.local_id, _local_method_text(conn.config))
            return conn.terminate("authentication failed", now, NotifyType.AUTHENTICATION_FAILED)
        idr, auth = msg.find(_IDR), msg.find(_AUTH)
        if idr is None or auth is None:
            return self.failed(conn, now, f"IKE_AUTH failed: {notify_name(error.notify_type if error else None)}",
                               error.notify_type if error else None)
        try:
            expected = conn.resumed.remote_id if conn.resumed is not None else conn.config.remote_id
            conn.remote_id = _check_identity(conn, idr, expected)
            verify_peer_auth(conn, msg, peer_is_initiator=False, id_payload=idr, now=now)
        except AUTH_ERRORS as exc:
            log.warning("%s: responder %s (%s) failed authentication: %s; sending AUTHENTICATION_FAILED",
                        conn.name, _id_text(idr), _auth_method_text(msg), exc)
            # the responder thinks the SA is up: tell it (RFC 7296 §2.21.2 allows this one
            # INFORMATIONAL after a failed response) and delete it in the same message
            conn.remote_id = None
            conn.tasks.clear()
            conn.queue(AuthFailedTask(), now)
            return
        _take_features(conn, msg)
        cp = msg.find(_CP)
        if cp is not None and cp.cfg_type == _CFG_REPLY:
            for a in cp.attributes:
                if a.type == CpAttributeType.INTERNAL_IP4_ADDRESS and len(a.value) >= 4:
                    conn.virtual_ip = str(ipaddress.IPv4Address(a.value[:4]))
        conn.state = _ESTABLISHED
        conn.forget_init_messages()
        conn.start_lifetimes(now)
        local_id = conn.resumed.local_id if conn.resumed is not None else conn.config.local_id
        conn.emit(ev.IkeSaEstablished(conn.spi_i, conn.spi_r, True, conn.suite, local_id,
                                      conn.remote_id, conn.virtual_ip, resumed=conn.resumed is not None))
        if conn.ticket_client:
            resumption.take_ticket_answer(conn, msg, now)
        if self.child_cfg is None:
            return
        if msg.find(_SA) is None:
            notify = error.notify_type if error else None
            conn.emit(ev.ChildSaFailed(self.child_cfg.name, notify, "the responder refused it: "
                                       + _child_refusal(notify, self.child_cfg, self.offer, self.tsi, self.tsr)))
            return
        try:
            complete_child_initiator(conn, msg, self.child_cfg, self.offer, self.spi_in, self.tsi, self.tsr,
                                     conn.ni, conn.nr, now)
        except ProtocolError as exc:
            conn.emit(ev.ChildSaFailed(self.child_cfg.name, exc.notify_type, str(exc)))
            conn.delete(now)   # an IKE_AUTH whose Child SA is unusable: start over cleanly


class AuthFailedTask(Task):
    """Initiator, after the responder's AUTH failed: INFORMATIONAL {N(AUTHENTICATION_FAILED),
    D(IKE)}; whatever happens next, the SA ends as an authentication failure."""

    def ready(self, conn) -> bool:
        return True

    def build_request(self, conn, now: float) -> Message:
        conn.state = State.DELETING
        return Message(conn.spi_i, conn.spi_r, ExchangeType.INFORMATIONAL, inner=[
            NotifyPayload(notify_type=NotifyType.AUTHENTICATION_FAILED), DeletePayload(ProtocolId.IKE)])

    def on_response(self, conn, msg, now: float) -> None:
        conn.terminate("authentication failed", now, NotifyType.AUTHENTICATION_FAILED)

    def failed(self, conn, now: float, reason: str, notify_type: int | None = None) -> None:
        self.on_response(conn, None, now)


def _any_v4():
    from ..config import TrafficSelectorSpec
    return [TrafficSelectorSpec.parse("0.0.0.0/0")]


def complete_child_initiator(conn, msg: Message, cfg: ChildConfig, offer, spi_in: bytes, tsi, tsr,
                             ni: bytes, nr: bytes, now: float, shared_secret: bytes | None = None,
                             expect_group: int | None = None) -> ChildSa:
    sa = msg.find(_SA)
    _, suite = accept_esp_reply(sa, offer)
    if (suite.dh_group or None) != (expect_group or None):
        raise ProtocolError("the responder's PFS group does not match", notify_type=NotifyType.NO_PROPOSAL_CHOSEN)
    rtsi, rtsr = msg.find(_TSI), msg.find(_TSR)
    if rtsi is None or rtsr is None:
        raise ProtocolError("the reply lacks traffic selectors", notify_type=NotifyType.INVALID_SYNTAX)
    if not conn.config.request_virtual_ip and not covered_by(rtsi.selectors, tsi):
        raise ProtocolError("TSi widened by the responder", notify_type=NotifyType.TS_UNACCEPTABLE)
    if not covered_by(rtsr.selectors, tsr):
        raise ProtocolError("TSr widened by the responder", notify_type=NotifyType.TS_UNACCEPTABLE)
    mode = "transport" if msg.has_notify(_USE_TRANSPORT_MODE) and cfg.mode == "transport" else "tunnel"
    keys = child_keys(conn, suite, ni, nr, shared_secret)
    spi_out = sa.proposals[0].spi
    child = new_child(conn, cfg, suite, spi_in=spi_in, spi_out=spi_out, keys=keys, initiator=True,
                      local_ts=list(rtsi.selectors), remote_ts=list(rtsr.selectors), now=now, mode=mode)
    conn.emit(ev.ChildSaInstalled(child))
    return child


def _feature_notifies(cfg) -> list:
    out = []
    if cfg.mobike:
        from .mobike import auth_notifies
        out.append(NotifyPayload(notify_type=_MOBIKE_SUPPORTED))
        out += auth_notifies(cfg)
    if cfg.clone:
        out.append(NotifyPayload(notify_type=_CLONE_IKE_SA_SUPPORTED))
    return out


def _take_features(conn, msg: Message) -> None:
    # one walk over the notifies for the three this looks at
    mobike = clone = False
    window = None
    for n in msg.notifies():
        t = n.notify_type
        if t == _MOBIKE_SUPPORTED:
            mobike = True
        elif t == _CLONE_IKE_SA_SUPPORTED:
            clone = True
        elif t == _SET_WINDOW_SIZE and window is None:
            window = n
    conn.peer_mobike = mobike
    if mobike and conn.config.mobike:
        from .mobike import take_addresses
        take_addresses(conn, msg)
    conn.peer_clone = clone
    if window is not None and len(window.data) == 4:
        conn.peer_window = max(1, min(int.from_bytes(window.data, "big"), 64))


# ------------------------------------------------------------------ responder --

def respond(conn, msg: Message, now: float) -> list | None:
    if conn.state != _INIT_DONE or conn.initiator:
        # IKE_AUTH on an established SA, or sent to the initiator: not for this state
        raise ProtocolError("unexpected IKE_AUTH", notify_type=NotifyType.INVALID_SYNTAX)
    cfg = conn.config
    idi = msg.find(_IDI)
    idr_req = msg.find(_IDR)
    try:
        if idi is None:
            raise AuthenticationFailed("no IDi (EAP is not supported)")
        if idr_req is not None and (idr_req.id_type != cfg.local_id.id_type or idr_req.data != cfg.local_id.data):
            raise AuthenticationFailed(f"the initiator asks for {Identity(idr_req.id_type, idr_req.data)}")
        # after a resumption, IDi must be the ticket's (RFC 5723 §4.3.3)
        expected = conn.resumed.remote_id if conn.resumed is not None else cfg.remote_id
        conn.remote_id = _check_identity(conn, idi, expected)
        verify_peer_auth(conn, msg, peer_is_initiator=True, id_payload=idi, now=now)
        auth, certs = own_auth(conn, initiator_side=False, id_type=cfg.local_id.id_type,
                               id_data=cfg.local_id.data)
    except (*AUTH_ERRORS, IkeError) as exc:
        unauthenticated_log.warning("initiator authentication failed",
                                    "%s: sending AUTHENTICATION_FAILED: initiator %s (%s) at %s: %s", conn.name,
                                    _id_text(idi), _auth_method_text(msg), conn.remote[0], exc)
        conn.remote_id = None
        conn.exchange_state["after_response"] = lambda t: conn.terminate(
            "authentication failed", t, NotifyType.AUTHENTICATION_FAILED)
        return [NotifyPayload(notify_type=NotifyType.AUTHENTICATION_FAILED)]
    _take_features(conn, msg)
    if conn.resumed is not None:
        retire = conn.hooks.get("retire_resumed")
        if retire is not None:      # the SA the ticket came from goes, silently (RFC 5723 §4.3.4)
            retire(conn, conn.resumed.ticket_id, now)
    retire_older = conn.exchange_state.get("initial_contact")
    if retire_older is not None and msg.has_notify(_INITIAL_CONTACT):
        retire_older(conn, now)     # the endpoint forgets older SAs with this peer (RFC 7296 §2.4)
    payloads = [IdrPayload(cfg.local_id.id_type, cfg.local_id.data)] + certs + [auth]
    assigned = None
    cp = msg.find(_CP)
    if cp is not None and cp.cfg_type == _CFG_REQUEST and cfg.address_pool:
        assigned = _lease(conn)
        if assigned is None:
            payloads.append(NotifyPayload(notify_type=NotifyType.INTERNAL_ADDRESS_FAILURE))
        else:
            conn.assigned_ip = assigned
            payloads.append(CpPayload(_CFG_REPLY, [
                CpAttribute(CpAttributeType.INTERNAL_IP4_ADDRESS, ipaddress.IPv4Address(assigned).packed)]))
    payloads += _feature_notifies(cfg)
    conn.state = _ESTABLISHED
    conn.forget_init_messages()
    conn.start_lifetimes(now)
    resumption.note_authenticated(conn, msg, now)
    conn.emit(ev.IkeSaEstablished(conn.spi_i, conn.spi_r, False, conn.suite, cfg.local_id, conn.remote_id,
                                  resumed=conn.resumed is not None))
    if msg.has_notify(_TICKET_REQUEST):
        payloads.append(resumption.answer_ticket_request(conn, now))
    if msg.find(_SA) is not None and not cfg.children:
        # a childless responder still answers the Child SA request (RFC 7296 §2.21.2: the IKE
        # SA stands, the Child SA gets an error notify); with no notify at all libreswan 5.2
        # takes the response as malformed and tears the IKE SA down. After the ticket answer,
        # so that a childless gateway still issues tickets
        payloads.append(NotifyPayload(notify_type=NotifyType.TS_UNACCEPTABLE))
        conn.emit(ev.ChildSaFailed("", NotifyType.TS_UNACCEPTABLE, "no Child SA is configured"))
        return payloads
    if msg.find(_SA) is not None and cfg.children and (assigned or not cp or not cfg.address_pool):
        try:
            child_cfg, proposal, suite, n_tsi, n_tsr, mode = choose_child(conn, msg, assigned_ip=assigned,
                                                                          ignore_dh=True)
        except ProtocolError as exc:
            payloads.append(NotifyPayload(notify_type=exc.notify_type or NotifyType.NO_PROPOSAL_CHOSEN))
            conn.emit(ev.ChildSaFailed("", exc.notify_type, str(exc)))
            return payloads
        spi_in = new_child_spi(conn)
        spi_out = proposal.spi            # the initiator's inbound SPI, echoed in the chosen proposal
        keys = child_keys(conn, suite, conn.ni, conn.nr)
        proposal.spi = spi_in
        child = new_child(conn, child_cfg, suite, spi_in=spi_in, spi_out=spi_out, keys=keys,
                          initiator=False, local_ts=n_tsr, remote_ts=n_tsi, now=now, mode=mode)
        if mode == "transport":
            payloads.append(NotifyPayload(notify_type=_USE_TRANSPORT_MODE))
        payloads += [SaPayload([proposal]), TsiPayload(n_tsi), TsrPayload(n_tsr)]
        conn.emit(ev.ChildSaInstalled(child))
    return payloads


def _lease(conn) -> str | None:
    """The first pool address no other SA holds (``conn.leases`` is shared by the
    endpoint's connections and released when an SA goes)."""
    for addr in conn.config.address_pool:
        if addr not in conn.leases:
            conn.leases.add(addr)
            return addr
    return None


def _id_text(id_payload) -> str:
    if id_payload is None:
        return "(no identity)"
    try:
        return str(Identity(id_payload.id_type, id_payload.data))
    except (IkeError, ValueError):
        return f"(identity type {id_payload.id_type})"


def _auth_method_text(msg) -> str:
    from ..constants import AuthMethod
    auth = msg.find(_AUTH)
    if auth is None:
        return "no AUTH"
    try:
        return f"auth {AuthMethod(auth.method).name}"
    except ValueError:
        return f"auth method {auth.method}"


def _local_method_text(cfg) -> str:
    return "auth PSK" if getattr(cfg.local_auth, "psk", None) else "auth pubkey"
