"""The IKE SA: one connection object per IKE SA, sans-I/O.

Inputs: ``receive_message`` / ``receive_datagram`` (with ``now``),
``handle_timer(now)`` and commands (``initiate``, ``create_child_sa``,
``rekey_child_sa``, ``rekey``, ``delete_child_sa``, ``delete``,
``check_liveness``, ``note_traffic``). Outputs: ``datagrams_to_send()``,
``get_timer()``, ``next_event()``, ``spawned_connections()`` (IKE SAs a rekey
made, for the endpoint to route to). No sockets, clock or global RNG: time
and randomness are passed in.

Only this module touches message IDs, retransmission, the response cache and
the window (RFC 7296 §2.1-§2.3); each exchange lives in
``ikecore.protocol.exchanges`` as an initiator task (build a request, take its
response) and a responder handler. Which requests a state takes is the
``REQUEST_TABLE``; anything unlisted is answered INVALID_SYNTAX, or dropped
where there is nobody (yet) to answer.
"""
from __future__ import annotations

import enum
import hashlib
import ipaddress
import logging
from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable

from ..crypto import SkCipher
from ..crypto.keyschedule import IkeKeys
from ..errors import IkeError, IntegrityCheckFailed, ParseError, ProtocolError
from . import events as ev
from .child_sa import ChildSa
from .config import IkeConfig
from .constants import ExchangeType, Flags, NotifyType
from .exchanges import responder_for    # the package only: its handlers load on first use
from .fragments import Reassembler, fragment_message, message_budget
from .limits import unauthenticated_log
from .message import Message, encode_message, parse_message
from .negotiation import IkeSuite
from .payloads import NotifyPayload
from .describe import message_summary
from .rules import check_rules

log = logging.getLogger("ikecore.ike")
_INF = float("inf")     # a module global: float("inf") is a call (~170 ns), several per SA

Address = tuple  # (host: str, port: int)
Rng = Callable[[int], bytes]


MAX_MESSAGE_ID = 0xFFFFFFFF
# the exchanges that open an IKE SA in the clear, with SPIr still zero in the request
_INITIAL_EXCHANGES = (ExchangeType.IKE_SA_INIT, ExchangeType.IKE_SESSION_RESUME)
MAX_PEER_WINDOW = 64          # we never keep more of our own requests in flight
_NO_HOOKS = MappingProxyType({})


class State(enum.Enum):
    IDLE = "idle"                     # initiator, nothing sent yet
    INIT_SENT = "init-sent"           # IKE_SA_INIT request out
    INIT_DONE = "init-done"           # keys derived, IKE_AUTH pending (either role)
    ESTABLISHED = "established"
    PENDING = "pending"               # made by an IKE rekey that collided, not yet resolved (§2.8.2)
    REKEYED = "rekeyed"               # replaced by a rekey (or redundant after a collision): only
                                      # its Delete is still expected
    DELETING = "deleting"             # our Delete is out
    DELETED = "deleted"


class Admit(enum.Enum):
    """What becomes of a protected request, by (state, exchange type)."""
    HANDLE = "handle"                 # the exchange's responder answers it
    DROP = "drop"                     # no answer: the peer retransmits or gives up
    REJECT = "reject"                 # answer INVALID_SYNTAX (it passed the ICV, RFC 7296 §3.10.1)
    REJECT_AND_CLOSE = "close"        # answer INVALID_SYNTAX and forget the half-open SA
    TEMPORARY_FAILURE = "busy"        # answer TEMPORARY_FAILURE (RFC 7296 §2.25)


_X = ExchangeType
# IKE_SA_INIT and IKE_SESSION_RESUME requests (SPIr zero, in the clear) never reach a
# connection as new requests: the endpoint answers them (exchanges/ike_sa_init.py,
# exchanges/resumption.py); their retransmissions get the cached response. The
# IKE_AUTH after IKE_SESSION_RESUME is an IKE_AUTH in INIT_DONE like any other.
REQUEST_TABLE: dict[tuple[State, int], Admit] = {
    (State.INIT_DONE, _X.IKE_AUTH): Admit.HANDLE,            # (responder; EAP rounds too)
    (State.ESTABLISHED, _X.CREATE_CHILD_SA): Admit.HANDLE,
    (State.ESTABLISHED, _X.INFORMATIONAL): Admit.HANDLE,
    (State.PENDING, _X.INFORMATIONAL): Admit.HANDLE,         # e.g. the peer deletes it
    (State.PENDING, _X.CREATE_CHILD_SA): Admit.TEMPORARY_FAILURE,
    (State.REKEYED, _X.INFORMATIONAL): Admit.HANDLE,
    (State.REKEYED, _X.CREATE_CHILD_SA): Admit.TEMPORARY_FAILURE,   # §2.25.2
    (State.DELETING, _X.INFORMATIONAL): Admit.HANDLE,
    (State.DELETING, _X.CREATE_CHILD_SA): Admit.TEMPORARY_FAILURE,  # §2.25.2
}


# Plain names for what the per-message path tests: ``State.X`` goes through
# EnumType.__getattr__, about 75 ns a lookup on CPython 3.11.
_IDLE, _INIT_SENT, _INIT_DONE, _ESTABLISHED, _DELETED = (State.IDLE, State.INIT_SENT, State.INIT_DONE,
                                                         State.ESTABLISHED, State.DELETED)
