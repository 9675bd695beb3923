"""CREATE_CHILD_SA and INFORMATIONAL between two in-memory endpoints, each run
with either side starting the exchange and over a wire that loses, duplicates
and reorders datagrams (seeded: every run is the same).

    new Child SA   HDR, SK {SA, Ni, [KEi,] TSi, TSr}               -->
                                            <--  HDR, SK {SA, Nr, [KEr,] TSi, TSr}
    Child rekey    HDR, SK {N(REKEY_SA), SA, Ni, [KEi,] TSi, TSr}   -->
                                            <--  HDR, SK {SA, Nr, [KEr,] TSi, TSr}
                   HDR, SK {D(ESP, old SPI)}                        -->
                                            <--  HDR, SK {D(ESP, peer's old SPI)}
    IKE rekey      HDR, SK {SA(IKE, SPIi'), Ni, KEi}                -->
                                            <--  HDR, SK {SA(IKE, SPIr'), Nr, KEr}
                   HDR(old), SK {D(IKE)}                            -->
                                            <--  HDR(old), SK {}
    liveness       HDR, SK {}  -->  <--  HDR, SK {}
"""
import pytest

from ike_pair import Wire, assert_child_pair, configs, decrypt_trace, established_pair, other, peer_child, Pair
from ikecore.crypto.keyschedule import child_sa_keys
from ikecore.protocol import events as ev
from ikecore.protocol.constants import ExchangeType, NotifyType, PayloadType, ProtocolId
from ikecore.protocol.ike_sa import State

SIDES = ["i", "r"]
WIRES = {
    "clean": lambda: Wire(),
    "lossy": lambda: Wire(loss=0.25, seed=3),
    "duplicating": lambda: Wire(duplicate=0.5, seed=5),
    "reordering": lambda: Wire(reorder=0.7, seed=11),
    "everything": lambda: Wire(loss=0.15, duplicate=0.3, reorder=0.5, seed=13),
}
LIMIT = 900.0      # fake seconds; the retransmission limit is ~82 s per request


def events(p, side, kind):
    return p.of(kind, side)


def exchanges(p, conns, exchange_type, *, responses=False):
    """The distinct messages of one exchange type (a duplicate or a
    retransmission counts once)."""
    seen, out = set(), []
    for _, m in decrypt_trace(p, *conns):
        key = (m.spi_i, m.spi_r, m.is_initiator, m.message_id)
        if m.exchange_type == exchange_type and m.is_response == responses and key not in seen:
            seen.add(key)
            out.append(m)
    return out


def unique_children(p, side):
    return sorted(c.spi_in for c in p.conn(side).children.values())


# ------------------------------------------------------------- new Child SA --

@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("side", SIDES)
def test_create_child_sa(side, wire):
    p = established_pair(wire=WIRES[wire]())
    a, b = p.conn(side), p.conn(other(side))
    first = next(iter(a.children.values()))
    a.create_child_sa(p.now)
    assert p.run(lambda: len(a.children) == 2 and len(b.children) == 2, max_time=LIMIT)
    new = next(c for c in a.children.values() if c is not first)
    assert new.initiator                     # a started the exchange: i->r keys are its outbound ones
    assert_child_pair(new, peer_child(new, b))
    assert_child_pair(first, peer_child(first, b))
    assert new.spi_in != first.spi_in and new.keys != first.keys
    # exactly one Child SA was made, whatever the wire duplicated
    assert len(events(p, side, ev.ChildSaInstalled)) == 2
    assert len(events(p, other(side), ev.ChildSaInstalled)) == 2
    assert a.state == b.state == State.ESTABLISHED


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("ike, esp", [
    ("aes256gcm16-prfsha256-x25519", "aes256gcm16-x25519"),
    ("aes128-sha256-modp2048", "aes128-sha256-ecp256"),
    ("chacha20poly1305-prfsha512-ecp384", "chacha20poly1305-modp2048-esn"),
])
def test_create_child_sa_with_pfs(side, ike, esp):
    p = established_pair(ike=ike, esp=esp)
    a, b = p.conn(side), p.conn(other(side))
    a.create_child_sa(p.now)
    assert p.run(lambda: len(a.children) == 2 and len(b.children) == 2, max_time=LIMIT)
    [req] = exchanges(p, [a, b], ExchangeType.CREATE_CHILD_SA)
    [resp] = exchanges(p, [a, b], ExchangeType.CREATE_CHILD_SA, responses=True)
    kei, ker = req.find(PayloadType.KE), resp.find(PayloadType.KE)
    assert kei is not None and ker is not None and kei.group == ker.group
    new = [c for c in a.children.values() if c.suite.dh_group][0]
    assert new.suite.dh_group == kei.group
    assert_child_pair(new, peer_child(new, b))
    # KEYMAT really includes g^ir: without it (prf+(SK_d, Ni | Nr)) the keys differ
    ni, nr = req.find(PayloadType.NONCE).data, resp.find(PayloadType.NONCE).data
    no_pfs = child_sa_keys(a.suite.prf_id, a.keys.sk_d, ni, nr, encr_id=new.suite.encr_id,
                           encr_key_bits=new.suite.key_bits, integ_id=new.suite.integ_id)
    assert no_pfs != new.keys


