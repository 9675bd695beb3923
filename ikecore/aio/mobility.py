"""MOBIKE in the gateway (RFC 4555): moving IKE SAs to another local address.

A mixin of :class:`~ikecore.aio.gateway.Gateway`:

- :meth:`GatewayMobility.update_addresses` moves an IKE SA we initiated (and its
  Child SAs) to a new local address, on command: ``await gw.update_addresses(conn,
  local="192.0.2.7")``. A listener is opened on that address when the gateway
  has none there yet (same IKE and NAT-T ports).
- Roaming: every ``gateway.roam_interval`` seconds the local address of each
  MOBIKE IKE SA we initiated is checked; when it is gone from the host, the SA
  moves to the address the kernel now picks toward the peer.
- The responder side needs nothing here: the core moves an SA after an
  authenticated UPDATE_SA_ADDRESSES and its return-routability check, and the
  ESP of its Child SAs follows because the data path asks
  :func:`~ikecore.protocol.exchanges.mobike.esp_addresses` where to send, per batch.
"""
from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
from typing import TYPE_CHECKING

from ..errors import IkeError
from ..protocol import events as ev
from ..protocol.exchanges import mobike
from ..protocol.ike_sa import IkeConnection
from .errors import GatewayError
from .keylog import esp_row
from .sockets import _Listener, grow_buffers

if TYPE_CHECKING:
    from .gateway import Gateway

log = logging.getLogger("ikecore.gateway")


def address_present(host: str) -> bool:
    """Whether this host still holds ``host`` (binding to it is the kernel's answer)."""
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind((host, 0))
        return True
    except OSError as exc:
        return exc.errno != errno.EADDRNOTAVAIL


def source_toward(remote_host: str) -> str | None:
    """The source address the kernel picks toward ``remote_host`` now (no cache)."""
    family = socket.AF_INET6 if ipaddress.ip_address(remote_host).version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((remote_host, 9))
            return s.getsockname()[0].split("%")[0]
    except OSError:
        return None


