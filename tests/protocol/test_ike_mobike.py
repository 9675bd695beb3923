"""MOBIKE (RFC 4555) between two in-memory endpoints on a wire that knows which
host owns which address: a datagram from or to an address nobody holds is lost,
as it would be on a real network after the address went away.

    update          HDR, SK {N(UPDATE_SA_ADDRESSES), N(NAT_D_S), N(NAT_D_D), N(COOKIE2)}  -->
                                          <--  HDR, SK {N(NAT_D_S), N(NAT_D_D), N(COOKIE2)}
    return routability                    <--  HDR, SK {N(COOKIE2)}
                    HDR, SK {N(COOKIE2)}  -->
    address list    HDR, SK {N(ADDITIONAL_IP4_ADDRESS)+ | N(NO_ADDITIONAL_ADDRESSES)}  -->
"""
import pytest

from ike_pair import ADDR_I, ADDR_R, Pair, Wire, assert_child_pair, configs, peer_child
from ikecore.errors import IkeError
from ikecore.protocol import events as ev
from ikecore.protocol.constants import ExchangeType, NotifyType
from ikecore.protocol.exchanges import mobike
from ikecore.protocol.exchanges.ike_sa_init import nat_detection_hash
from ikecore.protocol.ike_sa import State
from ikecore.protocol.message import Message, parse_message
from ikecore.protocol.payloads import NotifyPayload

NATT = 4500
OLD_I, NEW_I, OTHER_I = ADDR_I[0], "192.0.2.11", "192.0.2.12"
SPOOFED = "198.51.100.66"        # nobody on the wire holds it
R2 = "192.0.2.22"                # the responder's second address
LIMIT = 900.0


class MobilePair(Pair):
    """A Pair whose hosts own addresses: sending from or to an address its host
    does not hold loses the datagram. ``rewrite(tag, data, src, dst)`` may change
    the addresses of a datagram in flight (an attacker or a NAT on the path)."""

    def __init__(self, cfg_i, cfg_r, **kw):
        super().__init__(cfg_i, cfg_r, **kw)
        self.owned = {"i": {self.addr_i[0]}, "r": {self.addr_r[0]}}
        self.rewrite = None
        self.sent: list = []           # (tag, src, dst, data) of every datagram put on the wire

    def _gather(self):
        for src_ep, dst_ep, tag, me, peer in ((self.ei, self.er, "i>r", "i", "r"),
                                              (self.er, self.ei, "r>i", "r", "i")):
            for data, remote, local in src_ep.datagrams_to_send():
                self.sent.append((tag, tuple(local), tuple(remote), data))
                if local[0] not in self.owned[me]:
                    self.wire.dropped += 1          # the address is gone: the kernel cannot send
                    continue
                if self.rewrite is not None:
                    local, remote = self.rewrite(tag, data, tuple(local), tuple(remote))
                if remote[0] not in self.owned[peer] or self.wire.rnd.random() < self.wire.loss:
                    self.wire.dropped += 1
                    continue
                self.in_flight.append((dst_ep, data, local, remote, tag))
        for ep, out in ((self.ei, self.events_i), (self.er, self.events_r)):
            while (e := ep.next_event()) is not None:
                out.append(e[1])


def mobile_pair(*, wire=None, cfg_i=None, cfg_r=None, addr_i=ADDR_I, addr_r=ADDR_R, **kw) -> MobilePair:
    ci, cr = configs(mobike=True, **kw)
    p = MobilePair(cfg_i or ci, cfg_r or cr, wire=wire, addr_i=addr_i, addr_r=addr_r)
    p.connect()
    assert p.run(p.established, max_time=LIMIT)
    p.run(lambda: len(p.conn("i").children) == len(p.conn("r").children) == 1, max_time=LIMIT)
    p.settle(1)
    return p


