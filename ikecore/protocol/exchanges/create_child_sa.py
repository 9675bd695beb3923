"""CREATE_CHILD_SA (RFC 7296 §1.3): a new Child SA or a Child SA rekey, with
optional PFS; a request proposing IKE is an IKE SA rekey (``ike_rekey``).

    new Child SA:  HDR, SK {SA, Ni, [KEi,] TSi, TSr}              -->
    Child rekey:   HDR, SK {N(REKEY_SA), SA, Ni, [KEi,] TSi, TSr}  -->
                                          <--  HDR, SK {SA, Nr, [KEr,] TSi, TSr}
                                          <--  HDR, SK {N(error)}

The rekey initiator deletes the SA it replaced. Collisions (§2.8.1, §2.25.1):
a rekey of an SA we are rekeying too is answered as usual, and once both
exchanges are known the new SA created with the lowest of the four nonces is
deleted by the end that initiated it; a rekey of an SA we are deleting (or
have already replaced) gets TEMPORARY_FAILURE; of an SA we do not have,
CHILD_SA_NOT_FOUND.
"""
from __future__ import annotations

import logging

from ...crypto.dh import KeyExchange
from ...errors import NoProposalChosen, ParseError, ProtocolError, TemporaryFailure
from .. import events as ev
from ..child_sa import PeerRekey
from ..config import ChildConfig
from ..constants import ExchangeType, NotifyType, PayloadType, ProtocolId
from ..message import Message
from ..payloads import KePayload, NoncePayload, NotifyPayload, SaPayload, TsiPayload, TsrPayload
from . import ike_clone, ike_rekey
from .ike_auth import _child_refusal, child_keys, child_request_payloads, choose_child, complete_child_initiator, new_child, new_child_spi
from .ike_rekey import lowest_nonce_in
from .informational import DeleteChildTask, DeleteRefusedChildTask
from .task import Task, answer_key_exchange

log = logging.getLogger("ikecore.ike")
NONCE_LENGTH = 32
RETRY_DELAY = 2.0            # seconds before a refused exchange is tried again (plus jitter)


def _pfs_group(cfg: ChildConfig) -> int | None:
    return next((p.dh[0] for p in cfg.esp_proposals if p.dh), None)


def _retry_at(conn, now: float) -> float:
    return now + RETRY_DELAY + conn.rng(1)[0] / 64.0


# ---------------------------------------------------------------- initiator --

