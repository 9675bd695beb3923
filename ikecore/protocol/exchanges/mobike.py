"""MOBIKE (RFC 4555): moving an IKE SA and its Child SAs to another address pair.

Support is announced with N(MOBIKE_SUPPORTED) in IKE_AUTH, both ways (§3.2,
``ike_auth``); both ends then float to the NAT-T port (§3.3). Only the original
initiator decides on a move (§3.5):

    Initiator (new addresses)                  Responder
    HDR, SK {N(UPDATE_SA_ADDRESSES), N(NAT_DETECTION_SOURCE_IP),
             N(NAT_DETECTION_DESTINATION_IP), N(COOKIE2)}  -->
                <--  HDR, SK {N(NAT_DETECTION_SOURCE_IP), N(NAT_DETECTION_DESTINATION_IP), N(COOKIE2)}

    return routability (the responder, to the new pair, §3.7)
                <--  HDR, SK {N(COOKIE2)}
    HDR, SK {N(COOKIE2)}  -->

Rules kept here:

- The initiator sets the new addresses in the IKE SA at once (its retransmissions
  use them, §3.5) but its ESP stays on the old pair until the answer arrives; a
  refusal (UNACCEPTABLE_ADDRESSES, UNEXPECTED_NAT_DETECTED) or no answer at all puts
  the old pair back. A COOKIE2 echo that does not match closes the IKE SA (§3.7).
- The responder takes the new addresses from the IP header of the authenticated
  request, never from its payloads. It moves only after a return-routability check
  (COOKIE2 to the new pair) unless ``mobike_return_routability`` is off *and* the
  peer's NAT_DETECTION hashes match the addresses the packet really carried; hashes
  that do not match (a rewritten header: a NAT, or someone redirecting the SA) are
  never a reason to move by themselves (§3.5, §5). A check nobody answers on the new
  pair is retried on the old one: the SA stays where it was, unharmed.
- Stale updates (an older message ID than one already handled) are answered and
  ignored (§3.5); NO_NATS_ALLOWED that does not match the packet is answered with
  UNEXPECTED_NAT_DETECTED (§3.9).
- Every INFORMATIONAL: N(COOKIE2) is echoed (§4.2.5), NAT_DETECTION is answered with
  our own (§3.8), ADDITIONAL_IP4/IP6_ADDRESS and NO_ADDITIONAL_ADDRESSES replace the
  peer's address list (§3.6).

Child SAs carry no addresses of their own: their ESP goes between
:func:`esp_addresses` of the IKE SA, which the I/O layer reads per send.
"""
from __future__ import annotations

import functools
import hmac
import ipaddress
import logging
from dataclasses import dataclass, field

from ...errors import IkeError, ProtocolError
from .. import events as ev
from ..constants import ExchangeType, NotifyType, PayloadType, ProtocolId
from ..message import Message
from ..payloads import NotifyPayload
from ..ike_sa import State
from .ike_sa_init import _nat_notifies, nat_detection_hash
from .informational import respond as _informational_respond
from .task import Task

log = logging.getLogger("ikecore.ike")

COOKIE2_LENGTH = 16          # 8..64 octets, unpredictable (RFC 4555 §4.2.5)
MAX_PEER_ADDRESSES = 16      # an authenticated peer still gets a bounded list
CANDIDATE_RETRANSMISSIONS = 2   # of a return-routability check before the old pair is tried


@dataclass
class MobikeState:
    """Per IKE SA (kept in ``conn.exchange_state["mobike"]``)."""

    peer_addresses: list = field(default_factory=list)   # the peer's ADDITIONAL_* addresses
    esp_path: tuple | None = None      # (local, remote) ESP keeps while our update is out
    generation: int = 0                # our newest update: an older answer changes nothing
    last_update_mid: int = -1          # newest UPDATE_SA_ADDRESSES handled (responder)
    candidate: tuple | None = None     # ((remote, local), nat) awaiting a return-routability check
    moves: int = 0


def state(conn) -> MobikeState:
    st = conn.exchange_state.get("mobike")
    if st is None:
        st = conn.exchange_state["mobike"] = MobikeState()
    return st


