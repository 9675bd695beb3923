"""IKE SA rekey (RFC 7296 §1.3.2, §2.18) and its collisions (§2.8.2, §2.25.2).

    Initiator                              Responder
    HDR, SK {SA, Ni, KEi}  -->
                                      <--  HDR, SK {SA, Nr, KEr}

The new SA is keyed from SK_d of the old one, starts its Message IDs at 0 with
a window of 1, and takes every Child SA; the rekey initiator then deletes the
old SA with the last request it sends on it.

Rules, as both ends must apply them alike:

- While our rekey is out, we start nothing else on the old SA (queued work
  moves to the new SA); a peer whose own requests are in flight answers a
  rekey with TEMPORARY_FAILURE, so no exchange straddles the hand-over.
- An old SA already rekeyed (or being deleted) answers TEMPORARY_FAILURE.
- Simultaneous rekeys: both ends answer the other's request, so two new SAs
  exist. The one whose exchange holds the lowest of the four nonces is
  redundant and is deleted by the end that initiated it; the end that
  initiated the survivor deletes the old SA. Until an end knows the outcome,
  the new SA it answered for is PENDING (CREATE_CHILD_SA on it gets
  TEMPORARY_FAILURE). If our rekey fails, or the peer deletes the old SA,
  the peer's new SA is the survivor.
- A new SA that ends up redundant is never reported to the application.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from ...crypto.dh import KeyExchange
from ...crypto.keyschedule import key_schedule
from ...errors import NoProposalChosen, ParseError, TemporaryFailure
from .. import events as ev
from ..constants import ExchangeType, NotifyType, PayloadType
from ..ike_sa import IkeConnection, State
from ..message import Message
from ..negotiation import accept_ike_reply, ike_sa_payload, select_ike
from ..payloads import KePayload, NoncePayload, NotifyPayload, SaPayload
from .informational import DeleteIkeTask
from .task import Task, answer_key_exchange

log = logging.getLogger("ikecore.ike")

from ..describe import notify_name  # noqa: E402
NONCE_LENGTH = 32
RETRY_DELAY = 2.0            # seconds before a refused rekey is tried again (plus jitter)


def lowest_nonce_in(ours: tuple[bytes, bytes], theirs: tuple[bytes, bytes]) -> bool:
    """True when the lowest of the four nonces belongs to ``ours`` (RFC 7296 §2.8)."""
    return min(ours) < min(theirs)


@dataclass(frozen=True)
class PeerIkeRekey:
    """The peer's rekey we answered while ours was in flight: nonces (Ni, Nr), new SA."""
    nonces: tuple[bytes, bytes]
    sa: object

    @property
    def alive(self) -> bool:
        return self.sa.state != State.DELETED


# ---------------------------------------------------------------- initiator --