class CreateChildTask(Task):
    """A new Child SA, with PFS when the configuration's ESP proposal names a group."""

    MAX_KE_RETRIES = 2
    MAX_TEMPORARY_RETRIES = 3

    def __init__(self, cfg: ChildConfig) -> None:
        self.cfg = cfg
        self.group = _pfs_group(cfg)
        self.kex: KeyExchange | None = None
        self.nonce = b""
        self.spi_in = b""
        self.offer = None
        self.tsi: list = []
        self.tsr: list = []
        self.ke_retries = 0
        self.temporary_retries = 0

    def _child_payloads(self, conn) -> list:
        self.offer, payloads = child_request_payloads(conn, self.cfg, self.spi_in, pfs_group=self.group)
        self.tsi, self.tsr = payloads[-2].selectors, payloads[-1].selectors
        return payloads

    def build_request(self, conn, now: float) -> Message | None:
        self.spi_in = new_child_spi(conn)
        self.nonce = conn.rng(NONCE_LENGTH)
        payloads = self._child_payloads(conn)
        # SA first; Ni and KE follow it, selectors last
        sa_at = next(i for i, p in enumerate(payloads) if isinstance(p, SaPayload))
        extra = [NoncePayload(self.nonce)]
        if self.group is not None:
            self.kex = KeyExchange.generate(self.group, conn.rng)
            extra.append(KePayload(self.group, self.kex.public_bytes))
        payloads[sa_at + 1:sa_at + 1] = extra
        return Message(conn.spi_i, conn.spi_r, ExchangeType.CREATE_CHILD_SA,
                       inner=self.prefix(conn) + payloads)

    def prefix(self, conn) -> list:
        return []

    def on_response(self, conn, msg: Message, now: float) -> None:
        invalid_ke = msg.notify(NotifyType.INVALID_KE_PAYLOAD)
        if invalid_ke is not None and self.group is not None and self.ke_retries < self.MAX_KE_RETRIES:
            wanted = int.from_bytes(invalid_ke.data[:2], "big")
            if wanted != self.group and any(wanted in p.dh for p in self.cfg.esp_proposals):
                self.ke_retries += 1
                self.group = wanted
                self.retrying(conn)
                conn.queue(self, now, first=True)     # a new exchange with the group the peer wants
                return
        error = msg.error_notify()
        if error is not None:
            return self.failed(conn, now, "CREATE_CHILD_SA refused: " + _child_refusal(
                error.notify_type, self.cfg, getattr(self, "offer", None), getattr(self, "tsi", ()),
                getattr(self, "tsr", ())),
                               error.notify_type)
        try:
            child = self._complete(conn, msg, now)
        except ProtocolError as exc:
            # the peer installed its half: tell it to drop that, then report the failure
            conn.queue(DeleteRefusedChildTask(self.spi_in), now)
            return self.failed(conn, now, str(exc), exc.notify_type)
        self.kex = None
        self.installed(conn, child, msg.find(PayloadType.NONCE).data, now)

    def _complete(self, conn, msg: Message, now: float):
        nonce, ke = msg.find(PayloadType.NONCE), msg.find(PayloadType.KE)
        shared = None
        if self.group is not None:
            if ke is None or ke.group != self.group:
                raise ProtocolError("KEr missing or of another group", notify_type=NotifyType.INVALID_SYNTAX)
            try:
                shared = self.kex.shared_secret(ke.data)
            except ParseError as exc:
                raise ProtocolError(f"bad KEr: {exc}", notify_type=NotifyType.INVALID_SYNTAX) from None
        elif ke is not None:
            raise ProtocolError("KEr without a key exchange offered", notify_type=NotifyType.INVALID_SYNTAX)
        return complete_child_initiator(conn, msg, self.cfg, self.offer, self.spi_in, self.tsi,
                                        self.tsr, self.nonce, nonce.data, now, shared, self.group)

    def retrying(self, conn) -> None:
        """The exchange is about to be run again (INVALID_KE_PAYLOAD)."""

    def installed(self, conn, child, peer_nonce: bytes, now: float) -> None:
        pass

    def failed(self, conn, now: float, reason: str, notify_type: int | None = None) -> None:
        # a Child SA that could not be made leaves the IKE SA as it was
        self.kex = None
        if notify_type == NotifyType.TEMPORARY_FAILURE and self.temporary_retries < self.MAX_TEMPORARY_RETRIES:
            self.temporary_retries += 1
            conn.queue_later(self, _retry_at(conn, now))     # MUST wait before retrying (§2.25)
            return
        conn.emit(ev.ChildSaFailed(self.cfg.name, notify_type, reason))


class RekeyChildTask(CreateChildTask):
    """Replace a Child SA (RFC 7296 §2.8); the rekey initiator deletes the old one."""

    def __init__(self, child) -> None:
        super().__init__(_config_of(child))
        self.old = child
        # the PFS group of the SA being replaced is the one to propose again
        self.group = child.suite.dh_group or _pfs_group(self.cfg)

    def build_request(self, conn, now: float) -> Message | None:
        old = self.old
        if old.spi_in not in conn.children or old.deleting or old.replaced_by is not None:
            return None          # deleted or replaced meanwhile
        old.rekeying = True
        return super().build_request(conn, now)

    def _child_payloads(self, conn) -> list:
        payloads = super()._child_payloads(conn)
        # propose the selectors the SA has now (narrowed at its creation)
        payloads[-2] = TsiPayload(list(self.old.local_ts))
        payloads[-1] = TsrPayload(list(self.old.remote_ts))
        self.tsi, self.tsr = payloads[-2].selectors, payloads[-1].selectors
        return payloads

    def prefix(self, conn) -> list:
        return [NotifyPayload(protocol_id=ProtocolId.ESP, spi=self.old.spi_in, notify_type=NotifyType.REKEY_SA)]

    def retrying(self, conn) -> None:
        self.old.rekeying = False

    def installed(self, conn, child, peer_nonce: bytes, now: float) -> None:
        old = self.old
        old.rekeying = False
        conn.emit(ev.ChildSaRekeyed(old, child))
        survivor = child
        theirs = old.peer_rekey
        if theirs is not None and theirs.child.spi_in in conn.children:
            if lowest_nonce_in((self.nonce, peer_nonce), theirs.nonces):
                # ours is the redundant one: we made it, we delete it (§2.8.1)
                survivor = theirs.child
                conn.queue(DeleteChildTask(child, "redundant after a simultaneous rekey"), now)
        old.replaced_by = survivor
        conn.queue(DeleteChildTask(old, "rekeyed"), now)

    def failed(self, conn, now: float, reason: str, notify_type: int | None = None) -> None:
        old = self.old
        old.rekeying = False
        self.kex = None
        theirs = old.peer_rekey
        if theirs is not None and theirs.child.spi_in in conn.children:
            # the peer's rekey of it stands; the peer deletes the old SA
            old.replaced_by = theirs.child
            return
        if notify_type == NotifyType.TEMPORARY_FAILURE:
            old.rekey_at = _retry_at(conn, now)     # the connection's timer tries again
            return
        if notify_type == NotifyType.CHILD_SA_NOT_FOUND and old.spi_in in conn.children:
            # RFC 7296 §2.25: forget it silently and create it from scratch
            del conn.children[old.spi_in]
            conn.emit(ev.ChildSaDeleted(old, "unknown to the peer"))
            conn.queue(CreateChildTask(self.cfg), now)
            return
        conn.emit(ev.ChildSaFailed(self.cfg.name, notify_type, reason))


