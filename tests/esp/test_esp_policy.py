"""ikecore.esp.SelectorTable: the data path's traffic-selector checks and routing
in C, against the plain-Python oracle in policy_reference.py."""
from __future__ import annotations

import ipaddress
import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import policy_reference as ref
from ikecore.errors import PolicyViolation
from ikecore.esp import (DUMMY, EMPTY, ERR_POLICY, OK, PARKED, PENDING, EspSA, InboundSATable, PacketVector,
                         SelectorTable, status_error)
from ikecore.esp.batch import ERR_SPI, ERR_TAG
from ikecore.esp.policy import tally_count
from ikecore.protocol.payloads import TrafficSelector


def net(text: str, proto: int = 0, ports=(0, 65535)) -> TrafficSelector:
    return TrafficSelector.from_network(text, proto, *ports)


def ip4(src: str, dst: str, proto: int = 17, sport: int = 1000, dport: int = 53, *, ihl: int = 5,
        frag: int = 0, payload: bytes = b"data") -> bytes:
    l4 = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload if proto in (6, 17, 132) else payload
    options = bytes(max(0, ihl - 5) * 4)
    total = ihl * 4 + len(l4)
    return (struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total, 0, frag, 64, proto, 0,
                        ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed) + options + l4)


def ip6(src: str, dst: str, proto: int = 17, sport: int = 1000, dport: int = 53, payload: bytes = b"data") -> bytes:
    l4 = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload if proto in (6, 17, 132) else payload
    return struct.pack("!IHBB16s16s", 6 << 28, len(l4), proto, 64, ipaddress.ip_address(src).packed,
                       ipaddress.ip_address(dst).packed) + l4


def route_one(table: SelectorTable, pkt: bytes):
    vec = PacketVector(1)
    vec.load([pkt])
    spis, groups = SelectorTable.spi_array(vec), SelectorTable.spi_array(vec)
    routed, _ = table.route(vec, spis, groups)
    assert (vec.status[0] == PENDING) == bool(routed)
    return spis[0] if routed else None


# ---------------------------------------------------------------- outbound --

def test_route_by_selectors_protocol_and_port():
    t = SelectorTable()
    t.set(0x1001, [net("10.1.0.0/16")], [net("10.2.0.0/16", 17, (53, 53))])
    t.set(0x1002, [net("fd00:1::/64")], [net("fd00:2::/64")])
    assert route_one(t, ip4("10.1.0.5", "10.2.0.9", 17, 1234, 53)) == 0x1001
    assert route_one(t, ip4("10.1.0.5", "10.2.0.9", 6, 1234, 53)) is None        # TCP: not covered
    assert route_one(t, ip4("10.1.0.5", "10.2.0.9", 17, 1234, 54)) is None        # other port
    assert route_one(t, ip4("10.2.0.9", "10.1.0.5", 17, 53, 1234)) is None        # the wrong way round
    assert route_one(t, ip6("fd00:1::1", "fd00:2::1")) == 0x1002
    assert route_one(t, b"\x45" + bytes(5)) is None
    assert route_one(t, ip4("10.1.0.5", "10.2.0.9", 17, 1234, 53, ihl=4)) is None  # no valid IPv4 header


def test_route_refuses_a_groups_array_smaller_than_the_vector():
    """ikc_spd_route is told the size of its groups array (one group per packet
    at most) and refuses a smaller one rather than write past it."""
    from ikecore._binding import ffi
    t = SelectorTable()
    t.set(0x1001, [net("0.0.0.0/0")], [net("0.0.0.0/0")])
    vec = PacketVector(4)
    vec.load([ip4("10.1.0.5", "10.2.0.9")] * 4)
    spis = SelectorTable.spi_array(vec)
    with pytest.raises(ValueError):
        t.route(vec, spis, ffi.new("uint32_t[]", 3))
    routed, groups = t.route(vec, spis, ffi.new("uint32_t[]", 4))
    assert (routed, groups) == (4, 1)


