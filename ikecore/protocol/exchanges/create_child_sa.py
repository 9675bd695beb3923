"""CREATE_CHILD_SA (RFC 7296 §1.3): a new Child SA, a Child SA rekey, an IKE SA rekey.

    new Child SA:  HDR, SK {SA, Ni, [KEi,] TSi, TSr}            <-->  HDR, SK {SA, Nr, [KEr,] TSi, TSr}
    Child rekey:   HDR, SK {N(REKEY_SA), SA, Ni, [KEi,] TSi, TSr} <-->  HDR, SK {SA, Nr, [KEr,] TSi, TSr}
    IKE rekey:     HDR, SK {SA, Ni, KEi}                          <-->  HDR, SK {SA, Nr, KEr}

Simultaneous rekeys (RFC 7296 §2.8.1, §2.8.2): when both ends rekeyed the
same SA, the new SA created by the exchange holding the lowest of the four
nonces is redundant and is deleted by the end that initiated that exchange.
"""
from __future__ import annotations

import logging

from ...crypto.dh import KeyExchange
from ...crypto.keyschedule import ike_keys_rekey
from ...errors import InvalidKePayload, NoProposalChosen, ParseError, ProtocolError, TemporaryFailure
from .. import events as ev
from ..config import ChildConfig
from ..constants import ExchangeType, NotifyType, PayloadType, ProtocolId
from ..message import Message
from ..negotiation import accept_ike_reply, ike_sa_payload, select_ike
from ..payloads import KePayload, NoncePayload, NotifyPayload, SaPayload, TsiPayload, TsrPayload
from .ike_auth import (child_keys, child_request_payloads, choose_child, complete_child_initiator,
                       new_child, new_child_spi)
from .informational import DeleteChildTask, DeleteIkeTask
from .task import Task

log = logging.getLogger("ikecore.ike")
NONCE_LENGTH = 32


def _create_child(conn, payloads: list) -> Message:
    return Message(conn.spi_i, conn.spi_r, ExchangeType.CREATE_CHILD_SA, inner=payloads)


def _pfs_group(cfg: ChildConfig) -> int | None:
    return next((p.dh[0] for p in cfg.esp_proposals if p.dh), None)


def lowest_nonce_in(ours: tuple[bytes, bytes], theirs: tuple[bytes, bytes]) -> bool:
    """True when the lowest of the four nonces belongs to ``ours`` (RFC 7296 §2.8.1)."""
    return min(ours) < min(theirs)


# ---------------------------------------------------------------- Child SAs --

class CreateChildTask(Task):
    """A new Child SA, with PFS when the configuration's ESP proposal names a group."""

    MAX_KE_RETRIES = 2

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
        return _create_child(conn, self.prefix(conn) + payloads)

    def prefix(self, conn) -> list:
        return []

    def on_response(self, conn, msg: Message, now: float) -> None:
        invalid_ke = msg.notify(NotifyType.INVALID_KE_PAYLOAD)
        if invalid_ke is not None and self.group is not None and self.ke_retries < self.MAX_KE_RETRIES:
            wanted = int.from_bytes(invalid_ke.data[:2], "big")
            if any(wanted in p.dh for p in self.cfg.esp_proposals):
                self.ke_retries += 1
                self.group = wanted
                conn.queue(self, now)      # a new exchange with the group the peer wants
                return
        error = msg.error_notify()
        if error is not None:
            return self.failed(conn, now, f"CREATE_CHILD_SA refused: notify {error.notify_type}",
                               error.notify_type)
        nonce, ke = msg.find(PayloadType.NONCE), msg.find(PayloadType.KE)
        shared = None
        if self.group is not None:
            if ke is None or ke.group != self.group:
                return self.failed(conn, now, "KEr missing or of another group", NotifyType.INVALID_SYNTAX)
            try:
                shared = self.kex.shared_secret(ke.data)
            except ParseError as exc:
                return self.failed(conn, now, f"bad KEr: {exc}", NotifyType.INVALID_SYNTAX)
        try:
            child = complete_child_initiator(conn, msg, self.cfg, self.offer, self.spi_in, self.tsi,
                                             self.tsr, self.nonce, nonce.data, now, shared, self.group)
        except ProtocolError as exc:
            return self.failed(conn, now, str(exc), exc.notify_type)
        self.kex = None
        self.installed(conn, child, nonce.data, now)

    def installed(self, conn, child, peer_nonce: bytes, now: float) -> None:
        pass

    def failed(self, conn, now: float, reason: str, notify_type: int | None = None) -> None:
        # a Child SA that could not be made leaves the IKE SA as it was
        conn.emit(ev.ChildSaFailed(self.cfg.name, notify_type, reason))