_HANDLE, _DROP, _REJECT_AND_CLOSE, _TEMPORARY_FAILURE = (Admit.HANDLE, Admit.DROP, Admit.REJECT_AND_CLOSE,
                                                         Admit.TEMPORARY_FAILURE)
_I_FLAG, _R_FLAG = int(Flags.INITIATOR), int(Flags.RESPONSE)
_FLAGS_REQUEST = {True: int(Flags.INITIATOR), False: 0}                      # by our role
_FLAGS_RESPONSE = {True: int(Flags.RESPONSE | Flags.INITIATOR), False: int(Flags.RESPONSE)}


def admit_request(state: State, exchange_type: int, *, initiator: bool) -> Admit:
    """The request table; anything unlisted is an error for that state."""
    if state is _IDLE or state is _INIT_SENT or state is _DELETED:
        return _DROP                  # no keys (or none any more): nothing to answer with
    if state is _INIT_DONE:
        if initiator:
            # the responder is established once it sent its IKE_AUTH response; a request
            # of its own may overtake that response: let the peer retransmit it
            return _DROP
        # only IKE_AUTH may follow IKE_SA_INIT (RFC 7296 §1.2); a peer that breaks this
        # has spent Message ID 1, so the half-open SA cannot complete any more
        return REQUEST_TABLE.get((state, exchange_type), Admit.REJECT_AND_CLOSE)
    return REQUEST_TABLE.get((state, exchange_type), Admit.REJECT)


@dataclass
class _Outstanding:
    task: object
    message_id: int
    exchange_type: int
    datagrams: list          # what was sent (fragments, if any): retransmitted as is
    sent_at: float
    deadline: float
    tries: int = 0
    path: tuple | None = None   # (remote, local) it is bound to; None: the SA's addresses at each send


def nat_detection_hash(spi_i: bytes, spi_r: bytes, address: Address) -> bytes:
    """NAT_DETECTION_*_IP data (RFC 7296 §2.23): SHA-1(SPIi | SPIr | IP | port)."""
    ip = ipaddress.ip_address(address[0]).packed
    return hashlib.sha1(spi_i + spi_r + ip + int(address[1]).to_bytes(2, "big")).digest()