@pytest.mark.parametrize("side", SIDES)
def test_pfs_group_retry_after_invalid_ke(side):
    # the starter offers x25519 first, the other end takes only ecp256
    p = established_pair(esp="aes256gcm16-x25519-ecp256")
    a, b = p.conn(side), p.conn(other(side))
    b_cfg = b.config.children[0]
    b_cfg.esp_proposals = [type(b_cfg.esp_proposals[0]).parse("aes256gcm16-ecp256")]
    a.create_child_sa(p.now)
    assert p.run(lambda: len(a.children) == 2 and len(b.children) == 2, max_time=LIMIT)
    reqs = exchanges(p, [a, b], ExchangeType.CREATE_CHILD_SA)
    resps = exchanges(p, [a, b], ExchangeType.CREATE_CHILD_SA, responses=True)
    assert [r.find(PayloadType.KE).group for r in reqs] == [31, 19]
    invalid = resps[0].notify(NotifyType.INVALID_KE_PAYLOAD)
    assert invalid is not None and invalid.data == (19).to_bytes(2, "big")
    assert reqs[0].message_id != reqs[1].message_id          # a new exchange, not a retransmission
    new = [c for c in a.children.values() if c.suite.dh_group == 19][0]
    assert_child_pair(new, peer_child(new, b))
    assert not events(p, side, ev.ChildSaFailed)


@pytest.mark.parametrize("side", SIDES)
def test_child_sa_refused_leaves_the_ike_sa_up(side):
    p = established_pair()
    a, b = p.conn(side), p.conn(other(side))
    b.config.children[0].esp_proposals = [type(b.config.children[0].esp_proposals[0]).parse("aes128-sha256")]
    a.create_child_sa(p.now)
    assert p.run(lambda: events(p, side, ev.ChildSaFailed), max_time=LIMIT)
    [failed] = events(p, side, ev.ChildSaFailed)
    assert failed.notify_type == NotifyType.NO_PROPOSAL_CHOSEN
    assert a.state == b.state == State.ESTABLISHED and len(a.children) == len(b.children) == 1
    a.check_liveness(p.now)
    assert p.run(lambda: events(p, side, ev.PeerAlive), max_time=LIMIT)


# ---------------------------------------------------------------- Child rekey --

