"""The responder under a cookie-answering flood: a legitimate initiator's
IKE_SA_INIT versions racing the half-open count across the cookie threshold,
and the caps on what unauthenticated peers can make the endpoint hold."""
from __future__ import annotations

from ikecore.protocol import events as ev
from ikecore.protocol.constants import ExchangeType, NotifyType
from ikecore.protocol.message import parse_message

from ike_pair import Pair, configs


def _init_copy(p):
    """The initiator's IKE_SA_INIT in flight (delivered to nobody yet)."""
    p.flush()
    [item] = [f for f in p.in_flight if f[4] == "i>r"]
    return item


def test_a_late_copy_of_the_cookieless_request_does_not_break_auth():
    """Under a flood the half-open count crosses the cookie threshold both ways.
    The initiator's first IKE_SA_INIT (no cookie) is answered with a COOKIE; it
    retries with the cookie. A retransmitted copy of the first version reaches
    the responder once the count has dropped below the threshold, and makes a
    half-open SA; the retry then arrives for the same (SPIi, address). The
    initiator signs the version it sent last (RFC 7296 §2.15), so the responder
    must verify AUTH over that version, not the copy it happened to answer.
    Before the fix this failed with "shared key MIC does not match"."""
    p = Pair(*configs())
    p.er.cookie_threshold = 0
    p.connect()
    first = _init_copy(p)
    p.deliver("i>r")                                   # answered with a COOKIE
    p.deliver("r>i")                                   # the initiator retries with it
    retry = _init_copy(p)
    assert parse_message(retry[1]).notify(NotifyType.COOKIE) is not None
    p.er.cookie_threshold = 100                        # the flood's half-open SAs expired
    p.in_flight.insert(0, first)                       # a late copy of the first version
    p.deliver("i>r", index=0)                          # it makes a half-open SA
    p.deliver("i>r", index=0)                          # the retry for the same SA
    assert p.run(p.established)
    assert not p.of(ev.IkeSaDeleted, "r") and not p.of(ev.IkeSaDeleted, "i")


# ---------------------------------------------------------------- the caps --

import gc
import logging
import random

import pytest

from ike_pair import ADDR_I, ADDR_R
from ikecore.errors import ConfigError
from ikecore.protocol.endpoint import IkeEndpoint
from ikecore.protocol.ike_sa import IkeConnection, State
from ikecore.protocol.limits import EndpointLimits, RateLimitedLog


def _answering_flood(gateway, cfg, now, hosts, per_host, *, seed=700):
    """A flood that answers cookies: each request is retried with the cookie it
    got, and the IKE_AUTH that would follow is never sent. Returns how many
    requests got a half-open SA, how many got no answer at all."""
    attacker = IkeEndpoint(cfg, rng=random.Random(seed).randbytes, now=now)
    made = silent = 0
    for host in hosts:
        for _ in range(per_host):
            conn = attacker.connect(cfg, (host, 500), ADDR_R, now)
            request = attacker.datagrams_to_send()
            for _try in range(2):                    # the request, then its cookie retry
                [(data, _, _)] = request
                gateway.receive_datagram(data, (host, 500), ADDR_R, now)
                replies = gateway.datagrams_to_send()
                if not replies:
                    silent += 1
                    break
                [(reply, _, _)] = replies
                msg = parse_message(reply)
                if any(msg.spi_r):
                    made += 1
                    break
                attacker.receive_datagram(reply, ADDR_R, (host, 500), now)
                request = attacker.datagrams_to_send()
            conn.terminate("attacker moves on", now)   # drop the attacker's own state
            attacker.collect(conn, now)
    return made, silent


def _gateway(p, **limits):
    return IkeEndpoint(p.cfg_r, rng=random.Random(9).randbytes, now=p.now, cookie_threshold=4,
                       limits=EndpointLimits(**limits))