class IkeConnection:
    """One IKE SA and its Child SAs."""

    # many of these live at once (100,000 SAs in a gateway): no per-instance dict
    __slots__ = ("config", "initiator", "local", "remote", "rng", "natt_port",
                 "remote_natt_port", "created_at", "spi_i", "spi_r", "state", "suite", "keys",
                 "sk_out", "sk_in", "ni", "nr", "init_request", "init_response", "remote_id",
                 "nat_local", "nat_remote", "peer_fragmentation", "peer_signature_hashes",
                 "peer_mobike", "peer_clone", "peer_window", "virtual_ip", "assigned_ip",
                 "leases", "inbound_spis", "next_request_id", "expected_request_id", "_answered_ahead",
                 "outstanding", "response_cache", "tasks", "deferred", "reassembler",
                 "_window_announced", "children", "rekey_at", "expire_at", "last_heard",
                 "deleted_reason", "_datagrams", "_events", "_spawned", "replaced_by",
                 "rekey_collision", "silent", "exchange_state", "timers_changed", "index_keys",
                 "auth_expires_at", "cloned",
                 "request_path", "reassembly_budget", "hooks",
                 # session resumption (exchanges/resumption.py)
                 "resumed", "ticket_client", "peer_auth_method", "reauth_at")


    def __init__(self, config: IkeConfig, *, initiator: bool, local: Address, remote: Address,
                 rng: Rng, now: float, spi_i: bytes | None = None, spi_r: bytes | None = None,
                 natt_port: int = 4500, remote_natt_port: int | None = None) -> None:
        self.config = config
        self.initiator = initiator            # original initiator of this IKE SA
        self.local = tuple(local)
        self.remote = tuple(remote)
        self.rng = rng
        self.natt_port = natt_port
        # the peer's NAT-T port: 4500 in the field, but a test or a peer may use another
        self.remote_natt_port = remote_natt_port or natt_port
        self.request_path: tuple | None = None   # (remote, local) of the request being answered
        self.created_at = now
        self.spi_i = spi_i if spi_i is not None else self.new_spi()
        self.spi_r = spi_r if spi_r is not None else bytes(8)
        self.state = _IDLE
        # negotiated
        self.suite: IkeSuite | None = None
        self.keys: IkeKeys | None = None
        self.sk_out: SkCipher | None = None
        self.sk_in: SkCipher | None = None
        self.ni = b""
        self.nr = b""
        self.init_request = b""               # RealMessage1 (as sent, last version)
        self.init_response = b""              # RealMessage2
        self.remote_id = None
        self.nat_local = False                # we are behind a NAT
        self.nat_remote = False               # the peer is behind a NAT
        self.peer_fragmentation = False
        self.peer_signature_hashes: "list[int] | tuple" = ()     # RFC 7427, from IKE_SA_INIT
        self.peer_mobike = False
        self.peer_clone = False
        # RFC 7791: the peer's authentication ends here (inherited by rekeys and clones);
        # a clone (or a rekey of one) never outlives it
        self.auth_expires_at = _INF
        self.cloned = False
        self.peer_window = 1                  # raised by the peer's SET_WINDOW_SIZE (RFC 7296 §2.3)
        self.virtual_ip: str | None = None    # assigned to us by the peer
        self.assigned_ip: str | None = None   # we assigned it to the peer
        self.leases: set = set()              # pool addresses in use (the endpoint shares one set)
        self.inbound_spis: set = set()        # installed Child SA SPIs (the endpoint shares one set)
        # message ids and retransmission
        self.next_request_id = 0
        self.expected_request_id = 0          # the lowest request ID not yet answered
        self._answered_ahead: set[int] | None = None   # answered IDs above it (window > 1)
        self.outstanding: dict[int, _Outstanding] = {}
        self.response_cache: dict[int, list] = {}
        self.tasks: list = []                 # short: lists cost a tenth of a deque per SA
        self.deferred: list = []              # (when, task): retries that must wait (§2.25)
        self.reassembler: Reassembler | None = None    # made by the first fragment (RFC 7383)
        self.reassembly_budget = None         # the endpoint's, shared by all its SAs
        self._window_announced = False
        # children and timers
        self.children: dict[bytes, ChildSa] = {}     # by inbound SPI
        self.rekey_at = _INF
        self.expire_at = _INF
        self.last_heard = now
        self.deleted_reason = ""
        # outputs
        self._datagrams: list = []
        self._events: list = []
        self._spawned: "tuple | list" = ()       # a list only while one is waiting
        # IKE rekey (exchanges/ike_rekey.py): the SA that replaced this one; the peer's
        # rekey we answered while ours was in flight; whether the application knows this SA
        self.replaced_by: IkeConnection | None = None
        self.rekey_collision = None
        self.silent = False                   # made by a rekey and not (yet) the survivor
        self.exchange_state: dict = {}      # per-exchange scratch owned by exchanges/*
        self.hooks = _NO_HOOKS              # the endpoint's callbacks, shared by all its SAs
        # session resumption (exchanges/resumption.py, RFC 5723)
        self.resumed = None                   # tickets.ResumedSa: made by IKE_SESSION_RESUME
        self.ticket_client = False            # we asked this SA's peer for tickets
        self.peer_auth_method = 0             # how the peer authenticated (kept in its tickets)
        self.reauth_at = _INF         # re-authentication deadline; bounds tickets
        # set by the endpoint that holds this SA: told when another SA's work moved
        # this one's deadlines (its own input and commands are seen by the endpoint)
        self.timers_changed: Callable[["IkeConnection"], None] | None = None
        self.index_keys: tuple | None = None    # the endpoint's lookup keys for this SA

    # ------------------------------------------------------------------ helpers --
    def new_spi(self) -> bytes:
        while True:
            spi = self.rng(8)
            if any(spi):
                return spi

    @property
    def spis(self) -> tuple[bytes, bytes]:
        return self.spi_i, self.spi_r

    @property
    def established(self) -> bool:
        return self.state is _ESTABLISHED

    @property
    def nat_detected(self) -> bool:
        return self.nat_local or self.nat_remote or self.config.force_encap

    @property
    def rekey_in_flight(self) -> bool:
        """Our IKE SA rekey is out: other exchanges wait for its outcome."""
        return any(getattr(o.task, "rekeys_ike_sa", False) for o in self.outstanding.values())

    def retransmit_span(self) -> float:
        """How long a request is retransmitted before its sender gives up."""
        cfg = self.config
        return cfg.retransmit_timeout * sum(cfg.retransmit_base ** k for k in range(cfg.retransmit_tries + 1))

    def timers_moved(self) -> None:
        """Our deadlines changed outside our own input (a sibling SA's rekey did it)."""
        if self.timers_changed is not None:
            self.timers_changed(self)

    def emit(self, event: ev.Event) -> None:
        self._events.append(event)

    def spawn(self, conn: "IkeConnection") -> None:
        """A new IKE SA this one created (a rekey): the endpoint must route to it at once."""
        self._spawned = [*self._spawned, conn]     # rare: no list kept per SA until then

    def install_keys(self, suite: IkeSuite, keys: IkeKeys) -> None:
        """The SK ciphers for each direction (SK_ei/SK_ai protect the initiator's messages)."""
        self.suite, self.keys = suite, keys
        integ = suite.integ_id
        i_cipher = SkCipher(suite.encr_id, keys.sk_ei, integ, keys.sk_ai)
        r_cipher = SkCipher(suite.encr_id, keys.sk_er, integ, keys.sk_ar)
        self.sk_out, self.sk_in = (i_cipher, r_cipher) if self.initiator else (r_cipher, i_cipher)

    def idle(self) -> None:
        """Nothing of ours is in flight: the SK ciphers' contexts can go until the
        next message (the endpoint calls this after each input it routed)."""
        if self.sk_out is not None and not self.outstanding:
            self.sk_out.idle()
            self.sk_in.idle()

    def forget_init_messages(self) -> None:
        """IKE_AUTH is done: the IKE_SA_INIT messages its AUTH payloads signed are
        not needed any more (about 1 KB an SA)."""
        self.init_request = self.init_response = b""

    def release_session_keys(self) -> None:
        """Keep only SK_d (rekeys, clones and tickets derive from it): SK_e/SK_a
        live on in the SK ciphers, SK_p served AUTH only. For the I/O layer to
        call once it has exported what it wants (a key log), since an SA that
        lives for hours should not hold copies of them (about 0.5 KB). The
        nonces go too: they served AUTH and the first Child SA's keys only."""
        if self.keys is not None and self.state is State.ESTABLISHED:
            self.keys = self.keys._replace(sk_ai=b"", sk_ar=b"", sk_ei=b"", sk_er=b"", sk_pi=b"", sk_pr=b"",
                                           skeyseed=None)
            self.ni = self.nr = b""

    def start_lifetimes(self, now: float) -> None:
        cfg = self.config
        # a little jitter from the RNG keeps both peers from rekeying at the same instant
        jitter = (self.rng(1)[0] / 255.0) * 0.1 * cfg.rekey_time
        self.rekey_at = now + cfg.rekey_time - jitter
        self.expire_at = now + cfg.life_time
        if self.auth_expires_at == _INF:
            self.auth_expires_at = self.expire_at     # the first lifetime starts at authentication

    def float_to_natt(self) -> None:
        """Move IKE (and ESP) to the NAT-T ports (RFC 7296 §2.23, RFC 3948)."""
        self.local = (self.local[0], self.natt_port)
        self.remote = (self.remote[0], self.remote_natt_port)

    def note_traffic(self, now: float) -> None:
        """The data path saw authentic ESP from the peer: no liveness check is due."""
        self.last_heard = max(self.last_heard, now)

    # ------------------------------------------------------------------ outputs --
    def datagrams_to_send(self) -> list[tuple[bytes, Address, Address]]:
        """(IKE message, remote address, local address) tuples; the I/O layer adds
        the non-ESP marker on the NAT-T port."""
        out = list(self._datagrams)
        self._datagrams.clear()
        return out

    def next_event(self) -> ev.Event | None:
        return self._events.pop(0) if self._events else None

    def take_events(self) -> list:
        """Every event since the last call, oldest first (the endpoint's way: one
        list handed over instead of a next_event() call per event)."""
        events = self._events
        self._events = []
        return events

    def spawned_connections(self) -> list["IkeConnection"]:
        """IKE SAs made by this one (rekeys) since the last call."""
        out = list(self._spawned)
        self._spawned = ()
        return out

    def get_timer(self) -> float | None:
        if self.state == _DELETED:
            return None
        times = [o.deadline for o in self.outstanding.values()]
        times.append(self.expire_at)
        if self.state == State.ESTABLISHED:
            times.append(self.rekey_at)
            times += [when for when, _ in self.deferred]
            if self.config.dpd_delay > 0 and not self.outstanding and not self.tasks:
                times.append(self.last_heard + self.config.dpd_delay)
            for c in self.children.values():
                if not (c.rekeying or c.deleting or c.replaced_by is not None):
                    times.append(c.rekey_at)
                if not c.deleting:
                    times.append(c.expire_at)
        t = min(times, default=_INF)
        return None if t == _INF else t

    # ----------------------------------------------------------------- commands --
    def queue(self, task, now: float, *, first: bool = False) -> None:
        """Queue an initiator task; it starts when the window allows."""
        if first:
            self.tasks.insert(0, task)
        else:
            self.tasks.append(task)
        self._start_tasks(now)

    def queue_later(self, task, when: float) -> None:
        """Queue a task at ``when`` (a retry after TEMPORARY_FAILURE must wait, §2.25)."""
        self.deferred.append((when, task))

    def hand_over_tasks(self, successor: "IkeConnection") -> None:
        """Queued work that concerns Child SAs (or the SA as a whole) moves to the
        IKE SA that replaced this one (RFC 7296 §1.4: its successor)."""
        successor.tasks.extend(t for t in self.tasks if t.follows_rekey)
        successor.deferred.extend((w, t) for w, t in self.deferred if t.follows_rekey)
        self.tasks.clear()
        self.deferred.clear()

    def initiate(self, now: float, child: str | None = None) -> None:
        IkeAuthTask, IkeSaInitTask, _, _ = _start_classes()
        if not self.initiator or self.state != _IDLE:
            raise IkeError("initiate() is for a new initiator connection")
        self.expire_at = now + max(30.0, self.config.retransmit_timeout * 20)  # half-open limit
        self.queue(IkeSaInitTask(), now)
        self.tasks.append(IkeAuthTask(child_name=child))

    def resume(self, now: float, ticket, child: str | None = None) -> None:
        """Start with IKE_SESSION_RESUME (RFC 5723) using ``ticket`` (a
        tickets.ClientTicket); any failure falls back to ``initiate``."""
        IkeAuthTask, _, ResumeTask, ResumedSa = _start_classes()
        if not self.initiator or self.state != _IDLE:
            raise IkeError("resume() is for a new initiator connection")
        self.expire_at = now + max(30.0, self.config.retransmit_timeout * 20)  # half-open limit
        self.resumed = ResumedSa(local_id=ticket.local_id, remote_id=ticket.remote_id,
                                 auth_form=self.config.resumption_auth)
        self.exchange_state["resume_origin"] = (self.local, self.remote)
        self.queue(ResumeTask(ticket, child), now)
        self.tasks.append(IkeAuthTask(child_name=child))

    def request_ticket(self, now: float) -> None:
        """Ask the peer for a fresh resumption ticket (INFORMATIONAL, RFC 5723 §4.2)."""
        from .exchanges.resumption import TicketRequestTask
        self._require_established()
        self.ticket_client = True
        self.queue(TicketRequestTask(), now)

    def suspend(self, now: float) -> None:
        """Forget the IKE SA without a Delete, keeping its resumption ticket (the
        client goes offline; libreswan's ``whack --suspend``)."""
        self.terminate("suspended", now)

    def create_child_sa(self, now: float, child: str | None = None) -> None:
        from .exchanges.create_child_sa import CreateChildTask
        self._require_established()
        self.queue(CreateChildTask(self.config.child(child)), now)

    def rekey_child_sa(self, now: float, spi_in: bytes) -> None:
        from .exchanges.create_child_sa import RekeyChildTask
        self._require_established()
        child = self.children.get(spi_in)
        if child is None:
            raise IkeError("no such Child SA")
        self.queue(RekeyChildTask(child), now)

    def update_addresses(self, now: float, *, local: Address | None = None,
                         remote: Address | None = None) -> None:
        """MOBIKE (RFC 4555 §3.5): move this IKE SA and its Child SAs to a new address pair."""
        from .exchanges.mobike import update_addresses
        update_addresses(self, now, local=local, remote=remote)

    def rekey(self, now: float) -> None:
        from .exchanges.ike_rekey import RekeyIkeTask
        self._require_established()
        if any(isinstance(t, RekeyIkeTask) for t in self.tasks) or self.rekey_in_flight:
            return
        self.queue(RekeyIkeTask(), now)

    def clone(self, now: float) -> None:
        """Clone this IKE SA (RFC 7791): a sibling IKE SA with new SPIs and keys and no
        Child SAs; this one stays. The outcome is ``IkeSaCloned`` (with the clone) or
        ``IkeSaCloneFailed``."""
        from .exchanges.ike_clone import CloneIkeTask
        self._require_established()
        if not (self.config.clone and self.peer_clone):
            raise IkeError("cloning was not negotiated with this peer (RFC 7791 §5.1)")
        if now >= min(self.auth_expires_at, self.reauth_at):
            raise IkeError("the peer's authentication has expired: no more clones of this IKE SA")
        self.queue(CloneIkeTask(), now)

    def delete_child_sa(self, now: float, spi_in: bytes, *, reason: str = "deleted") -> None:
        from .exchanges.informational import DeleteChildTask
        self._require_established()
        child = self.children.get(spi_in)
        if child is None:
            raise IkeError("no such Child SA")
        self.queue(DeleteChildTask(child, reason), now)

    def delete(self, now: float, *, reason: str = "deleted") -> None:
        """Close the IKE SA (and its Child SAs) with a Delete; an SA the peer cannot
        know yet as established is simply forgotten."""
        from .exchanges.informational import DeleteIkeTask
        if self.state in (State.DELETED, State.DELETING):
            return
        auth_in_flight = self.state == State.INIT_DONE and self.initiator and bool(self.outstanding)
        if self.keys is None or self.state in (State.IDLE, State.INIT_SENT) or (
                self.state == State.INIT_DONE and not auth_in_flight):
            self.terminate(reason, now)
            return
        # the Delete goes next (after IKE_AUTH, if that is still out): nothing else is
        # worth sending on a dying SA
        self.tasks.clear()
        self.deferred.clear()
        self.queue(DeleteIkeTask(reason), now)

    def check_liveness(self, now: float) -> None:
        from .exchanges.informational import LivenessTask
        self._require_established()
        self.queue(LivenessTask(), now)

    def _require_established(self) -> None:
        if self.state != State.ESTABLISHED:
            raise IkeError(f"the IKE SA is {self.state.value}, not established")

    # ------------------------------------------------------------ sending path --
    def _window_open(self) -> bool:
        """Request N may go out only once every request up to N - window is answered
        (RFC 7296 §2.3)."""
        oldest = min(self.outstanding, default=self.next_request_id)
        return self.next_request_id < oldest + self.peer_window

    def start_tasks(self, now: float) -> None:
        """Send what the queue and the window allow (after a state change made elsewhere)."""
        self._start_tasks(now)

    def _start_tasks(self, now: float) -> None:
        if self.state is _ESTABLISHED and not self._window_announced:
            # the window is 1 until the initial exchanges (or a rekey) complete; then we
            # say how many requests we will take at once (RFC 7296 §2.3)
            self._window_announced = True
            if self.config.window_size > 1:
                from .exchanges.informational import WindowSizeTask   # here: runs once per SA, not per message
                self.tasks.insert(0, WindowSizeTask(self.config.window_size))
        while self.tasks and self.state is not _DELETED and self._window_open():
            task = self.tasks[0]
            if not task.ready(self):
                break
            del self.tasks[0]
            try:
                request = task.build_request(self, now)
            except IkeError as exc:
                log.warning("%s: could not start %s: %s", self.name, type(task).__name__, exc)
                task.failed(self, now, str(exc))
                continue
            if request is None:        # the task found nothing left to do
                continue
            self.send_request(task, request, now)

    @property
    def name(self) -> str:
        return f"{self.config.name}[{self.spi_i.hex()}_i {self.spi_r.hex()}_r]"

    def encode(self, msg: Message) -> list[bytes]:
        """Serialize (and protect) a message; fragments when it is too big and
        the peer supports it (RFC 7383)."""
        if msg.inner is None:
            return [encode_message(msg)]
        data = encode_message(msg, self.sk_out)
        if not (self.peer_fragmentation and self.config.fragmentation):
            return [data]
        budget = message_budget(self.config.fragment_size, self.remote[0], self.local[1] == self.natt_port)
        if len(data) > budget:
            return [f.encode() if isinstance(f, Message) else f
                    for f in fragment_message(msg, self.sk_out, budget)]
        return [data]

    def send_request(self, task, msg: Message, now: float, *, message_id: int | None = None) -> None:
        mid = self.next_request_id if message_id is None else message_id
        if mid > MAX_MESSAGE_ID:
            # RFC 7296 §2.2: the SA must be rekeyed or closed before the IDs wrap
            self.terminate("message IDs exhausted", now)
            return
        msg.message_id = mid
        msg.flags = _FLAGS_REQUEST[self.initiator]
        msg.spi_i, msg.spi_r = self.spi_i, self.spi_r
        datagrams = self.encode(msg)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s: sending %s to %s", self.name, message_summary(msg), (task.destination(self)
                                                                             or (self.remote,))[0][0])
        if message_id is None:
            self.next_request_id += 1
        timeout = self.config.retransmit_timeout
        path = task.destination(self)
        self.outstanding[mid] = _Outstanding(task, mid, msg.exchange_type, datagrams, now, now + timeout,
                                             path=path)
        remote, local = path or (self.remote, self.local)
        for d in datagrams:
            self._datagrams.append((d, remote, local))
        task.sent(self, msg, datagrams)

    def resend_request(self, mid: int, msg: Message, now: float) -> None:
        """Replace an outstanding request with a new version under the same
        message ID (COOKIE and INVALID_KE_PAYLOAD retries of IKE_SA_INIT)."""
        task = self.outstanding.pop(mid).task
        self.send_request(task, msg, now, message_id=mid)

    def _send_response(self, request: Message, payloads: list, now: float, *,
                       encrypted: bool = True) -> None:
        msg = Message(self.spi_i, self.spi_r, request.exchange_type, _FLAGS_RESPONSE[self.initiator],
                      request.message_id,
                      payloads=[] if encrypted else payloads, inner=payloads if encrypted else None)
        datagrams = self.encode(msg)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s: sending %s to %s", self.name, message_summary(msg),
                      (self.request_path or (self.remote,))[0][0])
        cache = self.response_cache
        cache[request.message_id] = datagrams
        # keep one window's worth of responses (RFC 7296 §2.3)
        if len(cache) > 1:
            oldest_kept = request.message_id - self.config.window_size
            for old in [m for m in cache if m <= oldest_kept]:
                del cache[old]
        remote, local = self.request_path or (self.remote, self.local)
        for d in datagrams:
            self._datagrams.append((d, remote, local))

    # ---------------------------------------------------------- receiving path --
    def receive_datagram(self, data: bytes, remote: Address, now: float) -> None:
        """An IKE message (without the non-ESP marker) from ``remote``."""
        try:
            msg = parse_message(data)
        except ParseError as exc:
            log.debug("%s: dropping unparsable datagram from %s: %s", self.name, remote, exc)
            return
        self.receive_message(msg, remote, now)

    def receive_message(self, msg: Message, remote: Address, now: float,
                        local: Address | None = None) -> None:
        """A parsed IKE message from ``remote``, received on ``local`` (when known)."""
        if self.state is _DELETED:
            return
        if msg.spi_i != self.spi_i or (msg.spi_r != self.spi_r and
                                       msg.exchange_type not in _INITIAL_EXCHANGES):
            return
        # the I flag must name the other side as what it is (RFC 7296 §3.1)
        flags = msg.flags
        if bool(flags & _I_FLAG) == self.initiator:
            return
        if flags & _R_FLAG:
            self._on_response(msg, remote, local, now)
        else:
            self._on_request(msg, remote, local, now)
        self._start_tasks(now)

    def _open(self, msg: Message, now: float) -> Message | None:
        """Decrypt (and reassemble) an encrypted message; None means drop it."""
        if msg.sk is None:
            return msg
        if self.sk_in is None:
            return None
        try:
            if msg.is_fragment:
                if self.reassembler is None:
                    budget = self.reassembly_budget
                    self.reassembler = (Reassembler() if budget is None else
                                        Reassembler(budget=budget, max_bytes=budget.per_sa))
                return self.reassembler.add(msg, self.sk_in, now)
            msg.decrypt(self.sk_in)
            return msg
        except IntegrityCheckFailed:
            unauthenticated_log.info("bad ICV", "%s: dropping message %d with a bad ICV", self.name,
                                     msg.message_id)
            return None
        except ParseError as exc:
            unauthenticated_log.info("undecryptable", "%s: dropping message %d: %s", self.name,
                                     msg.message_id, exc)
            return None

    def _answered(self, mid: int) -> bool:
        ahead = self._answered_ahead
        return mid < self.expected_request_id or (ahead is not None and mid in ahead)

    def _mark_answered(self, mid: int) -> None:
        if mid == self.expected_request_id and not self._answered_ahead:
            self.expected_request_id += 1     # in order, the usual case: no set needed
            return
        if self._answered_ahead is None:
            self._answered_ahead = set()
        self._answered_ahead.add(mid)
        while self.expected_request_id in self._answered_ahead:
            self._answered_ahead.discard(self.expected_request_id)
            self.expected_request_id += 1

    def _replay_response(self, msg: Message) -> None:
        """A retransmitted request: send the cached response again (RFC 7296 §2.1);
        one we no longer hold means the request is ignored."""
        cached = self.response_cache.get(msg.message_id)
        if cached is None:
            return
        if msg.exchange_type in _INITIAL_EXCHANGES and msg.raw != self.init_request:
            return          # another IKE_SA_INIT under the same SPI is not a retransmission
        if msg.is_fragment and msg.sk.fragment_number != 1:
            return          # answer a fragmented retransmission once, not per fragment (RFC 7383 §2.6.1)
        remote, local = self.request_path or (self.remote, self.local)
        if remote != self.remote and not self._authentic(msg):
            # a copy from elsewhere that does not authenticate: no reflecting answers to
            # whatever source a forger writes; the SA's own peer gets it
            remote, local = self.remote, self.local
        for d in cached:
            self._datagrams.append((d, remote, local))

    def _authentic(self, msg: Message) -> bool:
        """Whether a (whole, protected) message passes our ICV; used where a
        retransmission would otherwise be answered unchecked."""
        if msg.sk is None or msg.is_fragment or self.sk_in is None:
            return False
        try:
            msg.decrypt(self.sk_in)
            return True
        except (IntegrityCheckFailed, ParseError):
            return False

    def _on_request(self, msg: Message, remote: Address, local: Address | None, now: float) -> None:
        mid = msg.message_id
        # answers go where the request came from (RFC 7296 §2.11): a MOBIKE peer may have moved
        self.request_path = (tuple(remote), tuple(local) if local is not None else self.local)
        if self._answered(mid):
            self._replay_response(msg)
            return
        if mid >= self.expected_request_id + self.config.window_size:
            return            # beyond the window we promised: the peer broke §2.3
        if msg.sk is None:
            return            # after IKE_SA_INIT every request is protected (RFC 7296 §2.21)
        opened = self._open(msg, now)
        if opened is None:
            return
        msg = opened
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s: received %s from %s", self.name, message_summary(msg), remote[0])
        action = admit_request(self.state, msg.exchange_type, initiator=self.initiator)
        if action is _DROP:
            log.info("%s: dropping %s request %d in state %s", self.name,
                     _exchange_name(msg.exchange_type), mid, self.state.value)
            return
        self.last_heard = now
        self._follow_peer(remote, local)
        try:
            check_rules(msg)
            payloads = self._respond(msg, action, now)
        except ProtocolError as exc:
            if exc.notify_type is None:
                return
            self.exchange_state.pop("after_response", None)
            payloads = [NotifyPayload(notify_type=exc.notify_type, data=exc.notify_data)]
        self._mark_answered(mid)
        if payloads is not None:
            self._send_response(msg, payloads, now)
        post = self.exchange_state.pop("after_response", None)
        if action is _REJECT_AND_CLOSE:
            post = lambda t: self.terminate("protocol violation before IKE_AUTH", t,  # noqa: E731
                                            NotifyType.INVALID_SYNTAX)
        if post:
            post(now)

    def _respond(self, msg: Message, action: Admit, now: float) -> list | None:
        handler = responder_for(msg.exchange_type)
        if action is _HANDLE and handler is not None:
            return handler(self, msg, now)
        if action is _TEMPORARY_FAILURE:
            return [NotifyPayload(notify_type=NotifyType.TEMPORARY_FAILURE)]
        log.info("%s: rejecting %s request %d in state %s", self.name,
                 _exchange_name(msg.exchange_type), msg.message_id, self.state.value)
        return [NotifyPayload(notify_type=NotifyType.INVALID_SYNTAX)]

    def _on_response(self, msg: Message, remote: Address, local: Address | None, now: float) -> None:
        out = self.outstanding.get(msg.message_id)
        if out is None or msg.exchange_type != out.exchange_type:
            return            # not an answer to anything we asked (or a late duplicate)
        if msg.exchange_type not in _INITIAL_EXCHANGES and msg.sk is None:
            return            # only IKE_SA_INIT (IKE_SESSION_RESUME) is answered in the clear
        opened = self._open(msg, now)
        if opened is None:
            return
        msg = opened
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s: received %s from %s", self.name, message_summary(msg), remote[0])
        self.last_heard = now
        self._follow_peer(remote, local)
        del self.outstanding[msg.message_id]
        try:
            check_rules(msg)
        except ParseError as exc:
            out.task.failed(self, now, f"malformed response: {exc}")
            return
        try:
            out.task.on_response(self, msg, now)
        except ProtocolError as exc:
            out.task.failed(self, now, str(exc), getattr(exc, "notify_type", None))

    def _follow_peer(self, remote: Address, local: Address | None) -> None:
        """After an authentic message: follow a peer that moved to the NAT-T port,
        or whose NAT mapping changed (RFC 7296 §2.23); answers go where it is."""
        remote = tuple(remote)
        if local is not None and local[1] == self.natt_port != self.local[1]:
            self.local, self.remote = tuple(local), remote     # the initiator floated to 4500
        elif (remote != self.remote and self.nat_remote and self.state != State.INIT_SENT
              and not (self.config.mobike and self.peer_mobike)):
            # with MOBIKE only an authenticated UPDATE_SA_ADDRESSES moves the SA (RFC 4555 §3.5)
            self.remote = remote

    # -------------------------------------------------------------------- timers --
    def handle_timer(self, now: float) -> None:
        if self.state == _DELETED:
            return
        cfg = self.config
        for mid, out in list(self.outstanding.items()):
            if out.deadline > now:
                continue
            # give_up: the task tries elsewhere (a MOBIKE check falls back to the old path)
            if out.tries >= out.task.retransmit_limit(self) and not out.task.give_up(self, out, now):
                if out.task.timed_out(self, now):
                    return            # the task took over (a resumption falls back)
                log.info("%s: no answer to request %d after %d retransmissions", self.name, mid, out.tries)
                self.terminate("rekeyed" if self.replaced_by is not None else "peer unresponsive", now,
                               quiet_children=self.replaced_by is not None)
                return
            out.tries += 1
            out.deadline = now + cfg.retransmit_timeout * cfg.retransmit_base ** out.tries
            remote, local = out.path or (self.remote, self.local)
            for d in out.datagrams:
                self._datagrams.append((d, remote, local))
        if now >= self.expire_at:
            if self.state == State.ESTABLISHED:
                # hard lifetime: a Delete, which the retransmission limit bounds
                self.expire_at = _INF
                self.delete(now, reason="lifetime expired")
            else:
                self.terminate(self._expiry_reason(), now, quiet_children=self.replaced_by is not None)
                return
        if self.state == State.ESTABLISHED:
            self._lifetime_timers(now)
        self._start_tasks(now)

    def _expiry_reason(self) -> str:
        if self.replaced_by is not None:
            return "rekeyed"                  # the peer's Delete never came; it is replaced anyway
        if self.state in (State.REKEYED, State.PENDING):
            return "redundant after a simultaneous rekey"
        if self.keys is None or self.state == State.INIT_DONE:
            return "negotiation timed out"
        return "lifetime expired"

    def _lifetime_timers(self, now: float) -> None:
        """Soft lifetimes rekey, hard lifetimes delete; idle peers get a liveness check."""
        cfg = self.config
        if now >= self.rekey_at:
            self.rekey_at = _INF
            self.rekey(now)
        due = [(w, t) for w, t in self.deferred if w <= now]
        if due:
            self.deferred = [(w, t) for w, t in self.deferred if w > now]
            self.tasks.extend(t for _, t in due)
        for child in list(self.children.values()):
            if child.deleting:
                continue
            if now >= child.expire_at:
                child.expire_at = _INF
                self.delete_child_sa(now, child.spi_in, reason="lifetime expired")
            elif now >= child.rekey_at and not child.rekeying and child.replaced_by is None:
                child.rekey_at = _INF
                self.rekey_child_sa(now, child.spi_in)
        if (cfg.dpd_delay > 0 and not self.outstanding and not self.tasks
                and now >= self.last_heard + cfg.dpd_delay):
            self.last_heard = now        # one check per idle period
            self.check_liveness(now)

    # --------------------------------------------------------------- teardown --
    def terminate(self, reason: str, now: float, notify_type: int | None = None, *,
                  quiet_children: bool = False) -> None:
        """Forget the SA at once (no exchange); report its children and itself gone."""
        if self.state == _DELETED:
            return
        was_up = self.keys is not None
        pending = self.rekey_collision
        if pending is not None and pending.alive:
            # the peer's new SA was waiting on this one's rekey: let it expire at once
            pending.sa.expire_at = now
            pending.sa.timers_moved()
        self.rekey_collision = None
        self.state = State.DELETED
        self.deleted_reason = reason
        self.outstanding.clear()
        self.tasks.clear()
        self.deferred.clear()
        self.response_cache.clear()
        if not quiet_children:
            for child in list(self.children.values()):
                self.emit(ev.ChildSaDeleted(child, reason))
        self.children.clear()
        if self.assigned_ip is not None:
            self.leases.discard(self.assigned_ip)
        if not self.silent and (was_up or self.initiator):
            self.emit(ev.IkeSaDeleted(self.spi_i, self.spi_r, reason, notify_type))
        if self.remote_id is not None or self.initiator:
            if log.isEnabledFor(logging.INFO):     # .name costs more than the check
                log.info("%s: IKE SA gone: %s", self.name, reason)
        else:                                   # a half-open SA: any source can make these
            unauthenticated_log.info("half-open SA gone", "%s: half-open IKE SA gone: %s", self.name, reason)


_START_CLASSES: tuple | None = None


def _start_classes() -> tuple:
    """IkeAuthTask, IkeSaInitTask, ResumeTask, ResumedSa: the exchanges import this
    module, so these are bound on first use; an import statement per call costs
    ~0.8 us each, three per resumption."""
    global _START_CLASSES
    if _START_CLASSES is None:
        from .exchanges.ike_auth import IkeAuthTask
        from .exchanges.ike_sa_init import IkeSaInitTask
        from .exchanges.resumption import ResumeTask
        from .tickets import ResumedSa
        _START_CLASSES = (IkeAuthTask, IkeSaInitTask, ResumeTask, ResumedSa)
    return _START_CLASSES


def _exchange_name(exchange_type: int) -> str:
    try:
        return ExchangeType(exchange_type).name
    except ValueError:
        return f"exchange {exchange_type}"


__all__ = ["IkeConnection", "State", "Admit", "REQUEST_TABLE", "admit_request", "nat_detection_hash",
           "Address"]