@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("side", SIDES)
def test_rekey_child_sa(side, wire):
    p = established_pair(wire=WIRES[wire]())
    a, b = p.conn(side), p.conn(other(side))
    [old] = a.children.values()
    old_peer = peer_child(old, b)
    a.rekey_child_sa(p.now, old.spi_in)
    assert p.run(lambda: old.spi_in not in a.children and old_peer.spi_in not in b.children
                 and len(a.children) == len(b.children) == 1, max_time=LIMIT)
    [new] = a.children.values()
    assert_child_pair(new, peer_child(new, b))
    assert new.keys != old.keys and new.local_ts == old.local_ts and new.remote_ts == old.remote_ts
    [rekeyed] = events(p, side, ev.ChildSaRekeyed)
    assert rekeyed.old is old and rekeyed.new is new
    [peer_rekeyed] = events(p, other(side), ev.ChildSaRekeyed)
    assert peer_rekeyed.old is old_peer
    # the old SA went by our Delete, reported once per side
    assert [e.child for e in events(p, side, ev.ChildSaDeleted)] == [old]
    assert [e.child for e in events(p, other(side), ev.ChildSaDeleted)] == [old_peer]
    deletes = [m for m in exchanges(p, [a, b], ExchangeType.INFORMATIONAL) if m.find(PayloadType.DELETE)]
    assert [m.find(PayloadType.DELETE).spis for m in deletes] == [[old.spi_in]]
    rekey = exchanges(p, [a, b], ExchangeType.CREATE_CHILD_SA)[0].notify(NotifyType.REKEY_SA)
    assert rekey.spi == old.spi_in and rekey.protocol_id == ProtocolId.ESP


@pytest.mark.parametrize("side", SIDES)
def test_rekey_child_sa_keeps_its_pfs_group(side):
    p = established_pair(esp="aes128gcm16-ecp256")
    a, b = p.conn(side), p.conn(other(side))
    [old] = a.children.values()
    assert old.suite.dh_group is None           # the IKE_AUTH Child SA has no KE of its own
    a.rekey_child_sa(p.now, old.spi_in)
    assert p.run(lambda: old.spi_in not in a.children and len(b.children) == 1, max_time=LIMIT)
    [new] = a.children.values()
    assert new.suite.dh_group == 19
    assert_child_pair(new, peer_child(new, b))
    a.rekey_child_sa(p.now, new.spi_in)
    assert p.run(lambda: new.spi_in not in a.children and len(a.children) == len(b.children) == 1,
                 max_time=LIMIT)
    [newer] = a.children.values()
    assert newer.suite.dh_group == 19 and newer.keys != new.keys
    assert_child_pair(newer, peer_child(newer, b))


# ------------------------------------------------------------------ IKE rekey --