def opened(p, tag=None, since=0):
    """(tag, src, dst, Message) of every datagram sent (from index ``since`` on),
    inner payloads decrypted by its receiver."""
    out = []
    ci, cr = p.conn("i"), p.conn("r")
    for t, src, dst, data in p.sent[since:]:
        if tag is not None and t != tag:
            continue
        if data[:4] == bytes(4):
            data = data[4:]
        msg = parse_message(data)
        receiver = cr if t == "i>r" else ci
        if msg.sk is not None and not msg.is_fragment and (msg.spi_i, msg.spi_r) == receiver.spis:
            msg.decrypt(receiver.sk_in)
        out.append((t, src, dst, msg))
    return out


def informationals(p, tag, *, responses=False, since=0):
    seen, out = set(), []
    for t, src, dst, m in opened(p, tag, since):
        if m.exchange_type != ExchangeType.INFORMATIONAL or m.is_response != responses:
            continue
        if m.message_id in seen:
            continue
        seen.add(m.message_id)
        out.append((src, dst, m))
    return out


def notify_types(msg) -> list:
    return [n.notify_type for n in msg.notifies()]


def moved(p, side):
    return p.of(ev.IkeSaMoved, side)


def assert_children_intact(p):
    ci, cr = p.conn("i"), p.conn("r")
    assert len(ci.children) == len(cr.children) == 1
    [child] = ci.children.values()
    assert_child_pair(child, peer_child(child, cr))


def assert_alive(p):
    """A liveness check each way still gets its answer (message IDs in step)."""
    for side in ("i", "r"):
        before = len(p.of(ev.PeerAlive, side))
        p.conn(side).check_liveness(p.now)
        assert p.run(lambda: len(p.of(ev.PeerAlive, side)) > before, max_time=LIMIT)


# ------------------------------------------------------------ negotiation --

def test_mobike_supported_both_ways_and_both_float_to_natt():
    p = mobile_pair()
    ci, cr = p.conn("i"), p.conn("r")
    assert ci.peer_mobike and cr.peer_mobike
    assert mobike.active(ci) and mobike.active(cr)
    # RFC 4555 §3.3: MOBIKE peers move to port 4500 even with no NAT between them
    assert ci.local == (OLD_I, NATT) and cr.local == (ADDR_R[0], NATT)
    auth = [m for _, _, _, m in opened(p) if m.exchange_type == ExchangeType.IKE_AUTH]
    assert {m.is_response for m in auth if NotifyType.MOBIKE_SUPPORTED in notify_types(m)} == {False, True}


@pytest.mark.parametrize("without", ["i", "r"])
def test_no_move_without_mobike_on_both_ends(without):
    ci, cr = configs(mobike=True)
    plain = configs()[0 if without == "i" else 1]
    p = mobile_pair(cfg_i=plain if without == "i" else ci, cfg_r=plain if without == "r" else cr)
    assert not mobike.active(p.conn("i")) and not mobike.active(p.conn("r"))
    p.owned["i"].add(NEW_I)
    with pytest.raises(IkeError, match="MOBIKE was not negotiated"):
        p.conn("i").update_addresses(p.now, local=(NEW_I, NATT))
    assert p.conn("i").local[0] == OLD_I


def test_only_the_original_initiator_moves():
    p = mobile_pair()
    with pytest.raises(IkeError, match="original initiator"):
        p.conn("r").update_addresses(p.now, local=(R2, NATT))


def test_peer_addresses_from_ike_auth():
    ci, cr = configs(mobike=True)
    cr2 = type(cr)(**{**cr.__dict__, "mobike_addresses": [R2, "2001:db8::2"]})
    p = mobile_pair(cfg_i=ci, cfg_r=cr2)
    assert mobike.state(p.conn("i")).peer_addresses == [R2, "2001:db8::2"]
    assert mobike.state(p.conn("r")).peer_addresses == []


# ------------------------------------------------------------ initiator moves --