def test_half_open_caps_per_host_and_in_all_refuse_new_initiators_cheaply():
    p = Pair(*configs())
    gw = _gateway(p, max_half_open=30, max_half_open_per_host=10)
    p.er = gw
    made, silent = _answering_flood(gw, p.cfg_i, p.now, ["198.51.100.1"], 25)
    assert (made, silent) == (10, 15) and gw.half_open == 10        # the per-host cap
    assert gw.stats["half_open_refused"] == 15
    made, silent = _answering_flood(gw, p.cfg_i, p.now, [f"198.51.100.{k}" for k in range(2, 6)], 10,
                                    seed=701)
    assert made == 20 and silent == 20 and gw.half_open == 30       # the cap in all
    assert len(gw.connections) == 30                                # a refusal keeps nothing


def test_legitimate_peer_gets_through_a_flood_that_answers_cookies_from_one_host():
    """The issue's attack: one source answering cookies. The per-host cap stops
    it well before the cap in all, so another host still completes."""
    p = Pair(*configs())
    gw = _gateway(p, max_half_open=1000, max_half_open_per_host=50)
    p.er = gw
    _answering_flood(gw, p.cfg_i, p.now, ["198.51.100.1"], 200)
    assert gw.half_open == 50
    p.connect()
    assert p.run(p.established)
    assert gw.stats["cookies_sent"] > 0               # the legitimate peer went through a cookie


def test_established_peers_are_not_disturbed_by_a_flood_past_the_caps():
    p = Pair(*configs())
    gw = _gateway(p, max_half_open=20, max_half_open_per_host=10)
    p.er = gw
    p.connect()
    assert p.run(p.established)
    sa = p.conn("r")
    _answering_flood(gw, p.cfg_i, p.now, [f"198.51.100.{k}" for k in range(1, 5)], 15)
    assert gw.half_open == 20 and gw.stats["half_open_refused"] > 0
    # the established SA still runs exchanges: a Child SA rekey goes through
    child = next(iter(p.conn("i").children.values()))
    p.conn("i").rekey_child_sa(p.now, child.spi_in)
    assert p.run(lambda: len(p.of(ev.ChildSaRekeyed, "r")) == 1)
    assert sa.state is State.ESTABLISHED and not p.of(ev.IkeSaDeleted, "r")


def _live_connections():
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, IkeConnection))


def test_half_open_sas_expire_and_nothing_keeps_them():
    """Past ``half_open_lifetime`` every half-open SA is gone from every table of
    the endpoint and from memory (the C key objects are freed, and wiped, when the
    Python objects die)."""
    p = Pair(*configs())
    baseline = _live_connections()
    gw = _gateway(p, max_half_open=200, max_half_open_per_host=100, half_open_lifetime=5.0)
    _answering_flood(gw, p.cfg_i, p.now, [f"198.51.100.{k}" for k in range(1, 4)], 40)
    assert gw.half_open == 120
    assert _live_connections() >= baseline + 120
    assert gw.get_timer() == pytest.approx(p.now + 5.0)
    gw.handle_timer(p.now + 5.0)
    while gw.next_event() is not None:       # the application drains them, as the gateway does
        pass
    assert gw.half_open == 0 and not gw.connections and not gw._half_open_by_host
    assert len(gw.timers) == 0 and not gw._by_identity and not gw._by_host
    assert _live_connections() == baseline


def test_established_sas_per_identity_are_capped():
    """One identity may hold ``max_sas_per_identity`` IKE SAs; a new one past the
    cap is deleted once authenticated, the ones it holds stay."""
    p = Pair(*configs())
    p.er = gw = _gateway(p, max_sas_per_identity=2)
    for _ in range(3):
        p.connect()
        p.run(lambda: not p.in_flight_tags() and not any(
            c.state in (State.INIT_SENT, State.INIT_DONE) for c in p.ei.connections.values()),
            max_time=5.0)
    p.settle(5.0)
    assert gw.stats["identity_refused"] == 1
    assert len(p.live("r")) == 2 and len(p.live("i")) == 2
    [gone] = p.of(ev.IkeSaDeleted, "r")
    assert "identity" in gone.reason


def test_cookie_threshold_must_be_below_both_caps():
    cfg = configs()[1]
    with pytest.raises(ConfigError, match="max_half_open_per_host"):
        IkeEndpoint(cfg, rng=random.Random(1).randbytes, now=0.0, cookie_threshold=50,
                    limits=EndpointLimits(max_half_open_per_host=50))
    with pytest.raises(ConfigError, match="max_half_open "):
        IkeEndpoint(cfg, rng=random.Random(1).randbytes, now=0.0, cookie_threshold=50,
                    limits=EndpointLimits(max_half_open=40, max_half_open_per_host=60))