def active(conn) -> bool:
    """Both ends announced MOBIKE_SUPPORTED."""
    return bool(conn.config.mobike and conn.peer_mobike)


def esp_addresses(conn) -> tuple:
    """(local, remote) the Child SAs of ``conn`` send ESP between now."""
    st = conn.exchange_state.get("mobike")
    if st is not None and st.esp_path is not None:
        return st.esp_path
    return conn.local, conn.remote


# --------------------------------------------------------------- IKE_AUTH --

def auth_notifies(cfg) -> list:
    """Our other addresses, for IKE_AUTH beside MOBIKE_SUPPORTED (§3.4)."""
    return address_notifies(cfg.mobike_addresses) if cfg.mobike and cfg.mobike_addresses else []


def address_notifies(addresses) -> list:
    """ADDITIONAL_IP4/IP6_ADDRESS for each, or NO_ADDITIONAL_ADDRESSES for none (§3.6)."""
    out = []
    for a in addresses:
        ip = ipaddress.ip_address(a)
        kind = NotifyType.ADDITIONAL_IP4_ADDRESS if ip.version == 4 else NotifyType.ADDITIONAL_IP6_ADDRESS
        out.append(NotifyPayload(notify_type=kind, data=ip.packed))
    return out or [NotifyPayload(notify_type=NotifyType.NO_ADDITIONAL_ADDRESSES)]


def take_addresses(conn, msg: Message) -> None:
    """The peer's address list, if this message states one (IKE_AUTH or INFORMATIONAL)."""
    found, listed = False, []
    for n in msg.notifies():
        if n.notify_type in (NotifyType.ADDITIONAL_IP4_ADDRESS, NotifyType.ADDITIONAL_IP6_ADDRESS):
            found = True
            if len(listed) < MAX_PEER_ADDRESSES:
                listed.append(str(ipaddress.ip_address(n.data)))   # lengths checked by the parser
        elif n.notify_type == NotifyType.NO_ADDITIONAL_ADDRESSES:
            found = True
    if found:
        state(conn).peer_addresses = listed


# ------------------------------------------------------------- helpers --

def _informational(conn, payloads: list) -> Message:
    return Message(conn.spi_i, conn.spi_r, ExchangeType.INFORMATIONAL, inner=payloads)


def _nat_seen(conn, msg: Message, source, destination) -> tuple[bool, bool] | None:
    """(the peer is behind a NAT, we are) from its NAT_DETECTION hashes against the
    addresses the packet carried; None when it sent none."""
    sources = [n.data for n in msg.notifies() if n.notify_type == NotifyType.NAT_DETECTION_SOURCE_IP]
    dest = msg.notify(NotifyType.NAT_DETECTION_DESTINATION_IP)
    if not sources or dest is None:
        return None
    nat_remote = nat_detection_hash(conn.spi_i, conn.spi_r, source) not in sources
    nat_local = dest.data != nat_detection_hash(conn.spi_i, conn.spi_r, destination)
    return nat_remote, nat_local


def _address_block(source, destination) -> bytes:
    """NO_NATS_ALLOWED data: source and destination address, then the ports (§4.2.6)."""
    src, dst = _ip(source[0]), _ip(destination[0])
    return src.packed + dst.packed + int(source[1]).to_bytes(2, "big") + int(destination[1]).to_bytes(2, "big")


@functools.lru_cache(maxsize=1024)
def _ip(host: str):
    # parsing address text costs more than the rest of an update: a few hosts come back
    return ipaddress.ip_address(host)


def _check_address(host: str, *, what: str) -> ipaddress._BaseAddress:
    try:
        ip = _ip(host)
    except ValueError:
        raise IkeError(f"{what}: not an IP address: {host!r}") from None
    if ip.is_unspecified or ip.is_multicast or (ip.version == 4 and ip == ipaddress.IPv4Address("255.255.255.255")):
        raise IkeError(f"{what}: {host} cannot be an IKE endpoint")
    return ip


