"""Cloning the IKE SA (RFC 7791) between two in-memory endpoints, with either
side cloning: negotiation, the exchange, the clone's keys against an
independent computation, what parent and clone each go on doing, the
responder's refusals, the clone cap, the authentication deadline, and clones
that meet rekeys, clones and deletes of the same SA.

    IKE_AUTH   HDR, SK {IDi, AUTH, ..., N(CLONE_IKE_SA_SUPPORTED)}      -->
                                     <--  HDR, SK {IDr, AUTH, ..., N(CLONE_IKE_SA_SUPPORTED)}
    clone      HDR, SK {N(CLONE_IKE_SA), SA(IKE, SPIi'), Ni, KEi}       -->
                                     <--  HDR, SK {SA(IKE, SPIr'), Nr, KEr}
                                     <--  HDR, SK {N(NO_ADDITIONAL_SAS | TEMPORARY_FAILURE | ...)}
    (the parent stays; the clone has Message IDs from 0 and no Child SAs)
"""
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519

from ike_pair import (Network, Pair, Wire, assert_child_pair, child, configs, decrypt_trace, established_pair,
                      other, peer_child)
from ikecore.crypto import dh as dh_module
from ikecore.crypto.keyschedule import child_sa_keys
from ikecore.errors import IkeError
from ikecore.protocol import events as ev
from ikecore.protocol.config import IkeConfig, IkeProposal, Identity, LocalAuth, RemoteAuth
from ikecore.protocol.constants import ExchangeType, NotifyType, PayloadType, ProtocolId
from ikecore.protocol.exchanges.create_child_sa import CreateChildTask
from ikecore.protocol.exchanges.ike_clone import CloneIkeTask
from ikecore.protocol.exchanges.task import Task
from ikecore.protocol.ike_sa import State
from ikecore.protocol.message import Message
from ikecore.protocol.payloads import NotifyPayload
from ikecore.protocol.selectors import from_payload

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "crypto"))
import reference_kdf as ref  # noqa: E402  (tests/crypto: the pure-Python key schedule)

SIDES = ["i", "r"]
TAG = {"i": "i>r", "r": "r>i"}
LIMIT = 900.0
WIRES = {
    "clean": lambda: Wire(),
    "lossy": lambda: Wire(loss=0.25, seed=3),
    "everything": lambda: Wire(loss=0.15, duplicate=0.3, reorder=0.5, seed=13),
}


def endpoint(p, side):
    return p.ei if side == "i" else p.er


def clones(p, side):
    return [e.connection for e in p.of(ev.IkeSaCloned, side)]


def clone_pair(side, *, wire=None, **kw):
    """An established pair that negotiated cloning, and ``side``'s clone of the
    IKE SA: (pair, cloner's parent, peer's parent, cloner's clone, peer's clone)."""
    p = established_pair(clone=True, wire=wire, **kw)
    a, b = p.conn(side), p.conn(other(side))
    endpoint(p, side).clone(a, p.now)
    assert p.run(lambda: clones(p, "i") and clones(p, "r"), max_time=LIMIT)
    [ca], [cb] = clones(p, side), clones(p, other(side))
    return p, a, b, ca, cb


def clone_exchange(p, *parent):
    """[(request, response)] of the CREATE_CHILD_SAs on the parent (both ends'
    connections given) that carry N(CLONE_IKE_SA)."""
    reqs, resps = {}, {}
    for _, m in decrypt_trace(p, *parent):
        if m.exchange_type != ExchangeType.CREATE_CHILD_SA or m.inner is None:
            continue
        (resps if m.is_response else reqs).setdefault((m.is_initiator ^ m.is_response, m.message_id), m)
    pairs = [(req, resps.get(k)) for k, req in reqs.items() if req.has_notify(NotifyType.CLONE_IKE_SA)]
    return pairs


def refusals(p, side):
    return [e.notify_type for e in p.of(ev.IkeSaCloneFailed, side)]


def assert_unharmed(p, a, b):
    """The parent is up on both ends, keeps its Child SA, and still works."""
    assert a.state == b.state == State.ESTABLISHED
    [ca] = a.children.values()
    assert_child_pair(ca, peer_child(ca, b))
    a.create_child_sa(p.now)
    assert p.run(lambda: len(a.children) == len(b.children) == 2, max_time=LIMIT)


# ------------------------------------------------------------- negotiation --