@pytest.mark.parametrize("wire", ["clean", "lossy"])
def test_initiator_moves_and_the_responder_follows_after_return_routability(wire):
    p = mobile_pair(wire=Wire(loss=0.25, seed=5) if wire == "lossy" else None)
    ci, cr = p.conn("i"), p.conn("r")
    mark = len(p.sent)
    p.owned["i"] = {NEW_I}                       # the old address is gone
    ci.update_addresses(p.now, local=(NEW_I, NATT))
    # the IKE SA uses the new address at once; ESP waits for the peer's answer
    assert ci.local == (NEW_I, NATT)
    assert mobike.esp_addresses(ci) == ((OLD_I, NATT), (ADDR_R[0], NATT))
    assert p.run(lambda: moved(p, "i") and moved(p, "r"), max_time=LIMIT)

    [(src, dst, update)] = informationals(p, "i>r", since=mark)[:1]
    assert src == (NEW_I, NATT)
    assert notify_types(update) == [NotifyType.UPDATE_SA_ADDRESSES, NotifyType.NAT_DETECTION_SOURCE_IP,
                                    NotifyType.NAT_DETECTION_DESTINATION_IP, NotifyType.COOKIE2]
    cookie = update.notify(NotifyType.COOKIE2).data
    assert 8 <= len(cookie) <= 64
    # NAT-D for the new pair, with the IKE SA's SPIs
    assert update.notify(NotifyType.NAT_DETECTION_SOURCE_IP).data == nat_detection_hash(
        ci.spi_i, ci.spi_r, (NEW_I, NATT))
    answer = next(m for _, dst, m in informationals(p, "r>i", responses=True, since=mark)
                  if m.message_id == update.message_id)
    assert answer.notify(NotifyType.COOKIE2).data == cookie          # echoed as is
    assert NotifyType.NAT_DETECTION_SOURCE_IP in notify_types(answer)
    # the responder's return-routability check went to the new address, with a cookie of its own
    [(rr_src, rr_dst, rr)] = informationals(p, "r>i", since=mark)[:1]
    assert rr_dst == (NEW_I, NATT) and notify_types(rr) == [NotifyType.COOKIE2]
    assert rr.notify(NotifyType.COOKIE2).data != cookie

    for conn in (ci, cr):
        assert conn.state == State.ESTABLISHED
        assert mobike.esp_addresses(conn) == (conn.local, conn.remote)
    assert cr.remote == (NEW_I, NATT) and ci.remote == (ADDR_R[0], NATT)
    [mi], [mr] = moved(p, "i"), moved(p, "r")
    assert (mi.previous_local, mi.local) == ((OLD_I, NATT), (NEW_I, NATT))
    assert (mr.previous_remote, mr.remote) == ((OLD_I, NATT), (NEW_I, NATT))
    assert not mi.nat_local and not mr.nat_remote                 # NAT-D matched: no NAT between
    assert_children_intact(p)
    assert_alive(p)
    # after the move, nothing the responder sent went to the old address
    after = [dst for t, src, dst, _ in p.sent[mark:] if t == "r>i"]
    assert after and all(dst[0] == NEW_I for dst in after)


def test_responder_moves_at_once_without_return_routability_when_nat_d_matches():
    p = mobile_pair(mobike_return_routability=False)
    ci, cr = p.conn("i"), p.conn("r")
    mark = len(p.sent)
    p.owned["i"] = {NEW_I}
    ci.update_addresses(p.now, local=(NEW_I, NATT))
    assert p.run(lambda: moved(p, "i") and moved(p, "r"), max_time=LIMIT)
    assert informationals(p, "r>i", since=mark) == []            # no check of its own
    assert cr.remote == (NEW_I, NATT)
    assert_children_intact(p)
    assert_alive(p)


def test_move_to_the_peers_other_address():
    ci, cr = configs(mobike=True)
    cr = type(cr)(**{**cr.__dict__, "mobike_addresses": [R2]})
    p = mobile_pair(cfg_i=ci, cfg_r=cr)
    ci, cr = p.conn("i"), p.conn("r")
    p.owned["r"].add(R2)
    [target] = mobike.state(ci).peer_addresses
    ci.update_addresses(p.now, remote=(target, NATT))
    assert p.run(lambda: moved(p, "i") and moved(p, "r"), max_time=LIMIT)
    assert ci.remote == (R2, NATT) and cr.local == (R2, NATT) and cr.remote == (OLD_I, NATT)
    p.owned["r"] = {R2}                          # the first address may go now
    assert_alive(p)


