"""Road-warrior clients: the virtual IP the gateway assigned us (CFG_REPLY,
``request_virtual_ip = true``) goes on our TUN device, with a route for each
remote selector of the connection's children (source: that address); both are
removed when the IKE SA goes. An IKE rekey hands them to the new IKE SA."""
from __future__ import annotations

import ipaddress
import logging
import subprocess

log = logging.getLogger("ikecore.gateway")


class VirtualIps:
    """The addresses and routes put on the TUN device for assigned virtual IPs."""

    def __init__(self, gw) -> None:
        self.gw = gw
        self._installed: dict[object, tuple[str, list[str]]] = {}   # IKE SA -> (address, routes)

    def _usable(self) -> bool:
        tun, spec = self.gw.tun, self.gw.config.tun
        return tun is not None and spec is not None and spec.configure

    def established(self, conn) -> None:
        vip = conn.virtual_ip
        if not vip or not self._usable() or conn in self._installed:
            return
        tun = self.gw.tun.name
        addr = ipaddress.ip_address(vip)
        prefix = f"{vip}/{32 if addr.version == 4 else 128}"
        routes: list[str] = []
        for child in conn.config.children:
            for ts in child.remote_ts:
                if ts.version != addr.version:
                    continue
                for net in ipaddress.summarize_address_range(ts.start, ts.end):
                    if str(net) not in routes:
                        routes.append(str(net))
        try:
            _ip("addr", "replace", prefix, "dev", tun)
            for net in routes:
                _ip("-4" if addr.version == 4 else "-6", "route", "replace", net, "dev", tun, "src", vip)
        except OSError as exc:
            log.error("%s: cannot put virtual IP %s on %s: %s", conn.name, vip, tun, exc)
            return
        self._installed[conn] = (prefix, routes)
        log.info("%s: virtual IP %s on %s, routes %s", conn.name, vip, tun, ", ".join(routes) or "-")

    def rekeyed(self, old, new) -> None:
        if old in self._installed and new is not None:
            if new.virtual_ip is None:
                new.virtual_ip = old.virtual_ip
            self._installed[new] = self._installed.pop(old)

    def deleted(self, conn) -> None:
        entry = self._installed.pop(conn, None)
        if entry is None or self.gw.tun is None:
            return
        prefix, routes = entry
        tun = self.gw.tun.name
        for net in routes:
            _ip("route", "del", net, "dev", tun, check=False)
        _ip("addr", "del", prefix, "dev", tun, check=False)
        log.info("%s: virtual IP %s removed from %s", conn.name, prefix, tun)


def _ip(*args: str, check: bool = True) -> None:
    r = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise OSError(f"ip {' '.join(args)}: {r.stderr.strip()}")


__all__ = ["VirtualIps"]