def test_newest_routable_sa_wins_and_changes_reach_the_flow_cache():
    t = SelectorTable()
    everything = ([net("0.0.0.0/0")], [net("0.0.0.0/0")])
    p = ip4("10.1.0.1", "10.2.0.1")
    t.set(0x2001, *everything)
    assert route_one(t, p) == 0x2001
    t.set(0x2002, *everything)                  # a rekey installs the new SA ...
    assert route_one(t, p) == 0x2002
    t.set_route(0x2002, False)                  # ... (here: taken out of routing again)
    assert route_one(t, p) == 0x2001
    t.set_route(0x2002, True)
    t.set(0x2001, *everything)                  # new selectors keep an SA's age
    assert route_one(t, p) == 0x2002
    t.remove(0x2002)
    assert route_one(t, p) == 0x2001
    t.set(0x2001, [net("10.9.0.0/16")], [net("0.0.0.0/0")])
    assert route_one(t, p) is None
    assert len(t) == 1 and 0x2001 in t and 0x2002 not in t


def test_groups_and_select_split_a_batch_by_sa():
    t = SelectorTable()
    t.set(0x3001, [net("10.1.0.0/16")], [net("10.2.0.0/16")])
    t.set(0x3002, [net("10.1.0.0/16")], [net("10.3.0.0/16")])
    pkts = [ip4("10.1.0.1", "10.3.0.1"), ip4("10.1.0.1", "10.2.0.1"), ip4("10.1.0.1", "10.9.0.1"),
            ip4("10.1.0.1", "10.3.0.2"), ip4("10.1.0.1", "10.2.0.2")]
    vec = PacketVector(8)
    vec.load(pkts)
    spis, groups = SelectorTable.spi_array(vec), SelectorTable.spi_array(vec)
    assert t.route(vec, spis, groups) == (4, 2)
    assert list(spis[0:5]) == [0x3002, 0x3001, 0, 0x3002, 0x3001]
    assert list(groups[0:2]) == [0x3002, 0x3001]
    assert vec.status[2] == ERR_POLICY and isinstance(status_error(ERR_POLICY), PolicyViolation)
    assert SelectorTable.select(vec, spis, 0x3001) == 2
    assert list(vec.status[0:5]) == [PARKED, PENDING, ERR_POLICY, PARKED, PENDING]
    assert SelectorTable.select(vec, spis, 0x3002) == 2
    assert list(vec.status[0:5]) == [PENDING, PARKED, ERR_POLICY, PENDING, PARKED]


def test_bad_selectors_and_arguments_are_refused():
    t = SelectorTable()
    backwards = TrafficSelector(7, 0, 0, 65535, bytes([10, 0, 0, 9]), bytes([10, 0, 0, 1]))
    with pytest.raises(ValueError):
        t.set(0x10, [backwards], [net("0.0.0.0/0")])
    with pytest.raises(ValueError):
        t.set(0, [net("0.0.0.0/0")], [net("0.0.0.0/0")])            # SPI 0 is reserved
    with pytest.raises(ValueError):
        t.set(0x10, [TrafficSelector(7, 0, 0, 65535, b"\x00", b"\xff")], [])
    vec = PacketVector(4)
    vec.load([b"x"] * 3)
    with pytest.raises(ValueError):             # an SPI array shorter than the vector
        t.route(vec, SelectorTable.spi_array(PacketVector(2)), SelectorTable.spi_array(vec))
    assert len(t) == 0
    t.remove(0x99)                              # unknown: nothing to do


# ----------------------------------------------------------------- inbound --

def esp_pair(spi: int):
    key = os.urandom(20)
    return EspSA(spi, 20, key, direction="out"), EspSA(spi, 20, key, direction="in", replay_window=0)


