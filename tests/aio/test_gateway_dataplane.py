"""The data plane alone: routing, and in-order handling of a batch that mixes
ESP with IKE (an SA deleted mid-batch still gets the packets that
arrived before the Delete)."""
from __future__ import annotations

from aio_helpers import udp_packet
from ikecore.aio.dataplane import DataPlane
from ikecore.esp import EMPTY, IKE, PENDING, PacketVector
from ikecore.protocol.selectors import to_payload
from ikecore.protocol.config import TrafficSelectorSpec
from ikecore.crypto.keyschedule import child_sa_keys
from ikecore.protocol.child_sa import ChildSa
from ikecore.protocol.negotiation import EspSuite


def ts(text):
    return [to_payload(TrafficSelectorSpec.parse(text))]


def make_child(initiator: bool, spi_a=b"\x00\x00\x10\x01", spi_b=b"\x00\x00\x10\x02"):
    keys = child_sa_keys(5, b"k" * 32, b"n" * 32, b"m" * 32, encr_id=20, encr_key_bits=128)
    a, b = ("10.1.0.0/16", "10.2.0.0/16") if initiator else ("10.2.0.0/16", "10.1.0.0/16")
    return ChildSa("net", "tunnel", EspSuite(20, 128, 0, False, None),
                   spi_in=spi_a if initiator else spi_b, spi_out=spi_b if initiator else spi_a,
                   keys=keys, initiator=initiator, local_ts=ts(a), remote_ts=ts(b),
                   created_at=0, rekey_at=1e9, expire_at=1e9, udp_encap=True)


def test_batch_mixing_esp_and_ike_is_handled_in_arrival_order():
    tx_child, rx_child = make_child(True), make_child(False)
    got = []
    rx = DataPlane(lambda s: None, on_packet=lambda c, p, nh: got.append(p))
    state = rx.install(object(), rx_child)
    out_sa, _ = tx_child.esp_sas()
    pkts = [udp_packet("10.1.0.1", "10.2.0.1", b"%d" % k) for k in range(4)]
    esp = [out_sa.encrypt(p, 4) for p in pkts]
    vec = PacketVector(8)
    vec.load([esp[0], esp[1], b"IKE-DELETE", esp[2], esp[3]])
    vec.status[2] = IKE
    order = []

    def other(i):
        order.append(("ike", i, len(got)))
        rx.remove(rx_child)                 # the Delete takes the SA away here

    rx.receive_in_order(vec, 5, other)
    assert order == [("ike", 2, 2)]            # both earlier packets were delivered first
    assert got == pkts[:2]
    assert rx.counters["unknown_spi"] == 2     # the two after the Delete
    assert state.removed
    assert all(vec.status[i] in (EMPTY, IKE) or vec.status[i] < 0 for i in range(5))
    assert PENDING not in list(vec.status[:5])


def test_routing_prefers_the_rekeyed_sa():
    old, new = make_child(True), make_child(True, b"\x00\x00\x20\x01", b"\x00\x00\x20\x02")
    dp = DataPlane(lambda s: None)
    s_old = dp.install("conn", old)
    s_new = dp.replace("conn", old, new)
    p = udp_packet("10.1.0.1", "10.2.0.1", b"x")
    assert dp.route(p) is s_new and s_old.current() is s_new
    dp.remove(new)
    assert dp.route(p) is None                  # the old one is replaced: not used for sending
    assert dp.route(udp_packet("10.9.0.1", "10.2.0.1", b"x")) is None


def test_states_of_an_ike_sa_follow_installs_removals_and_rehoming():
    """An IKE SA's Child SAs, oldest first, through every change of how they are
    filed (alone, then several, then alone again, then moved by an IKE rekey)."""
    children = [make_child(False, (0x3001 + 2 * k).to_bytes(4, "big"), (0x3002 + 2 * k).to_bytes(4, "big"))
                for k in range(3)]
    dp = DataPlane(lambda s: None)
    states = [dp.install("ike-1", c) for c in children]
    assert dp.install("ike-1", children[0]) is states[0]          # idempotent
    assert dp.states_of("ike-1") == states and dp.states_of("ike-2") == []
    dp.remove(children[1])
    assert dp.states_of("ike-1") == [states[0], states[2]]
    dp.remove(children[0])
    assert dp.states_of("ike-1") == [states[2]]
    dp.rehome("ike-1", "ike-2")
    assert dp.states_of("ike-1") == [] and dp.states_of("ike-2") == [states[2]]
    assert states[2].conn == "ike-2"
    again = dp.install("ike-2", make_child(False, b"\x00\x00\x40\x01", b"\x00\x00\x40\x02"))
    assert dp.states_of("ike-2") == [states[2], again]
    dp.remove(children[2])
    assert dp.states_of("ike-2") == [again] and dp.state_of(children[2]) is None
