"""Traffic selectors: configuration to payload form, and narrowing (RFC 7296 §2.9)."""
from __future__ import annotations

import ipaddress
from typing import Iterable, Sequence

from .config import TrafficSelectorSpec
from .constants import TsType
from .payloads import TrafficSelector


# The configured specs come back on every Child SA (four per IKE_AUTH): their payload
# fields, two ipaddress .packed among them, are kept per spec object. The entry holds
# the (frozen) spec, so an id in the table is never another object's.
_PAYLOAD_FIELDS: dict[int, tuple] = {}
_MAX_PAYLOAD_FIELDS = 1024


def to_payload(spec: TrafficSelectorSpec) -> TrafficSelector:
    entry = _PAYLOAD_FIELDS.get(id(spec))
    if entry is None or entry[0] is not spec:
        if len(_PAYLOAD_FIELDS) >= _MAX_PAYLOAD_FIELDS:
            _PAYLOAD_FIELDS.clear()
        kind = TsType.TS_IPV4_ADDR_RANGE if spec.version == 4 else TsType.TS_IPV6_ADDR_RANGE
        entry = _PAYLOAD_FIELDS[id(spec)] = (spec, (kind, spec.protocol, spec.start_port, spec.end_port,
                                                    spec.start.packed, spec.end.packed))
    return TrafficSelector(*entry[1])     # a new payload object each time: callers may change theirs


def from_payload(ts: TrafficSelector) -> TrafficSelectorSpec:
    return TrafficSelectorSpec(ipaddress.ip_address(ts.start_addr), ipaddress.ip_address(ts.end_addr),
                               ts.ip_protocol, ts.start_port, ts.end_port)


def host_selector(address: str) -> TrafficSelector:
    addr = ipaddress.ip_address(address)
    return to_payload(TrafficSelectorSpec(addr, addr))


def _intersect(a: TrafficSelector, b: TrafficSelector) -> TrafficSelector | None:
    if not isinstance(a, TrafficSelector) or not isinstance(b, TrafficSelector) or a.ts_type != b.ts_type:
        return None
    if a.ip_protocol and b.ip_protocol and a.ip_protocol != b.ip_protocol:
        return None
    proto = a.ip_protocol or b.ip_protocol
    lo_port, hi_port = max(a.start_port, b.start_port), min(a.end_port, b.end_port)
    lo_addr, hi_addr = max(a.start_addr, b.start_addr), min(a.end_addr, b.end_addr)
    if lo_port > hi_port or lo_addr > hi_addr:   # packed big-endian: byte order is address order
        return None
    return TrafficSelector(a.ts_type, proto, lo_port, hi_port, lo_addr, hi_addr)


_SHARED: dict[tuple, TrafficSelector] = {}
_MAX_SHARED = 1024      # the gateway's own selectors come back on every SA; peers' may not


def shared(ts: TrafficSelector) -> TrafficSelector:
    """An equal selector already held by another SA, else ``ts``: many
    road-warrior SAs hold the same gateway-side selector, 150 bytes each.
    Selectors are never modified once negotiated."""
    key = (ts.ts_type, ts.ip_protocol, ts.start_port, ts.end_port, ts.start_addr, ts.end_addr)
    known = _SHARED.get(key)
    if known is None:
        if len(_SHARED) >= _MAX_SHARED:
            _SHARED.clear()       # the common ones come straight back
        known = _SHARED[key] = ts
    return known


def narrow(offered: Iterable, allowed: Sequence[TrafficSelector]) -> list[TrafficSelector]:
    """The parts of the peer's selectors our policy allows, without duplicates.
    Empty means TS_UNACCEPTABLE."""
    out: list[TrafficSelector] = []
    for o in offered:
        for a in allowed:
            x = _intersect(o, a)
            if x is not None and x not in out:
                out.append(shared(x))
    return out[:]         # a Child SA keeps it: no room left for growth


def covered_by(narrowed: Iterable, offered: Sequence) -> bool:
    """Initiator: every selector the responder returned lies inside what we offered."""
    return all(any(_intersect(n, o) == n for o in offered) for n in narrowed)


__all__ = ["to_payload", "from_payload", "host_selector", "narrow", "covered_by", "shared"]
