"""The initiator side of an exchange."""
from __future__ import annotations

from ...crypto.dh import KeyExchange
from ...errors import InvalidKePayload, ParseError, ProtocolError
from ..constants import NotifyType
from ..ike_sa import State     # module level: a per-call import costs ~0.6 us a message


class Task:
    """Subclasses build one request and take its response; the connection
    sends, retransmits and matches message IDs."""

    #: queued (not yet sent) work moves to the new IKE SA when this one is rekeyed
    follows_rekey = True
    #: this task rekeys the IKE SA: while it is out, nothing else starts (RFC 7296 §2.8)
    rekeys_ike_sa = False

    def ready(self, conn) -> bool:
        """May this task start now? (e.g. IKE_AUTH waits for IKE_SA_INIT). By
        default: on an established SA whose rekey is not in flight."""
        return conn.state == State.ESTABLISHED and not conn.rekey_in_flight

    def destination(self, conn):
        """(remote, local) to send this request to; None: the IKE SA's addresses (at each
        retransmission, so that a MOBIKE move takes outstanding requests along)."""
        return None

    def give_up(self, conn, outstanding, now: float) -> bool:
        """The retransmissions are spent: True when the task handled it (e.g. reset
        ``outstanding.path``/``tries`` to try elsewhere); False ends the IKE SA."""
        return False

    def build_request(self, conn, now: float):
        """The request (a Message), or None when there is nothing left to do."""
        raise NotImplementedError

    def sent(self, conn, msg, datagrams) -> None:
        """Called with what went on the wire (IKE_SA_INIT keeps it for AUTH)."""

    def on_response(self, conn, msg, now: float) -> None:
        raise NotImplementedError

    def retransmit_limit(self, conn) -> int:
        """Retransmissions before the request is given up."""
        return conn.config.retransmit_tries

    def timed_out(self, conn, now: float) -> bool:
        """No answer after the last retransmission: True if the task dealt with it
        (IKE_SESSION_RESUME falls back to a full handshake); else the SA ends."""
        return False

    def failed(self, conn, now: float, reason: str, notify_type: int | None = None) -> None:
        """The exchange failed (malformed response, error notify). By default
        an IKE SA cannot go on after a failed exchange it depended on."""
        conn.terminate(reason, now, notify_type)


def answer_key_exchange(group: int, ke, rng):
    """Responder side of a KE: our key pair for ``group`` and the shared secret
    with the peer's KEi. A KEi of another group asks for INVALID_KE_PAYLOAD;
    unusable KE data is INVALID_SYNTAX."""
    if ke is None or ke.group != group:
        raise InvalidKePayload(group)
    kex = KeyExchange.generate(group, rng)
    try:
        return kex, kex.shared_secret(ke.data)
    except ParseError as exc:
        raise ProtocolError(f"bad KEi: {exc}", notify_type=NotifyType.INVALID_SYNTAX) from None
