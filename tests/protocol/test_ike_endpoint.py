"""The endpoint and the first Child SA: routing, half-open accounting,
INITIAL_CONTACT (RFC 7296 §2.4), the virtual-IP pool (§3.15), traffic
selector narrowing (§2.9) and USE_TRANSPORT_MODE (§1.3.1).

    Initiator                                   Responder (gateway)
    HDR, SK {IDi, AUTH, CP(CFG_REQUEST),
             N(INITIAL_CONTACT), SAi2, TSi, TSr}  -->
                                           <--  HDR, SK {IDr, AUTH, CP(CFG_REPLY: 10.99.0.x),
                                                         SAr2, TSi(10.99.0.x), TSr}
"""
import ipaddress

import pytest

from ike_pair import ADDR_I, ADDR_R, Network, Pair, child, configs
from ikecore.protocol import events as ev
from ikecore.protocol.config import IkeConfig, Identity, LocalAuth, RemoteAuth
from ikecore.protocol.constants import NotifyType
from ikecore.protocol.endpoint import Classification, NON_ESP_MARKER
from ikecore.protocol.selectors import from_payload

GW = "192.0.2.2"
PSK_C, PSK_G = b"C" * 20, b"G" * 20


def gw_config(pool=("10.99.0.1", "10.99.0.2"), **kw):
    return IkeConfig(local_id=Identity.parse("gw@test"), local_auth=LocalAuth(psk=PSK_G),
                     remote_auth=RemoteAuth(psk=PSK_C), remote_id=None, address_pool=list(pool),
                     children=[child(local="10.2.0.0/16", remote="0.0.0.0/0")], **kw)


def client_config(ident, *, vip=True, **kw):
    return IkeConfig(local_id=Identity.parse(ident), local_auth=LocalAuth(psk=PSK_C),
                     remote_auth=RemoteAuth(psk=PSK_G), remote_id=Identity.parse("gw@test"),
                     request_virtual_ip=vip, children=[child(local="0.0.0.0/0", remote="10.2.0.0/16")], **kw)


def connect(net, ip, cfg, *, seed):
    ep = net.hosts.get(ip) or net.add(ip, cfg, seed=seed)
    ep.connect(cfg, (ip, 500), (GW, 500), net.now)
    net.run()
    return ep


def _sas(ep, state="established"):
    return [c for c in ep.connections.values() if c.state.value == state]


# ------------------------------------------------------------- virtual IPs --

def test_pool_hands_out_distinct_addresses_and_narrows_tsi():
    net = Network()
    gw = net.add(GW, gw_config(), seed=1)
    connect(net, "192.0.2.10", client_config("a@test"), seed=10)
    connect(net, "192.0.2.11", client_config("b@test"), seed=11)
    vips = [net.of(ip, ev.IkeSaEstablished)[0].virtual_ip for ip in ("192.0.2.10", "192.0.2.11")]
    assert sorted(vips) == ["10.99.0.1", "10.99.0.2"]
    assert gw.leases == {"10.99.0.1", "10.99.0.2"}
    for ip, vip in zip(("192.0.2.10", "192.0.2.11"), vips):
        [installed] = net.of(ip, ev.ChildSaInstalled)
        [ts] = installed.child.local_ts
        spec = from_payload(ts)
        assert str(spec.start) == str(spec.end) == vip     # 0.0.0.0/0 narrowed to the one address
    # the gateway's Child SA has the client's virtual address as its remote selector
    remote = {str(from_payload(c.child.remote_ts[0]).start) for c in net.of(GW, ev.ChildSaInstalled)}
    assert remote == set(vips)


def test_pool_exhausted_gives_internal_address_failure_but_keeps_the_ike_sa():
    net = Network()
    net.add(GW, gw_config(pool=("10.99.0.1",)), seed=1)
    connect(net, "192.0.2.10", client_config("a@test"), seed=10)
    connect(net, "192.0.2.11", client_config("b@test"), seed=11)
    [est] = net.of("192.0.2.11", ev.IkeSaEstablished)
    assert est.virtual_ip is None
    [failed] = net.of("192.0.2.11", ev.ChildSaFailed)
    assert failed.notify_type == NotifyType.INTERNAL_ADDRESS_FAILURE


def test_lease_is_released_when_the_sa_goes_and_reused():
    net = Network()
    gw = net.add(GW, gw_config(pool=("10.99.0.1",)), seed=1)
    a = connect(net, "192.0.2.10", client_config("a@test"), seed=10)
    [conn] = _sas(a)
    conn.delete(net.now)
    net.run()
    assert gw.leases == set() and not gw.connections
    connect(net, "192.0.2.11", client_config("b@test"), seed=11)
    assert net.of("192.0.2.11", ev.IkeSaEstablished)[0].virtual_ip == "10.99.0.1"