def _config_of(child) -> ChildConfig:
    cfg = getattr(child, "config", None)
    if cfg is None:
        raise ProtocolError("the Child SA has no configuration")
    return cfg


# ---------------------------------------------------------------- responder --

def respond(conn, msg: Message, now: float) -> list:
    sa = msg.find(PayloadType.SA)
    if sa.proposals and sa.proposals[0].protocol_id == ProtocolId.IKE:
        if msg.has_notify(NotifyType.CLONE_IKE_SA):
            return ike_clone.respond(conn, msg, now)
        return ike_rekey.respond(conn, msg, now)
    return _respond_child(conn, msg, now)


def _rekeyed_child(conn, msg: Message):
    """The Child SA a REKEY_SA names (None for a new Child SA); raises or answers
    for one that cannot be rekeyed now."""
    rekey = msg.notify(NotifyType.REKEY_SA)
    if rekey is None:
        return None
    old = next((c for c in conn.children.values() if c.spi_out == rekey.spi), None)
    if old is None or rekey.protocol_id != ProtocolId.ESP:
        raise ProtocolError("REKEY_SA for an unknown Child SA", notify_type=NotifyType.CHILD_SA_NOT_FOUND)
    if old.deleting or old.replaced_by is not None:
        raise TemporaryFailure("that Child SA is being deleted")
    return old


def _respond_child(conn, msg: Message, now: float) -> list:
    try:
        old = _rekeyed_child(conn, msg)
    except ProtocolError as exc:
        if exc.notify_type != NotifyType.CHILD_SA_NOT_FOUND:
            raise
        rekey = msg.notify(NotifyType.REKEY_SA)    # the SPI goes back in the notify (§2.25)
        return [NotifyPayload(protocol_id=rekey.protocol_id, spi=rekey.spi,
                              notify_type=NotifyType.CHILD_SA_NOT_FOUND)]
    nonce, ke = msg.find(PayloadType.NONCE), msg.find(PayloadType.KE)
    if msg.find(PayloadType.TSI) is None:
        raise ProtocolError("a Child SA request without selectors", notify_type=NotifyType.INVALID_SYNTAX)
    cfg, proposal, suite, n_tsi, n_tsr, mode = choose_child(conn, msg, allow_dh=True,
                                                            assigned_ip=conn.assigned_ip)
    shared = None
    if suite.dh_group is not None:
        kex, shared = answer_key_exchange(suite.dh_group, ke, conn.rng)
    elif ke is not None:
        raise NoProposalChosen("KEi sent but no proposal with a key exchange was acceptable")
    our_nonce = conn.rng(NONCE_LENGTH)
    spi_in = new_child_spi(conn)
    spi_out, proposal.spi = proposal.spi, spi_in
    keys = child_keys(conn, suite, nonce.data, our_nonce, shared)
    child = new_child(conn, cfg, suite, spi_in=spi_in, spi_out=spi_out, keys=keys, initiator=False,
                      local_ts=n_tsr, remote_ts=n_tsi, now=now, mode=mode)
    reply = []
    if mode == "transport":
        reply.append(NotifyPayload(notify_type=NotifyType.USE_TRANSPORT_MODE))
    reply += [SaPayload([proposal]), NoncePayload(our_nonce)]
    if shared is not None:
        reply.append(KePayload(suite.dh_group, kex.public_bytes))
    reply += [TsiPayload(n_tsi), TsrPayload(n_tsr)]
    conn.emit(ev.ChildSaInstalled(child))       # a rekey reports it installed, then what it replaces
    if old is None:
        return reply
    conn.emit(ev.ChildSaRekeyed(old, child))
    if old.rekeying:
        # simultaneous rekey of the same SA: our own exchange decides when it completes
        old.peer_rekey = PeerRekey((nonce.data, our_nonce), child)
    else:
        old.replaced_by = child     # the peer, which started this rekey, deletes the old SA
    return reply


__all__ = ["CreateChildTask", "RekeyChildTask", "respond"]