@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("side", SIDES)
def test_rekey_ike_sa(side, wire):
    p = established_pair(wire=WIRES[wire]())
    a, b = p.conn(side), p.conn(other(side))
    a.create_child_sa(p.now)
    assert p.run(lambda: len(a.children) == len(b.children) == 2, max_time=LIMIT)
    children_a, children_b = dict(a.children), dict(b.children)
    old_sk_d = a.keys.sk_d          # a deleted SA gives its keys up
    a.rekey(p.now)
    assert p.run(lambda: a.state == b.state == State.DELETED, max_time=LIMIT)
    na, nb = p.conn(side), p.conn(other(side))
    assert na is not a and nb is not b
    # the same new SA on both ends, keyed alike, and not like the old one
    assert na.spis == nb.spis and na.spis != a.spis
    assert na.initiator and not nb.initiator        # the rekey initiator is the new SA's initiator
    assert na.keys == nb.keys and na.keys.sk_d != old_sk_d
    assert a.keys is None and a.sk_in is None and a.sk_out is None
    assert na.sk_out is not None and na.suite == a.suite
    # every Child SA moved, untouched; none was reported deleted
    assert na.children == children_a and nb.children == children_b
    assert not events(p, "i", ev.ChildSaDeleted) and not events(p, "r", ev.ChildSaDeleted)
    for c in na.children.values():
        assert_child_pair(c, peer_child(c, nb))
    [ra] = events(p, side, ev.IkeSaRekeyed)
    [rb] = events(p, other(side), ev.IkeSaRekeyed)
    assert ra.old_spis == rb.old_spis == a.spis and ra.new_spis == rb.new_spis == na.spis
    assert ra.connection is na and rb.connection is nb
    assert [e.reason for e in events(p, side, ev.IkeSaDeleted)] == ["rekeyed"]
    assert [e.reason for e in events(p, other(side), ev.IkeSaDeleted)] == ["rekeyed"]
    # the old SA's last request was the Delete, from the rekey initiator
    old_requests = [m for _, m in decrypt_trace(p, b) if not m.is_response and m.spi_i == a.spi_i]
    assert old_requests[-1].exchange_type == ExchangeType.INFORMATIONAL
    assert old_requests[-1].find(PayloadType.DELETE).protocol_id == ProtocolId.IKE
    # Message IDs start again at 0 on the new SA, and it works
    na.create_child_sa(p.now)
    assert p.run(lambda: len(na.children) == len(nb.children) == 3, max_time=LIMIT)
    sent_on_new = [m for _, m in decrypt_trace(p, nb) if not m.is_response]
    ids = sorted({m.message_id for m in sent_on_new})
    assert ids == list(range(len(ids)))
    [create] = [m for m in sent_on_new if m.exchange_type == ExchangeType.CREATE_CHILD_SA]
    fresh = [c for c in na.children.values() if c.spi_in not in children_a][0]
    assert_child_pair(fresh, peer_child(fresh, nb))
    # a Child SA made on the new SA is keyed from the new SK_d, not the old one
    [answer] = [m for _, m in decrypt_trace(p, na) if m.is_response and m.message_id == create.message_id
                and m.exchange_type == ExchangeType.CREATE_CHILD_SA]
    ni, nr = create.find(PayloadType.NONCE).data, answer.find(PayloadType.NONCE).data
    kw = dict(encr_id=fresh.suite.encr_id, encr_key_bits=fresh.suite.key_bits, integ_id=fresh.suite.integ_id)
    assert fresh.keys == child_sa_keys(na.suite.prf_id, na.keys.sk_d, ni, nr, **kw)
    assert fresh.keys != child_sa_keys(a.suite.prf_id, old_sk_d, ni, nr, **kw)


@pytest.mark.parametrize("side", SIDES)
def test_rekey_ike_sa_with_invalid_ke_retry(side):
    # the starter proposes x25519 first; the other end only takes ecp384
    ci, cr = configs("aes256gcm16-prfsha384-x25519-ecp384")
    p = Pair(ci, cr)
    p.connect()
    assert p.run(p.established)
    a, b = p.conn(side), p.conn(other(side))
    assert a.suite.dh_group == 31
    b_cfg = cr if side == "i" else ci
    b_cfg.proposals = [type(b_cfg.proposals[0]).parse("aes256gcm16-prfsha384-ecp384")]
    a.rekey(p.now)
    assert p.run(lambda: a.state == b.state == State.DELETED, max_time=LIMIT)
    na, nb = p.conn(side), p.conn(other(side))
    assert na.suite.dh_group == nb.suite.dh_group == 20 and na.keys == nb.keys
    resps = exchanges(p, [a, b], ExchangeType.CREATE_CHILD_SA, responses=True)
    assert resps[0].notify(NotifyType.INVALID_KE_PAYLOAD).data == (20).to_bytes(2, "big")
    assert len(na.children) == len(nb.children) == 1


@pytest.mark.parametrize("side", SIDES)
def test_rekey_ike_sa_moves_queued_work_to_the_new_sa(side):
    p = established_pair()
    a = p.conn(side)
    a.rekey(p.now)
    a.create_child_sa(p.now)          # queued behind the rekey: it must run on the new SA
    assert p.run(lambda: a.state == State.DELETED and len(p.conn(side).children) == 2
                 and len(p.conn(other(side)).children) == 2, max_time=LIMIT)
    na, nb = p.conn(side), p.conn(other(side))
    assert [m.exchange_type for _, m in decrypt_trace(p, nb) if not m.is_response] == [
        ExchangeType.CREATE_CHILD_SA]
    for c in na.children.values():
        assert_child_pair(c, peer_child(c, nb))