@pytest.mark.parametrize("clone_i,clone_r", [(True, True), (True, False), (False, True), (False, False)])
def test_clone_supported_is_exchanged_in_ike_auth(clone_i, clone_r):
    ci, cr = configs()
    ci.clone, cr.clone = clone_i, clone_r
    p = Pair(ci, cr)
    p.connect()
    assert p.run(p.established)
    a, b = p.conn("i"), p.conn("r")
    [req] = [m for _, m in decrypt_trace(p, b) if m.exchange_type == ExchangeType.IKE_AUTH]
    [resp] = [m for _, m in decrypt_trace(p, a) if m.exchange_type == ExchangeType.IKE_AUTH]
    assert not req.is_response and resp.is_response
    # the initiator's first IKE_AUTH request, the responder's last response (RFC 7791 §5.1)
    assert req.has_notify(NotifyType.CLONE_IKE_SA_SUPPORTED) == clone_i
    assert resp.has_notify(NotifyType.CLONE_IKE_SA_SUPPORTED) == clone_r
    for n in (req.notify(NotifyType.CLONE_IKE_SA_SUPPORTED), resp.notify(NotifyType.CLONE_IKE_SA_SUPPORTED)):
        if n is not None:
            assert n.protocol_id == 0 and n.spi == b"" and n.data == b""
    assert a.peer_clone == clone_r and b.peer_clone == clone_i
    for conn in (a, b):
        if clone_i and clone_r:
            conn.clone(p.now)
        else:
            with pytest.raises(IkeError, match="not negotiated"):
                conn.clone(p.now)
    if clone_i and clone_r:
        assert p.run(lambda: len(clones(p, "i")) == len(clones(p, "r")) == 2, max_time=LIMIT)


# --------------------------------------------------------------- the clone --

@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("side", SIDES)
def test_clone(side, wire):
    p, a, b, ca, cb = clone_pair(side, wire=WIRES[wire]())
    p.settle(30.0)
    # the parent stays, with its Child SA; the clone is a new IKE SA beside it
    assert a.state == b.state == State.ESTABLISHED
    assert len(a.children) == len(b.children) == 1
    assert ca.state == cb.state == State.ESTABLISHED
    assert ca.spis == cb.spis and ca.spis != a.spis
    assert set(ca.spis).isdisjoint(a.spis)
    assert ca.keys == cb.keys and ca.keys.sk_d != a.keys.sk_d
    assert ca.suite == cb.suite == a.suite
    # the cloner is the clone's original initiator (RFC 7296 §1.3.2, §3.1)
    assert ca.initiator and not cb.initiator
    # no Child SAs move (RFC 7791 §5.2); identities and authentication come along
    assert not ca.children and not cb.children
    assert ca.remote_id == a.remote_id and cb.remote_id == b.remote_id
    assert ca.auth_expires_at == a.auth_expires_at and cb.auth_expires_at == b.auth_expires_at
    assert ca.cloned and cb.cloned and not a.cloned and not b.cloned
    assert ca.peer_clone and cb.peer_clone
    # both ends announce it, with both SPI pairs
    [ea], [eb] = p.of(ev.IkeSaCloned, side), p.of(ev.IkeSaCloned, other(side))
    assert ea.parent_spis == eb.parent_spis == a.spis and ea.clone_spis == eb.clone_spis == ca.spis
    assert not p.of(ev.IkeSaRekeyed, "i") and not p.of(ev.IkeSaDeleted, "i") and not p.of(ev.IkeSaDeleted, "r")
    # the exchange as RFC 7791 §5.2 draws it
    [(req, resp)] = clone_exchange(p, a, b)
    assert [type(x).__name__ for x in req.inner][:1] == ["NotifyPayload"]
    assert req.find(PayloadType.KE) is not None and req.find(PayloadType.NONCE) is not None
    assert req.find(PayloadType.TSI) is None
    [prop] = req.find(PayloadType.SA).proposals[:1]
    assert prop.protocol_id == ProtocolId.IKE and prop.spi == ca.spi_i
    assert resp.find(PayloadType.SA).proposals[0].spi == ca.spi_r
    assert resp.find(PayloadType.KE) is not None and not resp.notifies()
    # both endpoints route to the clone and count it for the peer
    assert endpoint(p, side).connections[ca.spi_i] is ca
    assert endpoint(p, other(side)).connections[cb.spi_r] is cb
    assert endpoint(p, side).ike_sas_of(a.remote_id) == 2
    assert endpoint(p, other(side)).ike_sas_of(b.remote_id) == 2


@pytest.mark.parametrize("side", SIDES)
def test_clone_message_ids_start_at_zero_and_its_window_is_one(side):
    p, a, b, ca, cb = clone_pair(side, window_size=4)
    p.settle(5.0)
    assert ca.peer_window == cb.peer_window == 4      # each SA announces its window anew (§2.3)
    ca.create_child_sa(p.now)
    cb.create_child_sa(p.now)
    assert p.run(lambda: len(ca.children) == len(cb.children) == 2, max_time=LIMIT)
    for sender, receiver in ((ca, cb), (cb, ca)):
        ids = sorted({m.message_id for _, m in decrypt_trace(p, receiver) if not m.is_response})
        assert ids == list(range(len(ids)))
        first = [m for _, m in decrypt_trace(p, receiver) if not m.is_response and m.message_id == 0]
        # the window starts at 1: the first request on the clone is its SET_WINDOW_SIZE
        assert first[0].exchange_type == ExchangeType.INFORMATIONAL
        assert first[0].has_notify(NotifyType.SET_WINDOW_SIZE)