class GatewayMobility:
    """MOBIKE commands, extra listeners and roaming (mixin)."""

    async def update_addresses(self: "Gateway", conn: IkeConnection, *, local=None, remote=None,
                               timeout: float = 10.0) -> ev.IkeSaMoved:
        """Move ``conn`` (an IKE SA we initiated, MOBIKE negotiated) to ``local``
        (a host, or ``(host, port)``; the port defaults to our NAT-T port) and/or
        ``remote`` (e.g. one of the peer's ADDITIONAL addresses). Returns the
        :class:`~ikecore.protocol.events.IkeSaMoved` once the peer took the
        update; raises :class:`GatewayError` when it refused or did not answer."""
        self._require_running()
        target = self.current(conn)
        local = self._endpoint_address(local, target.local) if local is not None else None
        remote = self._endpoint_address(remote, target.remote) if remote is not None else None
        if local is not None:
            await self.listen_on(local[0])
            if self._only_wildcard(local[0]) and source_toward((remote or target.remote)[0]) != local[0]:
                # a wildcard socket sends from whatever address the kernel picks
                raise GatewayError(f"{target.name}: listening on a wildcard address, the kernel sends "
                                   f"from its own choice of address, not {local[0]}; listen on specific "
                                   "addresses (gateway.listen) to move between them", target)
        self._local_cache.clear()         # the kernel's choice of source address may have changed
        done = asyncio.ensure_future(self.wait_for((ev.IkeSaMoved, ev.MobikeFailed, ev.IkeSaDeleted), target,
                                                   timeout=timeout))
        await asyncio.sleep(0)            # the waiter is registered before anything can answer
        try:
            self._command(target, lambda c, now: c.update_addresses(now, local=local, remote=remote))
        except IkeError as exc:
            done.cancel()
            raise GatewayError(f"{target.name}: {exc}", target) from None
        try:
            _, event = await done
        except asyncio.TimeoutError:
            raise GatewayError(f"{target.name}: no answer to the address update within {timeout:g} s",
                               target) from None
        if isinstance(event, ev.IkeSaMoved):
            return event
        reason = event.reason
        raise GatewayError(f"{target.name}: address update failed: {reason}", target,
                           getattr(event, "notify_type", None))

    def _only_wildcard(self: "Gateway", host: str) -> bool:
        ip = ipaddress.ip_address(host)
        return not any(not lst.wildcard and ipaddress.ip_address(lst.host) == ip for lst in self.listeners)

    def _endpoint_address(self: "Gateway", value, current) -> tuple[str, int]:
        if isinstance(value, str):
            host, port = value, self.natt_port if current[1] == self.natt_port else current[1]
        else:
            host, port = value[0], int(value[1])
        try:
            host = str(ipaddress.ip_address(host))
        except ValueError:
            raise GatewayError(f"not an IP address: {host!r}") from None
        return host, port

    async def listen_on(self: "Gateway", host: str) -> None:
        """Open IKE and NAT-T sockets on ``host`` (the gateway's ports) unless a
        listener on exactly that address, or a wildcard of its family, exists."""
        ip = ipaddress.ip_address(host)
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        for lst in self.listeners:
            if lst.family == family and (lst.wildcard or ipaddress.ip_address(lst.host) == ip):
                return
        socks = []
        try:
            for port in (self.port, self.natt_port):
                s = socket.socket(family, socket.SOCK_DGRAM)
                socks.append(s)
                if family == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s.setblocking(False)
                grow_buffers(s, self.config.socket_buffer)
                s.bind((str(ip), port))
        except OSError as exc:
            for s in socks:
                s.close()
            raise GatewayError(f"cannot listen on {host} (ports {self.port}/{self.natt_port}): "
                               f"{exc.strerror or exc}") from None
        lst = _Listener(str(ip), family, socks[0], socks[1])
        self._watch(lst)
        self.listeners.append(lst)
        self._local_cache.clear()
        log.info("now also listening on %s (IKE %d, NAT-T %d)", lst.host, self.port, self.natt_port)

    # ------------------------------------------------------------------ roaming --
    async def _roam_loop(self: "Gateway", interval: float) -> None:
        while self.running:
            await asyncio.sleep(interval)
            if self._stopping:
                return
            try:
                await self.roam_check()
            except Exception:          # a failed check must not end the loop
                self.counters["internal_errors"] += 1
                log.exception("roaming check")

    async def roam_check(self: "Gateway") -> int:
        """Move every MOBIKE IKE SA we initiated whose local address is gone to
        the address the kernel picks toward its peer now. Returns how many moves
        were started."""
        started = 0
        present: dict[str, bool] = {}
        for conn in list(self.connections):
            # (requests still out are retransmitted from the new address once it moves)
            if not (conn.initiator and mobike.active(conn)):
                continue
            host = conn.local[0]
            if host not in present:
                present[host] = address_present(host)
            if present[host]:
                continue
            new = source_toward(conn.remote[0])
            if new is None or new == host:
                log.info("%s: local address %s is gone and no other reaches %s yet", conn.name, host,
                         conn.remote[0])
                continue
            log.info("%s: local address %s is gone; moving to %s", conn.name, host, new)
            self._spawn(self._roam(conn, new))
            started += 1
        return started

    async def _roam(self: "Gateway", conn: IkeConnection, host: str) -> None:
        try:
            await self.update_addresses(conn, local=host)
        except GatewayError as exc:
            log.warning("%s", exc)

    # ------------------------------------------------------------------- events --
    def _moved(self: "Gateway", conn: IkeConnection, event: ev.IkeSaMoved) -> None:
        """The core moved an IKE SA: ESP follows by itself (the data path reads the
        addresses per batch); keep the key export's outer addresses right."""
        log.info("%s: IKE SA moved: %s:%d <-> %s:%d (was %s:%d <-> %s:%d)%s", conn.name, *event.local,
                 *event.remote, *event.previous_local, *event.previous_remote,
                 ", NAT detected" if event.nat_local or event.nat_remote else "")
        self.counters["ike_sas_moved"] += 1
        keylog = self.keylog
        if keylog is None or not keylog.esp:
            return
        for child in self.child_sas(conn):
            # (a MOBIKE SA keeps its Child SAs' keys while keys are exported: _log_child)
            if child.keys is None or not keylog._first_time(("esp-moved", child.spi_in, event.local, event.remote)):
                continue
            for src, dst, spi, (ek, ik) in ((event.local[0], event.remote[0], child.spi_out, child.outbound_keys),
                                            (event.remote[0], event.local[0], child.spi_in, child.inbound_keys)):
                row = esp_row(src, dst, spi, child.suite, ek, ik)
                if row is not None:
                    keylog._write(keylog.esp_path, row)


def esp_target(gw: "Gateway", conn: IkeConnection):
    """(NAT-T socket, remote, local) for the ESP of ``conn``'s Child SAs, or None."""
    local, remote = mobike.esp_addresses(conn)
    if local[1] != gw.natt_port:         # no NAT-T: plain ESP on the raw socket (plain_esp.py)
        return gw.plain_esp.target(gw._listener_for(local), tuple(remote), tuple(local))
    lst = gw._listener_for(local)
    if lst is None:
        return None
    return lst.natt_sock, tuple(remote), tuple(local)


__all__ = ["GatewayMobility", "address_present", "source_toward", "esp_target"]