def test_unauthenticated_log_lines_are_rate_limited_with_a_summary(caplog):
    clock = [0.0]
    limited = RateLimitedLog(logging.getLogger("test.ratelog"), burst=3, interval=10.0,
                             clock=lambda: clock[0])
    with caplog.at_level(logging.INFO, logger="test.ratelog"):
        for k in range(100):
            limited.info("bad init", "bad IKE_SA_INIT %d", k)
        assert len(caplog.records) == 3
        clock[0] = 10.0
        limited.info("bad init", "bad IKE_SA_INIT %d", 100)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[3] == "97 more 'bad init' lines were suppressed in the last 10 s"
    assert lines[4] == "bad IKE_SA_INIT 100"
    assert limited.suppressed_total == 97


def test_the_summary_comes_when_a_flood_just_stops(caplog):
    clock = [0.0]
    limited = RateLimitedLog(logging.getLogger("test.ratelog"), burst=3, interval=10.0,
                             clock=lambda: clock[0])
    with caplog.at_level(logging.INFO, logger="test.ratelog"):
        for k in range(50):
            limited.info("bad init", "bad IKE_SA_INIT %d", k)
        limited.flush()                              # the window is still open: nothing yet
        assert len(caplog.records) == 3
        clock[0] = 10.0
        limited.flush()                              # no further line of that kind ever comes
        limited.flush()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[3:] == ["47 more 'bad init' lines were suppressed in the last 10 s"]


def test_a_flood_logs_a_bounded_number_of_lines(caplog):
    p = Pair(*configs())
    gw = _gateway(p, max_half_open=10, max_half_open_per_host=10)
    with caplog.at_level(logging.DEBUG, logger="ikecore"):
        _answering_flood(gw, p.cfg_i, p.now, ["198.51.100.1"], 300)
    refusals = [r for r in caplog.records if r.name == "ikecore.unauthenticated"]
    assert gw.stats["half_open_refused"] == 290
    assert len(refusals) <= 10


def test_half_open_sas_holding_fragments_share_the_endpoints_reassembly_budget():
    """The issue's fragment attack: half-open SAs each holding all but one
    fragment of their IKE_AUTH. The octets they hold are charged to the
    endpoint's budget, past it fragments are dropped, and they come back when the
    half-open SAs expire."""
    budget_octets = 400
    p = Pair(*configs(fragment_size=100))
    p.er = gw = IkeEndpoint(p.cfg_r, rng=random.Random(9).randbytes, now=p.now, cookie_threshold=50,
                            limits=EndpointLimits(max_reassembly_bytes=budget_octets,
                                                  max_reassembly_bytes_per_sa=300, half_open_lifetime=5.0))
    attackers = []
    for k in range(4):
        attacker = IkeEndpoint(p.cfg_i, rng=random.Random(800 + k).randbytes, now=p.now)
        remote = (f"198.51.100.{k + 1}", 500)
        attacker.connect(p.cfg_i, remote, ADDR_R, p.now)
        [(init, _, _)] = attacker.datagrams_to_send()
        gw.receive_datagram(init, remote, ADDR_R, p.now)
        [(answer, _, _)] = gw.datagrams_to_send()
        attacker.receive_datagram(answer, ADDR_R, remote, p.now)
        fragments = [d for d, _, _ in attacker.datagrams_to_send()]
        assert len(fragments) > 3                            # IKE_AUTH went out in fragments
        for data in fragments[:-1]:                          # all but the last one
            gw.receive_datagram(data, remote, ADDR_R, p.now)
        attackers.append(attacker)
    assert gw.half_open == 4
    assert 0 < gw.reassembly_budget.used <= budget_octets
    assert gw.reassembly_budget.refused > 0                  # past the budget, fragments are dropped
    held = [c.reassembler._held for c in gw.connections.values() if c.reassembler is not None]
    assert all(h <= 300 for h in held)
    gw.handle_timer(p.now + 5.0)                             # the half-open SAs expire
    assert gw.half_open == 0 and gw.reassembly_budget.used == 0