def test_a_second_move_while_the_first_is_out_ends_at_the_second():
    p = mobile_pair()
    ci, cr = p.conn("i"), p.conn("r")
    p.owned["i"] = {NEW_I, OTHER_I}
    ci.update_addresses(p.now, local=(NEW_I, NATT))
    ci.update_addresses(p.now, local=(OTHER_I, NATT))
    assert p.run(lambda: cr.remote == (OTHER_I, NATT) and moved(p, "i"), max_time=LIMIT)
    p.settle(5)
    assert ci.local == (OTHER_I, NATT) and mobike.esp_addresses(ci)[0] == (OTHER_I, NATT)
    assert [m.local for m in moved(p, "i")] == [(OTHER_I, NATT)]   # the superseded answer moved nothing
    assert_alive(p)


def test_ike_rekey_after_a_move_keeps_the_new_addresses():
    p = mobile_pair()
    ci = p.conn("i")
    p.owned["i"] = {NEW_I}
    ci.update_addresses(p.now, local=(NEW_I, NATT))
    assert p.run(lambda: moved(p, "r"), max_time=LIMIT)
    ci.rekey(p.now)
    assert p.run(lambda: p.of(ev.IkeSaRekeyed, "i") and p.of(ev.IkeSaRekeyed, "r"), max_time=LIMIT)
    p.settle(5)
    assert p.conn("i").local == (NEW_I, NATT) and p.conn("r").remote == (NEW_I, NATT)
    assert_children_intact(p)


def test_a_move_queued_behind_an_ike_rekey_goes_out_on_the_new_sa():
    p = mobile_pair()
    ci = p.conn("i")
    ci.rekey(p.now)
    p.owned["i"] = {OLD_I, NEW_I}
    ci.update_addresses(p.now, local=(NEW_I, NATT))      # waits for the rekey, then moves with the SAs
    assert p.run(lambda: moved(p, "i") and moved(p, "r"), max_time=LIMIT)
    p.settle(5)
    new_i, new_r = p.conn("i"), p.conn("r")
    assert new_i is not ci and new_i.local == (NEW_I, NATT) and new_r.remote == (NEW_I, NATT)
    assert mobike.esp_addresses(new_i) == ((NEW_I, NATT), (ADDR_R[0], NATT))
    assert_children_intact(p)
    assert_alive(p)


def test_stale_update_is_answered_and_ignored():
    # with a window of 2 both updates are out at once; the newer one arrives first
    p = mobile_pair(window_size=2)
    ci, cr = p.conn("i"), p.conn("r")
    assert ci.peer_window == 2
    p.owned["i"] = {NEW_I, OTHER_I}
    ci.update_addresses(p.now, local=(NEW_I, NATT))
    ci.update_addresses(p.now, local=(OTHER_I, NATT))
    assert p.in_flight_tags().count("i>r") == 2
    p.deliver("i>r", index=1)                    # the newer (OTHER_I) first
    p.deliver("i>r", index=0)                    # then the older one: answered, not followed
    assert p.run(lambda: moved(p, "r"), max_time=LIMIT)
    p.settle(5)
    assert cr.remote == (OTHER_I, NATT)
    assert [m.remote for m in moved(p, "r")] == [(OTHER_I, NATT)]
    assert_alive(p)


# ------------------------------------------------------------ address lists --

def test_address_list_updates_and_no_additional_addresses():
    p = mobile_pair()
    ci, cr = p.conn("i"), p.conn("r")
    mobike.announce_addresses(cr, p.now, [R2, "2001:db8::22"])
    p.settle(5)
    assert mobike.state(ci).peer_addresses == [R2, "2001:db8::22"]
    [(_, _, msg)] = informationals(p, "r>i")[-1:]
    assert notify_types(msg) == [NotifyType.ADDITIONAL_IP4_ADDRESS, NotifyType.ADDITIONAL_IP6_ADDRESS]
    mobike.announce_addresses(cr, p.now, [])
    p.settle(5)
    assert mobike.state(ci).peer_addresses == []
    [(_, _, msg)] = informationals(p, "r>i")[-1:]
    assert notify_types(msg) == [NotifyType.NO_ADDITIONAL_ADDRESSES]
    with pytest.raises(IkeError):
        mobike.announce_addresses(ci, p.now, ["not-an-address"])