# ---------------------------------------------------- keys, independently --

def _spy_key_exchanges(monkeypatch):
    made = []
    original = dh_module.KeyExchange.generate.__func__

    def generate(cls, group, rng=None):
        kex = original(cls, group, rng)
        made.append(kex)
        return kex
    monkeypatch.setattr(dh_module.KeyExchange, "generate", classmethod(generate))
    return made


@pytest.mark.parametrize("clone_ike", [None, "aes128gcm16-prfsha384-x25519", "aes256-sha512-x25519"])
@pytest.mark.parametrize("side", SIDES)
def test_clone_keys_equal_the_reference(side, clone_ike, monkeypatch):
    """SK_d/SK_a/SK_e/SK_p of the clone on both ends against tests/crypto/reference_kdf.py
    (stdlib hmac): SKEYSEED = prf_old(SK_d_old, g^ir | Ni | Nr), prf+ with the clone's PRF."""
    p = established_pair(clone=True)
    a, b = p.conn(side), p.conn(other(side))
    if clone_ike:        # the clone negotiates another suite (and PRF) than the parent's
        for cfg in (p.cfg_i, p.cfg_r):
            cfg.proposals = [IkeProposal.parse(clone_ike)]
    made = _spy_key_exchanges(monkeypatch)
    a.clone(p.now)
    assert p.run(lambda: clones(p, "i") and clones(p, "r"), max_time=LIMIT)
    [ca], [cb] = clones(p, side), clones(p, other(side))
    [(req, resp)] = clone_exchange(p, a, b)
    ni, nr = req.find(PayloadType.NONCE).data, resp.find(PayloadType.NONCE).data
    kei, ker = req.find(PayloadType.KE).data, resp.find(PayloadType.KE).data
    [ours] = [k for k in made if k.public_bytes == kei]
    private = ours._private_key.private_bytes_raw()
    gir = x25519.X25519PrivateKey.from_private_bytes(private).exchange(
        x25519.X25519PublicKey.from_public_bytes(ker))
    spi_i = req.find(PayloadType.SA).proposals[0].spi
    spi_r = resp.find(PayloadType.SA).proposals[0].spi
    assert (spi_i, spi_r) == ca.spis
    integ_len = {0: 0, 12: 32, 13: 48, 14: 64}[ca.suite.integ_id]
    encr_len = ca.suite.key_bits // 8 + (4 if ca.suite.encr_id in (18, 19, 20) else 0)
    _, expected = ref.rekey(a.suite.prf_id, a.keys.sk_d, ca.suite.prf_id, gir, ni, nr, spi_i, spi_r,
                            integ_len, encr_len)
    for clone in (ca, cb):
        k = clone.keys
        assert [k.sk_d, k.sk_ai, k.sk_ar, k.sk_ei, k.sk_er, k.sk_pi, k.sk_pr] == expected
    if clone_ike:
        assert ca.suite.prf_id != a.suite.prf_id          # old PRF for SKEYSEED, new one for prf+


# ------------------------------------------------- parent and clone, apart --

@pytest.mark.parametrize("side", SIDES)
def test_parent_and_clone_carry_their_own_child_sas_and_exchanges(side):
    p, a, b, ca, cb = clone_pair(side)
    [parent_child_a] = a.children.values()
    # a Child SA over the clone, started from the end that did not clone; keyed from the clone's SK_d
    cb.create_child_sa(p.now)
    assert p.run(lambda: len(ca.children) == len(cb.children) == 1, max_time=LIMIT)
    [over_clone] = cb.children.values()
    assert_child_pair(over_clone, peer_child(over_clone, ca))
    # cb asked, ca answered: what each received
    [req] = [m for _, m in decrypt_trace(p, ca) if m.exchange_type == ExchangeType.CREATE_CHILD_SA]
    [resp] = [m for _, m in decrypt_trace(p, cb) if m.exchange_type == ExchangeType.CREATE_CHILD_SA]
    assert not req.is_response and resp.is_response
    kw = dict(encr_id=over_clone.suite.encr_id, encr_key_bits=over_clone.suite.key_bits,
              integ_id=over_clone.suite.integ_id)
    ni, nr = req.find(PayloadType.NONCE).data, resp.find(PayloadType.NONCE).data
    assert over_clone.keys == child_sa_keys(cb.suite.prf_id, cb.keys.sk_d, ni, nr, **kw)
    assert len(a.children) == len(b.children) == 1      # the parent's own are untouched
    # rekey the parent: its successor takes the parent's Child SA, the clone keeps its own
    a.rekey(p.now)
    assert p.run(lambda: a.state == b.state == State.DELETED, max_time=LIMIT)
    [na] = [c for c in p.live(side) if c is not ca]
    [nb] = [c for c in p.live(other(side)) if c is not cb]
    assert list(na.children.values()) == [parent_child_a]
    assert ca.state == cb.state == State.ESTABLISHED and list(cb.children.values()) == [over_clone]
    assert not na.cloned and na.auth_expires_at == a.auth_expires_at
    # delete the clone: its Child SA goes with it, the (rekeyed) parent keeps working
    ca.delete(p.now)
    assert p.run(lambda: ca.state == cb.state == State.DELETED, max_time=LIMIT)
    assert [e.child for e in p.of(ev.ChildSaDeleted, other(side))] == [over_clone]
    assert endpoint(p, "i").ike_sas_of(p.cfg_r.local_id) == 1
    assert endpoint(p, "r").ike_sas_of(p.cfg_i.local_id) == 1
    na.create_child_sa(p.now)
    assert p.run(lambda: len(na.children) == len(nb.children) == 2, max_time=LIMIT)
    for c in na.children.values():
        assert_child_pair(c, peer_child(c, nb))


