"""Session resumption (RFC 5723): tickets and IKE_SESSION_RESUME, both roles.

Getting a ticket (§4.1, §4.2), in IKE_AUTH, an IKE SA rekey or an INFORMATIONAL:

    Client                                 Gateway
    HDR, SK {..., N(TICKET_REQUEST)}  -->
                                      <--  HDR, SK {..., N(TICKET_LT_OPAQUE) | N(TICKET_NACK) | N(TICKET_ACK)}

Using it (§4.3), then IKE_AUTH with AUTH = prf(SK_px, <signed octets>) and the first Child SA:

    HDR(SPIi, 0, Message ID 0), [N(COOKIE),] Ni, N(TICKET_OPAQUE), N(NAT_D_S), N(NAT_D_D)  -->
                                      <--  HDR(SPIi, SPIr), Nr, N(NAT_D_S), N(NAT_D_D)
                                      <--  HDR(SPIi, 0), N(TICKET_NACK)   (or N(COOKIE))
    HDR, SK {IDi, [IDr,] AUTH, SAi2, TSi, TSr, [N(TICKET_REQUEST)]}  -->
                                      <--  HDR, SK {IDr, AUTH, SAr2, TSi, TSr, [N(TICKET_LT_OPAQUE)]}

SKEYSEED = prf(SK_d_old, "Resumption" | Ni | Nr), expanded over Ni | Nr | SPIi | SPIr
(§5.1, one C call: ``ike_keys_resume``). The signed octets are ambiguous; both
forms are implemented (docs/resumption.md). The initiator task falls back to a full
IKE_SA_INIT on the same connection (under a new SPI) after TICKET_NACK, an error,
no answer, or an AUTH the gateway refused. The responder side is split between
``IkeEndpoint`` (cookies, the ticket store check, half-open accounting) and the
pure functions here.
"""
from __future__ import annotations

import hmac
import logging

from ...crypto.keyschedule import ike_keys_resume
from ...crypto.prf import prf
from ...errors import AuthenticationFailed, IkeError, ParseError, ProtocolError
from ...resumption import TICKET_ID_LENGTH, TicketState
from .. import events as ev
from ..config import IkeConfig, Identity
from ..constants import AuthMethod, ExchangeType, Flags, NotifyType, PayloadType
from ..ike_sa import IkeConnection, State     # module level: a per-call import costs ~0.6 us a message
from ..message import Message
from ..negotiation import IkeSuite
from ..payloads import AuthPayload, NoncePayload, NotifyPayload
from ..rules import check_rules
from ..tickets import AUTH_FORM_MESSAGE, AUTH_FORM_RFC, ClientTicket, ResumedSa, TicketPut
from .ike_sa_init import (MAX_NONCE, MIN_NONCE, NONCE_LENGTH, _capability_notifies, _detect_nat,
                          _nat_notifies, _take_capabilities)
from .task import Task

log = logging.getLogger("ikecore.ike")

MAX_TICKET = 4096            # octets; ours are far smaller, libreswan's 856 (interop guide)
MAX_TICKET_IDS_PER_SA = 8    # tickets remembered per SA (to retire it on resumption, §4.3.4)
TICKET_ACK_RETRY = 60.0      # seconds before asking again after TICKET_ACK ("not now")
MAX_TICKET_ACKS = 3
RENEW_AT = 0.9               # of a ticket's lifetime: ask for a fresh one then
MIN_RENEWAL = 60.0           # seconds: no automatic renewal of shorter-lived tickets
MAX_COOKIE_RETRIES = 3


# members the per-message code uses, bound once (NotifyType.X goes through
# EnumType.__getattr__, about 75 ns a lookup on CPython 3.11)
_TICKET_LT_OPAQUE, _TICKET_OPAQUE, _TICKET_NACK, _COOKIE = (
    NotifyType.TICKET_LT_OPAQUE, NotifyType.TICKET_OPAQUE, NotifyType.TICKET_NACK, NotifyType.COOKIE)