class RekeyChildTask(CreateChildTask):
    """Replace a Child SA (RFC 7296 §2.8); the rekey initiator deletes the old one."""

    def __init__(self, child) -> None:
        super().__init__(_config_of(child))
        self.old = child
        # the PFS group of the SA being replaced is the one to propose again
        self.group = child.suite.dh_group or _pfs_group(self.cfg)

    def build_request(self, conn, now: float) -> Message | None:
        if self.old.spi_in not in conn.children:
            return None
        self.old.rekeying = True
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

    def installed(self, conn, child, peer_nonce: bytes, now: float) -> None:
        old = self.old
        old.rekeying = False
        old.our_rekey = {"nonces": (self.nonce, peer_nonce), "child": child}
        conn.emit(ev.ChildSaRekeyed(old, child))
        collision = getattr(old, "peer_rekey", None)
        if collision is not None and lowest_nonce_in((self.nonce, peer_nonce), collision["nonces"]):
            # our new SA is the redundant one: we made it, we delete it
            conn.queue(DeleteChildTask(child, "redundant after a simultaneous rekey"), now)
        old.replaced_by = child
        conn.queue(DeleteChildTask(old, "rekeyed"), now)

    def failed(self, conn, now: float, reason: str, notify_type: int | None = None) -> None:
        self.old.rekeying = False
        if notify_type == NotifyType.TEMPORARY_FAILURE:
            self.old.rekey_at = now + 2.0 + conn.rng(1)[0] / 64.0   # try again a little later (§2.25)
        super().failed(conn, now, reason, notify_type)


def _config_of(child) -> ChildConfig:
    cfg = getattr(child, "config", None)
    if cfg is None:
        raise ProtocolError("the Child SA has no configuration")
    return cfg


# ------------------------------------------------------------------ IKE SA --

class RekeyIkeTask(Task):
    """Rekey the IKE SA; the new SA takes the Child SAs and we delete the old one."""

    MAX_KE_RETRIES = 2

    def __init__(self, *, clone: bool = False) -> None:
        self.group = None
        self.kex = None
        self.nonce = b""
        self.new_spi = b""
        self.offer = None
        self.ke_retries = 0
        self.clone = clone

    def build_request(self, conn, now: float) -> Message:
        if self.group is None:
            self.group = conn.suite.dh_group
        self.new_spi = conn.new_spi()
        self.nonce = conn.rng(NONCE_LENGTH)
        self.kex = KeyExchange.generate(self.group, conn.rng)
        self.offer = ike_sa_payload(conn.config.proposals, self.new_spi, group_first=self.group)
        conn.exchange_state["ike_rekey_nonce"] = self.nonce
        payloads = [self.offer, NoncePayload(self.nonce), KePayload(self.group, self.kex.public_bytes)]
        if self.clone:
            payloads.insert(0, NotifyPayload(notify_type=NotifyType.CLONE_IKE_SA))
        return _create_child(conn, payloads)

    def on_response(self, conn, msg: Message, now: float) -> None:
        conn.exchange_state.pop("ike_rekey_nonce", None)
        invalid_ke = msg.notify(NotifyType.INVALID_KE_PAYLOAD)
        if invalid_ke is not None and self.ke_retries < self.MAX_KE_RETRIES:
            wanted = int.from_bytes(invalid_ke.data[:2], "big")
            if any(wanted in p.dh for p in conn.config.proposals):
                self.ke_retries += 1
                self.group = wanted
                conn.queue(self, now)
                return
        error = msg.error_notify()
        if error is not None:
            return self.failed(conn, now, f"IKE rekey refused: notify {error.notify_type}", error.notify_type)
        sa, nonce, ke = msg.find(PayloadType.SA), msg.find(PayloadType.NONCE), msg.find(PayloadType.KE)
        if sa is None or nonce is None or ke is None:
            return self.failed(conn, now, "IKE rekey response lacks SA, Nr or KEr", NotifyType.INVALID_SYNTAX)
        _, suite = accept_ike_reply(sa, self.offer, spi_size=8)
        if ke.group != self.group or suite.dh_group != self.group:
            return self.failed(conn, now, "KEr of another group", NotifyType.INVALID_SYNTAX)
        peer_spi = sa.proposals[0].spi
        shared = self.kex.shared_secret(ke.data)
        new = successor(conn, suite, shared, self.nonce, nonce.data, self.new_spi, peer_spi,
                        initiator=True, now=now, clone=self.clone)
        self.kex = None
        finish_ike_rekey(conn, new, (self.nonce, nonce.data), now, we_initiated=True, clone=self.clone)

    def failed(self, conn, now: float, reason: str, notify_type: int | None = None) -> None:
        conn.exchange_state.pop("ike_rekey_nonce", None)
        log.info("%s: IKE rekey failed: %s", conn.name, reason)
        if notify_type in (NotifyType.TEMPORARY_FAILURE, NotifyType.NO_ADDITIONAL_SAS) or notify_type is None:
            conn.rekey_at = now + 2.0 + conn.rng(1)[0] / 64.0
        if self.clone:
            conn.emit(ev.ChildSaFailed("clone", notify_type, reason))