@pytest.mark.parametrize("side", SIDES)
def test_deleting_the_parent_leaves_the_clone(side):
    p, a, b, ca, cb = clone_pair(side)
    b.delete(p.now)
    assert p.run(lambda: a.state == b.state == State.DELETED, max_time=LIMIT)
    assert ca.state == cb.state == State.ESTABLISHED
    ca.create_child_sa(p.now)
    assert p.run(lambda: len(ca.children) == len(cb.children) == 1, max_time=LIMIT)
    [c] = ca.children.values()
    assert_child_pair(c, peer_child(c, cb))


@pytest.mark.parametrize("side", SIDES)
def test_a_rekeyed_clone_stays_a_clone_and_can_be_cloned(side):
    p, a, b, ca, cb = clone_pair(side)
    cb.rekey(p.now)
    assert p.run(lambda: ca.state == cb.state == State.DELETED, max_time=LIMIT)
    [ra], [rb] = [e.connection for e in p.of(ev.IkeSaRekeyed, side)], [e.connection for e in
                                                                       p.of(ev.IkeSaRekeyed, other(side))]
    assert ra.cloned and rb.cloned and ra.keys == rb.keys
    assert ra.auth_expires_at == a.auth_expires_at and ra.expire_at <= a.auth_expires_at
    assert endpoint(p, side).ike_sas_of(a.remote_id) == 2      # replaced, not added
    ra.clone(p.now)
    assert p.run(lambda: len(clones(p, "i")) == len(clones(p, "r")) == 2, max_time=LIMIT)
    assert endpoint(p, side).ike_sas_of(a.remote_id) == 3


# ---------------------------------------------------- the authentication --

@pytest.mark.parametrize("side", SIDES)
def test_clones_go_when_the_parents_authentication_expires(side):
    """The deadline is the original SA's hard lifetime from IKE_AUTH; the parent's
    rekeys start new lifetimes, the clone (and its rekeys) do not."""
    p = established_pair(clone=True, rekey_time=100.0, life_time=200.0, dpd_delay=0)
    a, b = p.conn(side), p.conn(other(side))
    deadline = a.auth_expires_at
    assert deadline == a.expire_at
    p.settle(10.0)
    a.clone(p.now)
    assert p.run(lambda: clones(p, "i") and clones(p, "r"), max_time=LIMIT)
    [ca], [cb] = clones(p, side), clones(p, other(side))
    assert ca.expire_at == deadline and cb.expire_at == b.auth_expires_at
    p.settle(deadline - p.now - 1.0)
    # rekeys happened meanwhile (parent and clone); each end still has a parent line and a clone line
    assert len(p.live("i")) == len(p.live("r")) == 2
    p.settle(100.0)
    live_i, live_r = p.live("i"), p.live("r")
    assert len(live_i) == len(live_r) == 1
    assert not live_i[0].cloned and not live_r[0].cloned
    assert live_i[0].expire_at > deadline           # the parent's line goes on (it was rekeyed)
    assert p.ei.ike_sas_of(p.cfg_r.local_id) == p.er.ike_sas_of(p.cfg_i.local_id) == 1


def test_a_clone_request_after_the_authentication_expired_is_refused():
    p = established_pair(clone=True)
    a, b = p.conn("i"), p.conn("r")
    a.auth_expires_at, deadline = p.now, a.auth_expires_at
    with pytest.raises(IkeError, match="expired"):
        a.clone(p.now)                      # our own deadline: not even asked
    a.auth_expires_at = deadline
    b.auth_expires_at = p.now - 1.0
    a.clone(p.now)
    p.settle(10.0)
    assert refusals(p, "i") == [NotifyType.NO_ADDITIONAL_SAS]
    assert not clones(p, "r")
    assert_unharmed(p, a, b)


# ------------------------------------------------------------- bad input --

