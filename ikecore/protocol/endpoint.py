"""The endpoint: owns many IKE SAs, routes datagrams to them by SPI, answers
new IKE_SA_INIT requests, and engages stateless cookies (RFC 7296 §2.6) when
the half-open SAs pass a threshold. Sans-I/O like the connections it holds.

The I/O layer hands in every UDP datagram it receives on the IKE ports with
``receive_datagram(data, remote, local, now)``: on the NAT-T port the non-ESP
marker is stripped here and ESP packets or keepalives are reported back
(``Classification``) for the data path to handle.

Session resumption (RFC 5723, docs/resumption.md): IKE_SESSION_RESUME requests
(zero SPIr) are routed like IKE_SA_INIT (cookies, half-open accounting). A
ticket that opens is held as a pending check until the I/O layer has spent it
in the shared store: ``ticket_store_ops()`` hands out ``TicketCheck`` (answer
with ``ticket_checked(token, result, now)``) and ``TicketPut`` operations.
Pending checks count as half-open SAs, are bounded (``max_ticket_checks``) and
time out (``ticket_check_timeout``) into TICKET_NACK. A client resumes with
``resume()``; its tickets are kept per connection name in ``tickets``.
"""
from __future__ import annotations

import dataclasses
import enum
import hashlib
import heapq
import hmac
import itertools
import logging
from collections import deque
from types import MappingProxyType
from typing import Callable, Iterable

from ..errors import IkeError, ParseError
from . import events as ev
from .config import IkeConfig
from .constants import ExchangeType, Flags, NotifyType
from .exchanges import ike_sa_init, resumption
from .tickets import ClientTicket, TicketCheck
from .ike_sa import Address, IkeConnection, State
from .fragments import ReassemblyBudget
from .limits import EndpointLimits, unauthenticated_log
from .message import Message, parse_message

log = logging.getLogger("ikecore.endpoint")

NON_ESP_MARKER = bytes(4)
# bound once for the per-datagram test (ExchangeType.X goes through EnumType.__getattr__)
_IKE_SA_INIT = ExchangeType.IKE_SA_INIT
_INITIAL_EXCHANGES = frozenset({int(ExchangeType.IKE_SA_INIT), int(ExchangeType.IKE_SESSION_RESUME)})
_ZERO_SPI = bytes(8)
_INIT_DONE, _ESTABLISHED, _DELETED = State.INIT_DONE, State.ESTABLISHED, State.DELETED
_I_FLAG, _R_FLAG = int(Flags.INITIATOR), int(Flags.RESPONSE)
COOKIE_VERSION_BYTES = 1
# why an IKE SA ended that leaves its client's ticket usable: the SA went without a
# Delete (RFC 5723 §6.2: a ticket dies with an SA deleted by either side)
KEEP_TICKET_REASONS = frozenset({"peer unresponsive", "suspended"})


# The index tables below (SAs by identity, by host, by peer) mostly hold one SA
# per key: a lone SA is filed as itself, and a container (about 200 bytes per
# SA) is made only for the second.

def _file(table: dict, key, own: bytes, conn) -> None:
    held = table.get(key)
    if held is None or held is conn:
        table[key] = conn
    elif isinstance(held, dict):
        held[own] = conn
    else:
        table[key] = {held.spi_i if held.initiator else held.spi_r: held, own: conn}


def _unfile(table: dict, key, own: bytes, conn) -> None:
    held = table.get(key)
    if held is conn:
        del table[key]
    elif isinstance(held, dict) and held.get(own) is conn:
        del held[own]
        if len(held) == 1:
            table[key] = next(iter(held.values()))


def _filed(table: dict, key) -> "tuple | Iterable":
    """The SAs filed under ``key``, oldest first."""
    held = table.get(key)
    return () if held is None else held.values() if isinstance(held, dict) else (held,)


class _PendingResume:
    """An IKE_SESSION_RESUME request whose ticket the store is checking."""

    __slots__ = ("msg", "remote", "local", "config", "opened", "deadline", "key")

    def __init__(self, msg, remote, local, config, opened, deadline, key) -> None:
        self.msg, self.remote, self.local, self.config = msg, remote, local, config
        self.opened, self.deadline, self.key = opened, deadline, key


class Classification(enum.Enum):
    IKE = "ike"
    ESP = "esp"                 # ESP-in-UDP (RFC 3948): hand to the ESP data path
    KEEPALIVE = "keepalive"     # 1-octet 0xFF NAT keepalive
    DROPPED = "dropped"