def successor(conn, suite, shared: bytes, ni: bytes, nr: bytes, spi_i: bytes, spi_r: bytes, *,
              initiator: bool, now: float, clone: bool = False):
    """The IKE SA a rekey (or clone) creates: keyed from SK_d of ``conn`` with
    the old PRF for SKEYSEED and the new one for prf+ (RFC 7296 §2.18)."""
    from ..ike_sa import IkeConnection, State
    keys = ike_keys_rekey(conn.suite.prf_id, conn.keys.sk_d, shared, ni, nr, spi_i, spi_r,
                          prf_id=suite.prf_id, encr_id=suite.encr_id, encr_key_bits=suite.key_bits,
                          integ_id=suite.integ_id)
    new = IkeConnection(conn.config, initiator=initiator, local=conn.local, remote=conn.remote,
                        rng=conn.rng, now=now, spi_i=spi_i, spi_r=spi_r, natt_port=conn.natt_port)
    new.install_keys(suite, keys)
    new.ni, new.nr = ni, nr
    for attr in ("remote_id", "nat_local", "nat_remote", "peer_fragmentation", "peer_signature_hashes",
                 "peer_mobike", "peer_clone", "virtual_ip", "leases"):
        setattr(new, attr, getattr(conn, attr))
    new.state = State.ESTABLISHED
    new.start_lifetimes(now)
    new.last_heard = now
    return new


def finish_ike_rekey(conn, new, nonces: tuple[bytes, bytes], now: float, *, we_initiated: bool,
                     clone: bool = False) -> None:
    from ..ike_sa import State
    if clone:
        conn.emit(ev.IkeSaCloned(conn.spis, new.spis, new.suite, new))
        return
    new.children = conn.children            # a rekey hands every Child SA to the new SA
    conn.children = {}
    if conn.assigned_ip is not None:
        new.assigned_ip, conn.assigned_ip = conn.assigned_ip, None
    conn.replaced_by = new
    conn.state = State.REKEYED
    conn.expire_at = now + conn.config.retransmit_timeout * 30   # the old SA lingers only so long
    conn.emit(ev.IkeSaRekeyed(conn.spis, new.spis, new.suite, new))
    if we_initiated:
        conn.tasks.clear()
        conn.queue(DeleteIkeTask(), now)    # the Delete is the last request on the old SA (§2.8)


def respond(conn, msg: Message, now: float) -> list:
    from ..ike_sa import State
    if conn.state == State.REKEYED:
        raise TemporaryFailure("this IKE SA has been rekeyed")
    if conn.state != State.ESTABLISHED:
        raise ProtocolError("CREATE_CHILD_SA before the IKE SA is up", notify_type=NotifyType.INVALID_SYNTAX)
    sa = msg.find(PayloadType.SA)
    if sa is not None and sa.proposals and sa.proposals[0].protocol_id == ProtocolId.IKE:
        return _respond_ike_rekey(conn, msg, now)
    return _respond_child(conn, msg, now)