def test_inbound_check_tally_and_drop_counts():
    t = SelectorTable()
    tx, rx = esp_pair(0x4001)
    tx_t, rx_t = esp_pair(0x4002)               # transport mode: not checked
    inbound = InboundSATable([rx, rx_t])
    t.set(0x4001, [net("10.1.0.0/16")], [net("10.2.0.0/16")], check=True)
    t.set(0x4002, [net("10.1.0.0/16")], [net("10.2.0.0/16")], check=False, route=False)
    good = ip4("10.2.0.1", "10.1.0.1")
    wrong = ip4("10.7.0.1", "10.1.0.1")
    bad_tag = bytearray(tx.encrypt(good, 4))
    bad_tag[-1] ^= 1
    packets = [tx.encrypt(good, 4), tx.encrypt(wrong, 4), tx.encrypt(good, 41),   # v4 under nh 41
               tx.encrypt(b"not ip", 17), tx.encrypt(b"", 59), bytes(bad_tag),
               tx_t.encrypt(b"transport payload", 17), b"\x00\x00\x99\x99" + bytes(40)]
    vec = PacketVector(16)
    vec.load(packets)
    vec.status[len(packets)] = EMPTY
    spis, tally = SelectorTable.spi_array(vec), SelectorTable.tally_array()
    t.receive(vec, inbound, spis, tally)
    assert list(vec.status[0:8]) == [OK, ERR_POLICY, ERR_POLICY, ERR_POLICY, DUMMY, ERR_TAG, OK, ERR_SPI]
    assert list(spis[0:8]) == [0x4001, 0, 0, 0, 0, 0, 0x4002, 0]
    assert bytes(vec.packet(0)) == good and bytes(vec.packet(6)) == b"transport payload"
    assert [tally_count(tally, s) for s in (OK, ERR_POLICY, DUMMY, ERR_TAG, ERR_SPI)] == [2, 3, 1, 1, 1]
    assert sum(tally) == len(packets)           # only this call's packets are counted
    assert t.drops(0x4001) == 3 and t.drops(0x4002) == 0
    t.receive(vec, inbound, spis, tally)        # nothing PENDING left: nothing counted again
    assert sum(tally) == 0 and t.drops(0x4001) == 3


def test_bound_sas_are_found_by_spi_without_an_inbound_table():
    """receive(vec, None, ...) decrypts each packet with the SA bound to its SPI
    (looked up by hash, not by scanning every SA): the same outcome as with an
    InboundSATable, among thousands of SAs."""
    t = SelectorTable()
    pairs = {}
    for spi in range(0x5000, 0x5000 + 2000):
        pairs[spi] = esp_pair(spi)
        t.set(spi, [net("10.1.0.0/16")], [net("10.2.0.0/16")])
        t.bind(spi, pairs[spi][1])
    chosen = [0x5000, 0x57CF, 0x5123, 0x5123, 0x5555]
    packets = [pairs[spi][0].encrypt(ip4("10.2.0.1", "10.1.0.1", sport=k), 4) for k, spi in enumerate(chosen)]
    packets.append(b"\x00\x00\x77\x77" + bytes(40))          # nobody's SPI
    vec = PacketVector(8)
    vec.load(packets)
    spis, tally = SelectorTable.spi_array(vec), SelectorTable.tally_array()
    t.receive(vec, None, spis, tally)
    assert list(vec.status[0:6]) == [OK] * 5 + [ERR_SPI]
    assert list(spis[0:5]) == chosen
    t.remove(0x5123)                                           # unbound with its entry
    vec.load([pairs[0x5123][0].encrypt(ip4("10.2.0.1", "10.1.0.1"), 4)])
    t.receive(vec, None, spis, tally)
    assert vec.status[0] == ERR_SPI
    with pytest.raises(ValueError):
        t.bind(0x5123, pairs[0x5123][1])                       # no such entry any more


def test_many_adds_and_removes_keep_lookups_and_the_newest_route():
    """The SPI index grows by doubling and deletes by backward shift, and a
    removal frees its entry's slot for the next SA added: every remaining SPI
    must still be found, and routing must still prefer the newest covering SA."""
    import random
    rnd = random.Random(3)
    t = SelectorTable()
    live = []
    everything = ([net("0.0.0.0/0")], [net("0.0.0.0/0")])
    for step in range(6000):
        if live and rnd.random() < 0.4:
            t.remove(live.pop(rnd.randrange(len(live))))
        else:
            spi = 0x10000 + step
            t.set(spi, *everything)
            live.append(spi)
        if step % 500 == 0:
            assert len(t) == len(live) and all(spi in t for spi in live)
    assert len(t) == len(live) and all(spi in t for spi in live)
    assert not any(spi in t for spi in range(0x10000, 0x10000 + 6000) if spi not in set(live))
    assert route_one(t, ip4("10.1.0.1", "10.2.0.1")) == live[-1]       # the newest one added
    t.remove(live[-1])
    newest_left = max(live[:-1])
    assert route_one(t, ip4("10.1.0.1", "10.2.0.1")) == newest_left