def test_nat_detection_probe_is_answered():
    """RFC 4555 §3.8: NAT-D in any INFORMATIONAL is answered with ours (how strongSwan probes a path)."""
    p = mobile_pair()
    ci, cr = p.conn("i"), p.conn("r")

    class Probe(mobike.AddressListTask):
        def build_request(self, conn, now):
            from ikecore.protocol.exchanges.ike_sa_init import _nat_notifies
            return Message(conn.spi_i, conn.spi_r, ExchangeType.INFORMATIONAL,
                           inner=_nat_notifies(conn, conn.spi_r, conn.local, conn.remote))

    ci.queue(Probe([]), p.now)
    p.settle(5)
    [(_, _, answer)] = informationals(p, "r>i", responses=True)[-1:]
    assert answer.notify(NotifyType.NAT_DETECTION_SOURCE_IP).data == nat_detection_hash(
        ci.spi_i, ci.spi_r, cr.local)
    assert answer.notify(NotifyType.NAT_DETECTION_DESTINATION_IP).data == nat_detection_hash(
        ci.spi_i, ci.spi_r, ci.local)


# ------------------------------------------------------------------- bad input --

def test_bad_cookie2_echo_closes_the_ike_sa(monkeypatch):
    """RFC 4555 §3.7: an echo that does not match what we sent closes the IKE SA."""
    p = mobile_pair()
    ci, cr = p.conn("i"), p.conn("r")
    real = mobike.respond

    def lying(conn, msg, now):
        out = real(conn, msg, now)
        for n in out:
            if isinstance(n, NotifyPayload) and n.notify_type == NotifyType.COOKIE2:
                n.data = bytes(len(n.data))
        return out

    monkeypatch.setattr(mobike, "respond", lying)
    p.owned["i"].add(NEW_I)
    ci.update_addresses(p.now, local=(NEW_I, NATT))
    assert p.run(lambda: p.of(ev.IkeSaDeleted, "i") and p.of(ev.IkeSaDeleted, "r"), max_time=LIMIT)
    assert p.of(ev.IkeSaDeleted, "i")[0].reason == "MOBIKE COOKIE2 mismatch"
    assert not moved(p, "i") and not moved(p, "r")


def test_bad_cookie2_echo_of_the_return_routability_check_closes_the_ike_sa(monkeypatch):
    p = mobile_pair()
    ci, cr = p.conn("i"), p.conn("r")
    real = mobike.respond

    def lying(conn, msg, now):
        out = real(conn, msg, now)
        if conn is ci:
            for n in out:
                if isinstance(n, NotifyPayload) and n.notify_type == NotifyType.COOKIE2:
                    n.data = b"\x01" * len(n.data)
        return out

    monkeypatch.setattr(mobike, "respond", lying)
    p.owned["i"].add(NEW_I)
    ci.update_addresses(p.now, local=(NEW_I, NATT))
    assert p.run(lambda: p.of(ev.IkeSaDeleted, "r"), max_time=LIMIT)
    assert p.of(ev.IkeSaDeleted, "r")[0].reason == "MOBIKE COOKIE2 mismatch"
    assert not moved(p, "r")


def _update_request(p, new_local):
    """The initiator's UPDATE_SA_ADDRESSES as sent (bytes), held back from the wire."""
    ci = p.conn("i")
    p.owned["i"].add(new_local)
    ci.update_addresses(p.now, local=(new_local, NATT))
    p.flush()
    [(k, item)] = [(k, f) for k, f in enumerate(p.in_flight) if f[4] == "i>r"]
    del p.in_flight[k]
    return item[1]


def _snapshot(conn):
    return (conn.state, conn.local, conn.remote, conn.expected_request_id, mobike.esp_addresses(conn),
            sorted(conn.children))


