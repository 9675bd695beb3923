"""The gateway's TOML configuration: file -> :class:`GatewayConfig`.

Every error is an :class:`ikecore.errors.ConfigError` whose message names the
file and the key (``gateway.toml: connections.site-b.children.net.local_ts[0]:
bad traffic selector ...``). Unknown keys are errors too, so that a typo does
not silently fall back to a default. See ``docs/gateway.md`` for the format.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, IkeError
from ..protocol.limits import EndpointLimits
from ..protocol.config import (ChildConfig, EspProposal, IkeConfig, IkeProposal, Identity, LocalAuth,
                               RemoteAuth, TrafficSelectorSpec)

try:                                   # Python 3.11+
    import tomllib as _toml
except ModuleNotFoundError:            # pragma: no cover - Python 3.10 with tomli installed
    import tomli as _toml              # type: ignore[no-redef]

DEFAULT_PORT = 500
DEFAULT_NATT_PORT = 4500
_LEVELS = {"debug", "info", "warning", "error", "critical"}


@dataclass
class ConnectionSpec:
    """One configured connection: the IKE/Child configuration plus where the peer is."""

    name: str
    ike: IkeConfig
    remote_addrs: list[str] = field(default_factory=list)   # hosts or networks; empty: any peer
    remote_port: int = DEFAULT_PORT
    remote_natt_port: int = DEFAULT_NATT_PORT
    local_addr: str | None = None
    start: bool = False                 # initiate when the gateway starts
    start_child: str | None = None      # the child the initial exchange creates (default: first)
    restart: bool | None = None         # initiate again when the IKE SA ends; None: as ``start``
    start_children: list[str] | None = None   # children brought up with the IKE SA (None: the first only)

    @property
    def keep_up(self) -> bool:
        """Whether the gateway initiates this connection again when its IKE SA ends
        for any reason but its own delete (the peer's delete, DPD, a failed rekey,
        a hard lifetime)."""
        return self.start if self.restart is None else self.restart

    @property
    def initiator_target(self) -> str | None:
        """The host this connection initiates to (the first remote address that is one host)."""
        for a in self.remote_addrs:
            if a.startswith("%"):
                continue            # %any, %any4, %any6: not a place to initiate to
            try:
                net = ipaddress.ip_network(a, strict=False)
            except ValueError:
                return a            # a DNS name
            if net.num_addresses == 1:
                return str(net.network_address)
        return None

    def accepts(self, host: str) -> bool:
        """Whether a peer at ``host`` may use this connection (responder side)."""
        if not self.remote_addrs:
            return True
        try:
            addr = ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            return False
        for a in self.remote_addrs:
            if a in ("%any", "%any4", "%any6"):
                if a == "%any" or (a == "%any4") == (addr.version == 4):
                    return True
                continue
            try:
                if addr in ipaddress.ip_network(a, strict=False):
                    return True
            except ValueError:
                continue
        return False


@dataclass
class TunSpec:
    name: str = "ikc0"
    addresses: list[str] = field(default_factory=list)   # "10.1.0.1/32" put on the device
    routes: list[str] | str = "auto"     # "auto": every connection's remote_ts; or explicit prefixes
    mtu: int = 1400
    configure: bool = True               # run `ip` to bring the device up, add addresses/routes


@dataclass
class KeyExportSpec:
    directory: str
    ike: bool = True
    esp: bool = True


@dataclass
class LoggingSpec:
    level: str = "info"
    file: str | None = None
    levels: dict[str, str] = field(default_factory=dict)   # logger name -> level


@dataclass
class ResumptionSpec:
    """The ``[resumption]`` table: issuing and accepting RFC 5723 tickets, and
    where the ring and the spent tickets live (docs/resumption.md, "Configuring
    a cluster"). The wrapping key itself is read at load time and kept out of
    every repr."""

    enabled: bool = True
    mode: str = "value"                    # "value": state in the ticket; "reference": state in the store
    ticket_lifetime: float = 3600.0        # upper bound of a ticket's lifetime
    key_rotation: float = 3600.0           # a new sealing key this often
    keep_keys: int = 2                     # retired keys still accepted
    store: str = "memory"                  # "memory" or a redis:// / rediss:// / unix:// URL
    store_deadline: float = 0.25           # seconds per store call
    store_max_entries: int = 100_000       # memory store only
    wrapping_key_file: str | None = None   # required for a shared store
    wrapping_key: bytes | None = field(default=None, repr=False)

    @property
    def shared(self) -> bool:
        return self.store != "memory"


@dataclass
class GatewayConfig:
    """Everything ``Gateway`` needs. Build it by hand or with :func:`load_config`."""

    connections: dict[str, ConnectionSpec] = field(default_factory=dict)
    listen: list[str] = field(default_factory=lambda: ["0.0.0.0", "::"])
    port: int = DEFAULT_PORT               # 0: an ephemeral port (tests)
    natt_port: int = DEFAULT_NATT_PORT     # 0: an ephemeral port
    cookie_threshold: int = 100            # half-open IKE SAs before cookies are required
    # caps on what peers can make the gateway hold (docs/hardening.md); None: the
    # defaults, with the half-open caps kept above cookie_threshold
    limits: EndpointLimits | None = None
    keepalive_interval: float = 20.0       # NAT keepalives (RFC 3948 §2.3), 0: off
    roam_interval: float = 5.0             # MOBIKE: check our SAs' local addresses this often, 0: off
    gc_full_interval: float = 3600.0       # daemon: full garbage collection this often (aio/collector.py), 0: never
    batch_size: int = 64                   # packets per ESP batch (PacketVector capacity)
    socket_buffer: int = 4 << 20           # SO_RCVBUF/SO_SNDBUF of every socket (0: the system's)
    key_export: KeyExportSpec | None = None
    tun: TunSpec | None = None
    logging: LoggingSpec = field(default_factory=LoggingSpec)
    control_socket: str | None = None      # the daemon's control socket (aio/control.py); "" or None: the default
    resumption: ResumptionSpec | None = None   # None: this gateway issues no tickets
    source: str = "<config>"               # where it came from (error messages)

    def connection(self, name: str) -> ConnectionSpec:
        try:
            return self.connections[name]
        except KeyError:
            raise ConfigError(f"{self.source}: connections: no connection named {name!r}") from None


# ------------------------------------------------------------------------- parsing --

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class _Reader:
    """Typed access to one TOML table, with the file and dotted key in every error."""

    def __init__(self, source: str, path: str, table: Any, base_dir: Path) -> None:
        self.source, self.path, self.base_dir = source, path, base_dir
        if not isinstance(table, dict):
            raise self.error("", f"must be a table, not {type(table).__name__}")
        self.table = table
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path and name else (self.path or name)

    def error(self, name: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {self.key(name)}: {message}")

    def has(self, name: str) -> bool:
        return name in self.table

    def get(self, name: str, kind, default=None, *, required: bool = False):
        self.used.add(name)
        if name not in self.table:
            if required:
                raise self.error(name, "is required")
            return default
        value = self.table[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if bool not in kinds and isinstance(value, bool):
            raise self.error(name, f"must be {self._names(kinds)}, not a boolean")
        if not isinstance(value, kinds):
            raise self.error(name, f"must be {self._names(kinds)}, not {type(value).__name__}")
        return value

    @staticmethod
    def _names(kinds) -> str:
        names = {str: "a string", int: "an integer", float: "a number", bool: "a boolean",
                 list: "an array", dict: "a table"}
        return " or ".join(names.get(k, k.__name__) for k in kinds)

    def string_list(self, name: str, default=None, *, required: bool = False) -> list[str]:
        value = self.get(name, (list, str), default, required=required)
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        for i, v in enumerate(value):
            if not isinstance(v, str):
                raise self.error(f"{name}[{i}]", "must be a string")
        return list(value)

    def duration(self, name: str, default: float | None = None) -> float | None:
        value = self.get(name, (int, float, str), default)
        if isinstance(value, str):
            m = _DURATION.match(value)
            if not m:
                raise self.error(name, f"bad duration {value!r} (use seconds or e.g. '30s', '5m', '4h', '1d')")
            value = float(m.group(1)) * _UNITS[m.group(2)]
        if value is not None and value < 0:
            raise self.error(name, "must not be negative")
        return None if value is None else float(value)

    def port(self, name: str, default: int) -> int:
        value = self.get(name, int, default)
        if not 0 <= value <= 65535:
            raise self.error(name, "must be 0..65535")
        return value

    def sub(self, name: str, default: dict | None = None) -> "_Reader | None":
        value = self.get(name, dict, default)
        return None if value is None else _Reader(self.source, self.key(name), value, self.base_dir)

    def file(self, name: str, value: str) -> bytes:
        path = Path(value)
        if not path.is_absolute():
            path = self.base_dir / path
        try:
            return path.read_bytes()
        except OSError as exc:
            raise self.error(name, f"cannot read {str(path)!r}: {exc.strerror}") from None

    def secret_file(self, name: str, value: str) -> bytes:
        """A file holding a secret (psk_file, a private key): refused when the
        group or others may read it, as ssh refuses such a key."""
        path = Path(value)
        if not path.is_absolute():
            path = self.base_dir / path
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            raise self.error(name, f"cannot read {str(path)!r}: {exc.strerror}") from None
        if mode & 0o077:
            raise self.error(name, f"{str(path)!r} holds a secret but is readable by group or others "
                                   f"(mode {mode & 0o777:04o}): chmod 600 it")
        return self.file(name, value)

    def done(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise self.error(unknown[0], "unknown key")

    def wrap(self, name: str, fn, *args):
        """Call a constructor; its ConfigError/ValueError gets this key attached."""
        try:
            return fn(*args)
        except (IkeError, ValueError) as exc:
            raise self.error(name, str(exc)) from None


def _psk(r: _Reader) -> bytes | None:
    if r.has("psk") and r.has("psk_file"):
        raise r.error("psk_file", "give psk or psk_file, not both")
    text = r.get("psk", str)
    if text is None and r.has("psk_file"):
        text = r.secret_file("psk_file", r.get("psk_file", str)).decode("utf-8", "replace").strip()
    if text is None:
        return None
    name = "psk" if r.has("psk") else "psk_file"
    if text.startswith("0x"):
        try:
            value = bytes.fromhex(text[2:])
        except ValueError:
            raise r.error(name, "a 0x-prefixed PSK must be hex") from None
    else:
        value = text.encode()
    if not value:
        raise r.error(name, "the pre-shared key is empty")
    return value


def _private_key(r: _Reader, name: str):
    from cryptography.hazmat.primitives import serialization
    data = r.secret_file(name, r.get(name, str))
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return serialization.load_pem_private_key(data, password=None)
        return serialization.load_der_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise r.error(name, f"not a usable private key: {exc}") from None


def _certificates(r: _Reader, name: str) -> list[bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
    out = []
    for i, path in enumerate(r.string_list(name)):
        data = r.file(f"{name}[{i}]", path)
        try:
            if data.lstrip().startswith(b"-----BEGIN"):
                out += [c.public_bytes(Encoding.DER) for c in x509.load_pem_x509_certificates(data)]
            else:
                out.append(x509.load_der_x509_certificate(data).public_bytes(Encoding.DER))
        except ValueError as exc:
            raise r.error(f"{name}[{i}]", f"malformed certificate: {exc}") from None
    return out


def _required_psk(r: _Reader, shared_psk: bytes | None) -> bytes:
    psk = _psk(r) or shared_psk
    if psk is None:
        raise r.error("psk", "is required with auth = \"psk\" (here or on the connection)")
    return psk


def _local_auth(r: _Reader, shared_psk: bytes | None) -> LocalAuth:
    auth = r.get("auth", str, "psk")
    if auth == "psk":
        return LocalAuth(psk=_required_psk(r, shared_psk))
    if auth == "pubkey":
        key = _private_key(r, "key") if r.has("key") else None
        if key is None:
            raise r.error("key", "is required with auth = \"pubkey\"")
        certs = _certificates(r, "certs")
        return r.wrap("auth", lambda: LocalAuth(private_key=key, certificates=tuple(certs),
                                                rsa_pss=r.get("rsa_pss", bool, True)))
    raise r.error("auth", f"must be \"psk\" or \"pubkey\", not {auth!r}")


def _remote_auth(r: _Reader, shared_psk: bytes | None) -> RemoteAuth:
    auth = r.get("auth", str, "psk")
    if auth == "psk":
        return RemoteAuth(psk=_required_psk(r, shared_psk))
    if auth == "pubkey":
        from ..protocol.auth import TrustStore, load_crls
        if r.has("cacerts") == r.has("pubkey"):
            raise r.error("cacerts", "auth = \"pubkey\" needs exactly one of cacerts or pubkey")
        if r.has("cacerts"):
            blobs = [r.file(f"cacerts[{i}]", p) for i, p in enumerate(r.string_list("cacerts"))]
            crls = [r.file(f"crls[{i}]", p) for i, p in enumerate(r.string_list("crls"))]
            crl_check = r.get("crl_check", str, "leaf")
            if crl_check not in ("leaf", "chain"):
                raise r.error("crl_check", f"must be \"leaf\" or \"chain\", not {crl_check!r}")
            if crl_check == "chain" and not crls:
                raise r.error("crl_check", "\"chain\" needs crls")
            parsed = r.wrap("crls", load_crls, crls)
            return RemoteAuth(trust_store=r.wrap("cacerts", lambda b: TrustStore(
                b, parsed, crl_check_chain=crl_check == "chain"), blobs))
        from cryptography.hazmat.primitives import serialization
        data = r.file("pubkey", r.get("pubkey", str))
        try:
            key = (serialization.load_pem_public_key(data) if data.lstrip().startswith(b"-----BEGIN")
                   else serialization.load_der_public_key(data))
        except ValueError as exc:
            raise r.error("pubkey", f"not a usable public key: {exc}") from None
        return RemoteAuth(public_key=key)
    raise r.error("auth", f"must be \"psk\" or \"pubkey\", not {auth!r}")


def _selectors(r: _Reader, name: str) -> list[TrafficSelectorSpec]:
    items = r.string_list(name, required=True)
    if not items:
        raise r.error(name, "needs at least one traffic selector")
    return [r.wrap(f"{name}[{i}]", TrafficSelectorSpec.parse, t) for i, t in enumerate(items)]


def _child(r: _Reader, name: str, defaults: dict) -> ChildConfig:
    esp = r.string_list("esp_proposals", ["aes256gcm16"])
    if not esp:
        raise r.error("esp_proposals", "needs at least one proposal")
    kw: dict[str, Any] = dict(
        local_ts=_selectors(r, "local_ts"), remote_ts=_selectors(r, "remote_ts"),
        esp_proposals=[r.wrap(f"esp_proposals[{i}]", EspProposal.parse, p) for i, p in enumerate(esp)],
        mode=r.get("mode", str, "tunnel"),
        rekey_time=r.duration("rekey_time", defaults.get("child_rekey_time", 3600.0)),
        replay_window=r.get("replay_window", int, 64))
    kw["life_time"] = r.duration("life_time", max(kw["rekey_time"] * 1.1, kw["rekey_time"]))
    if not 0 <= kw["replay_window"] <= 1 << 20:
        raise r.error("replay_window", "must be 0 .. 1048576")
    child = r.wrap("", lambda: ChildConfig(name, **kw))
    defaults.setdefault("started", []).append(name) if r.get("start", bool, True) else None
    r.done()
    return child


def _resumption(r: _Reader) -> ResumptionSpec:
    """The ``[resumption]`` table (docs/gateway.md)."""
    from ..resumption.keyring import MAX_KEEP
    spec = ResumptionSpec(enabled=r.get("enabled", bool, True))
    spec.mode = r.get("mode", str, "value")
    if spec.mode not in ("value", "reference"):
        raise r.error("mode", f"must be \"value\" or \"reference\", not {spec.mode!r}")
    spec.ticket_lifetime = r.duration("ticket_lifetime", 3600.0)
    if not spec.ticket_lifetime >= 1:
        raise r.error("ticket_lifetime", "must be at least 1 s")
    spec.key_rotation = r.duration("key_rotation", 3600.0)
    if not 1 <= spec.key_rotation <= 0xFFFFFFFF:
        raise r.error("key_rotation", "must be 1 s .. 2**32-1 s")
    spec.keep_keys = r.get("keep_keys", int, 2)
    if not 1 <= spec.keep_keys <= MAX_KEEP:
        raise r.error("keep_keys", f"must be 1..{MAX_KEEP}")
    if spec.ticket_lifetime > int(spec.key_rotation) * spec.keep_keys:
        # the authority cuts every ticket to the life of its sealing key: say so now
        raise r.error("ticket_lifetime", f"{spec.ticket_lifetime:g} s outlives the keys that seal tickets "
                      f"(key_rotation x keep_keys = {int(spec.key_rotation) * spec.keep_keys} s): "
                      "raise keep_keys or key_rotation, or shorten ticket_lifetime")
    spec.store = r.get("store", str, "memory")
    if spec.shared:
        _store_url(r, spec.store)
    spec.store_deadline = r.duration("store_deadline", 0.25)
    if not 0 < spec.store_deadline <= 10:
        raise r.error("store_deadline", "must be more than 0 and at most 10 s (a resumption waits on it)")
    spec.store_max_entries = r.get("store_max_entries", int, 100_000)
    if spec.store_max_entries < 1:
        raise r.error("store_max_entries", "must be positive")
    if r.has("store_max_entries") and spec.shared:
        raise r.error("store_max_entries", "applies to store = \"memory\" only")
    path = r.get("wrapping_key_file", str)
    if path is not None:
        full = Path(path) if Path(path).is_absolute() else r.base_dir / path
        spec.wrapping_key_file = str(full)
        from ..store.keyfile import load_wrapping_key
        try:
            spec.wrapping_key = load_wrapping_key(full)      # refuses a file others may read
        except ConfigError as exc:
            raise r.error("wrapping_key_file", str(exc)) from None
    elif spec.shared and spec.enabled:
        raise r.error("wrapping_key_file", "is required with a shared store (the ring is stored wrapped "
                      "under it; create one with `ikecore keygen --wrapping-key FILE`)")
    r.done()
    return spec


def _store_url(r: _Reader, url: str) -> None:
    from urllib.parse import urlsplit
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise r.error("store", f"bad URL: {exc}") from None
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise r.error("store", f"must be \"memory\" or a redis://, rediss:// or unix:// URL, not {url!r}")
    if parts.scheme != "unix" and not parts.hostname:
        raise r.error("store", f"{url!r} names no host")
    if parts.scheme == "unix" and not parts.path:
        raise r.error("store", f"{url!r} names no socket path")
    db = parts.path.strip("/") if parts.scheme != "unix" else ""
    if db and not db.isdigit():
        raise r.error("store", f"the database in {url!r} must be a number")
    del port
    try:
        import redis.asyncio  # noqa: F401
    except ImportError:
        raise r.error("store", "a Redis store needs the redis package: pip install 'ikecore[redis]'") from None


def _connection(r: _Reader, name: str, resumption: "ResumptionSpec | None" = None) -> ConnectionSpec:
    shared_psk = _psk(r)
    local = r.sub("local", {}) or _Reader(r.source, r.key("local"), {}, r.base_dir)
    remote = r.sub("remote", {}) or _Reader(r.source, r.key("remote"), {}, r.base_dir)
    local_id = local.get("id", str, required=True)
    remote_id = remote.get("id", str)
    local_auth = _local_auth(local, shared_psk)
    remote_auth = _remote_auth(remote, shared_psk)
    local.done()
    remote.done()

    props = r.string_list("proposals", ["aes256gcm16-prfsha256-x25519"])
    if not props:
        raise r.error("proposals", "needs at least one proposal")
    proposals = [r.wrap(f"proposals[{i}]", IkeProposal.parse, p) for i, p in enumerate(props)]

    children_r = r.sub("children", {})
    children = []
    child_flags: dict = {}
    for cname, ctable in children_r.table.items():
        children_r.used.add(cname)
        children.append(_child(_Reader(r.source, children_r.key(cname), ctable, r.base_dir), cname, child_flags))

    kw: dict[str, Any] = {}
    for key, attr in (("rekey_time", "rekey_time"), ("life_time", "life_time"),
                      ("retransmit_timeout", "retransmit_timeout"), ("dpd_delay", "dpd_delay")):
        value = r.duration(key)
        if value is not None:
            kw[attr] = value
    if "rekey_time" in kw and "life_time" not in kw:
        kw["life_time"] = kw["rekey_time"] * 1.1
    for key, attr, kind in (("retransmit_base", "retransmit_base", (int, float)),
                            ("retransmit_tries", "retransmit_tries", int),
                            ("mobike", "mobike", bool), ("clone", "clone", bool),
                            ("clone_limit", "clone_limit", int),
                            ("resumption", "resumption", bool), ("resume_tries", "resume_tries", int),
                            ("fragmentation", "fragmentation", bool),
                            ("fragment_size", "fragment_size", int),
                            ("initial_contact", "initial_contact", bool),
                            ("request_virtual_ip", "request_virtual_ip", bool),
                            ("encap", "force_encap", bool), ("window_size", "window_size", int),
                            ("mobike_return_routability", "mobike_return_routability", bool)):
        value = r.get(key, kind)
        if value is not None:
            kw[attr] = value
    auth_form = r.get("resumption_auth", str)
    if auth_form is not None:
        if auth_form not in ("rfc", "message"):
            raise r.error("resumption_auth", f"must be \"rfc\" or \"message\", not {auth_form!r}")
        kw["resumption_auth"] = auth_form
    if kw.get("resume_tries", 0) < 0:
        raise r.error("resume_tries", "must not be negative")
    reauth = r.duration("reauth_time")
    if reauth is not None:
        kw["reauth_time"] = reauth
    if resumption is not None and resumption.enabled:
        kw.setdefault("resumption", True)          # [resumption] enabled: every connection, unless it says no
        kw["ticket_lifetime"] = resumption.ticket_lifetime
    mobike_addrs = r.string_list("mobike_addresses")
    for i, a in enumerate(mobike_addrs):
        try:
            ipaddress.ip_address(a)
        except ValueError:
            raise r.error(f"mobike_addresses[{i}]", f"not an IP address: {a!r}") from None
    if mobike_addrs:
        if not kw.get("mobike"):
            raise r.error("mobike_addresses", "needs mobike = true")
        kw["mobike_addresses"] = mobike_addrs
    kw.setdefault("force_encap", True)      # ESP-in-UDP unless encap = false (then plain ESP without NAT: plain_esp.py)
    pools = r.string_list("pools")
    if pools:
        addrs = []
        for i, p in enumerate(pools):
            try:
                net = ipaddress.ip_network(p, strict=False)
            except ValueError as exc:
                raise r.error(f"pools[{i}]", str(exc)) from None
            addrs += [str(a) for a in (net.hosts() if net.num_addresses > 2 else net)]
        kw["address_pool"] = addrs
    ike = r.wrap("", lambda: IkeConfig(
        local_id=local.wrap("id", Identity.parse, local_id), local_auth=local_auth, remote_auth=remote_auth,
        remote_id=remote.wrap("id", Identity.parse, remote_id) if remote_id else None,
        proposals=proposals, children=children, name=name, **kw))

    remote_addrs = r.string_list("remote_addrs")
    for i, a in enumerate(remote_addrs):
        if a.startswith("%"):
            if a not in ("%any", "%any4", "%any6"):
                raise r.error(f"remote_addrs[{i}]", f"unknown keyword {a!r} (%any, %any4, %any6)")
            continue
        try:
            ipaddress.ip_network(a, strict=False)
        except ValueError:
            if not re.match(r"^[A-Za-z0-9.-]+$", a):
                raise r.error(f"remote_addrs[{i}]", f"not an address, network or host name: {a!r}") from None
    spec = ConnectionSpec(
        name=name, ike=ike, remote_addrs=remote_addrs,
        remote_port=r.port("remote_port", DEFAULT_PORT),
        remote_natt_port=r.port("remote_natt_port", DEFAULT_NATT_PORT),
        local_addr=r.get("local_addr", str),
        start=r.get("start", bool, False), start_child=r.get("start_child", str),
        restart=r.get("restart", bool), start_children=child_flags.get("started", []))
    for key in ("start", "restart"):
        if getattr(spec, key) and spec.initiator_target is None:
            raise r.error(key, "an initiating connection needs one host in remote_addrs")
    if spec.start_child is not None and spec.start_child not in {c.name for c in children}:
        raise r.error("start_child", f"no child named {spec.start_child!r}")
    r.done()
    return spec


_LIMIT_COUNTS = ("max_half_open", "max_half_open_per_host", "max_sas_per_identity",
                 "max_reassembly_bytes", "max_reassembly_bytes_per_sa", "max_pending_events")


def _limits(gw: "_Reader", cookie_threshold: int) -> EndpointLimits:
    """The [gateway] caps; every error names the file and the key."""
    defaults = EndpointLimits()
    values = {}
    for name in _LIMIT_COUNTS:
        value = gw.get(name, int, getattr(defaults, name))
        if value < (0 if name == "max_sas_per_identity" else 1):
            raise gw.error(name, "must be at least " + ("0" if name == "max_sas_per_identity" else "1"))
        values[name] = value
    lifetime = gw.duration("half_open_lifetime", defaults.half_open_lifetime)
    if lifetime is not None and lifetime <= 0:
        raise gw.error("half_open_lifetime", "must be positive")
    values["half_open_lifetime"] = lifetime
    if values["max_reassembly_bytes_per_sa"] > values["max_reassembly_bytes"]:
        raise gw.error("max_reassembly_bytes_per_sa", "must not exceed max_reassembly_bytes")
    for cap in ("max_half_open_per_host", "max_half_open"):
        if cookie_threshold >= values[cap]:
            raise gw.error("cookie_threshold", f"must be below {cap} ({values[cap]}): cookies must "
                           "engage before a cap refuses initiators")
    return EndpointLimits(**values)


def parse_config(data: dict, source: str = "<config>", base_dir: str | os.PathLike = ".") -> GatewayConfig:
    """A parsed TOML document (dict) -> GatewayConfig."""
    root = _Reader(source, "", data, Path(base_dir))
    cfg = GatewayConfig(source=source)
    gw = root.sub("gateway", {})
    cfg.listen = gw.string_list("listen", ["0.0.0.0", "::"])
    for i, a in enumerate(cfg.listen):
        try:
            ipaddress.ip_address(a)
        except ValueError:
            raise gw.error(f"listen[{i}]", f"not an IP address: {a!r}") from None
    cfg.port = gw.port("port", DEFAULT_PORT)
    cfg.natt_port = gw.port("natt_port", DEFAULT_NATT_PORT)
    if cfg.port and cfg.port == cfg.natt_port:
        raise gw.error("natt_port", "must differ from port")
    cfg.cookie_threshold = gw.get("cookie_threshold", int, 100)
    if cfg.cookie_threshold < 0:
        raise gw.error("cookie_threshold", "must not be negative")
    cfg.limits = _limits(gw, cfg.cookie_threshold)
    cfg.keepalive_interval = gw.duration("keepalive_interval", 20.0)
    cfg.roam_interval = gw.duration("roam_interval", 5.0)
    cfg.gc_full_interval = gw.duration("gc_full_interval", 3600.0)
    cfg.batch_size = gw.get("batch_size", int, 64)
    if not 1 <= cfg.batch_size <= 1024:
        raise gw.error("batch_size", "must be 1..1024")
    cfg.control_socket = gw.get("control_socket", str)
    cfg.socket_buffer = gw.get("socket_buffer", int, 4 << 20)
    if cfg.socket_buffer < 0:
        raise gw.error("socket_buffer", "must not be negative")
    gw.done()

    res = root.sub("resumption")
    if res is not None:
        cfg.resumption = _resumption(res)

    conns = root.sub("connections", {})
    for name, table in conns.table.items():
        conns.used.add(name)
        if not re.match(r"^[A-Za-z0-9_.-]+$", name):
            raise conns.error(name, "connection names are letters, digits, '_', '.', '-'")
        cfg.connections[name] = _connection(_Reader(source, conns.key(name), table, root.base_dir), name,
                                            cfg.resumption)

    ke = root.sub("key_export")
    if ke is not None:
        cfg.key_export = KeyExportSpec(directory=str(root.base_dir / ke.get("directory", str, required=True)),
                                       ike=ke.get("ike", bool, True), esp=ke.get("esp", bool, True))
        ke.done()

    tun = root.sub("tun")
    if tun is not None:
        routes = tun.get("routes", (str, list), "auto")
        if isinstance(routes, str) and routes != "auto":
            raise tun.error("routes", "must be \"auto\" or an array of prefixes")
        spec = TunSpec(name=tun.get("name", str, "ikc0"), addresses=tun.string_list("addresses"),
                       routes=routes if isinstance(routes, str) else tun.string_list("routes"),
                       mtu=tun.get("mtu", int, 1400), configure=tun.get("configure", bool, True))
        if not 1 <= len(spec.name) < 16:
            raise tun.error("name", "interface names are 1..15 characters")
        for i, a in enumerate(spec.addresses):
            try:
                ipaddress.ip_interface(a)
            except ValueError as exc:
                raise tun.error(f"addresses[{i}]", str(exc)) from None
        if not 576 <= spec.mtu <= 65535:
            raise tun.error("mtu", "must be 576..65535")
        cfg.tun = spec
        tun.done()

    lg = root.sub("logging", {})
    level = lg.get("level", str, "info").lower()
    if level not in _LEVELS:
        raise lg.error("level", f"must be one of {sorted(_LEVELS)}")
    levels = lg.sub("levels", {})
    for k, v in levels.table.items():
        levels.used.add(k)
        if not isinstance(v, str) or v.lower() not in _LEVELS:
            raise levels.error(k, f"must be one of {sorted(_LEVELS)}")
    cfg.logging = LoggingSpec(level=level, file=lg.get("file", str),
                              levels={k: v.lower() for k, v in levels.table.items()})
    lg.done()
    root.done()
    return cfg


def load_config_data(path: str | os.PathLike) -> tuple[GatewayConfig, dict]:
    """The checked configuration and the parsed TOML it came from (a reload
    compares tables). Raises ConfigError naming the file and key."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = _toml.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8: {exc}") from None
    except _toml.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax: {exc}") from None
    cfg = parse_config(data, source=str(path), base_dir=path.parent)
    warn_if_exposed(path, raw)
    return cfg, data