class _BadClone(CloneIkeTask):
    """A clone request altered after it was built (``alter(conn, msg)``)."""

    def __init__(self, alter):
        super().__init__()
        self.alter = alter

    def build_request(self, conn, now):
        msg = super().build_request(conn, now)
        self.alter(conn, msg)
        return msg


@pytest.mark.parametrize("clone_i,clone_r", [(True, False), (False, True), (False, False)])
@pytest.mark.parametrize("side", SIDES)
def test_clone_without_negotiation_is_refused(side, clone_i, clone_r):
    ci, cr = configs()
    ci.clone, cr.clone = clone_i, clone_r
    p = Pair(ci, cr)
    p.connect()
    assert p.run(lambda: p.established() and len(p.conn("i").children) == len(p.conn("r").children) == 1)
    a, b = p.conn(side), p.conn(other(side))
    a.queue(CloneIkeTask(), p.now)          # past the command's own check
    p.settle(30.0)
    assert refusals(p, side) == [NotifyType.NO_ADDITIONAL_SAS]
    assert not clones(p, "i") and not clones(p, "r")
    assert len(p.live("i")) == len(p.live("r")) == 1
    assert_unharmed(p, a, b)


def _drop_ke(conn, msg):
    msg.inner = [x for x in msg.inner if x.payload_type != PayloadType.KE]


def _spi_of(which):
    def alter(conn, msg):
        spi = which(conn)
        msg.find(PayloadType.SA).proposals[0].spi = spi
    return alter


@pytest.mark.parametrize("alter,notify", [
    (_drop_ke, NotifyType.NO_PROPOSAL_CHOSEN),                        # RFC 7296 §2.18: D-H required
    (_spi_of(lambda c: c.spi_i), NotifyType.NO_PROPOSAL_CHOSEN),      # the parent's SPIs
    (_spi_of(lambda c: c.spi_r), NotifyType.NO_PROPOSAL_CHOSEN),
    (_spi_of(lambda c: bytes(8)), NotifyType.NO_PROPOSAL_CHOSEN),
], ids=["no-ke", "parent-spi-i", "parent-spi-r", "zero-spi"])
@pytest.mark.parametrize("side", SIDES)
def test_bad_clone_request_is_refused_and_the_parent_unharmed(side, alter, notify):
    p = established_pair(clone=True)
    a, b = p.conn(side), p.conn(other(side))
    a.queue(_BadClone(alter), p.now)
    p.settle(30.0)
    assert refusals(p, side) == [notify]
    assert not clones(p, "i") and not clones(p, "r")
    assert len(p.live("i")) == len(p.live("r")) == 1
    assert_unharmed(p, a, b)


@pytest.mark.parametrize("side", SIDES)
def test_clone_reusing_another_sas_spi_is_refused(side):
    p, a, b, ca, cb = clone_pair(side)
    theirs = ca.spi_i                       # the SPI the cloner chose for its first clone
    a.queue(_BadClone(_spi_of(lambda c: theirs)), p.now)
    p.settle(30.0)
    assert refusals(p, side) == [NotifyType.NO_PROPOSAL_CHOSEN]
    assert len(clones(p, other(side))) == 1
    assert_unharmed(p, a, b)


@pytest.mark.parametrize("side", SIDES)
def test_clone_cap_per_authenticated_peer(side):
    p = established_pair(clone=True, clone_limit=2)
    a, b = p.conn(side), p.conn(other(side))
    for _ in range(3):
        a.clone(p.now)
    p.settle(30.0)
    assert len(clones(p, side)) == 2 and refusals(p, side) == [NotifyType.NO_ADDITIONAL_SAS]
    assert endpoint(p, other(side)).ike_sas_of(a.config.local_id) == 3
    # the cap covers every IKE SA of the peer: cloning from a clone is refused too
    first = clones(p, side)[0]
    first.clone(p.now)
    p.settle(30.0)
    assert refusals(p, side) == [NotifyType.NO_ADDITIONAL_SAS] * 2
    # once one goes, there is room again
    first.delete(p.now)
    p.settle(30.0)
    assert endpoint(p, other(side)).ike_sas_of(a.config.local_id) == 2
    a.clone(p.now)
    p.settle(30.0)
    assert len(clones(p, side)) == 3
    assert_unharmed(p, a, b)


class _InformationalWithClone(Task):
    answer = None

    def build_request(self, conn, now):
        return Message(conn.spi_i, conn.spi_r, ExchangeType.INFORMATIONAL,
                       inner=[NotifyPayload(notify_type=NotifyType.CLONE_IKE_SA)])

    def on_response(self, conn, msg, now):
        self.answer = msg


class _ChildWithClone(CreateChildTask):
    def prefix(self, conn):
        return [NotifyPayload(notify_type=NotifyType.CLONE_IKE_SA)]


