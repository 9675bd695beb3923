"""Which payloads each message may carry (strongSwan-style message rules).

One :class:`MessageRules` per (exchange type, request/response): for every
payload type allowed, how often it must/may appear; whether the payloads travel
inside SK; groups that come all together or not at all (SA, TSi, TSr); notifies
that must be present; and which notifies turn a message into an error reply
whose usual mandatory payloads are absent. :func:`check_rules` applies them
before any handler sees the message and raises :class:`ParseError`
(INVALID_SYNTAX) on a violation.

Flows (RFC 7296 §1.2-§1.5, §2.6; RFC 5723 §4.3; RFC 7791 §4):

    IKE_SA_INIT         HDR, SAi1, KEi, Ni, [N+], [V+]  -->
                    <-- HDR, SAr1, KEr, Nr, [CERTREQ+], [N+], [V+]
                    <-- HDR, N(COOKIE | INVALID_KE_PAYLOAD | NO_PROPOSAL_CHOSEN ...)
    IKE_AUTH            HDR, SK {IDi, [CERT+], [CERTREQ+], [IDr], AUTH, [CP], [N+],
                                 SAi2, TSi, TSr, [V+]}  -->  (EAP rounds: SK {EAP} / SK {AUTH})
                    <-- HDR, SK {IDr, [CERT+], AUTH, [CP], [N+], SAr2, TSi, TSr, [V+]}
    CREATE_CHILD_SA     HDR, SK {[N+], SA, Ni, [KEi], [TSi, TSr], [V+]}  -->
                    <-- HDR, SK {[N+], SA, Nr, [KEr], [TSi, TSr], [V+]}  |  SK {N(error)}
    INFORMATIONAL       HDR, SK {[N+], [D+], [CP], [V+]}  <-->
    IKE_SESSION_RESUME  HDR, [N(COOKIE)], Ni, N(TICKET_OPAQUE), [N+], [V+]  -->
                    <-- HDR, Nr, [N+], [V+]  |  HDR, N(TICKET_NACK)
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import ParseError
from .constants import ExchangeType as X
from .constants import NotifyType as N
from .constants import PayloadType as P
from .message import Message
from .payloads import NotifyPayload, UnknownPayload

MANY = 255


@dataclass(frozen=True)
class MessageRules:
    exchange_type: int
    is_request: bool
    encrypted: bool
    counts: dict                                   # payload type -> (min, max)
    together: tuple = ()                           # frozensets: all or none
    one_of: frozenset = frozenset()                # at least one of these
    required_notifies: frozenset = frozenset()
    error_notifies: frozenset = frozenset()        # besides all error types 1..16383

    def __post_init__(self) -> None:
        # derived tables check_rules reads on every message (not fields: they
        # follow from the ones above)
        derived = {
            "_max": {t: hi for t, (_, hi) in self.counts.items()},
            "_mandatory": tuple((t, lo) for t, (lo, _) in self.counts.items() if lo),
            "_together": tuple(tuple(group) for group in self.together),
            "_one_of": tuple(self.one_of),
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    @property
    def name(self) -> str:
        return f"{X(self.exchange_type).name} {'request' if self.is_request else 'response'}"


def _r(xchg, is_request, encrypted, counts, **kw) -> MessageRules:
    return MessageRules(int(xchg), is_request, encrypted,
                        {int(k): v for k, v in counts.items()}, **kw)


_CHILD_TRIPLE = (frozenset({int(P.SA), int(P.TSI), int(P.TSR)}),)
_TS_PAIR = (frozenset({int(P.TSI), int(P.TSR)}),)

RULES: dict[tuple[int, bool], MessageRules] = {(r.exchange_type, r.is_request): r for r in (
    _r(X.IKE_SA_INIT, True, False,
       {P.SA: (1, 1), P.KE: (1, 1), P.NONCE: (1, 1), P.NOTIFY: (0, MANY), P.VENDOR_ID: (0, MANY)}),
    _r(X.IKE_SA_INIT, False, False,
       {P.SA: (1, 1), P.KE: (1, 1), P.NONCE: (1, 1), P.CERTREQ: (0, MANY),
        P.NOTIFY: (0, MANY), P.VENDOR_ID: (0, MANY)},
       error_notifies=frozenset({int(N.COOKIE)})),
    _r(X.IKE_AUTH, True, True,
       {P.IDI: (0, 1), P.CERT: (0, MANY), P.CERTREQ: (0, MANY), P.IDR: (0, 1),
        P.AUTH: (0, 1), P.SA: (0, 1), P.TSI: (0, 1), P.TSR: (0, 1), P.CP: (0, 1),
        P.NOTIFY: (0, MANY), P.VENDOR_ID: (0, MANY), P.EAP: (0, 1)},
       together=_CHILD_TRIPLE, one_of=frozenset({int(P.IDI), int(P.AUTH), int(P.EAP)})),
    _r(X.IKE_AUTH, False, True,
       {P.IDR: (0, 1), P.CERT: (0, MANY), P.AUTH: (0, 1), P.SA: (0, 1), P.TSI: (0, 1),
        P.TSR: (0, 1), P.CP: (0, 1), P.NOTIFY: (0, MANY), P.VENDOR_ID: (0, MANY),
        P.EAP: (0, 1)},
       together=_CHILD_TRIPLE, one_of=frozenset({int(P.IDR), int(P.AUTH), int(P.EAP)})),
    _r(X.CREATE_CHILD_SA, True, True,
       {P.SA: (1, 1), P.NONCE: (1, 1), P.KE: (0, 1), P.TSI: (0, 1), P.TSR: (0, 1),
        P.NOTIFY: (0, MANY), P.VENDOR_ID: (0, MANY)},
       together=_TS_PAIR),
    _r(X.CREATE_CHILD_SA, False, True,
       {P.SA: (1, 1), P.NONCE: (1, 1), P.KE: (0, 1), P.TSI: (0, 1), P.TSR: (0, 1),
        P.NOTIFY: (0, MANY), P.VENDOR_ID: (0, MANY)},
       together=_TS_PAIR),
    _r(X.INFORMATIONAL, True, True,
       {P.NOTIFY: (0, MANY), P.DELETE: (0, MANY), P.CP: (0, 1), P.VENDOR_ID: (0, MANY)}),
    _r(X.INFORMATIONAL, False, True,
       {P.NOTIFY: (0, MANY), P.DELETE: (0, MANY), P.CP: (0, 1), P.VENDOR_ID: (0, MANY)}),
    _r(X.IKE_SESSION_RESUME, True, False,
       {P.NONCE: (1, 1), P.NOTIFY: (0, MANY), P.VENDOR_ID: (0, MANY)},
       required_notifies=frozenset({int(N.TICKET_OPAQUE)})),
    _r(X.IKE_SESSION_RESUME, False, False,
       {P.NONCE: (1, 1), P.NOTIFY: (0, MANY), P.VENDOR_ID: (0, MANY)},
       error_notifies=frozenset({int(N.COOKIE), int(N.TICKET_NACK)})),
)}

_ZERO_SPI = bytes(8)
_MESSAGE_ID_ZERO = frozenset({int(X.IKE_SA_INIT), int(X.IKE_SESSION_RESUME)})   # plain ints: no enum lookups per check


def rules_for(exchange_type: int, is_request: bool) -> MessageRules:
    try:
        return RULES[(exchange_type, is_request)]
    except KeyError:
        raise ParseError(f"unsupported exchange type {exchange_type}") from None


def check_rules(msg: Message, is_request: bool | None = None) -> None:
    """Check ``msg`` against the rules of its exchange; raise ParseError
    (INVALID_SYNTAX) if it breaks one.

    Call it once after parsing (for an encrypted exchange this checks that
    nothing but SK travels in the clear) and again after decryption or
    reassembly (then the inner payloads are counted). ``is_request`` defaults
    to the header's R flag.
    """
    if is_request is None:
        is_request = not msg.flags & 0x20
    rules = RULES.get((msg.exchange_type, is_request))
    if rules is None:
        rules = rules_for(msg.exchange_type, is_request)     # raises
    if msg.spi_i == _ZERO_SPI:
        raise ParseError("the initiator's SPI is zero")
    xchg = msg.exchange_type
    if xchg in _MESSAGE_ID_ZERO and msg.message_id != 0:
        # RFC 5723 §4.3.2: IKE_SESSION_RESUME follows IKE_SA_INIT's Message ID rules
        raise ParseError(f"{rules.name} with a Message ID other than 0")
    if is_request and xchg in _MESSAGE_ID_ZERO and msg.spi_r != _ZERO_SPI:
        raise ParseError(f"{rules.name} with a responder SPI")

    if rules.encrypted:
        for p in msg.payloads:
            if type(p) is not UnknownPayload:
                raise ParseError(f"payload {p.payload_type} outside SK in {rules.name}")
        if msg.inner is None:
            if msg.sk is None:
                raise ParseError(f"{rules.name} without an Encrypted payload")
            return          # the inner payloads are checked after decryption
        payloads = msg.inner
    else:
        if msg.sk is not None or msg.inner is not None:
            raise ParseError(f"{rules.name} must not be encrypted")
        payloads = msg.payloads

    counts: dict[int, int] = {}
    error = over = False
    notify_types = set()
    maxima = rules._max
    error_notifies = rules.error_notifies
    for p in payloads:
        tp = type(p)
        if tp is UnknownPayload:
            continue                       # non-critical unknown: ignored (§2.5)
        t = p.payload_type
        hi = maxima.get(t)
        if hi is None:
            raise ParseError(f"payload {t} is not allowed in {rules.name}")
        c = counts[t] = counts.get(t, 0) + 1
        if c > hi:
            over = True
        if tp is NotifyPayload:
            nt = p.notify_type
            notify_types.add(nt)
            if 0 < nt < 16384 or nt in error_notifies:
                error = True
    # the usual message breaks no count: checked against the few mandatory types;
    # any breach goes through the full walk below for its exact error
    if over:
        _check_counts(rules, counts, error)
    if not error:
        for t, lo in rules._mandatory:
            if counts.get(t, 0) < lo:
                _check_counts(rules, counts, error)
    for group in rules._together:
        present = 0
        for t in group:
            if t in counts:
                present += 1
        if present and present != len(group):
            raise ParseError(f"{rules.name}: payloads {sorted(group)} must come together")
    if not error:
        one_of = rules._one_of
        if one_of:
            for t in one_of:
                if t in counts:
                    break
            else:
                raise ParseError(f"{rules.name} carries none of {sorted(one_of)}")
        if rules.required_notifies:
            missing = rules.required_notifies - notify_types
            if missing:
                raise ParseError(f"{rules.name} lacks notify {sorted(missing)}")


def _check_counts(rules: MessageRules, counts: dict, error: bool) -> None:
    """Raise the error for the first count ``counts`` breaks, in the rules' order."""
    for t, (lo, hi) in rules.counts.items():
        c = counts.get(t, 0)
        if c > hi:
            raise ParseError(f"payload {t} appears {c} times in {rules.name} (at most {hi})")
        if c < lo and not error:
            raise ParseError(f"{rules.name} lacks mandatory payload {t}")


__all__ = ["MessageRules", "RULES", "rules_for", "check_rules", "MANY"]