# ------------------------------------------------- against the Python oracle --

# small pools, so that random selectors and random packets meet often
POOL4 = [bytes([10, 0, 0, 0]), bytes([10, 0, 0, 5]), bytes([10, 0, 1, 0]), bytes([10, 255, 255, 255]),
         bytes(4), b"\xff" * 4]
POOL6 = [bytes(16), b"\xfd" + bytes(14) + b"\x01", b"\xfd" + bytes(14) + b"\x09", b"\xff" * 16]
addr4 = st.one_of(st.sampled_from(POOL4), st.sampled_from(POOL4), st.sampled_from(POOL4),
                  st.integers(0, 2**32 - 1).map(lambda n: n.to_bytes(4, "big")))
addr6 = st.one_of(st.sampled_from(POOL6), st.sampled_from(POOL6), st.sampled_from(POOL6),
                  st.integers(0, 2**128 - 1).map(lambda n: n.to_bytes(16, "big")))
protos = st.sampled_from([0, 0, 0, 1, 6, 17, 17, 58, 132])
ports = st.one_of(st.sampled_from([0, 53, 1000, 65535]), st.integers(0, 65535))


@st.composite
def selector(draw):
    v6 = draw(st.integers(0, 3)) == 0
    pick = addr6 if v6 else addr4
    a, b = sorted([draw(pick), draw(pick)])
    if draw(st.integers(0, 2)) == 0:            # the whole address space
        a, b = (bytes(16), b"\xff" * 16) if v6 else (bytes(4), b"\xff" * 4)
    lo, hi = sorted([draw(ports), draw(ports)])
    if draw(st.booleans()):
        lo, hi = 0, 65535
    return TrafficSelector(8 if v6 else 7, draw(protos), lo, hi, a, b)


@st.composite
def ip_packet(draw):
    kind = draw(st.sampled_from(["v4", "v4", "v4", "v6", "garbage"]))
    if kind == "garbage":
        return draw(st.binary(max_size=60))
    proto = draw(st.sampled_from([1, 6, 17, 17, 58, 132]))
    sport, dport = draw(ports), draw(ports)
    if kind == "v6":
        return ip6(str(ipaddress.IPv6Address(draw(addr6))), str(ipaddress.IPv6Address(draw(addr6))),
                   proto, sport, dport)
    pkt = ip4(str(ipaddress.IPv4Address(draw(addr4))), str(ipaddress.IPv4Address(draw(addr4))),
              proto, sport, dport, ihl=draw(st.sampled_from([5, 5, 5, 6, 2, 15])),
              frag=draw(st.sampled_from([0, 0, 0, 1, 0x2000])))
    return pkt[:draw(st.integers(0, len(pkt)))] if draw(st.integers(0, 9)) == 0 else pkt


@st.composite
def around(draw, version: int, addr: bytes, proto: int, port: int):
    """A selector built around one address/protocol/port: often covering it,
    sometimes missing it by one (address or port) or by protocol."""
    top = 2 ** (8 * len(addr)) - 1
    n = int.from_bytes(addr, "big")
    lo, hi = max(0, n - draw(st.sampled_from([0, 0, 1, 7]))), min(top, n + draw(st.sampled_from([0, 0, 1, 7])))
    if draw(st.integers(0, 5)) == 0 and n < top:
        lo = hi = n + 1                         # just above
    plo, phi = (0, 65535) if draw(st.booleans()) else (max(0, port - draw(st.sampled_from([0, 1]))),
                                                       min(65535, port + draw(st.sampled_from([0, 1]))))
    if draw(st.integers(0, 5)) == 0 and port < 65535:
        plo = phi = port + 1
    sel_proto = draw(st.sampled_from([0, 0, proto, proto, 6 if proto != 6 else 17]))
    return TrafficSelector(7 if version == 4 else 8, sel_proto, plo, phi,
                           lo.to_bytes(len(addr), "big"), hi.to_bytes(len(addr), "big"))