class IkeEndpoint:
    def __init__(self, config: IkeConfig | None = None, *, rng: Callable[[int], bytes], now: float,
                 natt_port: int = 4500, cookie_threshold: int | None = None,
                 cookie_secret_lifetime: float = 60.0,
                 select_config: Callable[[Address, Address], IkeConfig | None] | None = None,
                 max_ticket_checks: int = 1000, ticket_check_timeout: float = 5.0,
                 limits: "EndpointLimits | None" = None) -> None:
        """``config`` answers new peers (or ``select_config(remote, local)`` picks
        one per peer; None refuses). ``cookie_threshold``: half-open SAs above
        which IKE_SA_INIT requests must carry a valid cookie (default: the
        config's). ``max_ticket_checks``: resumption requests waiting on the
        store at once (more get TICKET_NACK); ``ticket_check_timeout``: how
        long one waits before it gets TICKET_NACK. ``limits``: the caps on what
        peers can make the endpoint hold (docs/hardening.md)."""
        self.limits = limits or EndpointLimits.around(cookie_threshold if cookie_threshold is not None
                                                      else getattr(config, "cookie_threshold", 100))
        self.reassembly_budget = ReassemblyBudget(self.limits.max_reassembly_bytes,
                                                  self.limits.max_reassembly_bytes_per_sa)
        self._half_open_by_host: dict[str, int] = {}
        self.rng = rng
        self.natt_port = natt_port
        self.select_config = select_config or (lambda remote, local: config)
        self.cookie_threshold = (cookie_threshold if cookie_threshold is not None else
                                 config.cookie_threshold if config is not None else 100)
        self.limits.check_cookie_threshold(self.cookie_threshold)
        self.cookie_secret_lifetime = cookie_secret_lifetime
        self._secrets = [(0, rng(32))]          # (version, secret): newest first, one old kept
        self._secret_rotated_at = now
        self.connections: dict[bytes, IkeConnection] = {}   # by our own SPI
        self._half_open: dict[tuple, IkeConnection] = {}    # responder SAs by (SPIi, remote)
        self.leases: set = set()
        self._peer_sas: dict = {}       # authenticated peer identity -> its live IKE SA(s) (RFC 7791 §8)
        self.inbound_spis: set[bytes] = set()     # of every installed Child SA: new ones avoid them
        # the application drains these after every input; one that does not loses
        # the oldest (counted) rather than memory
        self._events: deque = deque(maxlen=self.limits.max_pending_events)
        self._datagrams: deque = deque()
        self.timers = TimerQueue()
        self._touch = self.timers.touch
        # the callbacks every SA gets, bound once and shared: per SA, a bound method
        # costs 64 bytes and a dict of them 120 more (IkeConnection.hooks)
        self._hooks = MappingProxyType({"peer_sas": self._sas_of_peer,    # the clone responder's accounting
                                        "retire_resumed": self._retire_resumed})
        # established SAs by (our identity, the peer's identity) and by the peer's host,
        # for INITIAL_CONTACT and "already have an SA with it" without a table walk
        # (an SA alone is filed as itself: _file)
        self._by_identity: dict[tuple, "IkeConnection | dict[bytes, IkeConnection]"] = {}
        self._by_host: dict[str, "IkeConnection | dict[bytes, IkeConnection]"] = {}
        self.stats = {"dropped": 0, "cookies_sent": 0, "cookie_rejects": 0, "init_refused": 0,
                      "half_open_refused": 0, "identity_refused": 0, "events_dropped": 0,
                      "resumed": 0, "ticket_nacks": 0, "ticket_replays": 0, "ticket_store_errors": 0}
        # resumption, gateway side: checks waiting on the store (token -> request)
        self.max_ticket_checks = max_ticket_checks
        self.ticket_check_timeout = ticket_check_timeout
        self._pending_checks: dict[int, _PendingResume] = {}
        self._pending_keys: dict[tuple, int] = {}          # (SPIi, remote) -> token
        self._next_token = 1
        # the I/O layer drains these after every input; if it stops, the oldest go
        # (a lost check times out into TICKET_NACK) rather than memory
        self._store_ops: deque = deque(maxlen=max(64, 4 * max_ticket_checks))
        self._ticket_holders: dict[bytes, IkeConnection] = {}   # ticket id -> the SA it was issued on
        # resumption, client side: the newest ticket per connection name, and its SA
        self.tickets: dict[str, ClientTicket] = {}
        self._ticket_sa: dict[str, IkeConnection] = {}

    # ---------------------------------------------------------------- commands --
    def connect(self, config: IkeConfig, local: Address, remote: Address, now: float,
                child: str | None = None, remote_natt_port: int | None = None) -> IkeConnection:
        """Start an IKE SA; ``remote_natt_port``: where the peer listens for NAT-T
        (default: our own NAT-T port)."""
        conn = IkeConnection(config, initiator=True, local=local, remote=remote, rng=self.rng, now=now,
                             natt_port=self.natt_port, remote_natt_port=remote_natt_port)
        if self._has_sa_with(config, remote):
            conn.exchange_state["no_initial_contact"] = True
        self._adopt(conn)
        conn.initiate(now, child)
        self._collect(conn, now)
        return conn

    def clone(self, conn: IkeConnection, now: float) -> None:
        """Clone ``conn`` (RFC 7791); the clone arrives as ``IkeSaCloned`` and is
        routed by this endpoint like any other IKE SA."""
        conn.clone(now)
        self._collect(conn, now)

    def resume(self, config: IkeConfig, local: Address, remote: Address, now: float,
               child: str | None = None, remote_natt_port: int | None = None,
               ticket: ClientTicket | None = None) -> IkeConnection:
        """Start an IKE SA with IKE_SESSION_RESUME, using ``ticket`` or the one kept
        for ``config.name``; the ticket is spent (forgotten) here, single use. With
        no usable ticket, or when the resumption fails, the same connection runs a
        full handshake (a ResumeFailed event says so)."""
        if ticket is None:
            ticket = self.tickets.get(config.name)
        if ticket is not None and self.tickets.get(config.name) is ticket:
            del self.tickets[config.name]
            self._ticket_sa.pop(config.name, None)
        conn = IkeConnection(config, initiator=True, local=local, remote=remote, rng=self.rng, now=now,
                             natt_port=self.natt_port, remote_natt_port=remote_natt_port)
        if self._has_sa_with(config, remote):
            conn.exchange_state["no_initial_contact"] = True
        self._adopt(conn)
        if ticket is not None and ticket.usable(config.wall_time(now)):
            conn.resume(now, ticket, child)
        else:
            conn.emit(ev.ResumeFailed("no usable ticket", conn.spi_i, conn.spi_i))
            conn.initiate(now, child)
        self._collect(conn, now)
        return conn

    def _has_sa_with(self, config: IkeConfig, remote: Address) -> bool:
        """An established SA with this peer: by identity when the config names
        one, else by address. A new SA to it must not say INITIAL_CONTACT."""
        if config.remote_id is not None:
            candidates = _filed(self._by_identity, (config.local_id, config.remote_id))
        else:
            candidates = _filed(self._by_host, remote[0])
        return any(c.state in (State.ESTABLISHED, State.REKEYED) for c in candidates)

    def _index(self, conn: IkeConnection) -> None:
        """File an authenticated SA under its identities and its peer's host (idempotent)."""
        if conn.remote_id is None or conn.state is State.DELETED:
            return
        own = conn.spi_i if conn.initiator else conn.spi_r
        key = (conn.config.local_id, conn.remote_id)
        conn.index_keys = (key, conn.remote[0])
        _file(self._by_identity, key, own, conn)
        _file(self._by_host, conn.remote[0], own, conn)

    def _unindex(self, conn: IkeConnection, own: bytes) -> None:
        keys = conn.index_keys
        if keys is None:
            return
        _unfile(self._by_identity, keys[0], own, conn)
        _unfile(self._by_host, keys[1], own, conn)

    def _adopt(self, conn: IkeConnection) -> None:
        conn.leases = self.leases
        conn.inbound_spis = self.inbound_spis
        # IKE_AUTH calls this once the peer is authenticated, before any address is leased
        conn.exchange_state["initial_contact"] = self._initial_contact
        conn.hooks = self._hooks
        conn.timers_changed = self._touch
        conn.reassembly_budget = self.reassembly_budget
        own = conn.spi_i if conn.initiator else conn.spi_r
        self.connections[own] = conn
        self._index(conn)
        self.timers.touch(conn)

    @property
    def half_open(self) -> int:
        """Responder state unauthenticated peers hold: half-open SAs and resumption
        requests waiting on the ticket store; cookies engage above the threshold."""
        return len(self._half_open) + len(self._pending_checks)

    # ------------------------------------------------------------------ input --
    def receive_datagram(self, data: bytes, remote: Address, local: Address, now: float) -> Classification:
        remote, local = tuple(remote), tuple(local)
        if local[1] == self.natt_port:
            if data == b"\xff":
                return Classification.KEEPALIVE
            if len(data) < 4:
                self.stats["dropped"] += 1
                return Classification.DROPPED
            if data[:4] != NON_ESP_MARKER:
                return Classification.ESP
            data = data[4:]
        try:
            msg = parse_message(data)
        except ParseError as exc:
            log.debug("dropping datagram from %s: %s", remote, exc)
            self.stats["dropped"] += 1
            return Classification.DROPPED
        self.receive_message(msg, remote, local, now)
        return Classification.IKE

    def receive_message(self, msg: Message, remote: Address, local: Address, now: float) -> None:
        xchg, flags = msg.exchange_type, msg.flags
        if xchg in _INITIAL_EXCHANGES and msg.spi_r == _ZERO_SPI and not flags & _R_FLAG:
            if xchg == _IKE_SA_INIT:
                self._init_request(msg, remote, local, now)
            else:
                self._resume_request(msg, remote, local, now)
            return
        # our SPI is SPIr when the sender is the original initiator, else SPIi
        own = msg.spi_r if flags & _I_FLAG else msg.spi_i
        conn = self.connections.get(own)
        if conn is None:
            self.stats["dropped"] += 1
            return
        conn.receive_message(msg, remote, now, local)
        self._collect(conn, now)

    def _forget_half_open(self, conn: IkeConnection) -> None:
        state = conn.exchange_state
        key = state.get("half_open_key")
        sa_state = conn.state
        if key is not None and sa_state is not _INIT_DONE:
            if self._half_open.get(key) is conn:
                del self._half_open[key]
                self._count_host(key[1][0], -1)
            del state["half_open_key"]
        if sa_state is not _INIT_DONE:
            state.pop("init_request_versions", None)
        if sa_state is _ESTABLISHED and "initial_contact" in state:
            # IKE_AUTH is over: the hook and the key are of no more use (memory per SA)
            del state["initial_contact"]
            if not state:
                conn.exchange_state = {}

    def _over_half_open_caps(self, remote: Address) -> bool:
        """Past a cap, a new initiator is refused before any key exchange, with no
        answer (an answer would reflect traffic to a spoofed source) and no state."""
        limits = self.limits
        if (self.half_open >= limits.max_half_open
                or self._half_open_by_host.get(remote[0], 0) >= limits.max_half_open_per_host):
            self.stats["half_open_refused"] += 1
            unauthenticated_log.info("half-open cap", "IKE_SA_INIT from %s refused: half-open "
                                     "SAs at their cap (%d in all, %d from this host)", remote[0],
                                     self.half_open, self._half_open_by_host.get(remote[0], 0))
            return True
        return False

    def _count_host(self, host: str, delta: int) -> None:
        count = self._half_open_by_host.get(host, 0) + delta
        if count > 0:
            self._half_open_by_host[host] = count
        else:
            self._half_open_by_host.pop(host, None)

    def _hold_half_open(self, conn: IkeConnection, key: tuple, now: float) -> None:
        self._adopt(conn)
        self._half_open[key] = conn
        self._count_host(key[1][0], +1)
        conn.exchange_state["half_open_key"] = key
        if self.limits.half_open_lifetime is not None:
            conn.expire_at = now + self.limits.half_open_lifetime

    @staticmethod
    def _same_offer(conn: IkeConnection, msg: Message) -> bool:
        """Whether ``msg`` is another version of the request ``conn`` answered: the
        same Ni and KEi, so that only a COOKIE differs (RFC 7296 §2.6 retry)."""
        nonce, ke = msg.find(40), msg.find(34)
        if nonce is None or ke is None or nonce.data != conn.ni:
            return False
        try:
            first = parse_message(conn.init_request)
        except ParseError:
            return False
        old_ke = first.find(34)
        return old_ke is not None and old_ke.data == ke.data

    def _note_init_version(self, conn: IkeConnection, msg: Message, remote: Address) -> Message:
        """The initiator sent a newer version of its IKE_SA_INIT (a COOKIE retry)
        after an older copy made this half-open SA: it will sign the newer one, so
        IKE_AUTH must be checked over it too. A cookie we cannot vouch for is not
        kept (at most two versions are)."""
        if msg.notify(NotifyType.COOKIE) is not None and not self._cookie_valid(msg, remote):
            return msg
        versions = conn.exchange_state.setdefault("init_request_versions", [])
        if msg.raw not in versions and len(versions) < 2:
            versions.append(msg.raw)
        # answer it like a retransmission of the version the SA was made from
        return dataclasses.replace(msg, raw=conn.init_request)

    def _init_request(self, msg: Message, remote: Address, local: Address, now: float) -> None:
        existing = self._half_open.get((msg.spi_i, remote))
        if existing is not None:
            if msg.raw != existing.init_request and self._same_offer(existing, msg):
                msg = self._note_init_version(existing, msg, remote)
            existing.receive_message(msg, remote, now)   # a retransmission: the cached reply
            self._collect(existing, now)
            return
        config = self.select_config(remote, local)
        if config is None:
            self.stats["init_refused"] += 1
            return
        self._rotate_secret(now)
        if self.half_open >= self.cookie_threshold:
            if not self._cookie_valid(msg, remote):
                self.stats["cookies_sent"] += 1
                cookie = self._cookie(msg, remote, self._secrets[0])
                self._send(ike_sa_init.stateless_reply(msg, NotifyType.COOKIE, cookie), remote, local)
                return
        if self._over_half_open_caps(remote):
            return
        conn, reply = ike_sa_init.respond(config, msg, local=local, remote=remote, rng=self.rng, now=now,
                                          natt_port=self.natt_port)
        if conn is None:
            self.stats["init_refused"] += 1
            if reply:
                self._send(reply, remote, local)
            return
        self._hold_half_open(conn, (msg.spi_i, remote), now)
        self._collect(conn, now)

    # -------------------------------------------------------------- resumption --
    def _resume_request(self, msg: Message, remote: Address, local: Address, now: float) -> None:
        """IKE_SESSION_RESUME (RFC 5723 §4.3.2): cheap checks first (cookie, syntax,
        the ticket's MAC), then a pending store check; nothing else is kept."""
        key = (msg.spi_i, remote)
        existing = self._half_open.get(key)
        if existing is not None:
            existing.receive_message(msg, remote, now)   # a retransmission: the cached reply
            self._collect(existing, now)
            return
        if key in self._pending_keys:
            return                                        # a retransmission while the store checks
        config = self.select_config(remote, local)
        if config is None:
            self.stats["init_refused"] += 1
            return
        self._rotate_secret(now)
        if self.half_open >= self.cookie_threshold and not self._cookie_valid(msg, remote):
            self.stats["cookies_sent"] += 1
            cookie = self._cookie(msg, remote, self._secrets[0])
            self._send(resumption.stateless_reply(msg, NotifyType.COOKIE, cookie), remote, local)
            return
        if self._over_half_open_caps(remote):
            return
        try:
            ticket = resumption.ticket_of(msg)
            if not config.resumption or config.ticket_authority is None:
                raise resumption.ResumptionRefused("resumption is not offered here")
            if len(self._pending_checks) >= self.max_ticket_checks:
                raise resumption.ResumptionRefused("too many ticket checks in flight")
            wall = config.wall_time(now)
            opened = config.ticket_authority.open(ticket, wall)
            if opened.state is not None:
                resumption.check_ticket_state(config, opened.state, wall)
        except resumption.ResumptionRefused as exc:
            return self._nack(msg, remote, local, str(exc))
        except ParseError as exc:
            unauthenticated_log.info("malformed IKE_SESSION_RESUME",
                                     "malformed IKE_SESSION_RESUME from %s: %s", remote, exc)
            self.stats["dropped"] += 1
            if exc.notify_type is not None:
                self._send(resumption.stateless_reply(msg, exc.notify_type, exc.notify_data), remote, local)
            return
        except (IkeError, ValueError) as exc:     # the authority's TicketError family
            return self._nack(msg, remote, local, f"ticket refused: {exc}")
        token = self._next_token
        self._next_token += 1
        if opened.state is not None:
            check = TicketCheck(token, spend_key=opened.spend_key, ttl=int(opened.ttl))
        else:
            check = TicketCheck(token, take_key=opened.take_key)
        self._pending_checks[token] = _PendingResume(msg, remote, local, config, opened,
                                                     now + self.ticket_check_timeout, key)
        self._pending_keys[key] = token
        self._store_ops.append(check)

    def ticket_store_ops(self) -> list:
        """Store work for the I/O layer, oldest first: ``TicketCheck`` (answer each with
        ``ticket_checked``) and ``TicketPut`` (no answer)."""
        out = list(self._store_ops)
        self._store_ops.clear()
        return out

    def ticket_checked(self, token: int, result, now: float) -> None:
        """The store's answer to ``TicketCheck(token)``: True/False (by value: the
        spend key was set / existed already), bytes/None (by reference: what GETDEL
        returned), or an exception (the store failed: TICKET_NACK). A late or
        unknown token is ignored."""
        pending = self._pending_checks.pop(token, None)
        if pending is None:
            return
        self._pending_keys.pop(pending.key, None)
        msg, remote, local, config = pending.msg, pending.remote, pending.local, pending.config
        if isinstance(result, BaseException):
            self.stats["ticket_store_errors"] += 1
            return self._nack(msg, remote, local, f"ticket store failed: {result!r}")
        state = pending.opened.state
        if state is None:                              # by reference: the store held the state
            if not isinstance(result, (bytes, bytearray)):
                self.stats["ticket_replays"] += 1
                return self._nack(msg, remote, local, "unknown or spent ticket")
            wall = config.wall_time(now)
            try:
                state = config.ticket_authority.open_referenced(bytes(result), wall,
                                                                ticket_id=pending.opened.ticket_id)
                resumption.check_ticket_state(config, state, wall)
            except (IkeError, ValueError) as exc:
                return self._nack(msg, remote, local, f"ticket refused: {exc}")
        elif result is not True:
            self.stats["ticket_replays"] += 1
            return self._nack(msg, remote, local, "ticket already used")
        try:
            conn = resumption.respond(config, msg, state, local=local, remote=remote, rng=self.rng, now=now,
                                      natt_port=self.natt_port)
        except (IkeError, ValueError) as exc:      # e.g. a suite the C core cannot key
            return self._nack(msg, remote, local, f"cannot resume: {exc}")
        self.stats["resumed"] += 1
        self._hold_half_open(conn, pending.key, now)
        self._collect(conn, now)

    def _nack(self, msg: Message, remote: Address, local: Address, why: str) -> None:
        unauthenticated_log.info("IKE_SESSION_RESUME refused", "IKE_SESSION_RESUME from %s refused: %s",
                                 remote, why)
        self.stats["ticket_nacks"] += 1
        self._send(resumption.nack(msg), remote, local)

    def _expire_ticket_checks(self, now: float) -> None:
        """Checks the store did not answer in time: TICKET_NACK (the client falls back)."""
        while self._pending_checks:
            token, pending = next(iter(self._pending_checks.items()))
            if pending.deadline > now:
                break
            self.ticket_checked(token, TimeoutError("no answer from the ticket store"), now)

    def _retire_resumed(self, conn: IkeConnection, ticket_id: bytes, now: float) -> None:
        """A session resumed with ``ticket_id`` is up: the SA the ticket was issued on,
        if this node still holds it, goes without a Delete (RFC 5723 §4.3.4)."""
        old = self._ticket_holders.pop(ticket_id, None)
        if old is None or old is conn or old.state is _DELETED:
            return
        if log.isEnabledFor(logging.INFO):         # the .name of both costs more than the check
            log.info("%s: replaced by the resumed %s", old.name, conn.name)
        old.terminate("replaced by a resumed session", now)
        self._collect(old, now)

    # -- what the endpoint does with each event type (_EVENT_WORK) before the
    # application sees it; a True return means the SA is over its identity cap

    def _on_established(self, conn: IkeConnection, event: ev.Event, now: float | None) -> bool:
        self._account(conn, event)
        self._index(conn)
        return self._over_identity_cap(conn)

    def _on_rekeyed_or_cloned(self, conn: IkeConnection, event: ev.Event, now: float | None) -> None:
        self._account(conn, event)
        new = event.connection
        if new is None:
            return
        self._adopt(new)
        self._collect(new, now)
        if type(event) is ev.IkeSaRekeyed:
            # the tickets of the old SA now belong to the one that replaced it
            for name, sa in list(self._ticket_sa.items()):
                if sa is conn:
                    self._ticket_sa[name] = new
            ids = conn.exchange_state.pop("ticket_ids", [])
            new.exchange_state.setdefault("ticket_ids", []).extend(ids)
            for tid in ids:
                if self._ticket_holders.get(tid) is conn:
                    self._ticket_holders[tid] = new

    def _on_resume_failed(self, conn: IkeConnection, event: ev.Event, now: float | None) -> None:
        # the fallback runs under a new SPIi
        if self.connections.get(event.old_spi_i) is conn:
            del self.connections[event.old_spi_i]
        self.connections[conn.spi_i] = conn

    # Bookkeeping of tickets: the client keeps the newest per connection name (and
    # forgets it with an SA deleted by either side, RFC 5723 §6.2); the gateway
    # remembers which SA each ticket came from.

    def _on_ticket_received(self, conn: IkeConnection, event: ev.Event, now: float | None) -> None:
        name = conn.config.name
        self.tickets[name] = event.ticket
        self._ticket_sa[name] = conn

    def _on_ticket_issued(self, conn: IkeConnection, event: ev.Event, now: float | None) -> None:
        if event.store_put is not None:
            self._store_ops.append(event.store_put)
        ids = conn.exchange_state.setdefault("ticket_ids", [])
        ids.append(event.ticket_id)
        self._ticket_holders[event.ticket_id] = conn
        while len(ids) > resumption.MAX_TICKET_IDS_PER_SA:
            self._ticket_holders.pop(ids.pop(0), None)

    def _on_ike_sa_deleted(self, conn: IkeConnection, event: ev.Event, now: float | None) -> None:
        name = conn.config.name
        if self._ticket_sa.get(name) is conn and event.reason not in KEEP_TICKET_REASONS:
            del self._ticket_sa[name]
            self.tickets.pop(name, None)

    def _on_child_installed(self, conn: IkeConnection, event: ev.Event, now: float | None) -> None:
        self.inbound_spis.add(event.child.spi_in)

    def _on_child_rekeyed(self, conn: IkeConnection, event: ev.Event, now: float | None) -> None:
        self.inbound_spis.add(event.new.spi_in)

    def _on_child_deleted(self, conn: IkeConnection, event: ev.Event, now: float | None) -> None:
        self.inbound_spis.discard(event.child.spi_in)

    def _forget_ticket_holder(self, conn: IkeConnection) -> None:
        for tid in conn.exchange_state.pop("ticket_ids", ()):
            if self._ticket_holders.get(tid) is conn:
                del self._ticket_holders[tid]

    # ---------------------------------------------------------------- cookies --
    def _rotate_secret(self, now: float) -> None:
        """A new secret every ``cookie_secret_lifetime``; cookies made with the
        previous one stay good for one more lifetime, older ones never."""
        generations = int((now - self._secret_rotated_at) // self.cookie_secret_lifetime)
        if generations <= 0:
            return
        for _ in range(min(generations, 2)):
            self.rotate_cookie_secret()
        self._secret_rotated_at += generations * self.cookie_secret_lifetime

    def rotate_cookie_secret(self) -> None:
        """Start using a new cookie secret now (the current one becomes the previous)."""
        version = (self._secrets[0][0] + 1) % 256
        self._secrets = [(version, self.rng(32)), self._secrets[0]]

    def _cookie(self, msg: Message, remote: Address, secret: tuple[int, bytes]) -> bytes:
        """<version> | HMAC-SHA-256(secret, Ni | IPi | SPIi)[:16] (RFC 7296 §2.6's suggestion, keyed)."""
        nonce = msg.find(40)
        material = (nonce.data if nonce else b"") + str(remote[0]).encode() + msg.spi_i
        return bytes([secret[0]]) + hmac.new(secret[1], material, hashlib.sha256).digest()[:16]

    def _cookie_valid(self, msg: Message, remote: Address) -> bool:
        n = msg.notify(NotifyType.COOKIE)
        if n is None or len(n.data) != COOKIE_VERSION_BYTES + 16:
            return False
        for secret in self._secrets:
            if secret[0] == n.data[0] and hmac.compare_digest(n.data, self._cookie(msg, remote, secret)):
                return True
        self.stats["cookie_rejects"] += 1
        return False

    # ----------------------------------------------------------------- timers --
    def handle_timer(self, now: float) -> None:
        """Run the timers of the SAs that are due, and only those (and time out
        resumption requests the ticket store did not answer)."""
        self._expire_ticket_checks(now)
        for conn in self.timers.pop_due(now):
            conn.handle_timer(now)
            self._collect(conn, now)

    def get_timer(self) -> float | None:
        """The earliest deadline of any SA (O(1) plus the SAs changed since the last
        call), or of a resumption request waiting on the ticket store."""
        t = self.timers.next_deadline()
        if self._pending_checks:           # insertion order is deadline order
            check = next(iter(self._pending_checks.values())).deadline
            t = check if t is None else min(t, check)
        return t

    # ----------------------------------------------------------------- output --
    def _send(self, data: bytes, remote: Address, local: Address) -> None:
        if local[1] == self.natt_port:
            data = NON_ESP_MARKER + data
        self._datagrams.append((data, remote, local))

    def _over_identity_cap(self, conn: IkeConnection) -> bool:
        """A newly authenticated responder SA whose peer identity already holds
        ``max_sas_per_identity`` established SAs with us: it is the one to go."""
        cap = self.limits.max_sas_per_identity
        if not cap or conn.initiator or conn.index_keys is None:
            return False
        held = sum(1 for c in _filed(self._by_identity, conn.index_keys[0])
                   if c is not conn and c.state in (State.ESTABLISHED, State.REKEYED))
        return held >= cap

    def _collect(self, conn: IkeConnection, now: float | None = None) -> None:
        # runs after every input and command (several times a handshake): the output
        # lists are looked at before they are copied, and each event type's
        # bookkeeping is one dict lookup (_EVENT_WORK) instead of a chain of isinstance
        over_cap = False
        if conn._spawned:
            for new in conn.spawned_connections():   # SAs a rekey made take messages at once
                self._adopt(new)
                self._collect(new, now)
        if conn._datagrams:
            for data, remote, local in conn.datagrams_to_send():
                self._send(data, remote, local)
        events, work_for = self._events, _EVENT_WORK
        while conn._events:           # (work on one event may add more)
            for event in conn.take_events():
                work = work_for.get(type(event))
                if work is not None and work(self, conn, event, now):
                    over_cap = True
                if len(events) == events.maxlen:
                    self.stats["events_dropped"] += 1
                events.append((conn, event))
        self._forget_half_open(conn)
        if over_cap and now is not None:
            self.stats["identity_refused"] += 1
            log.warning("%s: deleted: its identity already holds %d IKE SAs (max_sas_per_identity)",
                        conn.name, self.limits.max_sas_per_identity)
            conn.delete(now, reason="too many IKE SAs for this identity")
            self._collect(conn, now)
            return
        if conn.state is not _DELETED:
            self.timers.touch(conn)
            conn.idle()
        else:
            if conn.reassembler is not None:
                conn.reassembler.clear()
            self.timers.forget(conn)           # a dead SA has no timers: nothing keeps it
            # its keys go now, not when the last reference to the SA does (a stale timer
            # entry, an application holding the first SA of a rekey chain): the C
            # objects are freed, and wiped, as these were their only references
            conn.keys = None
            conn.sk_in = conn.sk_out = None
            own = conn.spi_i if conn.initiator else conn.spi_r
            self._unindex(conn, own)
            if self.connections.get(own) is conn:
                del self.connections[own]
            self._forget_ticket_holder(conn)
            self._uncount_peer_sa(conn)

    # ------------------------------------- IKE SAs per authenticated peer (RFC 7791 §8) --
    # Counted from the moment an SA is authenticated (IKE_AUTH, or made by a rekey or
    # clone of an authenticated one) until it is replaced or gone: O(1) per event.

    def ike_sas_of(self, peer_id) -> int:
        """How many live IKE SAs (originals, clones, rekeys of them) the peer
        authenticated as ``peer_id`` holds with this endpoint."""
        return len(self._peers_sas(peer_id))

    def _peers_sas(self, peer_id) -> "tuple | set":
        held = self._peer_sas.get(peer_id)
        return () if held is None else held if isinstance(held, set) else (held,)

    def _sas_of_peer(self, conn: IkeConnection):
        return self._peers_sas(conn.remote_id)

    def _account(self, conn: IkeConnection, event: ev.Event) -> None:
        if type(event) is ev.IkeSaEstablished:
            self._count_peer_sa(conn)
        elif event.connection is not None:          # IkeSaRekeyed / IkeSaCloned
            if type(event) is ev.IkeSaRekeyed:
                self._uncount_peer_sa(conn)
            self._count_peer_sa(event.connection)

    def _count_peer_sa(self, conn: IkeConnection) -> None:
        if conn.remote_id is not None and conn.state is not State.DELETED:
            held = self._peer_sas.get(conn.remote_id)
            if held is None or held is conn:
                self._peer_sas[conn.remote_id] = conn        # alone: no set of one
            elif isinstance(held, set):
                held.add(conn)
            else:
                self._peer_sas[conn.remote_id] = {held, conn}

    def _uncount_peer_sa(self, conn: IkeConnection) -> None:
        sas = self._peers_sas(conn.remote_id)
        if conn not in sas:
            return
        if isinstance(sas, tuple):
            del self._peer_sas[conn.remote_id]
            return
        sas.discard(conn)
        if len(sas) == 1:
            self._peer_sas[conn.remote_id] = next(iter(sas))
        if conn.assigned_ip is not None and any(o.assigned_ip == conn.assigned_ip for o in sas):
            # a clone and its parent share the peer's pool address: it stays leased
            self.leases.add(conn.assigned_ip)

    def _initial_contact(self, conn: IkeConnection, now: float) -> None:
        """The peer of ``conn`` says it holds no other SA with us (it restarted):
        forget, without a Delete nobody would answer, every older SA between
        the same two identities (RFC 7296 §2.4)."""
        for other in list(_filed(self._by_identity, (conn.config.local_id, conn.remote_id))):
            if other is conn or other.state is State.DELETED:
                continue
            if log.isEnabledFor(logging.INFO):     # the .name of both costs more than the check
                log.info("%s: replaced by %s (INITIAL_CONTACT)", other.name, conn.name)
            other.terminate("peer restarted (INITIAL_CONTACT)", now)
            self._collect(other, now)

    def datagrams_to_send(self) -> list[tuple[bytes, Address, Address]]:
        """(datagram, remote, local); the non-ESP marker is already in place on the NAT-T port."""
        out = list(self._datagrams)
        self._datagrams.clear()
        return out

    def next_event(self) -> tuple[IkeConnection, ev.Event] | None:
        return self._events.popleft() if self._events else None

    def collect(self, conn: IkeConnection, now: float | None = None) -> None:
        """Gather the output of one connection a caller drove directly (a command)."""
        self._collect(conn, now)

    def collect_all(self) -> None:
        """Gather output a caller produced by driving many connections directly
        (shutdown); a single command should use :meth:`collect`."""
        for conn in list(self.connections.values()):
            self._collect(conn)


# event type -> the endpoint's work for it (IkeEndpoint._collect); the other types
# only go to the application
_EVENT_WORK = {
    ev.IkeSaEstablished: IkeEndpoint._on_established,
    ev.IkeSaRekeyed: IkeEndpoint._on_rekeyed_or_cloned,
    ev.IkeSaCloned: IkeEndpoint._on_rekeyed_or_cloned,
    ev.ResumeFailed: IkeEndpoint._on_resume_failed,
    ev.TicketReceived: IkeEndpoint._on_ticket_received,
    ev.TicketIssued: IkeEndpoint._on_ticket_issued,
    ev.IkeSaDeleted: IkeEndpoint._on_ike_sa_deleted,
    ev.ChildSaInstalled: IkeEndpoint._on_child_installed,
    ev.ChildSaRekeyed: IkeEndpoint._on_child_rekeyed,
    ev.ChildSaDeleted: IkeEndpoint._on_child_deleted,
}


class TimerQueue:
    """Deadlines of many IKE SAs: a heap keyed by deadline, with lazy cancellation.

    ``touch(conn)`` marks an SA whose timers may have changed; its deadline is
    recomputed (``conn.get_timer()``, which is per-SA work) at the next
    ``next_deadline()`` or ``pop_due()``. A heap entry stays valid while it
    matches the deadline recorded for its SA; others are dropped when they reach
    the top, and the heap is rebuilt when stale entries outnumber live ones.
    ``sas_touched`` counts every per-SA deadline computation: the work per
    datagram, which must not grow with the number of SAs held.
    """

    __slots__ = ("_heap", "_scheduled", "_dirty", "_seq", "sas_touched")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, IkeConnection]] = []
        self._scheduled: dict[IkeConnection, float] = {}    # SA -> the deadline its live entry has
        self._dirty: dict[IkeConnection, None] = {}         # insertion-ordered set
        self._seq = itertools.count()
        self.sas_touched = 0

    def __len__(self) -> int:
        return len(self._scheduled)

    def touch(self, conn: IkeConnection) -> None:
        self._dirty[conn] = None

    def forget(self, conn: IkeConnection) -> None:
        """Drop every reference to ``conn`` (a deleted SA); its heap entry, if
        any, is stale from now on and goes when it reaches the top."""
        self._dirty.pop(conn, None)
        self._scheduled.pop(conn, None)

    def promised(self, conn: IkeConnection) -> float | None:
        """When the queue will next run ``conn``'s timers: -inf while it waits to
        be recomputed, None when it is not scheduled at all (a check for tests)."""
        return float("-inf") if conn in self._dirty else self._scheduled.get(conn)

    def _refresh(self) -> None:
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, {}
        for conn in dirty:
            self.sas_touched += 1
            deadline = conn.get_timer()
            if deadline is None:
                self._scheduled.pop(conn, None)
            elif self._scheduled.get(conn) != deadline:
                self._scheduled[conn] = deadline
                heapq.heappush(self._heap, (deadline, next(self._seq), conn))
        if len(self._heap) > 2 * len(self._scheduled) + 64:
            self._heap = [(d, next(self._seq), c) for c, d in self._scheduled.items()]
            heapq.heapify(self._heap)

    def _live_top(self) -> tuple[float, int, IkeConnection] | None:
        heap, scheduled = self._heap, self._scheduled
        while heap:
            top = heap[0]
            if scheduled.get(top[2]) == top[0]:
                return top
            heapq.heappop(heap)
        return None

    def next_deadline(self) -> float | None:
        self._refresh()
        top = self._live_top()
        return top[0] if top is not None else None

    def pop_due(self, now: float) -> list[IkeConnection]:
        """The SAs whose deadline has come, each once, earliest first; they count
        as changed (their handler reschedules them)."""
        self._refresh()
        due = []
        while (top := self._live_top()) is not None and top[0] <= now:
            heapq.heappop(self._heap)
            conn = top[2]
            del self._scheduled[conn]
            self._dirty[conn] = None
            due.append(conn)
        return due


__all__ = ["IkeEndpoint", "TimerQueue", "Classification", "NON_ESP_MARKER"]