def _acceptable(remote, local) -> bool:
    """A new pair the responder can use at all (else UNACCEPTABLE_ADDRESSES, §3.5)."""
    try:
        r = _check_address(remote[0], what="peer")
        lo = _check_address(local[0], what="local")
    except IkeError:
        return False
    return r.version == lo.version and 0 < int(remote[1]) < 65536


def _cookie_matches(msg: Message, cookie: bytes) -> bool:
    echo = msg.notify(NotifyType.COOKIE2)
    return echo is not None and hmac.compare_digest(echo.data, cookie)


def _move(conn, path: tuple, nat: tuple | None, previous: tuple, now: float) -> None:
    """The IKE SA (and with it its Child SAs' ESP) is now on ``path`` = (remote, local)."""
    st = state(conn)
    conn.remote, conn.local = tuple(path[0]), tuple(path[1])
    if nat is not None:
        conn.nat_remote, conn.nat_local = nat
    st.moves += 1
    log.info("%s: MOBIKE: now %s:%d <-> %s:%d", conn.name, *conn.local, *conn.remote)
    conn.emit(ev.IkeSaMoved(conn.spi_i, conn.spi_r, conn.local, conn.remote, previous[0], previous[1],
                            conn.nat_local, conn.nat_remote))


# ------------------------------------------------------------- initiator --

def update_addresses(conn, now: float, *, local=None, remote=None) -> None:
    """Move ``conn`` (we are its original initiator) to ``local``/``remote`` (each
    ``(host, port)``; the other stays as it is) with UPDATE_SA_ADDRESSES."""
    if conn.state != State.ESTABLISHED:
        raise IkeError(f"the IKE SA is {conn.state.value}, not established")
    if not conn.initiator:
        raise IkeError("only the original initiator moves an IKE SA (RFC 4555 §3.5)")
    if not active(conn):
        raise IkeError("MOBIKE was not negotiated on this IKE SA")
    new_local = (str(local[0]), int(local[1])) if local is not None else conn.local
    new_remote = (str(remote[0]), int(remote[1])) if remote is not None else conn.remote
    lo = _check_address(new_local[0], what="local")
    re_ = _check_address(new_remote[0], what="remote")
    if lo.version != re_.version:
        raise IkeError(f"{new_local[0]} and {new_remote[0]} are not of one address family")
    st = state(conn)
    previous = (conn.local, conn.remote)
    if st.esp_path is None:
        st.esp_path = previous          # ESP moves once the peer has taken the update
    conn.local, conn.remote = new_local, new_remote   # retransmissions go from here on (§3.5)
    st.generation += 1
    log.info("%s: MOBIKE: moving to %s:%d <-> %s:%d", conn.name, *new_local, *new_remote)
    conn.queue(UpdateAddressesTask(st.generation, st.esp_path), now)


class UpdateAddressesTask(Task):
    """INFORMATIONAL {N(UPDATE_SA_ADDRESSES), NAT-D, N(COOKIE2)} from the new addresses."""

    def __init__(self, generation: int, fallback: tuple) -> None:
        self.generation = generation
        self.fallback = fallback          # (local, remote) before the first pending move
        self.cookie = b""

    def build_request(self, conn, now: float) -> Message | None:
        st = state(conn)
        if st.generation > self.generation:
            return None                   # a newer move superseded this one before it went out
        # (an IKE SA that a rekey made takes the queued move over with a state of its own)
        st.generation = self.generation
        self.cookie = conn.rng(COOKIE2_LENGTH)
        payloads = [NotifyPayload(notify_type=NotifyType.UPDATE_SA_ADDRESSES)]
        payloads += _nat_notifies(conn, conn.spi_r, conn.local, conn.remote)
        payloads.append(NotifyPayload(notify_type=NotifyType.COOKIE2, data=self.cookie))
        return _informational(conn, payloads)

    def on_response(self, conn, msg: Message, now: float) -> None:
        st = state(conn)
        error = msg.error_notify()
        if error is not None:
            return self.failed(conn, now, f"the peer refused the new addresses (notify {error.notify_type})",
                               error.notify_type)
        if not _cookie_matches(msg, self.cookie):
            # RFC 4555 §3.7: an echo that does not match closes the IKE SA
            log.warning("%s: MOBIKE: COOKIE2 echo does not match; closing the IKE SA", conn.name)
            st.esp_path = None
            conn.delete(now, reason="MOBIKE COOKIE2 mismatch")
            return
        if st.generation > self.generation:
            return                        # a newer move is on its way; it decides
        nat = _nat_seen(conn, msg, conn.remote, conn.local)
        previous = st.esp_path or self.fallback
        st.esp_path = None
        _move(conn, (conn.remote, conn.local), nat, previous, now)

    def failed(self, conn, now: float, reason: str, notify_type: int | None = None) -> None:
        st = state(conn)
        if st.generation == self.generation:
            conn.local, conn.remote = st.esp_path or self.fallback
            st.esp_path = None
        log.warning("%s: MOBIKE update failed: %s", conn.name, reason)
        conn.emit(ev.MobikeFailed(conn.spi_i, conn.spi_r, reason, conn.local, conn.remote, notify_type))