@st.composite
def selectors_for(draw, pkts, outbound: bool):
    """(local, remote) selector lists; most are built around one of the packets."""
    tups = [t for t in map(ref.packet_5tuple, pkts) if t is not None]
    local, remote = draw(st.lists(selector(), max_size=2)), draw(st.lists(selector(), max_size=2))
    if tups and draw(st.integers(0, 3)) != 0:
        v, src, dst, proto, sport, dport = draw(st.sampled_from(tups))
        lo, lp, ro, rp = (src, sport, dst, dport) if outbound else (dst, dport, src, sport)
        local.insert(draw(st.integers(0, len(local))), draw(around(v, lo, proto, lp)))
        remote.insert(draw(st.integers(0, len(remote))), draw(around(v, ro, proto, rp)))
    return local, remote


@st.composite
def route_case(draw):
    pkts = draw(st.lists(ip_packet(), min_size=1, max_size=24))
    sas = []
    for k in range(draw(st.integers(1, 5))):
        local, remote = draw(selectors_for(pkts, outbound=True))
        sas.append((0x100 + k, local, remote, draw(st.integers(0, 3)) != 0))
    return sas, pkts


@st.composite
def inbound_case(draw):
    inner = draw(st.lists(st.tuples(ip_packet(), st.sampled_from([4, 4, 41, 17])), min_size=1, max_size=12))
    local, remote = draw(selectors_for([p for p, _ in inner], outbound=False))
    return local, remote, inner


@settings(max_examples=300, deadline=None)
@given(route_case())
def test_route_agrees_with_the_oracle(case):
    sas, pkts = case
    t = SelectorTable()
    for spi, loc, rem, routable in sas:
        t.set(spi, loc, rem, route=routable)
    vec = PacketVector(32, 256)
    vec.load(pkts + pkts[:4])                   # repeats: the second look comes from the flow cache
    spis, groups = SelectorTable.spi_array(vec), SelectorTable.spi_array(vec)
    routed, n_groups = t.route(vec, spis, groups)
    want = [ref.route(sas, p) for p in pkts + pkts[:4]]
    assert [spis[i] or None for i in range(len(want))] == want
    assert routed == sum(w is not None for w in want)
    assert list(groups[0:n_groups]) == list(dict.fromkeys(w for w in want if w is not None))


@settings(max_examples=150, deadline=None)
@given(inbound_case())
def test_inbound_check_agrees_with_the_oracle(case):
    local_ts, remote_ts, inner = case
    tx, rx = esp_pair(0x5001)
    t = SelectorTable()
    t.set(0x5001, local_ts, remote_ts, check=True)
    vec = PacketVector(16)
    vec.load([tx.encrypt(p, nh) for p, nh in inner])
    spis, tally = SelectorTable.spi_array(vec), SelectorTable.tally_array()
    t.receive(vec, InboundSATable([rx]), spis, tally)
    for i, (p, nh) in enumerate(inner):
        allowed = ref.inbound_allowed(local_ts, remote_ts, p, nh)
        assert vec.status[i] == (OK if allowed else ERR_POLICY), (p, nh)
        assert spis[i] == (0x5001 if allowed else 0)
    assert t.drops(0x5001) == tally_count(tally, ERR_POLICY) == sum(
        not ref.inbound_allowed(local_ts, remote_ts, p, nh) for p, nh in inner)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 300), st.integers(0, 300), st.sampled_from([PENDING, OK, EMPTY])),
                min_size=1, max_size=8),
       st.binary(min_size=8, max_size=64))