def load_config(path: str | os.PathLike) -> GatewayConfig:
    """Read and check a gateway TOML file. Raises ConfigError naming the file and key."""
    return load_config_data(path)[0]


def warn_if_exposed(path: Path, raw: bytes) -> None:
    """A configuration with a PSK in it that others may read: warn (the key
    belongs in a 0600 psk_file, or the file should be 0600)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & 0o077 and re.search(rb"(?m)^\s*psk\s*=", raw):
        logging.getLogger("ikecore.config").warning(
            "%s holds a pre-shared key and is readable by group or others (mode %04o): chmod 600 it, "
            "or move the key to a psk_file", path, mode & 0o777)


def setup_logging(spec: LoggingSpec) -> None:
    """Apply a [logging] section to the stdlib logging module (the CLI calls this)."""
    handler: logging.Handler = (logging.FileHandler(spec.file) if spec.file else logging.StreamHandler())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger("ikecore")
    root.handlers[:] = [handler]
    root.setLevel(spec.level.upper())
    root.propagate = False
    for name, level in spec.levels.items():
        logging.getLogger(name).setLevel(level.upper())


__all__ = ["GatewayConfig", "ConnectionSpec", "ResumptionSpec", "TunSpec", "KeyExportSpec", "LoggingSpec",
           "load_config", "parse_config", "setup_logging"]