def announce_addresses(conn, now: float, addresses) -> None:
    """Tell the peer our other addresses (§3.6): ADDITIONAL_IP4/IP6_ADDRESS each,
    NO_ADDITIONAL_ADDRESSES when there are none. Either end may do it."""
    if conn.state != State.ESTABLISHED:
        raise IkeError(f"the IKE SA is {conn.state.value}, not established")
    if not active(conn):
        raise IkeError("MOBIKE was not negotiated on this IKE SA")
    addresses = [str(_check_address(str(a), what="address")) for a in addresses]
    conn.queue(AddressListTask(addresses), now)


class AddressListTask(Task):
    """INFORMATIONAL {N(ADDITIONAL_*_ADDRESS)+ | N(NO_ADDITIONAL_ADDRESSES)}."""

    def __init__(self, addresses: list) -> None:
        self.addresses = addresses

    def build_request(self, conn, now: float) -> Message:
        return _informational(conn, address_notifies(self.addresses))

    def on_response(self, conn, msg: Message, now: float) -> None:
        pass

    def failed(self, conn, now: float, reason: str, notify_type: int | None = None) -> None:
        log.info("%s: MOBIKE: the peer refused our address list: %s", conn.name, reason)


# ------------------------------------------------------------- responder --

class ReturnRoutabilityTask(Task):
    """INFORMATIONAL {N(COOKIE2)} to a candidate address pair: the echo proves the
    peer receives there (§3.7). Unanswered there, it is retried on the SA's
    current pair, and the candidate dropped."""

    follows_rekey = False

    def __init__(self, path: tuple) -> None:
        self.path = path                   # (remote, local)
        self.cookie = b""
        self.on_candidate = True

    def destination(self, conn):
        return self.path

    def build_request(self, conn, now: float) -> Message | None:
        cand = state(conn).candidate
        if cand is None or cand[0] != self.path:
            return None                    # superseded by a newer update
        self.cookie = conn.rng(COOKIE2_LENGTH)
        return _informational(conn, [NotifyPayload(notify_type=NotifyType.COOKIE2, data=self.cookie)])

    def retransmit_limit(self, conn) -> int:
        # a pair nobody answers at is left soon: the SA's other requests wait behind it
        if self.on_candidate:
            return min(CANDIDATE_RETRANSMISSIONS, conn.config.retransmit_tries)
        return conn.config.retransmit_tries

    def give_up(self, conn, outstanding, now: float) -> bool:
        if not self.on_candidate:
            return False                   # not even the old pair answers: the peer is gone
        self.on_candidate = False
        outstanding.path = None            # the SA's own pair from now on
        outstanding.tries = 0
        log.info("%s: MOBIKE: no answer at %s:%d; staying at %s:%d", conn.name, *self.path[0], *conn.remote)
        return True

    def on_response(self, conn, msg: Message, now: float) -> None:
        st = state(conn)
        if not _cookie_matches(msg, self.cookie):
            log.warning("%s: MOBIKE: return routability COOKIE2 mismatch; closing the IKE SA", conn.name)
            st.candidate = None
            conn.delete(now, reason="MOBIKE COOKIE2 mismatch")
            return
        cand = st.candidate
        if cand is None or cand[0] != self.path:
            return                         # a newer update replaced this candidate
        st.candidate = None
        if not self.on_candidate:
            self._drop(conn, "return routability check unanswered at the new addresses")
            return
        _move(conn, self.path, cand[1], (conn.local, conn.remote), now)

    def failed(self, conn, now: float, reason: str, notify_type: int | None = None) -> None:
        st = state(conn)
        if st.candidate is not None and st.candidate[0] == self.path:
            st.candidate = None
        self._drop(conn, f"return routability check failed: {reason}", notify_type)

    def _drop(self, conn, reason: str, notify_type: int | None = None) -> None:
        log.warning("%s: MOBIKE: %s", conn.name, reason)
        conn.emit(ev.MobikeFailed(conn.spi_i, conn.spi_r, reason, conn.local, conn.remote, notify_type))


