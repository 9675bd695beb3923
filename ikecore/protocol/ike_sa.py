"""The IKE SA: one connection object per IKE SA, sans-I/O.

Inputs: ``receive_message`` / ``receive_datagram`` (with ``now``),
``handle_timer(now)`` and commands (``initiate``, ``create_child_sa``,
``rekey_child_sa``, ``rekey``, ``delete_child_sa``, ``delete``,
``check_liveness``). Outputs: ``datagrams_to_send()``, ``get_timer()``,
``next_event()``. No sockets, clock or global RNG: time and randomness are
passed in.

Only this module touches message IDs, retransmission, the response cache and
the window; each exchange lives in ``ikecore.protocol.exchanges`` as an
initiator task (build a request, take its response) and a responder handler.
"""
from __future__ import annotations

import enum
import hashlib
import ipaddress
import logging
from collections import deque
from dataclasses import dataclass
from typing import Callable

from ..crypto import SkCipher
from ..crypto.keyschedule import IkeKeys
from ..errors import IkeError, IntegrityCheckFailed, ParseError, ProtocolError
from . import events as ev
from .child_sa import ChildSa
from .config import IkeConfig
from .constants import ExchangeType, Flags, NotifyType, PayloadType
from .fragments import Reassembler, fragment_message
from .message import Message, parse_message
from .negotiation import IkeSuite
from .payloads import NotifyPayload
from .rules import check_rules

log = logging.getLogger("ikecore.ike")

Address = tuple  # (host: str, port: int)
Rng = Callable[[int], bytes]


class State(enum.Enum):
    IDLE = "idle"                     # initiator, nothing sent yet
    INIT_SENT = "init-sent"           # IKE_SA_INIT request out
    INIT_DONE = "init-done"           # keys derived, IKE_AUTH pending (either role)
    ESTABLISHED = "established"
    REKEYED = "rekeyed"               # replaced by a rekey, waiting for its Delete
    DELETING = "deleting"             # our Delete is out
    DELETED = "deleted"


@dataclass
class _Outstanding:
    task: object
    message_id: int
    datagrams: list          # what was sent (fragments, if any): retransmitted as is
    sent_at: float
    deadline: float
    tries: int = 0


def nat_detection_hash(spi_i: bytes, spi_r: bytes, address: Address) -> bytes:
    """NAT_DETECTION_*_IP data (RFC 7296 §2.23): SHA-1(SPIi | SPIr | IP | port)."""
    ip = ipaddress.ip_address(address[0]).packed
    return hashlib.sha1(spi_i + spi_r + ip + int(address[1]).to_bytes(2, "big")).digest()