@pytest.mark.parametrize("forgery", ["unprotected", "bad-icv"])
def test_unauthenticated_update_is_dropped_and_the_sa_unharmed(forgery):
    p = mobile_pair()
    ci, cr = p.conn("i"), p.conn("r")
    genuine = _update_request(p, NEW_I)
    if forgery == "unprotected":
        fake = Message(ci.spi_i, ci.spi_r, ExchangeType.INFORMATIONAL, 0x08, parse_message(genuine[4:]).message_id,
                       payloads=[NotifyPayload(notify_type=NotifyType.UPDATE_SA_ADDRESSES),
                                 NotifyPayload(notify_type=NotifyType.COOKIE2, data=b"c" * 16)])
        forged = bytes(4) + fake.encode()
    else:
        forged = bytearray(genuine)
        forged[-1] ^= 0x01                       # the ICV no longer matches
        forged = bytes(forged)
    before = _snapshot(cr)
    p.er.receive_datagram(forged, (SPOOFED, NATT), cr.local, p.now)
    p.flush()
    assert [f for f in p.in_flight if f[4] == "r>i"] == []        # no answer
    assert not [s for s in p.sent if s[0] == "r>i" and s[2][0] == SPOOFED]
    assert _snapshot(cr) == before and not moved(p, "r")
    # the genuine update (same message ID) still goes through
    p.er.receive_datagram(genuine, (NEW_I, NATT), cr.local, p.now)
    assert p.run(lambda: moved(p, "i") and moved(p, "r"), max_time=LIMIT)
    assert cr.remote == (NEW_I, NATT)
    # a forged copy of the answered request gets no cached answer sent to its source
    p.er.receive_datagram(forged, (SPOOFED, NATT), cr.local, p.now)
    p.flush()
    assert not [s for s in p.sent if s[0] == "r>i" and s[2][0] == SPOOFED]
    assert_alive(p)


@pytest.mark.parametrize("return_routability", [True, False])
def test_spoofed_source_with_nat_d_that_disagrees_does_not_move_the_sa(return_routability):
    """The header of an authentic UPDATE_SA_ADDRESSES is rewritten on the way
    (someone redirecting the SA to a victim): the NAT_DETECTION hashes, made for
    the real addresses, do not match. The responder does not move on that basis:
    its check at the spoofed address goes unanswered, it stays where it was."""
    p = mobile_pair(mobike_return_routability=return_routability)
    ci, cr = p.conn("i"), p.conn("r")
    genuine = _update_request(p, NEW_I)
    p.owned["i"] = {OLD_I, NEW_I}                # the initiator still holds its old address
    p.er.receive_datagram(genuine, (SPOOFED, NATT), cr.local, p.now)
    p.run(lambda: p.of(ev.MobikeFailed, "r"), max_time=LIMIT)
    [failed] = p.of(ev.MobikeFailed, "r")
    assert "unanswered" in failed.reason
    assert cr.state == State.ESTABLISHED and cr.remote == (OLD_I, NATT)
    assert not moved(p, "r")
    assert mobike.esp_addresses(cr) == (cr.local, (OLD_I, NATT))
    # all it ever sent to the spoofed address: the answer (RFC 7296 §2.11) and its checks
    to_spoofed = [m for t, src, dst, m in opened(p, "r>i") if dst[0] == SPOOFED]
    assert to_spoofed and all(m.exchange_type == ExchangeType.INFORMATIONAL for m in to_spoofed)
    assert all(notify_types(m) == [NotifyType.COOKIE2] for m in to_spoofed if not m.is_response)
    assert_children_intact(p)
    assert_alive(p)


def test_refused_addresses_put_the_old_ones_back(monkeypatch):
    p = mobile_pair()
    ci, cr = p.conn("i"), p.conn("r")
    monkeypatch.setattr(mobike, "_acceptable", lambda remote, local: False)
    p.owned["i"].add(NEW_I)
    ci.update_addresses(p.now, local=(NEW_I, NATT))
    assert p.run(lambda: p.of(ev.MobikeFailed, "i"), max_time=LIMIT)
    [failed] = p.of(ev.MobikeFailed, "i")
    assert failed.notify_type == NotifyType.UNACCEPTABLE_ADDRESSES
    assert ci.local == (OLD_I, NATT) and mobike.esp_addresses(ci) == (ci.local, ci.remote)
    assert cr.remote == (OLD_I, NATT) and not moved(p, "r")
    assert_alive(p)


