"""INFORMATIONAL (RFC 7296 §1.4): Delete of the IKE SA or Child SAs, liveness
checks (an empty request), notify-only exchanges.

    Initiator                         Responder
    HDR, SK {[N,] [D,] [CP,] ...}  -->
                                  <--  HDR, SK {[N,] [D,] [CP], ...}
"""
from __future__ import annotations

from .. import events as ev
from ..constants import ExchangeType, NotifyType, PayloadType, ProtocolId
from ..message import Message
from ..payloads import DeletePayload
from .task import Task


def _informational(conn, payloads: list) -> Message:
    return Message(conn.spi_i, conn.spi_r, ExchangeType.INFORMATIONAL, inner=payloads)


class LivenessTask(Task):
    """Dead peer detection: an empty INFORMATIONAL; no answer after the
    retransmissions ends the SA (the connection's timer does that)."""

    def build_request(self, conn, now: float) -> Message:
        return _informational(conn, [])

    def on_response(self, conn, msg: Message, now: float) -> None:
        conn.emit(ev.PeerAlive(conn.spi_i, conn.spi_r))

    def failed(self, conn, now: float, reason: str, notify_type: int | None = None) -> None:
        pass   # an odd answer still proves the peer alive


class DeleteIkeTask(Task):
    """Delete the IKE SA (and with it every Child SA it still holds)."""

    def ready(self, conn) -> bool:
        from ..ike_sa import State
        return conn.state in (State.ESTABLISHED, State.REKEYED, State.INIT_DONE)

    def build_request(self, conn, now: float) -> Message:
        from ..ike_sa import State
        conn.state = State.DELETING
        return _informational(conn, [DeletePayload(ProtocolId.IKE)])

    def on_response(self, conn, msg: Message, now: float) -> None:
        rekeyed = conn.replaced_by is not None
        conn.terminate("rekeyed" if rekeyed else "deleted", now, quiet_children=rekeyed)

    def failed(self, conn, now: float, reason: str, notify_type: int | None = None) -> None:
        self.on_response(conn, None, now)


class DeleteChildTask(Task):
    def __init__(self, child, reason: str = "deleted") -> None:
        self.child = child
        self.reason = reason

    def build_request(self, conn, now: float) -> Message | None:
        if self.child.spi_in not in conn.children:
            return None          # gone meanwhile (deleted by the peer)
        return _informational(conn, [DeletePayload(ProtocolId.ESP, [self.child.spi_in])])

    def on_response(self, conn, msg: Message, now: float) -> None:
        if conn.children.pop(self.child.spi_in, None) is not None:
            conn.emit(ev.ChildSaDeleted(self.child, self.reason))

    def failed(self, conn, now: float, reason: str, notify_type: int | None = None) -> None:
        self.on_response(conn, None, now)


def respond(conn, msg: Message, now: float) -> list:
    from ..ike_sa import State
    from ...errors import ProtocolError
    if conn.state not in (State.ESTABLISHED, State.REKEYED, State.DELETING):
        raise ProtocolError("INFORMATIONAL before the IKE SA is up", notify_type=NotifyType.INVALID_SYNTAX)
    deletes = msg.find_all(PayloadType.DELETE)
    if any(d.protocol_id == ProtocolId.IKE for d in deletes):
        # answer first (with the old keys), then forget the SA
        rekeyed = conn.replaced_by is not None
        conn.exchange_state["after_response"] = lambda t: conn.terminate(
            "rekeyed" if rekeyed else "deleted by peer", t, quiet_children=rekeyed)
        return []
    ours = []
    by_out = {c.spi_out: c for c in conn.children.values()}
    for d in deletes:
        if d.protocol_id != ProtocolId.ESP:
            continue
        for spi in d.spis:           # the peer's inbound SPIs: our outbound ones
            child = by_out.get(spi)
            if child is None or child.spi_in not in conn.children:
                continue
            del conn.children[child.spi_in]
            ours.append(child.spi_in)
            conn.emit(ev.ChildSaDeleted(child, "deleted by peer"))
    return [DeletePayload(ProtocolId.ESP, ours)] if ours else []