_TICKET_REQUEST = NotifyType.TICKET_REQUEST
_NONCE, _AUTH = PayloadType.NONCE, PayloadType.AUTH
_SHARED_KEY_MIC = AuthMethod.SHARED_KEY_MIC
_RESPONSE, _INITIATOR = int(Flags.RESPONSE), int(Flags.INITIATOR)
_ZERO_SPI = bytes(8)


class ResumptionRefused(ProtocolError):
    """The gateway will not resume this session: answered with TICKET_NACK."""

    notify_type = _TICKET_NACK


# ------------------------------------------------------------------ tickets --

def ticket_request() -> NotifyPayload:
    return NotifyPayload(notify_type=_TICKET_REQUEST)


def _ticket_lifetime(conn, now: float) -> int:
    """min(configured, the IKE SA's remaining lifetime, its re-authentication deadline),
    whole seconds (RFC 5723 §6.2)."""
    bound = min(conn.config.ticket_lifetime, conn.expire_at - now, conn.reauth_at - now)
    return int(bound) if bound >= 1 else 0


def answer_ticket_request(conn, now: float) -> NotifyPayload:
    """Gateway: the notify that answers N(TICKET_REQUEST) on the (authenticated) SA
    ``conn``: TICKET_LT_OPAQUE with a fresh ticket, or TICKET_NACK."""
    cfg = conn.config
    authority = cfg.ticket_authority
    if not cfg.resumption or authority is None or conn.keys is None or conn.remote_id is None:
        return _ticket_nack()
    lifetime = _ticket_lifetime(conn, now)
    if lifetime <= 0:
        return _ticket_nack()
    wall = cfg.wall_time(now)
    suite = conn.suite
    try:
        state = TicketState(
            ticket_id=conn.rng(TICKET_ID_LENGTH), expires_at=int(wall) + lifetime,
            idi_type=int(conn.remote_id.id_type), idi=bytes(conn.remote_id.data),
            idr_type=int(cfg.local_id.id_type), idr=bytes(cfg.local_id.data),
            auth_method=int(conn.peer_auth_method),
            prf_id=int(suite.prf_id), encr_id=int(suite.encr_id), encr_key_bits=int(suite.key_bits or 0),
            integ_id=int(suite.integ_id), dh_group=int(suite.dh_group), sk_d=bytes(conn.keys.sk_d))
        issued = authority.issue(state, wall)
    except (IkeError, ValueError, TypeError) as exc:
        log.warning("%s: no ticket issued: %s", conn.name, exc)
        return _ticket_nack()
    # the authority may cut the expiry to its key's life in the ring
    lifetime = min(lifetime, int(issued.lifetime))
    if lifetime <= 0 or not 1 <= len(issued.ticket) <= 65535 - 4:
        return _ticket_nack()
    put = None
    if issued.store_put is not None:
        key, value, ttl = issued.store_put
        put = TicketPut(key, value, int(ttl))
    conn.emit(ev.TicketIssued(state.ticket_id, int(issued.expires_at), lifetime, put))
    return NotifyPayload(notify_type=_TICKET_LT_OPAQUE, data=lifetime.to_bytes(4, "big") + issued.ticket)


def _ticket_nack() -> NotifyPayload:
    return NotifyPayload(notify_type=_TICKET_NACK)