@pytest.mark.parametrize("side", SIDES)
def test_clone_notify_in_another_exchange_is_ignored(side):
    """RFC 7791 §5.2: N(CLONE_IKE_SA) outside an IKE SA rekey request is ignored."""
    p = established_pair(clone=True)
    a, b = p.conn(side), p.conn(other(side))
    a.queue(_ChildWithClone(a.config.child()), p.now)       # a new Child SA stays one
    assert p.run(lambda: len(a.children) == len(b.children) == 2, max_time=LIMIT)
    informational = _InformationalWithClone()
    a.queue(informational, p.now)                              # an INFORMATIONAL stays one
    assert p.run(lambda: informational.answer is not None, max_time=LIMIT)
    assert informational.answer.inner == []
    p.settle(10.0)
    assert not clones(p, "i") and not clones(p, "r") and not refusals(p, side)
    assert len(p.live("i")) == len(p.live("r")) == 1
    for c in a.children.values():
        assert_child_pair(c, peer_child(c, b))


# ------------------------------------------------------------- collisions --

@pytest.mark.parametrize("first", ["clone", "rekey"])
@pytest.mark.parametrize("side", SIDES)
def test_clone_meets_rekey(side, first):
    """``side`` clones while the other end rekeys the same SA: the cloner
    refuses the rekey (TEMPORARY_FAILURE, its clone is in flight), its peer
    answers the clone; the rekey succeeds on its retry."""
    p = established_pair(clone=True)
    a, b = p.conn(side), p.conn(other(side))
    [parent_child] = a.children.values()
    a.clone(p.now)
    b.rekey(p.now)
    assert sorted(p.in_flight_tags()) == ["i>r", "r>i"]
    order = [TAG[side], TAG[other(side)]] if first == "clone" else [TAG[other(side)], TAG[side]]
    for tag in order:
        p.deliver(tag, response=False)
    p.settle(60.0)
    [ca], [cb] = clones(p, side), clones(p, other(side))
    assert ca.state == cb.state == State.ESTABLISHED and not ca.children
    assert a.state == b.state == State.DELETED                      # replaced by the retried rekey
    [ra] = [e.connection for e in p.of(ev.IkeSaRekeyed, side)]
    [rb] = [e.connection for e in p.of(ev.IkeSaRekeyed, other(side))]
    assert ra.keys == rb.keys and list(ra.children.values()) == [parent_child]
    assert sorted(map(id, p.live(side))) == sorted([id(ra), id(ca)])
    firsts = [m for _, m in decrypt_trace(p, b) if m.is_response and m.exchange_type == ExchangeType.CREATE_CHILD_SA
              and m.spi_i == a.spi_i]
    assert firsts[0].notify(NotifyType.TEMPORARY_FAILURE) is not None
    assert not refusals(p, side)


@pytest.mark.parametrize("seed", range(3))
def test_clone_meets_clone(seed):
    """Both ends clone the same SA at once: each asked for a clone, each gets one."""
    p = established_pair(clone=True, seed=seed)
    a, b = p.conn("i"), p.conn("r")
    a.clone(p.now)
    b.clone(p.now)
    p.deliver("i>r", response=False)
    p.deliver("r>i", response=False)
    p.settle(30.0)
    assert len(clones(p, "i")) == len(clones(p, "r")) == 2
    made_by_i = [c for c in clones(p, "i") if c.initiator]
    made_by_r = [c for c in clones(p, "r") if c.initiator]
    assert len(made_by_i) == len(made_by_r) == 1
    assert {c.spis for c in clones(p, "i")} == {c.spis for c in clones(p, "r")}
    assert len(p.live("i")) == len(p.live("r")) == 3
    assert a.state == b.state == State.ESTABLISHED and len(a.children) == 1


@pytest.mark.parametrize("first", ["clone", "delete"])
@pytest.mark.parametrize("side", SIDES)
def test_clone_meets_delete(side, first):
    """``side`` clones while the other end deletes the SA: the deleter answers
    TEMPORARY_FAILURE (§2.25.2), the cloner answers the Delete; nothing is left."""
    p = established_pair(clone=True)
    a, b = p.conn(side), p.conn(other(side))
    a.clone(p.now)
    b.delete(p.now)
    order = [TAG[side], TAG[other(side)]] if first == "clone" else [TAG[other(side)], TAG[side]]
    for tag in order:
        p.deliver(tag, response=False)
    p.settle(120.0)
    assert not p.ei.connections and not p.er.connections
    assert not clones(p, "i") and not clones(p, "r")
    assert [e.reason for e in p.of(ev.IkeSaDeleted, other(side))] == ["deleted"]
    assert [e.reason for e in p.of(ev.IkeSaDeleted, side)] == ["deleted by peer"]
    assert p.ei.ike_sas_of(p.cfg_r.local_id) == p.er.ike_sas_of(p.cfg_i.local_id) == 0