class RekeyIkeTask(Task):
    """Rekey the IKE SA (``ike_clone.CloneIkeTask`` reuses the exchange, RFC 7791)."""

    MAX_KE_RETRIES = 2
    follows_rekey = False
    rekeys_ike_sa = True

    def __init__(self) -> None:
        self.group = None
        self.kex = None
        self.nonce = b""
        self.new_spi = b""
        self.offer = None
        self.ke_retries = 0

    def ready(self, conn) -> bool:
        # alone on the wire: every earlier exchange must have completed
        return conn.state == State.ESTABLISHED and not conn.outstanding

    def build_request(self, conn, now: float) -> Message:
        if self.group is None:
            self.group = conn.suite.dh_group
        self.new_spi = conn.new_spi()
        self.nonce = conn.rng(NONCE_LENGTH)
        self.kex = KeyExchange.generate(self.group, conn.rng)
        self.offer = ike_sa_payload(conn.config.proposals, self.new_spi, group_first=self.group)
        payloads = [self.offer, NoncePayload(self.nonce), KePayload(self.group, self.kex.public_bytes)]
        if self.rekeys_ike_sa and conn.ticket_client:
            # the rekey invalidates our ticket: ask for one for the new SA (RFC 5723 §4.1, §6.2)
            payloads.append(NotifyPayload(notify_type=NotifyType.TICKET_REQUEST))
        return Message(conn.spi_i, conn.spi_r, ExchangeType.CREATE_CHILD_SA, inner=self.prefix() + payloads)

    def prefix(self) -> list:
        """Notifies before the SA payload (a clone's N(CLONE_IKE_SA))."""
        return []

    def on_response(self, conn, msg: Message, now: float) -> None:
        invalid_ke = msg.notify(NotifyType.INVALID_KE_PAYLOAD)
        if invalid_ke is not None and self.ke_retries < self.MAX_KE_RETRIES and not conn.rekey_collision:
            wanted = int.from_bytes(invalid_ke.data[:2], "big")
            if wanted != self.group and any(wanted in p.dh for p in conn.config.proposals):
                self.ke_retries += 1
                self.group = wanted
                conn.queue(self, now, first=True)     # again at once, with the group the peer wants
                return
        error = msg.error_notify()
        if error is not None:
            return self.failed(conn, now, f"IKE rekey refused: {notify_name(error.notify_type)}", error.notify_type)
        sa, nonce, ke = sa_nonce_ke(msg)
        if sa is None or nonce is None or ke is None:
            return self.failed(conn, now, "IKE rekey response lacks SA, Nr or KEr", NotifyType.INVALID_SYNTAX)
        _, suite = accept_ike_reply(sa, self.offer, spi_size=8)
        if ke.group != self.group or suite.dh_group != self.group:
            return self.failed(conn, now, "KEr of another group", NotifyType.INVALID_SYNTAX)
        peer_spi = sa.proposals[0].spi
        reason = self.unusable_spi(conn, peer_spi)
        if reason:
            return self.failed(conn, now, reason, NotifyType.INVALID_SYNTAX)
        try:
            shared = self.kex.shared_secret(ke.data)
        except ParseError as exc:
            return self.failed(conn, now, f"bad KEr: {exc}", NotifyType.INVALID_SYNTAX)
        self.kex = None
        new = successor(conn, suite, shared, self.nonce, nonce.data, self.new_spi, peer_spi,
                        initiator=True, now=now, spawn=self.rekeys_ike_sa)
        if self.rekeys_ike_sa and conn.ticket_client:
            new.exchange_state["ticket_requested"] = True
        self.completed(conn, new, msg, now)

    def unusable_spi(self, conn, spi: bytes) -> str:
        """Why the responder's new SPI cannot name the new SA ('' if it can)."""
        if not any(spi) or spi in conn.spis:
            return "the responder's new IKE SPI is zero or the old (parent) SA's"
        return ""

    def completed(self, conn, new, msg: Message, now: float) -> None:
        """The new SA is keyed (``msg``: the response): settle the rekey."""
        ours = (self.nonce, msg.find(PayloadType.NONCE).data)
        theirs = conn.rekey_collision
        if theirs is None or not theirs.alive:
            conclude(conn, new, now, delete_old=True)
        elif lowest_nonce_in(ours, theirs.nonces):
            log.info("%s: simultaneous IKE rekey, ours holds the lowest nonce: deleting it", conn.name)
            conclude(conn, theirs.sa, now, delete_old=False)     # the peer deletes the old SA
            retire(new, now, delete=True)
        else:
            log.info("%s: simultaneous IKE rekey, ours survives", conn.name)
            conclude(conn, new, now, delete_old=True)
            retire(theirs.sa, now, delete=False)                 # the peer deletes its own
        if new.state == State.ESTABLISHED and new.exchange_state.get("ticket_requested"):
            from .resumption import take_ticket_answer
            take_ticket_answer(new, msg, now)

    def failed(self, conn, now: float, reason: str, notify_type: int | None = None) -> None:
        self.kex = None
        log.info("%s: IKE rekey failed: %s", conn.name, reason)
        theirs = conn.rekey_collision
        if theirs is not None and theirs.alive:
            # the peer had already completed its own rekey, which we answered (§2.8.2)
            conclude(conn, theirs.sa, now, delete_old=False)
        elif notify_type in (NotifyType.TEMPORARY_FAILURE, NotifyType.NO_ADDITIONAL_SAS, None):
            conn.rekey_at = now + RETRY_DELAY + conn.rng(1)[0] / 64.0   # MUST wait (§2.25)
        # else: the peer will not rekey with us; the hard lifetime ends the SA