def respond(conn, msg: Message, now: float) -> list:
    """INFORMATIONAL requests: the usual handling (``informational.respond``) plus
    MOBIKE's notifies."""
    if any(d.protocol_id == ProtocolId.IKE for d in msg.find_all(PayloadType.DELETE)):
        return _informational_respond(conn, msg, now)
    extra: list = []
    if active(conn):
        take_addresses(conn, msg)
        remote, local = conn.request_path or (conn.remote, conn.local)
        if msg.has_notify(NotifyType.UPDATE_SA_ADDRESSES):
            extra += _update_requested(conn, msg, now, remote, local)
        elif msg.has_notify(NotifyType.NAT_DETECTION_SOURCE_IP):
            extra += _nat_notifies(conn, conn.spi_r, local, remote)     # a probe (§3.8): answer it
    cookie = msg.notify(NotifyType.COOKIE2)
    if cookie is not None:
        extra.append(NotifyPayload(notify_type=NotifyType.COOKIE2, data=cookie.data))
    return _informational_respond(conn, msg, now) + extra


def _update_requested(conn, msg: Message, now: float, remote, local) -> list:
    st = state(conn)
    reply = _nat_notifies(conn, conn.spi_r, local, remote)
    if conn.initiator:
        log.info("%s: MOBIKE: ignoring UPDATE_SA_ADDRESSES from the original responder (§3.5)", conn.name)
        return reply
    if msg.message_id < st.last_update_mid:
        return reply                       # an older update than one already handled (§3.5)
    st.last_update_mid = msg.message_id
    no_nats = msg.notify(NotifyType.NO_NATS_ALLOWED)
    if no_nats is not None and no_nats.data != _address_block(remote, local):
        raise ProtocolError("NO_NATS_ALLOWED, but the addresses were translated",
                            notify_type=NotifyType.UNEXPECTED_NAT_DETECTED)
    if not _acceptable(remote, local):
        raise ProtocolError(f"unusable addresses {remote} -> {local}", notify_type=NotifyType.UNACCEPTABLE_ADDRESSES)
    nat = _nat_seen(conn, msg, remote, local)
    path = (tuple(remote), tuple(local))
    if path == (conn.remote, conn.local):
        st.candidate = None                # back where it is (e.g. a NAT-D refresh): nothing to check
        if nat is not None:
            conn.nat_remote, conn.nat_local = nat
        return reply
    verified_by_peer = nat is not None and not any(nat)
    if verified_by_peer and not conn.config.mobike_return_routability:
        st.candidate = None
        _move(conn, path, nat, (conn.local, conn.remote), now)
        return reply
    # the addresses came in an unprotected header: check the peer really is there first
    st.candidate = (path, nat)
    conn.tasks.insert(0, ReturnRoutabilityTask(path))    # sent after this answer
    return reply


__all__ = ["MobikeState", "state", "active", "esp_addresses", "update_addresses", "announce_addresses",
           "auth_notifies", "address_notifies", "take_addresses", "UpdateAddressesTask", "AddressListTask",
           "ReturnRoutabilityTask", "respond"]