@pytest.mark.parametrize("side", SIDES)
def test_clone_request_while_a_delete_is_queued_gets_temporary_failure(side):
    p = established_pair(clone=True)
    a, b = p.conn(side), p.conn(other(side))
    b.check_liveness(p.now)       # out first: b's Delete waits behind it (window 1)
    b.delete(p.now)
    a.clone(p.now)
    p.deliver(TAG[side], response=False)        # the clone request reaches b first
    p.deliver(TAG[other(side)], response=True)  # and b's answer reaches a
    [answer] = [m for _, m in decrypt_trace(p, a) if m.exchange_type == ExchangeType.CREATE_CHILD_SA]
    assert answer.is_response and answer.notify(NotifyType.TEMPORARY_FAILURE) is not None
    assert a.state == State.ESTABLISHED and not refusals(p, side)    # it would try again later (§2.25)
    p.settle(120.0)
    assert not clones(p, "i") and not clones(p, "r")
    assert not p.ei.connections and not p.er.connections
    assert [e.reason for e in p.of(ev.IkeSaDeleted, side)] == ["deleted by peer"]


@pytest.mark.parametrize("side", SIDES)
def test_a_clone_queued_behind_a_rekey_clones_the_new_sa(side):
    p = established_pair(clone=True)
    a, b = p.conn(side), p.conn(other(side))
    a.rekey(p.now)
    a.clone(p.now)
    assert p.run(lambda: a.state == b.state == State.DELETED and clones(p, "i") and clones(p, "r"),
                 max_time=LIMIT)
    [ra] = [e.connection for e in p.of(ev.IkeSaRekeyed, side)]
    [e] = p.of(ev.IkeSaCloned, side)
    assert e.parent_spis == ra.spis and ra.state == State.ESTABLISHED


# --------------------------------------------------------- virtual address --

def test_a_clone_shares_the_parents_pool_address():
    gw_ip = "192.0.2.2"
    net = Network()
    psk_c, psk_g = b"C" * 20, b"G" * 20
    gw_cfg = IkeConfig(local_id=Identity.parse("gw@test"), local_auth=LocalAuth(psk=psk_g),
                       remote_auth=RemoteAuth(psk=psk_c), address_pool=["10.99.0.1"], clone=True,
                       children=[child(local="10.2.0.0/16", remote="0.0.0.0/0")])
    cl_cfg = IkeConfig(local_id=Identity.parse("a@test"), local_auth=LocalAuth(psk=psk_c),
                       remote_auth=RemoteAuth(psk=psk_g), remote_id=Identity.parse("gw@test"),
                       request_virtual_ip=True, clone=True,
                       children=[child(local="0.0.0.0/0", remote="10.2.0.0/16")])
    gw = net.add(gw_ip, gw_cfg, seed=1)
    client = net.add("192.0.2.10", cl_cfg, seed=2)
    parent = client.connect(cl_cfg, ("192.0.2.10", 500), (gw_ip, 500), net.now)
    net.run()
    assert parent.virtual_ip == "10.99.0.1"
    client.clone(parent, net.now)
    net.run()
    [clone] = [e.connection for e in net.of("192.0.2.10", ev.IkeSaCloned)]
    [gw_clone] = [e.connection for e in net.of(gw_ip, ev.IkeSaCloned)]
    # a Child SA over the clone is narrowed to the address the parent holds
    clone.create_child_sa(net.now)
    net.run()
    [c] = clone.children.values()
    assert [(str(from_payload(x).start), str(from_payload(x).end)) for x in c.local_ts] == [
        ("10.99.0.1", "10.99.0.1")]
    # the address stays leased until the last SA of the peer goes
    parent.delete(net.now)
    net.run()
    assert parent.state == State.DELETED and gw.leases == {"10.99.0.1"}
    clone.delete(net.now)
    net.run()
    assert gw_clone.state == State.DELETED and gw.leases == set()
    assert gw.ike_sas_of(cl_cfg.local_id) == 0


@pytest.mark.parametrize("side", SIDES)
def test_clone_follows_invalid_ke_payload_to_the_group_the_peer_wants(side):
    ci, cr = configs("aes256gcm16-prfsha384-x25519-ecp384", clone=True)
    p = Pair(ci, cr)
    p.connect()
    assert p.run(p.established)
    a, b = p.conn(side), p.conn(other(side))
    assert a.suite.dh_group == 31
    b_cfg = cr if side == "i" else ci
    b_cfg.proposals = [IkeProposal.parse("aes256gcm16-prfsha384-ecp384")]
    a.clone(p.now)
    assert p.run(lambda: clones(p, "i") and clones(p, "r"), max_time=LIMIT)
    [ca], [cb] = clones(p, side), clones(p, other(side))
    assert ca.suite.dh_group == cb.suite.dh_group == 20 and ca.keys == cb.keys
    answers = [m for _, m in decrypt_trace(p, a) if m.exchange_type == ExchangeType.CREATE_CHILD_SA]
    assert answers[0].notify(NotifyType.INVALID_KE_PAYLOAD).data == (20).to_bytes(2, "big")
    # the retry is a new exchange that still asks for a clone, and the parent is as it was
    assert len(clone_exchange(p, a, b)) == 2
    assert a.state == b.state == State.ESTABLISHED and a.suite.dh_group == 31


