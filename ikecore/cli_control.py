"""`ikecore list-sas | list-conns | initiate | terminate | rekey | reload`: the
operator's commands to a running gateway, over its control socket
(:mod:`ikecore.aio.control`). Each takes ``--socket`` and ``--json``."""
from __future__ import annotations

import argparse
import json
import os
import sys


def _default_socket() -> str:
    from .aio.control import DEFAULT_CONTROL_SOCKET
    return os.environ.get("IKECORE_SOCKET", DEFAULT_CONTROL_SOCKET)


def _run(args: argparse.Namespace) -> int:
    from .aio.control import ControlError, request
    params = {}
    for key in ("name", "child", "timeout"):
        value = getattr(args, key, None)
        if value is not None:
            params[key] = value
    try:
        result = request(args.socket, args.cmd, io_timeout=(args.timeout or 30.0) + 5.0, **params)
    except ControlError as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": str(exc)}, indent=2))
        print(f"ikecore {args.cmd}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print(_FORMAT[args.cmd](result))
    return 0


def _secs(value) -> str:
    return "never" if value is None else f"{value:.0f} s"


def format_sas(sas: list) -> str:
    if not sas:
        return "no IKE SAs"
    lines = []
    for sa in sas:
        lines.append(f"{sa['name']}: ESTABLISHED {sa['age_s']:.0f} s ago, {sa['role']}, "
                     f"{sa['local']}[{sa.get('local_id')}]...{sa['remote']}[{sa['remote_id']}]")
        lines.append(f"  {sa.get('algorithms')}, SPIs {sa['spi_i']}_i {sa['spi_r']}_r, "
                     f"rekey in {_secs(sa.get('rekey_in_s'))}, expires in {_secs(sa.get('expire_in_s'))}")
        if sa.get("virtual_ip") or sa.get("assigned_ip"):
            lines.append(f"  virtual IP: {sa.get('virtual_ip') or '-'} (ours), {sa.get('assigned_ip') or '-'} "
                         "(assigned to the peer)")
        for c in sa["child_sas"]:
            lines.append(f"  {c['name']}: INSTALLED {c['mode']}{', ESP-in-UDP' if c['encap'] else ''}, "
                         f"SPIs {c['spi_in']}_in {c['spi_out']}_out, {c.get('algorithms')}, "
                         f"rekey in {_secs(c.get('rekey_in_s'))}")
            lines.append(f"    {c['local_ts']} === {c['remote_ts']}")
            if "tx_packets" in c:
                lines.append(f"    in {c['rx_bytes']} bytes / {c['rx_packets']} packets, "
                             f"out {c['tx_bytes']} bytes / {c['tx_packets']} packets")
    return "\n".join(lines)


def format_conns(conns: list) -> str:
    if not conns:
        return "no connections configured"
    lines = []
    for c in conns:
        flags = ",".join(f for f, on in (("start", c["start"]), ("restart", c["restart"])) if on)
        lines.append(f"{c['name']}: {c['state'].upper()}  {c['local_id']} -> {c['remote_id'] or '%any'} "
                     f"at {', '.join(c['remote_addrs']) or '%any'}"
                     f"{f'  [{flags}]' if flags else ''}  children: {', '.join(c['children']) or '-'}")
        for sa in c["ike_sas"]:
            lines.append(f"  IKE SA {sa}")
        if "last_failure" in c:
            retry = f", retrying in {c['retry_in_s']:.0f} s" if "retry_in_s" in c else ""
            lines.append(f"  last failure {c['last_failure_ago_s']:.0f} s ago: {c['last_failure']}{retry}")
    return "\n".join(lines)


def _format_initiate(r: dict) -> str:
    if "spi_i" in r:
        kids = "; ".join(f"Child SA {c['name']} in {c['spi_in']} out {c['spi_out']}" for c in r["child_sas"])
        return f"{r['name']}: IKE SA {r['spi_i']}_i {r['spi_r']}_r established; {kids or 'no Child SA'}"
    return f"{r['name']}: Child SA {r['child']} in {r['spi_in']} out {r['spi_out']} installed"


def _format_terminate(r: dict) -> str:
    if "deleted_ike_sas" in r:
        return f"{r['name']}: deleting IKE SA " + ", ".join(r["deleted_ike_sas"])
    return f"{r['name']}: deleting Child SA {r['child']} " + ", ".join(r["deleted_child_sas"])


def _format_rekey(r: dict) -> str:
    if "new" in r:
        return f"{r['name']}: IKE SA {r['old']} rekeyed to {r['new']}"
    return "\n".join(f"{r['name']}: Child SA {r['child']} {x['old']} rekeyed to {x['new']} (in/out)"
                     for x in r["rekeyed"])


def _format_reload(r: dict) -> str:
    parts = [f"{k}: {', '.join(r[k]) or '-'}" for k in ("added", "removed", "changed", "unchanged")]
    out = "configuration reloaded; " + "; ".join(parts)
    if r.get("restart_needed"):
        out += "\n[gateway] settings changed: they take effect when the daemon restarts"
    return out


_FORMAT = {"list-sas": format_sas, "list-conns": format_conns, "initiate": _format_initiate,
           "terminate": _format_terminate, "rekey": _format_rekey, "reload": _format_reload}


def add_control_commands(sub) -> None:
    """Add the control subcommands to the ``ikecore`` parser's subparsers."""
    def command(name: str, help_text: str, *, named: bool = False, child: bool = False, wait: bool = False):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--socket", "-s", default=_default_socket(),
                       help="the gateway's control socket (default $IKECORE_SOCKET or "
                            "/run/ikecore/ikecore.sock)")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        if named:
            p.add_argument("name", help="the connection")
        if child:
            p.add_argument("--child", help="only this Child SA of the connection")
        p.add_argument("--timeout", type=float, default=30.0 if wait else None,
                       help="seconds to wait for the peer" if wait else argparse.SUPPRESS)
        p.set_defaults(func=_run, cmd=name)

    command("list-sas", "the running gateway's IKE and Child SAs")
    command("list-conns", "the configured connections: up, down, retrying, last failure")
    command("initiate", "bring a connection (or one more of its Child SAs) up", named=True, child=True, wait=True)
    command("terminate", "delete a connection's IKE SA (or one Child SA)", named=True, child=True)
    command("rekey", "rekey a connection's IKE SA (or a Child SA)", named=True, child=True, wait=True)
    command("reload", "read the configuration file again (as SIGHUP does)")


__all__ = ["add_control_commands", "format_sas", "format_conns"]
