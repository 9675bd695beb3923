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