def take_ticket_answer(conn, msg: Message, now: float) -> None:
    """Client: keep the ticket a response carries (or note the refusal)."""
    granted = msg.notify(_TICKET_LT_OPAQUE)
    if granted is not None:
        lifetime = int.from_bytes(granted.data[:4], "big")
        ticket = granted.data[4:]
        if lifetime == 0 or not ticket or conn.remote_id is None:
            conn.emit(ev.TicketRefused(_TICKET_LT_OPAQUE, "a ticket without lifetime"))
            return
        local_id = conn.resumed.local_id if conn.resumed is not None else conn.config.local_id
        held = ClientTicket(ticket=ticket, expires_at=conn.config.wall_time(now) + lifetime,
                            local_id=local_id, remote_id=conn.remote_id, suite=conn.suite,
                            sk_d=conn.keys.sk_d, config_name=conn.config.name)
        conn.exchange_state.pop("ticket_acks", None)
        conn.emit(ev.TicketReceived(lifetime, held))
        # a fresh one before this one runs out (an IKE SA rekey brings one sooner); one
        # renewal pending at a time, and none for a ticket too short-lived to bother
        conn.deferred = [(w, t) for w, t in conn.deferred if not isinstance(t, TicketRequestTask)]
        if lifetime * RENEW_AT >= MIN_RENEWAL:
            conn.queue_later(TicketRequestTask(), now + lifetime * RENEW_AT)
        return
    if msg.has_notify(_TICKET_NACK):
        conn.emit(ev.TicketRefused(_TICKET_NACK, "the gateway refused a ticket"))
    elif msg.has_notify(NotifyType.TICKET_ACK):
        acks = conn.exchange_state.get("ticket_acks", 0) + 1
        conn.exchange_state["ticket_acks"] = acks
        conn.emit(ev.TicketRefused(NotifyType.TICKET_ACK, "the gateway has no ticket for us now"))
        if acks <= MAX_TICKET_ACKS:
            conn.queue_later(TicketRequestTask(), now + TICKET_ACK_RETRY)


class TicketRequestTask(Task):
    """Client: ask for a (fresh) ticket in an INFORMATIONAL (RFC 5723 §4.2)."""

    follows_rekey = False        # a rekeyed SA asks for its own

    def build_request(self, conn, now: float) -> Message:
        return Message(conn.spi_i, conn.spi_r, ExchangeType.INFORMATIONAL, inner=[ticket_request()])

    def on_response(self, conn, msg: Message, now: float) -> None:
        take_ticket_answer(conn, msg, now)

    def failed(self, conn, now: float, reason: str, notify_type: int | None = None) -> None:
        log.info("%s: ticket request failed: %s", conn.name, reason)


# ------------------------------------------------------------------- AUTH --

def _id_body(id_type: int, data: bytes) -> bytes:
    return bytes([id_type, 0, 0, 0]) + data


def signed_octets_for(conn, *, initiator_side: bool, form: str, id_type: int, id_data: bytes) -> bytes:
    """The octets one side's AUTH covers after IKE_SESSION_RESUME (RFC 5723 §4.3.3):
    ``rfc``: message | peer nonce | prf(SK_px, IDx') (RFC 4306 §2.15); ``message``:
    the IKE_SESSION_RESUME message alone (libreswan 5.x)."""
    keys = conn.keys
    if initiator_side:
        message, peer_nonce, sk_p = conn.init_request, conn.nr, keys.sk_pi
    else:
        message, peer_nonce, sk_p = conn.init_response, conn.ni, keys.sk_pr
    if form == AUTH_FORM_MESSAGE:
        return message
    return message + peer_nonce + prf(conn.suite.prf_id, sk_p, _id_body(id_type, id_data))


def resumed_auth(conn, *, initiator_side: bool, id_type: int, id_data: bytes) -> AuthPayload:
    """Our AUTH after resumption: prf(SK_px, octets), no key pad; Auth Method 2 as
    libreswan sends (RFC 5723 names none)."""
    form = conn.resumed.auth_form or AUTH_FORM_RFC
    sk_p = conn.keys.sk_pi if initiator_side else conn.keys.sk_pr
    octets = signed_octets_for(conn, initiator_side=initiator_side, form=form, id_type=id_type,
                               id_data=id_data)
    return AuthPayload(_SHARED_KEY_MIC, prf(conn.suite.prf_id, sk_p, octets))


