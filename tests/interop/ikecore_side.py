"""ikecore's side of an interop test, in this process: an IkeEndpoint on real UDP
sockets (ports 500 and 4500 of the test's veth address), driven by a small
select loop, plus ICMP echo through the negotiated ESP SAs."""
from __future__ import annotations

import ipaddress
import os
import select
import socket
import struct
import time

from ikecore.protocol import events as ev
from ikecore.protocol.endpoint import Classification, IkeEndpoint
from netns import socket_in


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def icmp_echo(src: str, dst: str, ident: int, seq: int, *, reply: bool = False, payload: bytes = b"ikecore") -> bytes:
    icmp = struct.pack("!BBHHH", 0 if reply else 8, 0, 0, ident, seq) + payload
    icmp = icmp[:2] + struct.pack("!H", checksum(icmp)) + icmp[4:]
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), ident & 0xFFFF, 0, 64, 1, 0,
                         ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed)
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + icmp


def parse_icmp(packet: bytes) -> dict | None:
    if len(packet) < 28 or packet[0] >> 4 != 4 or packet[9] != 1:
        return None
    ihl = (packet[0] & 0xF) * 4
    kind, _, _, ident, seq = struct.unpack("!BBHHH", packet[ihl:ihl + 8])
    return {"src": str(ipaddress.IPv4Address(packet[12:16])), "dst": str(ipaddress.IPv4Address(packet[16:20])),
            "type": kind, "id": ident, "seq": seq, "payload": packet[ihl + 8:]}


class IkecoreSide:
    def __init__(self, config, address: str, *, ike_port: int = 500, natt_port: int = 4500,
                 netns: str | None = None) -> None:
        """``netns``: the network namespace ``address`` lives in (None: this process's)."""
        self.config = config
        self.address = address
        self.ep = IkeEndpoint(config, rng=os.urandom, now=time.monotonic(), natt_port=natt_port)
        self.socks = {}
        for port in (ike_port, natt_port):
            s = socket_in(netns, socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((address, port))
            s.setblocking(False)
            self.socks[port] = s
        self.local = {port: (address, port) for port in self.socks}
        self.events: list = []
        self.esp_in: list = []          # (ESP packet, remote)
        self.sas: dict = {}             # child spi_in -> (outbound EspSA, inbound EspSA, ChildSa)
        self.answer_pings = False
        self.pings_answered = 0
        # a gateway's ticket store (RFC 5723 resumption), in memory: spent or taken keys
        self.ticket_store: dict[bytes, bytes] = {}

    def close(self) -> None:
        for s in self.socks.values():
            s.close()

    # ------------------------------------------------------------- the loop ----
    def _serve_ticket_store(self) -> None:
        """The I/O layer's part of a gateway's resumption: each ticket check the endpoint
        asks for is answered at once from ``ticket_store`` (SET NX to spend a ticket by
        value, GETDEL for one by reference), each put stored."""
        ops = getattr(self.ep, "ticket_store_ops", None)      # an endpoint with resumption
        if ops is None:
            return
        for op in ops():
            if hasattr(op, "token"):
                if op.take_key is not None:
                    result = self.ticket_store.pop(op.take_key, None)
                else:
                    result = op.spend_key not in self.ticket_store
                    self.ticket_store.setdefault(op.spend_key, b"spent")
                self.ep.ticket_checked(op.token, result, time.monotonic())
            else:
                self.ticket_store[op.key] = op.value

    def _flush(self) -> None:
        self._serve_ticket_store()
        for data, remote, local in self.ep.datagrams_to_send():
            self.socks[local[1]].sendto(data, remote)
        while (item := self.ep.next_event()) is not None:
            conn, event = item
            self.events.append(event)
            if isinstance(event, (ev.ChildSaInstalled,)):
                self._install(event.child)
            elif isinstance(event, ev.ChildSaRekeyed):
                self._install(event.new)
            elif isinstance(event, ev.ChildSaDeleted):
                self.sas.pop(event.child.spi_in, None)

    def _install(self, child) -> None:
        out, inb = child.esp_sas()
        self.sas[child.spi_in] = (out, inb, child)

    def pump(self, until=None, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            self.ep.collect_all()
            self._flush()
            if until is not None and until():
                return True
            now = time.monotonic()
            if now >= deadline:
                return until() if until else True
            timer = self.ep.get_timer()
            wait = min(deadline - now, 0.05 if until is None else 0.2)
            if timer is not None:
                wait = max(0.0, min(wait, timer - now))
            ready, _, _ = select.select(list(self.socks.values()), [], [], wait)
            now = time.monotonic()
            for sock in ready:
                port = sock.getsockname()[1]
                while True:
                    try:
                        data, remote = sock.recvfrom(65535)
                    except BlockingIOError:
                        break
                    kind = self.ep.receive_datagram(data, remote, self.local[port], now)
                    if kind is Classification.ESP:
                        self._esp(data, remote)
            self.ep.handle_timer(time.monotonic())

    # ------------------------------------------------------------------ ESP ----
    def child(self):
        return next(iter(self.sas.values()))[2]

    def _esp(self, packet: bytes, remote) -> None:
        spi = packet[:4]
        entry = self.sas.get(spi)
        if entry is None:
            return
        out, inb, child = entry
        payload, next_header = inb.decrypt(packet)
        self.esp_in.append((payload, remote))
        icmp = parse_icmp(payload)
        if self.answer_pings and icmp and icmp["type"] == 8:
            reply = icmp_echo(icmp["dst"], icmp["src"], icmp["id"], icmp["seq"], reply=True, payload=icmp["payload"])
            self.socks[4500].sendto(out.encrypt(reply, 4), remote)
            self.pings_answered += 1

    def ping(self, src: str, dst: str, peer_address: str, count: int = 3) -> int:
        """ICMP echo requests through the first Child SA; returns the replies received."""
        out, _, _ = next(iter(self.sas.values()))
        got = 0
        for seq in range(1, count + 1):
            before = len(self.esp_in)
            self.socks[4500].sendto(out.encrypt(icmp_echo(src, dst, 0x1C0E, seq), 4), (peer_address, 4500))
            ok = self.pump(lambda: any((parse_icmp(p) or {}).get("type") == 0 and parse_icmp(p)["seq"] == seq
                                       for p, _ in self.esp_in[before:]), timeout=3)
            got += ok
        return got