# ---------------------------------------------------------------------- Delete --

@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("side", SIDES)
def test_delete_child_sa(side, wire):
    p = established_pair(wire=WIRES[wire]())
    a, b = p.conn(side), p.conn(other(side))
    a.create_child_sa(p.now)
    assert p.run(lambda: len(a.children) == len(b.children) == 2, max_time=LIMIT)
    victim, keep = list(a.children.values())
    victim_peer = peer_child(victim, b)
    a.delete_child_sa(p.now, victim.spi_in)
    assert p.run(lambda: len(a.children) == len(b.children) == 1, max_time=LIMIT)
    assert list(a.children.values()) == [keep]
    assert_child_pair(keep, peer_child(keep, b))
    assert [(e.child, e.reason) for e in events(p, side, ev.ChildSaDeleted)] == [(victim, "deleted")]
    assert [(e.child, e.reason) for e in events(p, other(side), ev.ChildSaDeleted)] == [
        (victim_peer, "deleted by peer")]
    [req] = [m for m in exchanges(p, [a, b], ExchangeType.INFORMATIONAL) if m.find(PayloadType.DELETE)]
    [resp] = [m for m in exchanges(p, [a, b], ExchangeType.INFORMATIONAL, responses=True)
              if m.find(PayloadType.DELETE)]
    assert req.find(PayloadType.DELETE).spis == [victim.spi_in]       # our inbound SPI
    assert resp.find(PayloadType.DELETE).spis == [victim_peer.spi_in]  # and the peer's
    assert a.state == b.state == State.ESTABLISHED


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("side", SIDES)
def test_delete_ike_sa(side, wire):
    p = established_pair(wire=WIRES[wire]())
    a, b = p.conn(side), p.conn(other(side))
    [child_a], [child_b] = a.children.values(), b.children.values()
    a.delete(p.now)
    assert p.run(lambda: a.state == b.state == State.DELETED, max_time=LIMIT)
    assert [e.reason for e in events(p, side, ev.IkeSaDeleted)] == ["deleted"]
    assert [e.reason for e in events(p, other(side), ev.IkeSaDeleted)] == ["deleted by peer"]
    assert [e.child for e in events(p, side, ev.ChildSaDeleted)] == [child_a]
    assert [e.child for e in events(p, other(side), ev.ChildSaDeleted)] == [child_b]
    assert not p.ei.connections and not p.er.connections
    assert p.ei.get_timer() is None and p.er.get_timer() is None


# ------------------------------------------------------------------- liveness --

@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("side", SIDES)
def test_liveness_check_after_idle(side, wire):
    p = established_pair(wire=WIRES[wire]())
    a, b = p.conn(side), p.conn(other(side))
    a.config.dpd_delay, b.config.dpd_delay = 20.0, 0.0        # only ``a`` checks
    due = a.last_heard + 20.0
    p.settle(max(0.0, due - p.now - 0.01))
    assert not events(p, side, ev.PeerAlive)                  # not before the idle time
    assert p.run(lambda: events(p, side, ev.PeerAlive), max_time=LIMIT)
    assert p.now >= due
    probes = [m for m in exchanges(p, [a, b], ExchangeType.INFORMATIONAL) if m.is_initiator == a.initiator]
    assert probes and all(m.inner == [] for m in probes)        # an empty INFORMATIONAL
    assert a.state == b.state == State.ESTABLISHED
    assert not events(p, other(side), ev.PeerAlive)