def verify_resumed_auth(conn, msg: Message, *, peer_is_initiator: bool, id_payload) -> None:
    """Check the peer's AUTH after resumption. A responder takes either form and
    remembers which (it answers in it); an initiator expects the form it used."""
    auth = msg.find(_AUTH)
    if auth is None:
        raise AuthenticationFailed("no AUTH payload")
    if auth.method != _SHARED_KEY_MIC:
        raise AuthenticationFailed(f"a resumed SA authenticates with method 2, not {auth.method}")
    resumed = conn.resumed
    forms = (resumed.auth_form,) if resumed.auth_form else (AUTH_FORM_RFC, AUTH_FORM_MESSAGE)
    sk_p = conn.keys.sk_pi if peer_is_initiator else conn.keys.sk_pr
    for form in forms:
        octets = signed_octets_for(conn, initiator_side=peer_is_initiator, form=form,
                                   id_type=id_payload.id_type, id_data=id_payload.data)
        if hmac.compare_digest(prf(conn.suite.prf_id, sk_p, octets), auth.data):
            resumed.auth_form = form
            return
    raise AuthenticationFailed("the resumption AUTH does not match")


def note_authenticated(conn, msg: Message, now: float) -> None:
    """After IKE_AUTH: which method the peer used (it goes into its tickets) and the
    re-authentication deadline (a resumed SA keeps the old SA's, §5; tickets are
    bounded by it)."""
    cfg = conn.config
    deadline = now + cfg.reauth_time if cfg.reauth_time > 0 else float("inf")
    if conn.resumed is not None:
        conn.peer_auth_method = conn.resumed.auth_method
        deadline = min(deadline, conn.resumed.reauth_at)
    else:
        auth = msg.find(_AUTH)
        conn.peer_auth_method = auth.method if auth is not None else 0
    conn.reauth_at = deadline


# -------------------------------------------------------------- initiator --

class ResumeTask(Task):
    """The client's IKE_SESSION_RESUME, with its COOKIE retries; every failure
    falls back to a full IKE_SA_INIT."""

    follows_rekey = False

    def __init__(self, ticket: ClientTicket, child_name: str | None = None) -> None:
        self.ticket = ticket
        self.child_name = child_name
        self.cookie: bytes | None = None
        self.cookie_retries = 0

    def ready(self, conn) -> bool:
        return True

    def retransmit_limit(self, conn) -> int:
        return conn.config.resume_tries

    def build_request(self, conn, now: float) -> Message:
        if not conn.ni:
            conn.ni = conn.rng(NONCE_LENGTH)
        payloads = []
        if self.cookie is not None:       # first, as in IKE_SA_INIT (RFC 7296 §2.6)
            payloads.append(NotifyPayload(notify_type=_COOKIE, data=self.cookie))
        payloads += [NoncePayload(conn.ni),
                     NotifyPayload(notify_type=_TICKET_OPAQUE, data=self.ticket.ticket)]
        payloads += _nat_notifies(conn, bytes(8), conn.local, conn.remote)
        payloads += _capability_notifies(conn.config)
        conn.state = State.INIT_SENT
        return Message(conn.spi_i, bytes(8), ExchangeType.IKE_SESSION_RESUME, Flags.INITIATOR, 0,
                       payloads=payloads)

    def sent(self, conn, msg, datagrams) -> None:
        conn.init_request = datagrams[0]      # RealMessage1 of the resumption AUTH

    def on_response(self, conn, msg: Message, now: float) -> None:
        cookie = msg.notify(_COOKIE)
        if cookie is not None:
            if not 1 <= len(cookie.data) <= 64 or self.cookie_retries >= MAX_COOKIE_RETRIES:
                return self.failed(conn, now, "unusable COOKIE")
            self.cookie, self.cookie_retries = cookie.data, self.cookie_retries + 1
            conn.send_request(self, self.build_request(conn, now), now, message_id=0)
            return
        if msg.has_notify(_TICKET_NACK):
            return self.failed(conn, now, "the gateway refused the ticket (TICKET_NACK)",
                               _TICKET_NACK)
        error = msg.error_notify()
        if error is not None:
            return self.failed(conn, now, f"IKE_SESSION_RESUME refused: notify {error.notify_type}",
                               error.notify_type)
        nonce = msg.find(_NONCE)
        if not any(msg.spi_r) or nonce is None or not MIN_NONCE <= len(nonce.data) <= MAX_NONCE:
            return self.failed(conn, now, "unusable IKE_SESSION_RESUME response")
        conn.spi_r = msg.spi_r
        conn.nr = nonce.data
        conn.init_response = msg.raw
        _take_capabilities(conn, msg)
        _detect_nat(conn, msg, conn.spi_r, conn.remote, conn.local)
        install_resumed_keys(conn, self.ticket.suite, self.ticket.sk_d)
        conn.state = State.INIT_DONE
        if conn.nat_detected:
            conn.float_to_natt()

    def failed(self, conn, now: float, reason: str, notify_type: int | None = None) -> None:
        fall_back(conn, now, reason, notify_type, child=self.child_name)

    def timed_out(self, conn, now: float) -> bool:
        fall_back(conn, now, "no answer to IKE_SESSION_RESUME", child=self.child_name)
        return True


