"""The data path's traffic-selector policy (RFC 4301 §4.4.1), in the C core.

A :class:`SelectorTable` holds the installed Child SAs by inbound SPI with
their local and remote traffic selectors. Over a whole :class:`PacketVector`,
one C call each:

- ``receive(vec, inbound, spis, tally)`` decrypts every ESP packet with its
  SA and gives ``ERR_POLICY`` to each tunnel-mode packet whose inner IP header
  lies outside its SA's selectors (RFC 4301 §5.2: discard), counting the
  outcomes;
- ``route(vec)`` finds for each outbound IP packet the newest routable SA
  whose selectors cover it (RFC 4301 §5.1); packets nothing covers get
  ``ERR_POLICY``. Through a flow cache and, for flows not in it, an index of
  the SAs whose remote selectors are single hosts (road warriors' virtual
  IPs) by address: no per-packet work grows with the number of such SAs
  (``route_stats()`` counts it);
- ``select(vec, spis, spi)`` leaves only one SA's packets PENDING (the
  others PARKED), so that its EspSA encrypts them as a batch.

Selectors are any objects with ``ts_type``, ``ip_protocol``, ``start_port``,
``end_port``, ``start_addr`` and ``end_addr`` (packed addresses), such as
:class:`ikecore.protocol.payloads.TrafficSelector`. Address-range types other
than IPv4/IPv6 never match. Not thread-safe: one table per data path.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from .._binding import error_for, ffi, lib

ERR_POLICY = lib.IKC_ERR_POLICY
PARKED = lib.IKC_PKT_PARKED
_TS_VERSION = {7: 4, 8: 6}      # TS_IPV4_ADDR_RANGE, TS_IPV6_ADDR_RANGE (RFC 7296 §3.13.1)


def _check(rc: int, what: str) -> None:
    if rc:
        raise error_for(rc, what)


def _c_selectors(selectors: Iterable):
    """An ikc_ts[] of the IP address-range selectors, and how many."""
    rows = []
    for ts in selectors:
        version = _TS_VERSION.get(int(ts.ts_type))
        if version is None:
            continue
        alen = 4 if version == 4 else 16
        if len(ts.start_addr) != alen or len(ts.end_addr) != alen:
            raise ValueError(f"traffic selector addresses must be {alen} octets")
        rows.append((version, ts.ip_protocol, ts.start_port, ts.end_port,
                     bytes(ts.start_addr).ljust(16, b"\0"), bytes(ts.end_addr).ljust(16, b"\0")))
    arr = ffi.new("ikc_ts[]", max(len(rows), 1))
    for c, (version, proto, sp, ep, sa, ea) in zip(arr, rows):
        c.version, c.ip_protocol, c.start_port, c.end_port = version, proto, sp, ep
        c.start_addr, c.end_addr = sa, ea
    return arr, len(rows)


class RouteStats(NamedTuple):
    """The outbound route lookups' work so far (``SelectorTable.route_stats()``)."""
    lookups: int            # packets looked up by route()
    cache_hits: int         # answered by the flow cache
    entries_examined: int   # entries the other lookups examined, in all
    last_examined: int      # ... and in the last one

    @property
    def cache_misses(self) -> int:
        return self.lookups - self.cache_hits


