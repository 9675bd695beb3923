"""What peers can make an endpoint hold, and how loudly unauthenticated input
may make it log (docs/hardening.md).

:class:`EndpointLimits` gathers the caps ``IkeEndpoint`` enforces. Past a cap a
new initiator is refused before any key exchange, with no answer and no state;
SAs already established are never touched by a cap.

:class:`RateLimitedLog` is for log lines that unauthenticated traffic causes: a
few lines per kind per interval go out, the rest are counted, and the next line
of that kind that goes out says how many were suppressed.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True)
class EndpointLimits:
    """Caps on state an endpoint keeps for its peers. The defaults fit a gateway
    of some 100,000 SAs; every one of them is documented in docs/hardening.md.

    ``max_half_open``: responder SAs not yet authenticated (half-open SAs and
    resumption requests waiting on the ticket store), in all.
    ``max_half_open_per_host``: the same, from one source address.
    ``half_open_lifetime``: seconds a half-open SA is kept (None: the SA's own
    default, max(30 s, 20 retransmission timeouts)).
    ``max_sas_per_identity``: established IKE SAs one authenticated peer identity
    may hold with us (rekeys replace, they do not add); a new one past the cap
    is deleted as soon as it is authenticated; 0 means no cap.
    ``max_reassembly_bytes``: fragment octets held in reassembly by all SAs
    together (RFC 7383); ``max_reassembly_bytes_per_sa``: by one SA.
    ``max_pending_events``: events the application has not drained yet; past
    it the oldest are dropped (``stats["events_dropped"]``).
    """

    max_half_open: int = 5000
    max_half_open_per_host: int = 500
    half_open_lifetime: float | None = None
    max_sas_per_identity: int = 16
    max_reassembly_bytes: int = 8 * 1024 * 1024
    max_reassembly_bytes_per_sa: int = 64 * 1024
    max_pending_events: int = 65536

    def __post_init__(self) -> None:
        for name in ("max_half_open", "max_half_open_per_host", "max_reassembly_bytes",
                     "max_reassembly_bytes_per_sa", "max_pending_events"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        if self.max_sas_per_identity < 0:
            raise ConfigError("max_sas_per_identity must not be negative")
        if self.half_open_lifetime is not None and self.half_open_lifetime <= 0:
            raise ConfigError("half_open_lifetime must be positive")
        if self.max_reassembly_bytes_per_sa > self.max_reassembly_bytes:
            raise ConfigError("max_reassembly_bytes_per_sa is above max_reassembly_bytes")

    @classmethod
    def around(cls, cookie_threshold: int) -> "EndpointLimits":
        """The defaults, with the half-open caps raised where needed to stay above
        ``cookie_threshold`` (twice it), for callers that set only the threshold."""
        base = cls()
        return cls(max_half_open=max(base.max_half_open, 2 * cookie_threshold + 1),
                   max_half_open_per_host=max(base.max_half_open_per_host, 2 * cookie_threshold + 1))

    def check_cookie_threshold(self, cookie_threshold: int) -> None:
        """Cookies must engage below both half-open caps, else a cap would refuse
        legitimate initiators before cookies could sort them from a spoofed flood."""
        if cookie_threshold >= self.max_half_open_per_host:
            raise ConfigError(f"cookie_threshold ({cookie_threshold}) must be below "
                              f"max_half_open_per_host ({self.max_half_open_per_host})")
        if cookie_threshold >= self.max_half_open:
            raise ConfigError(f"cookie_threshold ({cookie_threshold}) must be below "
                              f"max_half_open ({self.max_half_open})")


class RateLimitedLog:
    """At most ``burst`` lines per kind every ``interval`` seconds; the first line
    of a kind after some were suppressed carries the count. The clock is
    ``time.monotonic`` (logging is I/O already; the protocol core stays sans-I/O
    in everything it sends)."""

    def __init__(self, logger: logging.Logger, *, burst: int = 5, interval: float = 10.0,
                 clock=time.monotonic) -> None:
        self.logger = logger
        self.burst = burst
        self.interval = interval
        self.clock = clock
        self._windows: dict[str, list] = {}     # kind -> [window start, lines in it, suppressed, level]
        self.suppressed_total = 0

    def log(self, level: int, kind: str, fmt: str, *args) -> None:
        if not self.logger.isEnabledFor(level):
            return
        now = self.clock()
        window = self._windows.get(kind)
        if window is None or now - window[0] >= self.interval:
            if window is not None:
                self._summarise(kind, window)
            window = self._windows[kind] = [now, 0, 0, level]
        if window[1] >= self.burst:
            window[2] += 1
            self.suppressed_total += 1
            return
        window[1] += 1
        self.logger.log(level, fmt, *args)

    def _summarise(self, kind: str, window: list) -> None:
        if window[2]:
            self.logger.log(window[3], "%d more %r lines were suppressed in the last %.0f s",
                            window[2], kind, self.interval)
            window[2] = 0

    def flush(self) -> None:
        """Log the count of every kind whose window has ended with lines
        suppressed, so the summary comes even when a flood simply stops (the
        gateway calls this every interval)."""
        now = self.clock()
        for kind, window in list(self._windows.items()):
            if now - window[0] >= self.interval:
                self._summarise(kind, window)
                del self._windows[kind]

    def info(self, kind: str, fmt: str, *args) -> None:
        self.log(logging.INFO, kind, fmt, *args)

    def warning(self, kind: str, fmt: str, *args) -> None:
        self.log(logging.WARNING, kind, fmt, *args)

    def debug(self, kind: str, fmt: str, *args) -> None:
        self.log(logging.DEBUG, kind, fmt, *args)


# lines caused by peers that have not authenticated (shared by the protocol core)
unauthenticated_log = RateLimitedLog(logging.getLogger("ikecore.unauthenticated"))

__all__ = ["EndpointLimits", "RateLimitedLog", "unauthenticated_log"]