def install_resumed_keys(conn, suite: IkeSuite, sk_d_old: bytes) -> None:
    keys = ike_keys_resume(suite.prf_id, sk_d_old, conn.ni, conn.nr, conn.spi_i, conn.spi_r,
                           encr_id=suite.encr_id, encr_key_bits=suite.key_bits, integ_id=suite.integ_id)
    conn.install_keys(suite, keys)


def fall_back(conn, now: float, reason: str, notify_type: int | None = None, *,
              child: str | None = None) -> None:
    """Give up the resumption and run a full IKE_SA_INIT + IKE_AUTH on the same
    connection object, under a fresh SPIi (the gateway may hold a half-open SA for
    the old one). The endpoint re-indexes it on the ResumeFailed event."""
    log.info("%s: resumption failed (%s): full handshake", conn.name, reason)
    old_spi = conn.spi_i
    origin = conn.exchange_state.get("resume_origin")
    if origin is not None:
        conn.local, conn.remote = origin
    conn.outstanding.clear()
    conn.tasks.clear()
    conn.deferred.clear()
    conn.response_cache.clear()
    if conn.reassembler is not None:
        conn.reassembler.clear()          # its octets go back to the endpoint's budget
    conn.reassembler = None
    conn._answered_ahead = None
    conn.spi_i, conn.spi_r = conn.new_spi(), bytes(8)
    conn.ni = conn.nr = conn.init_request = conn.init_response = b""
    conn.keys = conn.suite = conn.sk_in = conn.sk_out = None
    conn.nat_local = conn.nat_remote = conn.peer_fragmentation = False
    conn.remote_id = None
    conn.next_request_id = conn.expected_request_id = 0
    conn.resumed = None
    conn.state = State.IDLE
    conn.emit(ev.ResumeFailed(reason, old_spi, conn.spi_i, notify_type))
    conn.initiate(now, child)


# -------------------------------------------------------------- responder --

def stateless_reply(msg: Message, notify_type: int, data: bytes = b"") -> bytes:
    """An unprotected answer to IKE_SESSION_RESUME with SPIr zero, as IKE_SA_INIT's
    errors (RFC 5723 §4.3.2: its SPI rules are IKE_SA_INIT's), keeping no state."""
    return Message(msg.spi_i, bytes(8), ExchangeType.IKE_SESSION_RESUME, Flags.RESPONSE, 0,
                   payloads=[NotifyPayload(notify_type=notify_type, data=data)]).encode()


def nack(msg: Message) -> bytes:
    return stateless_reply(msg, _TICKET_NACK)


def ticket_of(msg: Message) -> bytes:
    """The ticket of a well-formed IKE_SESSION_RESUME request; ParseError otherwise
    (the endpoint answers INVALID_SYNTAX), ResumptionRefused for an unusable ticket."""
    if msg.flags & _RESPONSE or msg.message_id != 0 or msg.spi_r != _ZERO_SPI or not msg.flags & _INITIATOR:
        raise ParseError("not an IKE_SESSION_RESUME request")
    check_rules(msg)
    nonce = msg.find(_NONCE)
    if not MIN_NONCE <= len(nonce.data) <= MAX_NONCE:
        raise ParseError("Ni of a bad length")
    tickets = [n for n in msg.payloads if type(n) is NotifyPayload and n.notify_type == _TICKET_OPAQUE]
    if len(tickets) != 1:
        raise ParseError("IKE_SESSION_RESUME needs exactly one TICKET_OPAQUE")
    if len(tickets[0].data) > MAX_TICKET:
        raise ResumptionRefused(f"a ticket of {len(tickets[0].data)} octets")
    return tickets[0].data