def test_lying_offsets_and_lengths_are_contained(rows, fill):
    """Offsets and lengths that point past the slot get an error status, never a crash."""
    t = SelectorTable()
    t.set(0x6001, [net("0.0.0.0/0")], [net("0.0.0.0/0")])
    vec = PacketVector(8, 256)
    vec.load([fill] * len(rows))
    for i, (off, length, status) in enumerate(rows):
        vec.offsets[i], vec.lengths[i], vec.status[i] = off, length, status
    spis, groups = SelectorTable.spi_array(vec), SelectorTable.spi_array(vec)
    t.route(vec, spis, groups)
    for i, (off, length, status) in enumerate(rows):
        if status == PENDING and off + length > 256:
            assert vec.status[i] == ERR_POLICY
    _, rx = esp_pair(0x6001)
    for i, (off, length, status) in enumerate(rows):
        vec.offsets[i], vec.lengths[i], vec.status[i] = off, length, status
    tally = SelectorTable.tally_array()
    t.receive(vec, InboundSATable([rx]), SelectorTable.spi_array(vec), tally)
    assert PENDING not in list(vec.status[:len(rows)])
    assert sum(tally) == sum(s == PENDING for _, _, s in rows)


# ------------------------------- the route index and the flow cache's validity --

def host(text: str, proto: int = 0, ports=(0, 65535)) -> TrafficSelector:
    """A single-host selector, as a road warrior's virtual IP."""
    return net(text + ("/128" if ":" in text else "/32"), proto, ports)


HOSTS4, HOSTS6 = POOL4[:3], POOL6[1:3]     # few, so that SAs share hosts and packets meet them


@st.composite
def host_selector(draw):
    v6 = draw(st.integers(0, 3)) == 0
    a = draw(st.sampled_from(HOSTS6 if v6 else HOSTS4))
    lo, hi = (0, 65535) if draw(st.integers(0, 2)) else sorted([draw(ports), draw(ports)])
    return TrafficSelector(8 if v6 else 7, draw(st.sampled_from([0, 0, 0, 6, 17])), lo, hi, a, a)


@st.composite
def remote_selectors(draw):
    """Mostly single hosts (the indexed case), sometimes a range or prefix
    (the wide list), sometimes none (covers nothing)."""
    kind = draw(st.sampled_from(["hosts"] * 7 + ["wide", "mixed", "none"]))
    if kind == "none":
        return []
    hosts = draw(st.lists(host_selector(), min_size=1, max_size=3))
    if kind == "hosts":
        return hosts
    wide = draw(st.lists(selector(), min_size=1, max_size=2))
    return wide if kind == "wide" else hosts + wide


local_selectors = st.one_of(*[st.just([net("0.0.0.0/0"), net("::/0")])] * 3, st.lists(selector(), max_size=2))


@st.composite
def pool_packet(draw):
    """A packet whose destination is often one of the pools' host addresses."""
    v6 = draw(st.integers(0, 3)) == 0
    proto = draw(st.sampled_from([1, 6, 17, 17, 58]))
    sport, dport = draw(st.sampled_from([0, 53, 1000, 65535])), draw(st.sampled_from([0, 53, 1000, 65535]))
    if v6:
        return ip6(str(ipaddress.IPv6Address(draw(addr6))), str(ipaddress.IPv6Address(draw(st.sampled_from(HOSTS6)))),
                   proto, sport, dport)
    return ip4(str(ipaddress.IPv4Address(draw(addr4))), str(ipaddress.IPv4Address(draw(st.sampled_from(HOSTS4)))),
               proto, sport, dport)


@st.composite
def table_history(draw):
    """Packets, and SA changes interleaved with lookups of some of them."""
    pkts = draw(st.lists(st.one_of(pool_packet(), pool_packet(), ip_packet()), min_size=1, max_size=8))
    spi = st.integers(0x100, 0x107)
    set_sa = st.tuples(st.just("set"), spi, local_selectors, remote_selectors(), st.integers(0, 3).map(bool))
    lookup = st.tuples(st.just("lookup"), st.lists(st.integers(0, len(pkts) - 1), min_size=1, max_size=8))
    ops = {"set": set_sa, "lookup": lookup, "route": st.tuples(st.just("route"), spi, st.booleans()),
           "remove": st.tuples(st.just("remove"), spi)}
    op = st.sampled_from(["set", "set", "set", "lookup", "lookup", "lookup", "route", "remove"]).flatmap(ops.get)
    return pkts, draw(st.lists(op, min_size=6, max_size=40))