def test_no_pool_no_cp_reply_and_tsi_narrowed_to_policy():
    net = Network()
    cfg = gw_config(pool=())
    cfg.children = [child(local="10.2.0.0/16", remote="192.0.2.0/24")]
    net.add(GW, cfg, seed=1)
    connect(net, "192.0.2.10", client_config("a@test"), seed=10)
    [est] = net.of("192.0.2.10", ev.IkeSaEstablished)
    assert est.virtual_ip is None
    [installed] = net.of("192.0.2.10", ev.ChildSaInstalled)
    spec = from_payload(installed.child.local_ts[0])
    assert (str(spec.start), str(spec.end)) == ("192.0.2.0", "192.0.2.255")


# ---------------------------------------------------------- INITIAL_CONTACT --

def test_initial_contact_retires_the_sas_of_a_restarted_peer():
    net = Network()
    gw = net.add(GW, gw_config(pool=("10.99.0.1",)), seed=1)
    connect(net, "192.0.2.10", client_config("a@test"), seed=10)
    connect(net, "192.0.2.20", client_config("other@test"), seed=20)   # not affected
    [old] = [c for c in _sas(gw) if c.remote_id == Identity.parse("a@test")]
    assert old.assigned_ip == "10.99.0.1"
    # the client restarts: a fresh endpoint, same identity and address, no memory of the old SA
    net.add("192.0.2.10", client_config("a@test"), seed=99)
    connect(net, "192.0.2.10", client_config("a@test"), seed=99)
    gone = [e for e in net.of(GW, ev.IkeSaDeleted) if e.spi_i == old.spi_i]
    assert gone and "INITIAL_CONTACT" in gone[0].reason
    assert old.spi_r not in gw.connections
    ids = sorted(str(c.remote_id) for c in _sas(gw))
    assert ids == ["a@test", "other@test"]
    # the retired SA's address went straight to its successor (one-address pool)
    assert net.of("192.0.2.10", ev.IkeSaEstablished)[-1].virtual_ip == "10.99.0.1"


def test_second_sa_from_a_live_peer_sends_no_initial_contact():
    net = Network()
    gw = net.add(GW, gw_config(pool=()), seed=1)
    cfg = client_config("a@test", vip=False)
    connect(net, "192.0.2.10", cfg, seed=10)
    connect(net, "192.0.2.10", cfg, seed=10)
    assert len(_sas(gw)) == 2 and len(_sas(net.hosts["192.0.2.10"])) == 2
    assert not net.of(GW, ev.IkeSaDeleted)


def test_initial_contact_disabled_keeps_the_old_sa():
    net = Network()
    gw = net.add(GW, gw_config(pool=()), seed=1)
    cfg = client_config("a@test", vip=False, initial_contact=False)
    connect(net, "192.0.2.10", cfg, seed=10)
    net.add("192.0.2.10", cfg, seed=99)
    connect(net, "192.0.2.10", cfg, seed=99)
    assert len(_sas(gw)) == 2


@pytest.mark.parametrize("restarts", ["initiator", "responder"])
def test_initial_contact_whichever_side_restarts(restarts):
    # after a restart that side initiates again; the survivor retires its stale SA
    ci, cr = configs()
    p = Pair(ci, cr)
    p.connect()
    assert p.run(p.established)
    if restarts == "initiator":
        stale, survivor = p.conn("r"), p.er
        q = Pair(ci, cr, seed=5)
    else:
        stale, survivor = p.conn("i"), p.ei
        q = Pair(cr, ci, seed=5, addr_i=ADDR_R, addr_r=ADDR_I)
    q.er = survivor            # the surviving endpoint answers the restarted peer
    q.connect()
    assert q.run(q.established)
    assert stale.state.value == "deleted" and "INITIAL_CONTACT" in stale.deleted_reason
    [fresh] = [c for c in survivor.connections.values() if c.state.value == "established"]
    assert fresh is not stale


# --------------------------------------------------------- traffic selectors --

@pytest.mark.parametrize("swap", [False, True], ids=["wide-initiates", "narrow-initiates"])
def test_responder_narrows_the_selectors(swap):
    wide = child(local="10.0.0.0/8", remote="172.16.0.0/12")
    narrow = child(local="172.16.5.0/24[6/443]", remote="10.1.0.0/16")
    ci, cr = configs()
    ci.children, cr.children = [wide], [narrow]
    if swap:
        ci, cr = cr, ci
    p = Pair(ci, cr)
    p.connect()
    assert p.run(p.established)
    [a] = p.of(ev.ChildSaInstalled, "i")
    [b] = p.of(ev.ChildSaInstalled, "r")
    assert a.child.local_ts == b.child.remote_ts and a.child.remote_ts == b.child.local_ts
    net10 = {(from_payload(t).start, from_payload(t).end, from_payload(t).protocol,
              from_payload(t).start_port, from_payload(t).end_port)
             for t in (a.child.local_ts if not swap else a.child.remote_ts)}
    assert net10 == {(ipaddress.ip_address("10.1.0.0"), ipaddress.ip_address("10.1.255.255"), 0, 0, 65535)}
    other = from_payload((a.child.remote_ts if not swap else a.child.local_ts)[0])
    assert (str(other.start), other.protocol, other.start_port, other.end_port) == ("172.16.5.0", 6, 443, 443)


