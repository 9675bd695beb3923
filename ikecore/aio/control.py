"""The daemon's control socket: a Unix stream socket (mode 0600) that speaks one
JSON object per line each way.

Request: ``{"cmd": "list-sas"}``; answer: ``{"ok": true, "result": ...}`` or
``{"ok": false, "error": "..."}``. Commands:

- ``list-sas``: every IKE SA with its Child SAs (algorithms, SPIs, addresses,
  identities, virtual IPs, rekey/expiry times, traffic counters; no keys).
- ``list-conns``: every configured connection: ``up``, ``connecting``,
  ``retrying``, ``down``, with the number of IKE SAs and the last failure.
- ``initiate`` ``{"name", "child"?, "timeout"?}``: bring the connection up (or,
  with ``child`` and the IKE SA up already, add that Child SA).
- ``terminate`` ``{"name", "child"?}``: delete the connection's IKE SAs (or only
  the Child SAs named ``child``).
- ``rekey`` ``{"name", "child"?}``: rekey the IKE SA (or the Child SAs named
  ``child``) and wait for the new SPIs.
- ``reload``: read the configuration file again (as SIGHUP does).

Reload (:func:`reload_config`): connections whose configuration is unchanged
keep their SAs; removed ones are deleted (INFORMATIONAL Delete to the peer);
changed ones are deleted and, with ``start``, initiated again; added ones with
``start`` are initiated. A file that does not parse is refused and the old
configuration stays in force. ``[gateway]`` settings (addresses, ports) need a
restart, and the reload says so.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import stat
from pathlib import Path

from ..errors import ConfigError, IkeError
from ..protocol import events as ev
from .config import GatewayConfig, load_config_data
from .errors import GatewayError

log = logging.getLogger("ikecore.control")

DEFAULT_CONTROL_SOCKET = "/run/ikecore/ikecore.sock"
MAX_REQUEST = 64 * 1024               # a request line longer than this is refused


class ControlError(Exception):
    """A control command that cannot be carried out (the message goes to the client)."""


# ------------------------------------------------------------------ config load --

def read_config(path: str | os.PathLike) -> tuple[GatewayConfig, dict]:
    """Parse the file once: the configuration and a fingerprint per connection
    (its TOML table plus the content of the files it names), so that a reload
    can tell which connections changed."""
    path = Path(path)
    cfg, data = load_config_data(path)
    prints = {name: _fingerprint(table, path.parent)
              for name, table in (data.get("connections") or {}).items()}
    return cfg, {"connections": prints, "gateway": json.dumps(data.get("gateway") or {}, sort_keys=True,
                                                              default=str)}


def _fingerprint(table, base: Path) -> str:
    h = hashlib.sha256(json.dumps(table, sort_keys=True, default=str).encode())

    def files(node):
        if isinstance(node, dict):
            for v in node.values():
                yield from files(v)
        elif isinstance(node, list):
            for v in node:
                yield from files(v)
        elif isinstance(node, str) and ("/" in node or "." in node) and len(node) < 4096:
            p = Path(node) if Path(node).is_absolute() else base / node
            try:
                if p.is_file():
                    yield p.read_bytes()          # a psk_file, key or certificate changed: reconnect
            except OSError:
                pass

    for content in files(table):
        h.update(hashlib.sha256(content).digest())
    return h.hexdigest()


def _sas_of(gw, name: str) -> list:
    """The live (not rekeyed-away) IKE SAs of connection ``name``, half-open ones included."""
    if gw.endpoint is None:
        return []
    return [c for c in gw.endpoint.connections.values()
            if c.config is not None and c.config.name == name and c.replaced_by is None
            and c.state.name not in ("DELETED",)]


def reload_config(gw, path: str | os.PathLike) -> dict:
    """Apply the file at ``path`` to a running gateway (see the module docstring).
    Raises ConfigError (old configuration kept) when the file is broken."""
    new_cfg, prints = read_config(path)
    old_prints = getattr(gw, "config_fingerprints", None) or {"connections": {}, "gateway": None}
    old = gw.config.connections
    added = [n for n in new_cfg.connections if n not in old]
    removed = [n for n in old if n not in new_cfg.connections]
    changed = [n for n in new_cfg.connections
               if n in old and prints["connections"].get(n) != old_prints["connections"].get(n)]
    unchanged = [n for n in new_cfg.connections if n in old and n not in changed]

    merged = {}
    for name, spec in new_cfg.connections.items():
        merged[name] = old[name] if name in unchanged else spec   # unchanged: the very objects the SAs use
    gw.config.connections = merged
    gw.config_fingerprints = prints
    for name in removed + changed:
        for conn in _sas_of(gw, name):
            log.info("%s: %s by reload: deleting IKE SA %s_i %s_r", name,
                     "removed" if name in removed else "changed", conn.spi_i.hex(), conn.spi_r.hex())
            _delete(gw, conn)
        gw.connection_failures.pop(name, None)
    for name in changed + added:
        spec = merged[name]
        if spec.start:
            gw._spawn(gw._start_connection(spec))
    gateway_changed = old_prints["gateway"] is not None and prints["gateway"] != old_prints["gateway"]
    if gateway_changed:
        log.warning("reload: [gateway] settings changed; they take effect at the next restart")
    if new_cfg.logging.level != gw.config.logging.level:
        logging.getLogger("ikecore").setLevel(new_cfg.logging.level.upper())
        gw.config.logging = new_cfg.logging
    result = {"added": added, "removed": removed, "changed": changed, "unchanged": unchanged,
              "restart_needed": gateway_changed}
    log.info("configuration reloaded from %s: %d added, %d removed, %d changed, %d unchanged",
             path, len(added), len(removed), len(changed), len(unchanged))
    return result


def _delete(gw, conn) -> None:
    gw._initiations.pop(conn, None)
    try:
        gw.delete(conn)
    except IkeError as exc:            # half-open: no Delete to send, end it here
        log.debug("%s: %s", conn.name, exc)
        gw._safe(conn, lambda c: c.terminate("connection removed", gw.loop.time()))


# ---------------------------------------------------------------------- server --

class ControlServer:
    """Serves the control socket of one :class:`~ikecore.aio.gateway.Gateway`.
    ``config_path``: the file ``reload`` reads (None: reload is refused)."""

    def __init__(self, gw, path: str, config_path: str | None = None) -> None:
        self.gw = gw
        self.path = path
        self.config_path = config_path
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> "ControlServer":
        directory = os.path.dirname(self.path) or "."
        os.makedirs(directory, mode=0o750, exist_ok=True)
        if os.path.exists(self.path):
            if not stat.S_ISSOCK(os.lstat(self.path).st_mode):
                raise OSError(f"{self.path} exists and is not a socket")
            if await _answers(self.path):
                raise OSError(f"{self.path}: another daemon is listening there")
            os.unlink(self.path)         # a stale socket of a daemon that died
        old = os.umask(0o177)            # created 0600: no window with a wider mode
        try:
            self.server = await asyncio.start_unix_server(self._client, path=self.path,
                                                          limit=MAX_REQUEST)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        log.info("control socket at %s", self.path)
        return self

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
            try:
                os.unlink(self.path)
            except OSError:
                pass

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    await _send(writer, {"ok": False, "error": f"request longer than {MAX_REQUEST} bytes"})
                    return
                if not line:
                    return
                try:
                    request = json.loads(line)
                    if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
                        raise ControlError('a request is a JSON object with "cmd"')
                    result = await self.handle(request)
                    answer = {"ok": True, "result": result}
                except json.JSONDecodeError as exc:
                    answer = {"ok": False, "error": f"not JSON: {exc}"}
                except (ControlError, ConfigError, GatewayError, IkeError) as exc:
                    answer = {"ok": False, "error": str(exc)}
                except Exception as exc:          # a bad command must not take the daemon down
                    log.exception("control command failed")
                    answer = {"ok": False, "error": f"internal error: {type(exc).__name__}: {exc}"}
                await _send(writer, answer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def handle(self, request: dict):
        cmd = request["cmd"]
        gw = self.gw
        if cmd == "list-sas":
            return gw.status()["ike_sas"]
        if cmd == "list-conns":
            return gw.connections_status()
        if cmd == "reload":
            if self.config_path is None:
                raise ControlError("this daemon has no configuration file to reload")
            return reload_config(gw, self.config_path)
        name = request.get("name")
        if not isinstance(name, str):
            raise ControlError(f"{cmd}: name the connection")
        spec = gw.config.connection(name)
        child = request.get("child")
        if child is not None and child not in {c.name for c in spec.ike.children}:
            raise ControlError(f"{name}: no child named {child!r}")
        timeout = float(request.get("timeout", 30.0))
        if cmd == "initiate":
            return await self._initiate(spec, child, timeout)
        if cmd == "terminate":
            return self._terminate(name, child)
        if cmd == "rekey":
            return await self._rekey(name, child, timeout)
        raise ControlError(f"unknown command {cmd!r}")

    async def _initiate(self, spec, child: str | None, timeout: float) -> dict:
        gw = self.gw
        up = [c for c in _sas_of(gw, spec.name) if c.established]
        if up and child is not None:
            conn = up[0]
            gw.create_child(conn, child)
            _, event = await gw.wait_for((ev.ChildSaInstalled, ev.ChildSaFailed), conn,
                                         predicate=lambda c, e: getattr(e, "name", None) == child
                                         or getattr(getattr(e, "child", None), "name", None) == child,
                                         timeout=timeout)
            if isinstance(event, ev.ChildSaFailed):
                raise ControlError(f"{spec.name}: Child SA {child} not created: {event.reason}")
            return {"name": spec.name, "child": child, "spi_in": event.child.spi_in.hex(),
                    "spi_out": event.child.spi_out.hex()}
        if up:
            raise ControlError(f"{spec.name}: already up (IKE SA {up[0].spi_i.hex()}_i {up[0].spi_r.hex()}_r)")
        conn = await gw.initiate(spec.name, child=child, timeout=timeout)
        gw.connection_failures.pop(spec.name, None)
        return {"name": spec.name, "spi_i": conn.spi_i.hex(), "spi_r": conn.spi_r.hex(),
                "child_sas": [{"name": c.name, "spi_in": c.spi_in.hex(), "spi_out": c.spi_out.hex()}
                              for c in gw.child_sas(conn)]}

    def _terminate(self, name: str, child: str | None) -> dict:
        gw = self.gw
        sas = _sas_of(gw, name)
        if not sas:
            raise ControlError(f"{name}: no IKE SA")
        if child is None:
            for conn in sas:
                _delete(gw, conn)
            return {"name": name, "deleted_ike_sas": [f"{c.spi_i.hex()}_i {c.spi_r.hex()}_r" for c in sas]}
        deleted = []
        for conn in sas:
            for c in gw.child_sas(conn):
                if c.name == child:
                    gw.delete_child(conn, c)
                    deleted.append(c.spi_in.hex())
        if not deleted:
            raise ControlError(f"{name}: no Child SA named {child!r} is up")
        return {"name": name, "child": child, "deleted_child_sas": deleted}

    async def _rekey(self, name: str, child: str | None, timeout: float) -> dict:
        gw = self.gw
        sas = [c for c in _sas_of(gw, name) if c.established]
        if not sas:
            raise ControlError(f"{name}: no established IKE SA")
        conn = sas[0]
        if child is None:
            old = (conn.spi_i.hex(), conn.spi_r.hex())
            waiter = asyncio.ensure_future(gw.wait_for(ev.IkeSaRekeyed, conn, timeout=timeout))
            await asyncio.sleep(0)
            gw.rekey(conn)
            _, event = await waiter
            new = event.connection
            return {"name": name, "old": f"{old[0]}_i {old[1]}_r", "new": f"{new.spi_i.hex()}_i {new.spi_r.hex()}_r"}
        kids = [c for c in gw.child_sas(conn) if c.name == child]
        if not kids:
            raise ControlError(f"{name}: no Child SA named {child!r} is up")
        out = []
        for kid in kids:
            waiter = asyncio.ensure_future(gw.wait_for(
                ev.ChildSaRekeyed, conn, predicate=lambda c, e, kid=kid: e.old is kid, timeout=timeout))
            await asyncio.sleep(0)
            gw.rekey_child(conn, kid)
            _, event = await waiter
            out.append({"old": f"{event.old.spi_in.hex()}/{event.old.spi_out.hex()}",
                        "new": f"{event.new.spi_in.hex()}/{event.new.spi_out.hex()}"})
        return {"name": name, "child": child, "rekeyed": out}


async def _send(writer: asyncio.StreamWriter, answer: dict) -> None:
    writer.write(json.dumps(answer, default=str).encode() + b"\n")
    await writer.drain()


async def _answers(path: str) -> bool:
    try:
        _, w = await asyncio.wait_for(asyncio.open_unix_connection(path), 1.0)
    except (OSError, asyncio.TimeoutError):
        return False
    w.close()
    return True


# ---------------------------------------------------------------------- client --

def request(path: str, cmd: str, io_timeout: float = 60.0, **args) -> object:
    """Send one command to a daemon's control socket (blocking); returns its
    result or raises ControlError with the daemon's message."""
    import socket
    body = {"cmd": cmd, **{k: v for k, v in args.items() if v is not None}}
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(io_timeout)
            s.connect(path)
            s.sendall(json.dumps(body).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
    except FileNotFoundError:
        raise ControlError(f"{path}: no control socket (is the gateway running? see --socket)") from None
    except PermissionError:
        raise ControlError(f"{path}: permission denied (the socket is 0600: run as the daemon's user)") from None
    except (socket.timeout, OSError) as exc:
        raise ControlError(f"{path}: {exc}") from None
    try:
        answer = json.loads(buf)
    except json.JSONDecodeError:
        raise ControlError(f"{path}: the daemon closed the connection without an answer") from None
    if not answer.get("ok"):
        raise ControlError(answer.get("error", "failed"))
    return answer["result"]


__all__ = ["ControlServer", "ControlError", "reload_config", "read_config", "request",
           "DEFAULT_CONTROL_SOCKET"]