def _respond_ike_rekey(conn, msg: Message, now: float) -> list:
    cfg = conn.config
    clone = msg.has_notify(NotifyType.CLONE_IKE_SA)
    if clone and not (cfg.clone and conn.peer_clone):
        clone = False     # RFC 7791 §5.1: without both CLONE_IKE_SA_SUPPORTED, a clone is not allowed
        raise NoProposalChosen("cloning was not negotiated")
    sa, nonce, ke = msg.find(PayloadType.SA), msg.find(PayloadType.NONCE), msg.find(PayloadType.KE)
    if nonce is None or ke is None:
        # RFC 7296 §2.18: an IKE rekey always carries a new key exchange
        raise NoProposalChosen("an IKE SA rekey needs KEi")
    chosen, suite = select_ike(sa, cfg.proposals, spi_size=8)
    if ke.group != suite.dh_group:
        raise InvalidKePayload(suite.dh_group)
    if not clone and conn.exchange_state.get("ike_rekey_done"):
        raise TemporaryFailure("this IKE SA has just been rekeyed")
    kex = KeyExchange.generate(suite.dh_group, conn.rng)
    try:
        shared = kex.shared_secret(ke.data)
    except ParseError as exc:
        raise ProtocolError(f"bad KEi: {exc}", notify_type=NotifyType.INVALID_SYNTAX) from None
    our_nonce = conn.rng(NONCE_LENGTH)
    peer_spi = chosen.spi
    our_spi = conn.new_spi()
    chosen.spi = our_spi
    new = successor(conn, suite, shared, nonce.data, our_nonce, peer_spi, our_spi, initiator=False,
                    now=now, clone=clone)
    ours_pending = conn.exchange_state.get("ike_rekey_nonce")
    if ours_pending is not None and not clone:
        # simultaneous IKE rekey: remember theirs; ours resolves it when it completes
        conn.exchange_state["peer_ike_rekey"] = ((nonce.data, our_nonce), new)
    conn.exchange_state["after_response"] = lambda t: finish_ike_rekey(
        conn, new, (nonce.data, our_nonce), t, we_initiated=False, clone=clone)
    return [SaPayload([chosen]), NoncePayload(our_nonce), KePayload(suite.dh_group, kex.public_bytes)]


def _respond_child(conn, msg: Message, now: float) -> list:
    rekey = msg.notify(NotifyType.REKEY_SA)
    old = None
    if rekey is not None:
        old = next((c for c in conn.children.values() if c.spi_out == rekey.spi), None)
        if old is None:
            return [NotifyPayload(protocol_id=ProtocolId.ESP, spi=rekey.spi,
                                  notify_type=NotifyType.CHILD_SA_NOT_FOUND)]
    nonce, ke = msg.find(PayloadType.NONCE), msg.find(PayloadType.KE)
    if nonce is None or msg.find(PayloadType.TSI) is None or msg.find(PayloadType.TSR) is None:
        raise ProtocolError("CREATE_CHILD_SA request lacks Ni or selectors", notify_type=NotifyType.INVALID_SYNTAX)
    cfg, proposal, suite, n_tsi, n_tsr, mode = choose_child(conn, msg, allow_dh=True,
                                                            assigned_ip=conn.assigned_ip)
    shared = None
    if suite.dh_group is not None:
        if ke is None or ke.group != suite.dh_group:
            raise InvalidKePayload(suite.dh_group)
        kex = KeyExchange.generate(suite.dh_group, conn.rng)
        try:
            shared = kex.shared_secret(ke.data)
        except ParseError as exc:
            raise ProtocolError(f"bad KEi: {exc}", notify_type=NotifyType.INVALID_SYNTAX) from None
    elif ke is not None:
        raise NoProposalChosen("KEi sent but no proposal with a key exchange was acceptable")
    our_nonce = conn.rng(NONCE_LENGTH)
    spi_in = new_child_spi(conn)
    spi_out = proposal.spi
    proposal.spi = spi_in
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
    if old is None:
        conn.emit(ev.ChildSaInstalled(child))
        return reply
    conn.emit(ev.ChildSaRekeyed(old, child))
    if old.rekeying:
        # simultaneous rekey of the same SA: our own exchange decides when it completes
        old.peer_rekey = {"nonces": (nonce.data, our_nonce), "child": child}
    elif old.our_rekey is not None:
        # ours completed first: if its nonces hold the lowest, our new SA is redundant
        if lowest_nonce_in(old.our_rekey["nonces"], (nonce.data, our_nonce)):
            conn.queue(DeleteChildTask(old.our_rekey["child"], "redundant after a simultaneous rekey"), now)
    else:
        old.replaced_by = child
    # the peer, which started this rekey, deletes the old SA
    return reply