def test_a_restarted_peer_takes_its_clones_with_it():
    """INITIAL_CONTACT from the peer (RFC 7296 §2.4) ends every IKE SA of that
    identity here, clones included; the per-peer count follows."""
    import random

    from ikecore.protocol.endpoint import IkeEndpoint
    p, a, b, ca, cb = clone_pair("i")
    assert p.er.ike_sas_of(p.cfg_i.local_id) == 2
    p.ei = IkeEndpoint(p.cfg_i, rng=random.Random(99).randbytes, now=p.now)     # the initiator restarts
    p.events_i.clear()
    p.connect()
    assert p.run(lambda: len(p.of(ev.IkeSaEstablished, "i")) == 1, max_time=LIMIT)
    p.settle(5.0)
    assert b.state == cb.state == State.DELETED
    assert [e.reason for e in p.of(ev.IkeSaDeleted, "r")] == ["peer restarted (INITIAL_CONTACT)"] * 2
    assert p.er.ike_sas_of(p.cfg_i.local_id) == 1


@pytest.mark.parametrize("side", SIDES)
def test_a_clone_behind_a_nat_keeps_the_nat_t_ports_and_follows_a_rebinding(side):
    """The clone inherits the parent's NAT state and NAT-T addresses (docs/clone.md):
    its exchanges and its Child SA's ESP-in-UDP go through the NAT like the parent's."""
    from ike_pair import ADDR_I, ADDR_R, Nat
    nat = Nat(public="203.0.113.9")
    p = Pair(*configs(clone=True), nat=nat)
    p.connect()
    assert p.run(lambda: p.established() and len(p.conn("i").children) == len(p.conn("r").children) == 1)
    a = p.conn(side)
    a.clone(p.now)
    assert p.run(lambda: clones(p, "i") and clones(p, "r"), max_time=LIMIT)
    [ci] = clones(p, "i")
    [cr] = clones(p, "r")
    assert ci.nat_local and cr.nat_remote
    assert ci.local == (ADDR_I[0], 4500) and ci.remote == (ADDR_R[0], 4500)
    assert cr.remote == nat.out[(ADDR_I[0], 4500)]
    nat.rebind()                        # the mapping changes: the clone's responder follows it
    ci.create_child_sa(p.now)
    assert p.run(lambda: len(ci.children) == len(cr.children) == 1, max_time=LIMIT)
    assert cr.remote == nat.out[(ADDR_I[0], 4500)]
    [c] = ci.children.values()
    assert c.udp_encap
    assert_child_pair(c, peer_child(c, cr))


@pytest.mark.parametrize("side", SIDES)
def test_a_clone_answer_naming_the_parents_spi_is_refused(side, monkeypatch):
    """The cloner checks the responder's new SPI too; the parent stays as it was."""
    from ikecore.protocol.ike_sa import IkeConnection
    p = established_pair(clone=True)
    a, b = p.conn(side), p.conn(other(side))
    # a broken responder: it reuses the SPI by which the cloner knows the parent
    fresh = IkeConnection.new_spi
    monkeypatch.setattr(IkeConnection, "new_spi",
                        lambda c: (a.spi_i if a.initiator else a.spi_r) if c is b else fresh(c))
    a.clone(p.now)
    p.settle(10.0)
    monkeypatch.undo()
    [failed] = p.of(ev.IkeSaCloneFailed, side)
    assert failed.notify_type == NotifyType.INVALID_SYNTAX and "SPI" in failed.reason
    assert not clones(p, side)
    assert_unharmed(p, a, b)


@pytest.mark.parametrize("side", SIDES)
def test_clones_also_end_at_a_configured_reauthentication_deadline(side):
    """With reauth_time (the responder's re-authentication deadline, RFC 5723 work)
    earlier than the hard lifetime, that is when the clones go."""
    p = established_pair(clone=True, reauth_time=100.0, dpd_delay=0)
    a = p.conn(side)
    r_parent = p.conn("r")
    deadline = r_parent.reauth_at
    assert deadline < r_parent.auth_expires_at
    a.clone(p.now)
    assert p.run(lambda: clones(p, "i") and clones(p, "r"), max_time=LIMIT)
    [r_clone] = clones(p, "r")
    assert r_clone.expire_at == deadline
    p.settle(deadline - p.now + 60.0)
    assert r_clone.state == State.DELETED and clones(p, "i")[0].state == State.DELETED
    assert len(p.live("i")) == len(p.live("r")) == 1 and not p.live("r")[0].cloned
