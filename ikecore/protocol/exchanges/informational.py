"""INFORMATIONAL (RFC 7296 §1.4): Delete of the IKE SA or Child SAs, liveness
checks (an empty request), notify-only exchanges (SET_WINDOW_SIZE).

    Initiator                         Responder
    HDR, SK {[N,] [D,] [CP,] ...}  -->
                                  <--  HDR, SK {[N,] [D,] [CP], ...}

Deleting a Child SA names our inbound SPIs; the answer names the peer's for the
same SAs, except for SAs the responder is deleting itself at the same time: then
both requests cross and neither response carries a Delete (§1.4.1).
"""
from __future__ import annotations

import logging

from .. import events as ev
from ..constants import ExchangeType, NotifyType, PayloadType, ProtocolId
from ..ike_sa import State     # module level: a per-call import costs ~0.6 us a message
from ..message import Message
from ..payloads import DeletePayload, NotifyPayload
from .task import Task

log = logging.getLogger("ikecore.ike")


def _informational(conn, payloads: list) -> Message:
    return Message(conn.spi_i, conn.spi_r, ExchangeType.INFORMATIONAL, inner=payloads)


class LivenessTask(Task):
    """Dead peer detection: an empty INFORMATIONAL; no answer after the
    retransmissions ends the SA (the connection's timer does that)."""

    follows_rekey = False        # the new SA is fresh proof of life

    def build_request(self, conn, now: float) -> Message:
        return _informational(conn, [])

    def on_response(self, conn, msg: Message, now: float) -> None:
        conn.emit(ev.PeerAlive(conn.spi_i, conn.spi_r))

    def failed(self, conn, now: float, reason: str, notify_type: int | None = None) -> None:
        pass   # an odd answer still proves the peer alive


class WindowSizeTask(Task):
    """Tell the peer how many requests we take at once (N(SET_WINDOW_SIZE), §2.3)."""

    follows_rekey = False        # each IKE SA announces its own window

    def __init__(self, size: int) -> None:
        self.size = size

    def build_request(self, conn, now: float) -> Message:
        return _informational(conn, [NotifyPayload(notify_type=NotifyType.SET_WINDOW_SIZE,
                                                   data=self.size.to_bytes(4, "big"))])

    def on_response(self, conn, msg: Message, now: float) -> None:
        pass

    def failed(self, conn, now: float, reason: str, notify_type: int | None = None) -> None:
        log.info("%s: the peer refused our window size: %s", conn.name, reason)


class DeleteIkeTask(Task):
    """Delete the IKE SA (and with it every Child SA it still holds)."""

    def __init__(self, reason: str = "deleted") -> None:
        self.reason = reason

    def ready(self, conn) -> bool:
        if conn.state == State.ESTABLISHED:
            return not conn.rekey_in_flight     # else it moves to the new SA with the rest
        return conn.state == State.REKEYED

    def build_request(self, conn, now: float) -> Message:
        conn.state = State.DELETING
        return _informational(conn, [DeletePayload(ProtocolId.IKE)])

    def on_response(self, conn, msg: Message, now: float) -> None:
        rekeyed = conn.replaced_by is not None
        conn.terminate("rekeyed" if rekeyed else self.reason, now, quiet_children=rekeyed)

    def failed(self, conn, now: float, reason: str, notify_type: int | None = None) -> None:
        self.on_response(conn, None, now)


class DeleteChildTask(Task):
    def __init__(self, child, reason: str = "deleted") -> None:
        self.child = child
        self.reason = reason

    def build_request(self, conn, now: float) -> Message | None:
        child = self.child
        if child.spi_in not in conn.children or child.deleting:
            return None          # gone meanwhile (deleted by the peer), or already being deleted
        child.deleting = True
        return _informational(conn, [DeletePayload(ProtocolId.ESP, [child.spi_in])])

    def on_response(self, conn, msg: Message, now: float) -> None:
        if conn.children.pop(self.child.spi_in, None) is not None:
            conn.emit(ev.ChildSaDeleted(self.child, self.reason))

    def failed(self, conn, now: float, reason: str, notify_type: int | None = None) -> None:
        self.on_response(conn, None, now)


class DeleteRefusedChildTask(Task):
    """Delete the half of a Child SA the peer made although we refused its
    answer (a bad KEr, widened selectors): our inbound SPI is what it knows."""

    def __init__(self, spi_in: bytes) -> None:
        self.spi_in = spi_in

    def build_request(self, conn, now: float) -> Message:
        return _informational(conn, [DeletePayload(ProtocolId.ESP, [self.spi_in])])

    def on_response(self, conn, msg: Message, now: float) -> None:
        pass

    def failed(self, conn, now: float, reason: str, notify_type: int | None = None) -> None:
        pass


def respond(conn, msg: Message, now: float) -> list:
    deletes = msg.find_all(PayloadType.DELETE)
    _take_notifies(conn, msg)
    if any(d.protocol_id == ProtocolId.IKE for d in deletes):
        return _ike_deleted(conn, now, msg.has_notify(NotifyType.AUTHENTICATION_FAILED))
    ours = []
    by_out = {c.spi_out: c for c in conn.children.values()}
    for d in deletes:
        if d.protocol_id != ProtocolId.ESP:
            continue                 # we make no AH SAs: nothing of ours to delete
        for spi in d.spis:           # the peer's inbound SPIs: our outbound ones
            child = by_out.pop(spi, None)
            if child is None:
                continue             # unknown (or named twice): ignored (§1.4.1)
            del conn.children[child.spi_in]
            if not child.deleting:   # crossing Deletes: neither answer names the SA again
                ours.append(child.spi_in)
            conn.emit(ev.ChildSaDeleted(child, "deleted by peer"))
    reply = [DeletePayload(ProtocolId.ESP, ours)] if ours else []
    if msg.has_notify(NotifyType.TICKET_REQUEST):      # a ticket renewal (RFC 5723 §4.2)
        from .resumption import answer_ticket_request
        reply.append(answer_ticket_request(conn, now))
    return reply


def _ike_deleted(conn, now: float, auth_failed: bool = False) -> list:
    """The peer closes this IKE SA: answer (with its keys), then forget it. With
    N(AUTHENTICATION_FAILED) beside the Delete, the initiator rejected our AUTH."""
    from .ike_rekey import peer_deleted_old_sa
    peer_deleted_old_sa(conn, now)        # a pending rekey collision resolves first (§2.8.2)
    rekeyed = conn.replaced_by is not None
    if auth_failed:
        reason, notify = "authentication failed", NotifyType.AUTHENTICATION_FAILED
    else:
        reason, notify = ("rekeyed" if rekeyed else "deleted by peer"), None
    conn.exchange_state["after_response"] = lambda t: conn.terminate(reason, t, notify, quiet_children=rekeyed)
    return []


def _take_notifies(conn, msg: Message) -> None:
    from ..ike_sa import MAX_PEER_WINDOW
    for n in msg.notifies():
        if n.notify_type == NotifyType.SET_WINDOW_SIZE and len(n.data) == 4:
            # a window can only grow (RFC 7296 §2.3)
            size = min(int.from_bytes(n.data, "big"), MAX_PEER_WINDOW)
            conn.peer_window = max(conn.peer_window, size)
        elif n.is_error:
            log.info("%s: the peer reports error notify %d", conn.name, n.notify_type)