class SelectorTable:
    """Installed Child SAs (by inbound SPI) and their traffic selectors."""

    def __init__(self) -> None:
        out = ffi.new("ikc_spd **")
        _check(lib.ikc_spd_new(out), "selector table")
        self._h = ffi.gc(out[0], lib.ikc_spd_free)
        self._flags: dict[int, int] = {}
        self._bound: dict[int, object] = {}          # SPI -> EspSA: alive while C points at it
        self._n = ffi.new("uint32_t *")
        self._u64 = ffi.new("uint64_t *")
        self._stats = ffi.new("ikc_spd_stats *")

    def set(self, spi: int, local_ts: Iterable, remote_ts: Iterable, *, check: bool = True,
            route: bool = True) -> None:
        """Add the SA (or give it new selectors, keeping its age). ``check``:
        inbound packets must fall inside the selectors (tunnel mode); ``route``:
        outbound packets may be sent through it. The newest routable SA wins."""
        local, n_local = _c_selectors(local_ts)
        remote, n_remote = _c_selectors(remote_ts)
        flags = (lib.IKC_SPD_CHECK if check else 0) | (lib.IKC_SPD_ROUTE if route else 0)
        _check(lib.ikc_spd_set(self._h, spi, local, n_local, remote, n_remote, flags), "selector table set")
        self._flags[spi] = flags

    def set_route(self, spi: int, route: bool) -> None:
        """Stop (or resume) routing outbound packets to the SA, e.g. once a rekey replaced it."""
        flags = self._flags[spi] & ~lib.IKC_SPD_ROUTE | (lib.IKC_SPD_ROUTE if route else 0)
        _check(lib.ikc_spd_set_flags(self._h, spi, flags), "selector table flags")
        self._flags[spi] = flags

    def remove(self, spi: int) -> None:
        if self._flags.pop(spi, None) is not None:
            _check(lib.ikc_spd_remove(self._h, spi), "selector table remove")
        self._bound.pop(spi, None)

    def bind(self, spi: int, sa) -> None:
        """Decrypt this SPI's packets with ``sa`` (an inbound EspSA) when
        :meth:`receive` is given no InboundSATable: found by hash, per packet."""
        _check(lib.ikc_spd_bind(self._h, spi, sa._h), "selector table bind")
        self._bound[spi] = sa

    def drops(self, spi: int) -> int:
        """Inbound packets of this SA dropped for lying outside its selectors."""
        _check(lib.ikc_spd_drops(self._h, spi, self._u64), "selector table drops")
        return self._u64[0]

    def route_stats(self) -> RouteStats:
        """How much work the route lookups did: an uncached lookup examines the
        SAs of the packet's destination address (those whose remote selectors
        are single hosts) and those with wider remote selectors, not every SA."""
        _check(lib.ikc_spd_route_stats(self._h, self._stats), "selector table stats")
        s = self._stats
        return RouteStats(s.lookups, s.cache_hits, s.entries_examined, s.last_examined)

    def __len__(self) -> int:
        return lib.ikc_spd_count(self._h)

    def __contains__(self, spi: int) -> bool:
        return spi in self._flags

    # ---- vectors ----

    def receive(self, vec, inbound, spis, tally) -> None:
        """Decrypt every PENDING packet of ``vec`` with its SA from ``inbound`` (an
        InboundSATable; None: the SAs bound with :meth:`bind`, looked up by hash),
        then give ERR_POLICY to the tunnel-mode ones outside their SA's
        selectors. ``spis`` (from :meth:`spi_array`): the inbound SPI of each
        packet that ended OK. ``tally`` (from :meth:`tally_array`): how many of
        these packets ended with each status (see :func:`tally_count`)."""
        sas, nsas = inbound._handles() if inbound is not None else (ffi.NULL, 0)
        _check(lib.ikc_spd_receive(self._h, sas, nsas, vec._v, spis, len(spis), tally, len(tally)),
               "inbound policy")

    def route(self, vec, spis, groups) -> tuple[int, int]:
        """Each PENDING packet's SA (inbound SPI) into ``spis``; 0 and ERR_POLICY
        where no routable SA covers it. ``groups[:n]`` gets the distinct SPIs in
        order of first use. Returns (packets routed, n)."""
        ng = ffi.new("uint32_t *")
        _check(lib.ikc_spd_route(self._h, vec._v, spis, len(spis), groups, len(groups), ng, self._n), "route")
        return self._n[0], ng[0]

    @staticmethod
    def spi_array(vec):
        """A uint32_t array with one entry per slot of ``vec``."""
        return ffi.new("uint32_t[]", vec.capacity)

    @staticmethod
    def tally_array():
        return ffi.new("uint32_t[]", lib.IKC_TALLY_SIZE)

    @staticmethod
    def select(vec, spis, spi: int) -> int:
        """Only the packets routed to ``spi`` stay (or become) PENDING; the other
        PENDING or PARKED ones are PARKED. Returns how many are PENDING."""
        n = ffi.new("uint32_t *")
        _check(lib.ikc_vec_select(vec._v, spis, len(spis), spi, n), "select")
        return n[0]


def tally_count(tally, status: int) -> int:
    """How many packets ``receive`` left with ``status``."""
    k = status - lib.IKC_TALLY_MIN
    return tally[k] if 0 <= k < lib.IKC_TALLY_SIZE else 0


__all__ = ["SelectorTable", "RouteStats", "tally_count", "ERR_POLICY", "PARKED"]