@pytest.mark.parametrize("side", SIDES)
def test_unanswered_liveness_check_deletes_the_sa(side):
    p = established_pair()
    a, b = p.conn(side), p.conn(other(side))
    a.config.dpd_delay, b.config.dpd_delay = 20.0, 0.0
    [child] = a.children.values()
    quiet_since = p.now
    p.wire.loss = 1.0                                          # the peer is gone
    assert p.run(lambda: a.state == State.DELETED, max_time=LIMIT)
    cfg = a.config
    expected = quiet_since + cfg.dpd_delay + sum(cfg.retransmit_timeout * cfg.retransmit_base ** k
                                                for k in range(cfg.retransmit_tries + 1))
    assert p.now == pytest.approx(expected)
    assert p.wire.dropped == 1 + cfg.retransmit_tries          # the check and its retransmissions
    [gone] = events(p, side, ev.IkeSaDeleted)
    assert gone.reason == "peer unresponsive"
    assert [e.child for e in events(p, side, ev.ChildSaDeleted)] == [child]


def test_traffic_postpones_the_liveness_check():
    p = established_pair()
    a = p.conn("i")
    p.conn("r").config.dpd_delay = 0.0
    for _ in range(5):
        p.settle(15.0)
        a.note_traffic(p.now)                  # ESP from the peer: it is alive
    assert not exchanges(p, [a, p.conn("r")], ExchangeType.INFORMATIONAL)
    p.settle(31.0)
    assert events(p, "i", ev.PeerAlive)


# -------------------------------------------------------------- notify-only --

@pytest.mark.parametrize("side", SIDES)
def test_window_size_is_announced_and_honoured(side):
    p = established_pair(window_size=3)
    a, b = p.conn(side), p.conn(other(side))
    p.settle(1.0)
    announcements = [m for m in exchanges(p, [a, b], ExchangeType.INFORMATIONAL)
                     if m.notify(NotifyType.SET_WINDOW_SIZE)]
    assert sorted(m.is_initiator for m in announcements) == [False, True]   # each side said it
    assert all(m.notify(NotifyType.SET_WINDOW_SIZE).data == (3).to_bytes(4, "big") for m in announcements)
    assert a.peer_window == b.peer_window == 3
    for _ in range(4):
        a.create_child_sa(p.now)
    p.flush()
    assert len(a.outstanding) == 3                    # the window, and no more
    assert p.run(lambda: len(a.children) == len(b.children) == 5, max_time=LIMIT)
    for c in a.children.values():
        assert_child_pair(c, peer_child(c, b))
    assert len(b.response_cache) <= 3


def test_responder_demanding_pfs_refuses_a_child_without_ke():
    """An ESP proposal with a group means PFS is required: a CREATE_CHILD_SA
    without KE gets NO_PROPOSAL_CHOSEN, and the IKE SA stays up."""
    from ike_pair import Pair, configs
    ci, cr = configs(esp="aes256gcm16", esp_r="aes256gcm16-x25519")
    p = Pair(ci, cr)
    p.connect()
    assert p.run(p.established)
    conn = p.conn("i")
    conn.create_child_sa(p.now)
    assert p.run(lambda: p.of(ev.ChildSaFailed, "i"))
    [failed] = p.of(ev.ChildSaFailed, "i")
    assert failed.notify_type == NotifyType.NO_PROPOSAL_CHOSEN
    assert conn.established and len(conn.children) == 1


def test_childless_responder_refuses_a_child_in_ike_auth():
    """A responder with no Child SA configured answers IKE_AUTH's SA/TSi/TSr with
    N(TS_UNACCEPTABLE) (RFC 7296 §2.21.2), not silence; both keep the IKE SA.
    (libreswan 5.2 takes a response with neither SA nor notify as malformed.)"""
    import dataclasses
    from ike_pair import Pair, configs
    ci, cr = configs()
    p = Pair(ci, dataclasses.replace(cr, children=[]))
    p.connect()
    assert p.run(lambda: p.of(ev.ChildSaFailed, "i"))
    [failed] = p.of(ev.ChildSaFailed, "i")
    assert failed.notify_type == NotifyType.TS_UNACCEPTABLE
    [refused] = p.of(ev.ChildSaFailed, "r")
    assert refused.notify_type == NotifyType.TS_UNACCEPTABLE
    assert p.conn("i").established and p.conn("r").established
    assert not p.conn("i").children and not p.conn("r").children