@settings(max_examples=300, deadline=None)
@given(table_history())
def test_route_agrees_with_the_oracle_while_sas_come_and_go(case):
    """Adds (new and re-set), routing switched on and off, removals, and lookups
    interleaved: every lookup, cached or not, gives what the oracle's scan of
    every SA (newest routable covering SA) gives at that moment."""
    pkts, ops = case
    t = SelectorTable()
    model: dict[int, list] = {}                 # SPI -> [age, local, remote, routable]
    age = 0
    for step in ops:
        if step[0] == "set":
            _, spi, local, remote, routable = step
            t.set(spi, local, remote, route=routable)
            if spi not in model:
                age += 1
                model[spi] = [age, None, None, None]
            model[spi][1:] = [local, remote, routable]
        elif step[0] == "route":
            if step[1] in model:
                t.set_route(step[1], step[2])
                model[step[1]][3] = step[2]
        elif step[0] == "remove":
            t.remove(step[1])
            model.pop(step[1], None)
        else:
            chosen = [pkts[i] for i in step[1]]
            sas = [(spi, loc, rem, routable) for spi, (_, loc, rem, routable)
                   in sorted(model.items(), key=lambda kv: kv[1][0])]
            want = [ref.route(sas, p) for p in chosen]
            assert [route_one(t, p) for p in chosen] == want
    assert len(t) == len(model)


def road_warriors(n: int, first_spi: int = 0x10000) -> SelectorTable:
    """n Child SAs of road warriors: remote selector their virtual IP 10.64.0.0 + k."""
    t = SelectorTable()
    for k in range(n):
        t.set(first_spi + k, [net("10.1.0.0/16")], [host(vip(k))])
    return t


def vip(k: int) -> str:
    return str(ipaddress.IPv4Address(0x0A400000 + k))


@pytest.mark.parametrize("installed", [10, 20_000])
def test_an_uncached_lookup_examines_a_few_entries_however_many_sas(installed):
    """With 10 or 20,000 road-warrior SAs installed (plus two site-to-site SAs
    with prefix selectors, which every uncached lookup still checks), a flow
    that is not cached examines its destination's SA and the newer wide ones:
    the same count either way, never the table."""
    t = SelectorTable()
    t.set(0x500, [net("10.1.0.0/16")], [net("192.168.0.0/16")])     # older than every road warrior
    for k in range(installed):
        t.set(0x10000 + k, [net("10.1.0.0/16")], [host(vip(k))])
    t.set(0x501, [net("10.1.0.0/16")], [net("172.16.0.0/12")])      # newer: checked before older answers
    before = t.route_stats()
    assert route_one(t, ip4("10.1.0.1", vip(7))) == 0x10007
    assert route_one(t, ip4("10.1.0.1", "192.168.3.4")) == 0x500
    assert route_one(t, ip4("10.1.0.1", "10.99.0.1")) is None        # covered by nothing
    after = t.route_stats()
    assert after.lookups - before.lookups == 3 and after.cache_hits == before.cache_hits
    # the road warrior (1) + the newer wide SA (1); both wide SAs (2); both wide SAs (2)
    assert after.entries_examined - before.entries_examined == 2 + 2 + 2
    assert route_one(t, ip4("10.1.0.1", vip(7), sport=9)) == 0x10007
    assert t.route_stats().last_examined == 2


def _misses(t: SelectorTable, vec: PacketVector, pkts) -> int:
    spis, groups = SelectorTable.spi_array(vec), SelectorTable.spi_array(vec)
    before = t.route_stats()
    vec.load(pkts)
    t.route(vec, spis, groups)
    return t.route_stats().cache_misses - before.cache_misses