@pytest.mark.parametrize("matches", [False, True])
def test_no_nats_allowed(monkeypatch, matches):
    p = mobile_pair()
    ci, cr = p.conn("i"), p.conn("r")
    real = mobike.UpdateAddressesTask.build_request

    def with_no_nats(self, conn, now):
        msg = real(self, conn, now)
        # what the packet carries, or an address it does not
        block = mobike._address_block(conn.local if matches else (OTHER_I, NATT), conn.remote)
        msg.inner.append(NotifyPayload(notify_type=NotifyType.NO_NATS_ALLOWED, data=block))
        return msg

    monkeypatch.setattr(mobike.UpdateAddressesTask, "build_request", with_no_nats)
    p.owned["i"].add(NEW_I)
    ci.update_addresses(p.now, local=(NEW_I, NATT))
    assert p.run(lambda: p.of(ev.MobikeFailed, "i") or moved(p, "r"), max_time=LIMIT)
    if matches:
        assert cr.remote == (NEW_I, NATT) and not p.of(ev.MobikeFailed, "i")
    else:
        assert p.of(ev.MobikeFailed, "i")[0].notify_type == NotifyType.UNEXPECTED_NAT_DETECTED
        assert ci.local == (OLD_I, NATT) and cr.remote == (OLD_I, NATT)
    assert_alive(p)


def test_ipv6_move():
    a_i, a_r, new = ("2001:db8::1", 500), ("2001:db8::2", 500), "2001:db8:1::1"
    p = mobile_pair(addr_i=a_i, addr_r=a_r)
    ci, cr = p.conn("i"), p.conn("r")
    p.owned["i"] = {new}
    ci.update_addresses(p.now, local=(new, NATT))
    assert p.run(lambda: moved(p, "i") and moved(p, "r"), max_time=LIMIT)
    assert cr.remote == (new, NATT) and ci.local == (new, NATT)
    assert not moved(p, "r")[0].nat_remote
    assert_children_intact(p)
    assert_alive(p)


def test_bad_addresses_are_refused_locally():
    p = mobile_pair()
    ci = p.conn("i")
    for bad, match in (((("0.0.0.0", NATT)), "cannot be an IKE endpoint"),
                       ((("224.0.0.1", NATT)), "cannot be an IKE endpoint"),
                       ((("2001:db8::1", NATT)), "address family"),
                       ((("nonsense", NATT)), "not an IP address")):
        with pytest.raises(IkeError, match=match):
            ci.update_addresses(p.now, local=bad)
    assert ci.local == (OLD_I, NATT) and not ci.tasks and not ci.outstanding


def test_nat_d_that_disagrees_with_a_genuine_header_still_means_a_check_first():
    """With return routability off, only NAT_DETECTION hashes that match the
    packet let the responder move at once; an initiator whose hashes claim a NAT
    (here: encapsulation forced, so its source hash is random) is checked first."""
    ci, cr = configs(mobike=True, mobike_return_routability=False)
    ci = type(ci)(**{**ci.__dict__, "force_encap": True})
    p = mobile_pair(cfg_i=ci, cfg_r=cr)
    ci, cr = p.conn("i"), p.conn("r")
    mark = len(p.sent)
    p.owned["i"] = {NEW_I}
    ci.update_addresses(p.now, local=(NEW_I, NATT))
    assert p.run(lambda: moved(p, "r"), max_time=LIMIT)
    [(_, dst, check)] = informationals(p, "r>i", since=mark)
    assert dst == (NEW_I, NATT) and notify_types(check) == [NotifyType.COOKIE2]
    [event] = moved(p, "r")
    assert event.nat_remote                      # what the peer's hashes claim is kept
    assert_alive(p)