# ---------------------------------------------------------------- responder --

def respond(conn, msg: Message, now: float) -> list:
    """A CREATE_CHILD_SA whose SA payload proposes IKE: a rekey, or with
    N(CLONE_IKE_SA) a clone (``ike_clone``)."""
    if msg.has_notify(NotifyType.CLONE_IKE_SA):
        from .ike_clone import respond as respond_clone
        return respond_clone(conn, msg, now)
    if conn.rekey_collision is not None:
        raise TemporaryFailure("a rekey of this IKE SA is already being resolved")
    if conn.outstanding and not conn.rekey_in_flight:
        raise TemporaryFailure("exchanges of ours are in flight on this IKE SA")
    new, reply, our_nonce = answer_ike_rekey(conn, msg, now)
    nonce = msg.find(PayloadType.NONCE)
    if conn.rekey_in_flight:
        # simultaneous rekey: ours decides when it completes (or fails)
        conn.rekey_collision = PeerIkeRekey((nonce.data, our_nonce), new)
    else:
        conn.exchange_state["after_response"] = lambda t: conclude(conn, new, t, delete_old=False)
    if msg.has_notify(NotifyType.TICKET_REQUEST):     # a ticket for the new SA (RFC 5723 §4.1)
        from .resumption import answer_ticket_request
        reply.append(answer_ticket_request(new, now))
    return reply


def answer_ike_rekey(conn, msg: Message, now: float, *, check_spi=None, spawn: bool = True):
    """The responder's half of an IKE SA rekey or clone: (the new SA, the reply
    payloads, our nonce). ``check_spi(spi)`` may refuse the initiator's new SPI;
    ``spawn``: see ``successor``."""
    sa, nonce, ke = sa_nonce_ke(msg)
    if ke is None:
        raise NoProposalChosen("an IKE SA rekey needs KEi")   # RFC 7296 §2.18: D-H is mandatory
    chosen, suite = select_ike(sa, conn.config.proposals, spi_size=8, ke_group=ke.group)
    if not any(chosen.spi) or chosen.spi in conn.spis or (check_spi is not None and not check_spi(chosen.spi)):
        # new SAs get new SPIs (RFC 7296 §1.3.2, §2.18): this proposal cannot name one
        raise NoProposalChosen("the initiator's new IKE SPI is zero or already in use")
    kex, shared = answer_key_exchange(suite.dh_group, ke, conn.rng)
    our_nonce = conn.rng(NONCE_LENGTH)
    peer_spi, chosen.spi = chosen.spi, conn.new_spi()
    new = successor(conn, suite, shared, nonce.data, our_nonce, peer_spi, chosen.spi, initiator=False, now=now,
                    spawn=spawn)
    return new, [SaPayload([chosen]), NoncePayload(our_nonce), KePayload(suite.dh_group, kex.public_bytes)], \
        our_nonce


def peer_deleted_old_sa(conn, now: float) -> None:
    """The peer deletes an SA whose rekey collision is unresolved here: the
    peer only does that once its rekey (the one we answered) survived, so
    the Child SAs go there before the old SA is forgotten (RFC 7296 §2.25.2:
    our own rekey is simply abandoned)."""
    theirs = conn.rekey_collision
    if theirs is not None and theirs.alive:
        conclude(conn, theirs.sa, now, delete_old=False)


# ------------------------------------------------------------------ helpers --

_SA, _NONCE, _KE = PayloadType.SA, PayloadType.NONCE, PayloadType.KE


def sa_nonce_ke(msg: Message) -> tuple:
    """The first SA, Nonce and KE payloads of ``msg`` (None where absent), in one
    pass (``Message.find`` would walk the payloads once per type)."""
    sa = nonce = ke = None
    for p in msg.all_payloads:
        kind = p.payload_type
        if kind == _SA:
            if sa is None:
                sa = p
        elif kind == _NONCE:
            if nonce is None:
                nonce = p
        elif kind == _KE:
            if ke is None:
                ke = p
    return sa, nonce, ke