class IkeConnection:
    """One IKE SA and its Child SAs."""

    def __init__(self, config: IkeConfig, *, initiator: bool, local: Address, remote: Address,
                 rng: Rng, now: float, spi_i: bytes | None = None, spi_r: bytes | None = None,
                 natt_port: int = 4500) -> None:
        self.config = config
        self.initiator = initiator            # original initiator of this IKE SA
        self.local = tuple(local)
        self.remote = tuple(remote)
        self.rng = rng
        self.natt_port = natt_port
        self.created_at = now
        self.spi_i = spi_i if spi_i is not None else self.new_spi()
        self.spi_r = spi_r if spi_r is not None else bytes(8)
        self.state = State.IDLE
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
        self.peer_signature_hashes: list[int] = []
        self.peer_mobike = False
        self.peer_clone = False
        self.peer_window = 1
        self.virtual_ip: str | None = None    # assigned to us by the peer
        self.assigned_ip: str | None = None   # we assigned it to the peer
        self.leases: set = set()              # pool addresses in use (the endpoint shares one set)
        # message ids and retransmission
        self.next_request_id = 0
        self.expected_request_id = 0
        self.outstanding: dict[int, _Outstanding] = {}
        self.response_cache: dict[int, list] = {}
        self.tasks: deque = deque()
        self.reassembler = Reassembler()
        # children and timers
        self.children: dict[bytes, ChildSa] = {}     # by inbound SPI
        self.rekey_at = float("inf")
        self.expire_at = float("inf")
        self.last_heard = now
        self.deleted_reason = ""
        # outputs
        self._datagrams: deque = deque()
        self._events: deque = deque()
        # set by the IKE rekey exchange on the SA it replaces
        self.replaced_by: IkeConnection | None = None
        self.exchange_state: dict = {}      # per-exchange scratch owned by exchanges/*

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
        return self.state == State.ESTABLISHED

    @property
    def nat_detected(self) -> bool:
        return self.nat_local or self.nat_remote or self.config.force_encap

    def emit(self, event: ev.Event) -> None:
        self._events.append(event)

    def install_keys(self, suite: IkeSuite, keys: IkeKeys) -> None:
        """The SK ciphers for each direction (SK_ei/SK_ai protect the initiator's messages)."""
        self.suite, self.keys = suite, keys
        integ = suite.integ_id
        i_cipher = SkCipher(suite.encr_id, keys.sk_ei, integ, keys.sk_ai)
        r_cipher = SkCipher(suite.encr_id, keys.sk_er, integ, keys.sk_ar)
        self.sk_out, self.sk_in = (i_cipher, r_cipher) if self.initiator else (r_cipher, i_cipher)

    def start_lifetimes(self, now: float) -> None:
        cfg = self.config
        # a little jitter from the RNG keeps both peers from rekeying at the same instant
        jitter = (self.rng(1)[0] / 255.0) * 0.1 * cfg.rekey_time
        self.rekey_at = now + cfg.rekey_time - jitter
        self.expire_at = now + cfg.life_time

    def float_to_natt(self) -> None:
        """Move IKE (and ESP) to the NAT-T port (RFC 7296 §2.23, RFC 3948)."""
        self.local = (self.local[0], self.natt_port)
        self.remote = (self.remote[0], self.natt_port)

    # ------------------------------------------------------------------ outputs --
    def datagrams_to_send(self) -> list[tuple[bytes, Address, Address]]:
        """(IKE message, remote address, local address) tuples; the I/O layer adds
        the non-ESP marker on the NAT-T port."""
        out = list(self._datagrams)
        self._datagrams.clear()
        return out

    def next_event(self) -> ev.Event | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        if self.state == State.DELETED:
            return None
        times = [o.deadline for o in self.outstanding.values()]
        if self.state == State.ESTABLISHED:
            times += [self.rekey_at, self.expire_at]
            if self.config.dpd_delay > 0 and not self.outstanding:
                times.append(self.last_heard + self.config.dpd_delay)
            for c in self.children.values():
                times += [c.rekey_at if not c.rekeying else float("inf"), c.expire_at]
        elif self.state in (State.REKEYED, State.DELETING, State.INIT_DONE, State.INIT_SENT):
            times.append(self.expire_at)
        t = min(times, default=float("inf"))
        return None if t == float("inf") else t

    # ----------------------------------------------------------------- commands --
    def queue(self, task, now: float) -> None:
        """Queue an initiator task; it starts when the window allows."""
        self.tasks.append(task)
        self._start_tasks(now)

    def initiate(self, now: float, child: str | None = None) -> None:
        from .exchanges.ike_auth import IkeAuthTask
        from .exchanges.ike_sa_init import IkeSaInitTask
        if not self.initiator or self.state != State.IDLE:
            raise IkeError("initiate() is for a new initiator connection")
        self.expire_at = now + max(30.0, self.config.retransmit_timeout * 20)  # half-open limit
        self.queue(IkeSaInitTask(), now)
        self.tasks.append(IkeAuthTask(child_name=child))

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

    def rekey(self, now: float) -> None:
        from .exchanges.create_child_sa import RekeyIkeTask
        self._require_established()
        self.queue(RekeyIkeTask(), now)

    def delete_child_sa(self, now: float, spi_in: bytes) -> None:
        from .exchanges.informational import DeleteChildTask
        self._require_established()
        child = self.children.get(spi_in)
        if child is None:
            raise IkeError("no such Child SA")
        self.queue(DeleteChildTask(child), now)

    def delete(self, now: float) -> None:
        from .exchanges.informational import DeleteIkeTask
        if self.state in (State.DELETED, State.DELETING):
            return
        if self.state in (State.IDLE, State.INIT_SENT) or self.keys is None:
            self.terminate("deleted", now)
            return
        # the Delete goes first: nothing else is worth sending on a dying SA
        self.tasks.clear()
        self.queue(DeleteIkeTask(), now)

    def check_liveness(self, now: float) -> None:
        from .exchanges.informational import LivenessTask
        self._require_established()
        self.queue(LivenessTask(), now)

    def _require_established(self) -> None:
        if self.state != State.ESTABLISHED:
            raise IkeError(f"the IKE SA is {self.state.value}, not established")

    # ------------------------------------------------------------ sending path --
    def _start_tasks(self, now: float) -> None:
        while (self.tasks and len(self.outstanding) < self.peer_window
               and self.state not in (State.DELETED,)):
            task = self.tasks[0]
            if not task.ready(self):
                break
            self.tasks.popleft()
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
            return [msg.encode()]
        data = msg.encode(self.sk_out)
        if (len(data) > self.config.fragment_size and self.peer_fragmentation
                and self.config.fragmentation):
            return [f.encode() if isinstance(f, Message) else f
                    for f in fragment_message(msg, self.sk_out, self.config.fragment_size)]
        return [data]

    def send_request(self, task, msg: Message, now: float, *, message_id: int | None = None) -> None:
        mid = self.next_request_id if message_id is None else message_id
        msg.message_id = mid
        msg.flags = Flags.INITIATOR if self.initiator else Flags.NONE
        msg.spi_i, msg.spi_r = self.spi_i, self.spi_r
        datagrams = self.encode(msg)
        if message_id is None:
            self.next_request_id += 1
        timeout = self.config.retransmit_timeout
        self.outstanding[mid] = _Outstanding(task, mid, datagrams, now, now + timeout)
        for d in datagrams:
            self._datagrams.append((d, self.remote, self.local))
        task.sent(self, msg, datagrams)

    def resend_request(self, mid: int, msg: Message, now: float) -> None:
        """Replace an outstanding request with a new version under the same
        message ID (COOKIE and INVALID_KE_PAYLOAD retries of IKE_SA_INIT)."""
        task = self.outstanding.pop(mid).task
        self.send_request(task, msg, now, message_id=mid)

    def _send_response(self, request: Message, payloads: list, now: float, *,
                       encrypted: bool = True) -> None:
        flags = Flags.RESPONSE | (Flags.INITIATOR if self.initiator else Flags.NONE)
        msg = Message(self.spi_i, self.spi_r, request.exchange_type, flags, request.message_id,
                      payloads=[] if encrypted else payloads, inner=payloads if encrypted else None)
        datagrams = self.encode(msg)
        self.response_cache[request.message_id] = datagrams
        # keep one window's worth of responses (RFC 7296 §2.3)
        for old in [m for m in self.response_cache if m <= request.message_id - self.config.window_size]:
            del self.response_cache[old]
        for d in datagrams:
            self._datagrams.append((d, self.remote, self.local))

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
        """``local``: the address it arrived on (lets a responder follow the
        initiator to the NAT-T port)."""
        self._arrived_on = tuple(local) if local is not None else None
        if self.state == State.DELETED:
            return
        if msg.spi_i != self.spi_i or (msg.spi_r != self.spi_r and
                                       not (msg.exchange_type == ExchangeType.IKE_SA_INIT)):
            return
        # the I flag must name the other side as what it is (RFC 7296 §3.1)
        if msg.is_initiator == self.initiator:
            return
        if msg.is_response:
            self._on_response(msg, remote, now)
        else:
            self._on_request(msg, remote, now)
        self._start_tasks(now)

    def _open(self, msg: Message, now: float) -> Message | None:
        """Decrypt (and reassemble) an encrypted message; None means drop it."""
        if msg.sk is None:
            return msg
        if self.sk_in is None:
            return None
        try:
            if msg.is_fragment:
                return self.reassembler.add(msg, self.sk_in, now)
            msg.decrypt(self.sk_in)
            return msg
        except IntegrityCheckFailed:
            log.info("%s: dropping message %d with a bad ICV", self.name, msg.message_id)
            return None
        except ParseError as exc:
            log.info("%s: dropping message %d: %s", self.name, msg.message_id, exc)
            return None

    def _on_request(self, msg: Message, remote: Address, now: float) -> None:
        from .exchanges import responder_for
        mid = msg.message_id
        if mid < self.expected_request_id:
            cached = self.response_cache.get(mid)
            if cached is not None and (msg.exchange_type != ExchangeType.IKE_SA_INIT or
                                       msg.raw == self.init_request):
                for d in cached:      # a retransmitted request: replay our response
                    self._datagrams.append((d, self.remote, self.local))
            return
        if mid >= self.expected_request_id + self.config.window_size:
            return
        opened = self._open(msg, now)
        if opened is None:
            return
        msg = opened
        if msg.exchange_type != ExchangeType.IKE_SA_INIT and msg.sk is None and msg.inner is None:
            return   # after IKE_SA_INIT every request is protected (RFC 7296 §2.21)
        self.last_heard = now
        self._peer_address(remote, getattr(self, "_arrived_on", None))
        try:
            check_rules(msg)
            handler = responder_for(msg.exchange_type)
            payloads = handler(self, msg, now) if handler else [
                NotifyPayload(notify_type=NotifyType.INVALID_SYNTAX)]
        except ProtocolError as exc:
            if exc.notify_type is None:
                return
            payloads = [NotifyPayload(notify_type=exc.notify_type, data=exc.notify_data)]
        self.expected_request_id = mid + 1
        if payloads is not None:
            self._send_response(msg, payloads, now)
        post = self.exchange_state.pop("after_response", None)
        if post:
            post(now)

    def _on_response(self, msg: Message, remote: Address, now: float) -> None:
        out = self.outstanding.get(msg.message_id)
        if out is None:
            return
        opened = self._open(msg, now)
        if opened is None:
            return
        msg = opened
        if msg.exchange_type != ExchangeType.IKE_SA_INIT and msg.sk is None and msg.inner is None:
            return
        self.last_heard = now
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

    def _peer_address(self, remote: Address, local: Address | None) -> None:
        """Follow the peer (RFC 7296 §2.23): to the NAT-T port once NAT was
        detected, and to a new NAT mapping of an established SA."""
        remote = tuple(remote)
        if (local is not None and local[1] == self.natt_port and self.local[1] != self.natt_port
                and self.nat_detected):
            self.local, self.remote = tuple(local), remote
        elif remote != self.remote and self.nat_remote and self.state == State.ESTABLISHED:
            self.remote = remote

    # -------------------------------------------------------------------- timers --
    def handle_timer(self, now: float) -> None:
        if self.state == State.DELETED:
            return
        cfg = self.config
        for mid, out in list(self.outstanding.items()):
            if out.deadline > now:
                continue
            if out.tries >= cfg.retransmit_tries:
                log.info("%s: no answer to request %d after %d retransmissions", self.name, mid, out.tries)
                self.terminate("peer unresponsive", now)
                return
            out.tries += 1
            out.deadline = now + cfg.retransmit_timeout * cfg.retransmit_base ** out.tries
            for d in out.datagrams:
                self._datagrams.append((d, self.remote, self.local))
        if now >= self.expire_at:
            if self.state == State.ESTABLISHED:
                # hard lifetime: a Delete, which the retransmission limit bounds
                self.expire_at = float("inf")
                self.delete(now)
            else:
                self.terminate("negotiation timed out" if self.keys is None or
                               self.state == State.INIT_DONE else "lifetime expired", now)
                return
        if self.state == State.ESTABLISHED:
            if now >= self.rekey_at:
                self.rekey_at = float("inf")
                self.rekey(now)
            for child in list(self.children.values()):
                if now >= child.expire_at:
                    child.expire_at = float("inf")
                    self.delete_child_sa(now, child.spi_in)
                elif now >= child.rekey_at and not child.rekeying:
                    child.rekey_at = float("inf")
                    self.rekey_child_sa(now, child.spi_in)
            if (cfg.dpd_delay > 0 and not self.outstanding and not self.tasks
                    and now >= self.last_heard + cfg.dpd_delay):
                self.last_heard = now        # one check per idle period
                self.check_liveness(now)
        self._start_tasks(now)

    # --------------------------------------------------------------- teardown --
    def terminate(self, reason: str, now: float, notify_type: int | None = None, *,
                  quiet_children: bool = False) -> None:
        """Forget the SA at once (no exchange); report its children and itself gone."""
        if self.state == State.DELETED:
            return
        was_up = self.keys is not None
        self.state = State.DELETED
        self.deleted_reason = reason
        self.outstanding.clear()
        self.tasks.clear()
        if not quiet_children:
            for child in list(self.children.values()):
                self.emit(ev.ChildSaDeleted(child, reason))
        self.children.clear()
        if self.assigned_ip is not None:
            self.leases.discard(self.assigned_ip)
        if was_up or self.initiator:
            self.emit(ev.IkeSaDeleted(self.spi_i, self.spi_r, reason, notify_type))
        log.info("%s: IKE SA gone: %s", self.name, reason)


__all__ = ["IkeConnection", "State", "nat_detection_hash", "Address"]