def test_disjoint_selectors_are_ts_unacceptable():
    ci, cr = configs()
    cr.children = [child(local="10.3.0.0/16", remote="10.4.0.0/16")]
    p = Pair(ci, cr)
    p.connect()
    assert p.run(p.established)
    [failed] = p.of(ev.ChildSaFailed, "i")
    assert failed.notify_type == NotifyType.TS_UNACCEPTABLE


def test_ipv6_selectors():
    ci, cr = configs()
    ci.children = [child(local="2001:db8:1::/48", remote="2001:db8:2::/48")]
    cr.children = [child(local="2001:db8:2::/48", remote="2001:db8::/32")]
    p = Pair(ci, cr)
    p.connect()
    assert p.run(p.established)
    [a] = p.of(ev.ChildSaInstalled, "i")
    assert str(from_payload(a.child.local_ts[0]).start) == "2001:db8:1::"


@pytest.mark.parametrize("mode_i, mode_r, expect", [
    ("transport", "transport", "transport"),
    ("transport", "tunnel", "tunnel"),
    ("tunnel", "transport", "tunnel"),
])
def test_use_transport_mode(mode_i, mode_r, expect):
    ci, cr = configs()
    ci.children = [child(local="192.0.2.1/32", remote="192.0.2.2/32", mode=mode_i)]
    cr.children = [child(local="192.0.2.2/32", remote="192.0.2.1/32", mode=mode_r)]
    p = Pair(ci, cr)
    p.connect()
    assert p.run(p.established)
    assert p.of(ev.ChildSaInstalled, "i")[0].child.mode == expect
    assert p.of(ev.ChildSaInstalled, "r")[0].child.mode == expect


# ------------------------------------------------------------------ routing --

def test_unknown_spi_and_garbage_are_dropped():
    p = Pair(*configs())
    p.connect()
    assert p.run(p.established)
    before = dict(p.er.stats)
    datagram = [d for tag, d in p.trace if tag == "i>r"][-1]
    forged = bytes(range(1, 9)) + bytes(range(8)) + datagram[16:]    # no such SPI
    p.er.receive_datagram(forged, ADDR_I, ADDR_R, p.now)
    assert p.er.receive_datagram(b"\x01\x02", ADDR_I, ADDR_R, p.now) is Classification.DROPPED
    assert p.er.stats["dropped"] == before["dropped"] + 2
    assert not p.er.datagrams_to_send()


def test_natt_port_classification():
    p = Pair(*configs())
    natt = (ADDR_R[0], 4500)
    assert p.er.receive_datagram(b"\xff", ADDR_I, natt, p.now) is Classification.KEEPALIVE
    assert p.er.receive_datagram(b"\x00\x00\x10\x01" + bytes(30), ADDR_I, natt, p.now) is Classification.ESP
    p.connect()
    p.ei.collect_all()
    [(data, _, _)] = p.ei.datagrams_to_send()
    assert p.er.receive_datagram(NON_ESP_MARKER + data, (ADDR_I[0], 4500), natt, p.now) is Classification.IKE
    assert p.er.half_open == 1


def test_half_open_sas_expire_and_are_forgotten():
    p = Pair(*configs())
    p.connect()
    p.ei.collect_all()
    [(data, _, _)] = p.ei.datagrams_to_send()
    p.er.receive_datagram(data, ADDR_I, ADDR_R, p.now)    # the initiator never hears back
    assert p.er.half_open == 1
    p.now += 120
    p.er.handle_timer(p.now)
    assert p.er.half_open == 0 and not p.er.connections


# ------------------------------------------------------------ Child SA SPIs --

def test_new_child_spis_avoid_every_installed_one_of_the_endpoint():
    """32-bit SPIs drawn at random collide among 100,000 Child SAs: each new one
    must avoid the endpoint's installed SPIs, not only its own IKE SA's."""
    from types import SimpleNamespace
    from ikecore.protocol.exchanges.ike_auth import new_child_spi
    draws = iter([b"\x00\x00\x00\x07", b"\x0a\x0b\x0c\x0d", b"\x0a\x0b\x0c\x0e", b"\x0a\x0b\x0c\x0f"])
    conn = SimpleNamespace(rng=lambda n: next(draws), children={b"\x0a\x0b\x0c\x0e": None},
                           inbound_spis={b"\x0a\x0b\x0c\x0d"})
    assert new_child_spi(conn) == b"\x0a\x0b\x0c\x0f"    # reserved, another SA's, its own: skipped


def test_the_endpoint_tracks_installed_child_spis():
    net = Network()
    gw = net.add(GW, gw_config(), seed=1)
    connect(net, "192.0.2.10", client_config("a@test"), seed=10)
    [installed] = net.of(GW, ev.ChildSaInstalled)
    assert gw.inbound_spis == {installed.child.spi_in}
    [conn] = _sas(gw)
    assert conn.inbound_spis is gw.inbound_spis
    conn.delete(net.now)
    gw.collect(conn)
    net.run()
    assert gw.inbound_spis == set()