def _sharing_no_cache_slot(t: SelectorTable, candidates, n: int) -> list[bytes]:
    """n of the candidate flows that the direct-mapped flow cache holds all at
    once (a second pass over them misses none)."""
    vec, chosen = PacketVector(n), []
    for p in candidates:
        _misses(t, vec, chosen + [p])                  # cached ...
        if _misses(t, vec, chosen + [p]) == 0:        # ... and all still there
            chosen.append(p)
        if len(chosen) == n:
            return chosen
    raise AssertionError("too few candidate flows")


def test_sas_coming_and_going_leave_unrelated_cached_flows_alone():
    """Adding a road warrior's SA, removing one, and rekeying one make only the
    flows to those addresses look again: the other cached flows still hit."""
    t = road_warriors(2000)
    flows = _sharing_no_cache_slot(t, [ip4("10.1.0.1", vip(k), sport=2000 + k) for k in range(100, 400)], 64)
    vec = PacketVector(64)
    assert _misses(t, vec, flows) == 0
    t.set(0x90000, [net("10.1.0.0/16")], [host(vip(5000))])          # a newcomer
    t.remove(0x10000 + 7)                                            # a leaver
    t.set_route(0x10000 + 9, False)                                  # a rekeyed-away SA ...
    t.set(0x90001, [net("10.1.0.0/16")], [host(vip(9))])             # ... and its successor
    t.set(0x90002, [net("10.1.0.0/16")], [net("10.64.0.0/16")], route=False)   # wide, not routable
    t.remove(0x90002)
    assert _misses(t, vec, flows) == 0
    # a rekey of one of the cached flows' SAs: that flow (only) looks again, and finds the new SA
    target = ref.packet_5tuple(flows[20])[2]
    t.set(0x90004, [net("10.1.0.0/16")], [host(str(ipaddress.IPv4Address(target)))])
    assert _misses(t, vec, flows) == 1
    assert route_one(t, flows[20]) == 0x90004
    t.set_route(0x90004, False)                                      # the old SA again: that flow only
    assert _misses(t, vec, flows) == 1
    assert route_one(t, flows[20]) == 0x10000 + int.from_bytes(target, "big") - 0x0A400000
    # a routable wide SA may cover any flow: all of them look again, and the newest covering SA wins
    t.set(0x90005, [net("10.1.0.0/16")], [net("10.64.0.0/16")])
    assert _misses(t, vec, flows) == 64
    assert route_one(t, flows[0]) == 0x90005


def test_a_removed_sa_is_never_answered_from_the_cache():
    """A cached route dies with its SA: removal, re-use of its SPI or of its
    slot by another SA, losing its selectors or its routing, whether an older
    SA covers the flow or none does."""
    p = ip4("10.1.0.1", vip(3))
    t = road_warriors(8)
    assert route_one(t, p) == 0x10003 and route_one(t, p) == 0x10003   # the second from the cache
    assert t.route_stats().cache_hits == 1
    t.remove(0x10003)
    assert route_one(t, p) is None
    t.set(0x600, [net("10.1.0.0/16")], [net("10.64.0.0/24")])          # a wide SA covers it now
    assert route_one(t, p) == 0x600
    t.set(0x10003, [net("10.1.0.0/16")], [host(vip(3))])               # back, newer: it wins
    assert route_one(t, p) == 0x10003
    t.remove(0x10003)
    t.set(0x700, [net("10.1.0.0/16")], [host(vip(4))])                 # takes the removed one's slot
    assert route_one(t, p) == 0x600
    t.remove(0x600)
    assert route_one(t, p) is None
    t.set(0x10003, [net("10.1.0.0/16")], [host(vip(4))])               # the SPI again, elsewhere
    assert route_one(t, p) is None
    t.set(0x10003, [net("10.1.0.0/16")], [host(vip(3))])
    assert route_one(t, p) == 0x10003
    t.set(0x10003, [net("10.1.0.0/16")], [host(vip(3), 6)])            # new selectors: TCP only
    assert route_one(t, p) is None
    t.set(0x10003, [net("10.1.0.0/16")], [host(vip(3))])
    assert route_one(t, p) == 0x10003
    t.set_route(0x10003, False)
    assert route_one(t, p) is None
    t.set_route(0x10003, True)                                         # and back into routing
    assert route_one(t, p) == 0x10003