def successor(conn, suite, shared: bytes, ni: bytes, nr: bytes, spi_i: bytes, spi_r: bytes, *,
              initiator: bool, now: float, spawn: bool = True):
    """The IKE SA a rekey (or clone) creates, PENDING and unannounced until the
    rekey concludes: keyed from SK_d of ``conn`` with the old PRF for SKEYSEED
    and the new one for prf+ (RFC 7296 §2.18). ``spawn=False`` leaves routing to
    the event that announces it at once (a clone's ``IkeSaCloned``)."""
    keys = key_schedule(suite.prf_id, encr_id=suite.encr_id, encr_key_bits=suite.key_bits,
                        integ_id=suite.integ_id).rekey(conn.suite.prf_id, conn.keys.sk_d, shared, ni, nr,
                                                       spi_i, spi_r)
    new = IkeConnection(conn.config, initiator=initiator, local=conn.local, remote=conn.remote,
                        rng=conn.rng, now=now, spi_i=spi_i, spi_r=spi_r, natt_port=conn.natt_port,
                        remote_natt_port=conn.remote_natt_port)
    new.install_keys(suite, keys)
    new.ni, new.nr = ni, nr
    # what the new SA inherits: the peer's identity and authentication, what each end
    # announced in IKE_AUTH, NAT state and addresses (assigned_ip moves in conclude)
    new.remote_id = conn.remote_id
    new.nat_local, new.nat_remote = conn.nat_local, conn.nat_remote
    new.peer_fragmentation = conn.peer_fragmentation
    new.peer_signature_hashes = conn.peer_signature_hashes
    new.peer_mobike, new.peer_clone = conn.peer_mobike, conn.peer_clone
    new.virtual_ip, new.leases = conn.virtual_ip, conn.leases
    new.ticket_client, new.peer_auth_method = conn.ticket_client, conn.peer_auth_method
    new.reauth_at, new.auth_expires_at = conn.reauth_at, conn.auth_expires_at
    new.cloned = conn.cloned
    new.state = State.PENDING
    new.silent = True
    new.start_lifetimes(now)
    if new.cloned:                    # a clone ends with the authentication (ike_clone)
        new.expire_at = min(new.expire_at, new.auth_expires_at, new.reauth_at)
    new.last_heard = now
    if spawn:
        conn.spawn(new)
    return new


def conclude(old, survivor, now: float, *, delete_old: bool) -> None:
    """The rekey is settled: ``survivor`` takes the Child SAs and queued work;
    ``old`` only waits for its Delete (ours if ``delete_old``, else the peer's)."""
    old.rekey_collision = None
    survivor.children.update(old.children)
    old.children = {}
    if old.assigned_ip is not None:
        survivor.assigned_ip, old.assigned_ip = old.assigned_ip, None
    survivor.state, survivor.silent = State.ESTABLISHED, False
    old.hand_over_tasks(survivor)
    old.replaced_by = survivor
    old.state = State.REKEYED
    old.expire_at = now + old.retransmit_span()      # the peer's Delete, if it is ours to wait for
    old.emit(ev.IkeSaRekeyed(old.spis, survivor.spis, survivor.suite, survivor))
    if delete_old:
        old.queue(DeleteIkeTask(), now)   # the last request on the old SA (§2.18)
    if survivor.ticket_client and not survivor.exchange_state.get("ticket_requested"):
        # the client's ticket belonged to the old SA: a fresh one (RFC 5723 §6.2)
        from .resumption import TicketRequestTask
        survivor.queue(TicketRequestTask(), now)
    survivor.start_tasks(now)
    old.timers_moved()
    survivor.timers_moved()


def retire(sa, now: float, *, delete: bool) -> None:
    """A new SA that lost a simultaneous rekey: we delete it if we made it,
    else we wait (a bounded time) for the peer to."""
    sa.state = State.REKEYED
    sa.expire_at = now + sa.retransmit_span()
    if delete:
        sa.queue(DeleteIkeTask("redundant after a simultaneous rekey"), now)
    sa.timers_moved()


__all__ = ["RekeyIkeTask", "respond", "successor", "conclude", "retire", "peer_deleted_old_sa",
           "lowest_nonce_in", "PeerIkeRekey"]