def suite_of(state) -> IkeSuite:
    return IkeSuite(state.encr_id, state.encr_key_bits or None, state.prf_id, state.integ_id, state.dh_group)


def _suite_allowed(config: IkeConfig, suite: IkeSuite) -> bool:
    for p in config.proposals:
        if ((suite.encr_id, suite.key_bits) in p.encr and suite.prf_id in p.prf
                and (suite.integ_id in p.integ or (not p.integ and not suite.integ_id))):
            return True
    return False


def check_ticket_state(config: IkeConfig, state, wall_now: float) -> None:
    """Would this gateway configuration still accept the session the ticket holds?
    Raises ResumptionRefused (the authority already checked the ticket itself)."""
    if state.expires_at <= wall_now:
        raise ResumptionRefused("the ticket expired")
    # field by field: what Identity equality compares, without building two Identities
    local_id, remote_id = config.local_id, config.remote_id
    if state.idr_type != local_id.id_type or state.idr != local_id.data:
        raise ResumptionRefused("the ticket was issued for another gateway identity")
    if remote_id is not None and (state.idi_type != remote_id.id_type or state.idi != remote_id.data):
        raise ResumptionRefused("the ticket's IDi is not this connection's peer")
    if not _suite_allowed(config, suite_of(state)):
        raise ResumptionRefused("the ticket's IKE SA suite is no longer allowed")


def respond(config: IkeConfig, msg: Message, state, *, local, remote, rng, now: float,
            natt_port: int = 4500):
    """The gateway accepts an IKE_SESSION_RESUME whose ticket checked out: a new
    half-open IKE SA keyed from the ticket's SK_d, and its response (Nr, NAT_D)."""
    conn = IkeConnection(config, initiator=False, local=local, remote=remote, rng=rng, now=now,
                         spi_i=msg.spi_i, natt_port=natt_port)
    conn.spi_r = conn.new_spi()
    conn.ni, conn.nr = msg.find(_NONCE).data, rng(NONCE_LENGTH)
    conn.init_request = msg.raw
    _take_capabilities(conn, msg)
    _detect_nat(conn, msg, bytes(8), remote, local)
    install_resumed_keys(conn, suite_of(state), state.sk_d)
    wall = config.wall_time(now)
    conn.resumed = ResumedSa(local_id=config.local_id, remote_id=Identity(state.idi_type, state.idi),
                             auth_method=state.auth_method, ticket_id=state.ticket_id,
                             # the old SA's re-authentication bound is at least the ticket's expiry
                             reauth_at=now + (state.expires_at - wall) if config.reauth_time > 0
                             else float("inf"))
    payloads = [NoncePayload(conn.nr)] + _nat_notifies(conn, conn.spi_r, local, remote)
    payloads += _capability_notifies(config)
    conn._send_response(msg, payloads, now, encrypted=False)
    conn.init_response = conn.response_cache[0][0]
    conn.expected_request_id = 1
    conn.state = State.INIT_DONE
    conn.expire_at = now + max(30.0, config.retransmit_timeout * 20)   # half-open limit
    return conn


__all__ = ["ResumeTask", "TicketRequestTask", "ResumptionRefused", "answer_ticket_request",
           "take_ticket_answer", "resumed_auth", "verify_resumed_auth", "signed_octets_for",
           "note_authenticated", "fall_back", "respond", "stateless_reply", "nack", "ticket_of",
           "check_ticket_state", "suite_of", "install_resumed_keys", "MAX_TICKET"]
