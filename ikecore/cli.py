"""The `ikecore` command (also `python -m ikecore`)."""
from __future__ import annotations

import argparse
import json
import sys

from . import __version__


def _info(args: argparse.Namespace) -> int:
    from .crypto import backend

    rep = backend.report()
    vaes, vaes_why = backend.aes_gcm_vaes()
    data = {
        "ikecore": __version__,
        "openssl": rep.openssl_version,
        "libcrypto": backend.loaded_libcrypto(),
        "aes_gcm_vaes": vaes,
        "aes_gcm_vaes_reason": vaes_why,
        "providers_loaded": list(rep.loaded_providers),
        "provider_by_class": {"mac": rep.mac_provider, "cipher": rep.cipher_provider,
                              "kdf": rep.kdf_provider},
        "cpu_features": rep.cpu_features,
    }
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"ikecore {data['ikecore']}")
    print(f"OpenSSL  {data['openssl']}")
    print(f"libcrypto loaded: {data['libcrypto'] or 'unknown'}")
    said = {True: "yes", False: "no", None: "unknown"}[vaes]
    print(f"AES-GCM on VAES (AVX-512): {said} ({vaes_why})")
    print(f"providers loaded: {', '.join(data['providers_loaded'])}")
    for cls, prov in data["provider_by_class"].items():
        print(f"  {cls:<7} served by {prov}")
    flags = ", ".join(f"{name} {'yes' if on else 'no'}" for name, on in rep.cpu_features.items())
    print(f"CPU: {flags}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from .benchmarks.runner import run
    return run(args)


# ------------------------------------------------------------------ gateway --

def _config_error(exc: Exception) -> int:
    print(f"ikecore: configuration error: {exc}", file=sys.stderr)
    return 2


def _gateway(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from .aio import Gateway, load_config, setup_logging
    from .aio.config import KeyExportSpec
    from .errors import ConfigError

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        return _config_error(exc)
    if args.check:
        res = cfg.resumption
        tickets = ("" if res is None or not res.enabled else
                   f"; tickets by {res.mode} in {_redacted(res.store)}")
        print(f"{args.config}: OK ({len(cfg.connections)} connection(s): {', '.join(cfg.connections)}){tickets}")
        return 0
    if args.log_level:
        cfg.logging.level = args.log_level
    if args.key_export:
        cfg.key_export = KeyExportSpec(args.key_export)
    setup_logging(cfg.logging)

    async def run() -> int:
        gw = Gateway(cfg)
        writer = None
        if args.pcap:
            from .aio.pcap import PcapWriter
            writer = PcapWriter(args.pcap)
            gw.set_capture(writer)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if hasattr(signal, "SIGUSR1"):
            loop.add_signal_handler(signal.SIGUSR1, _report_status, gw, args.status_file)
        try:
            await gw.start()
        except ConfigError as exc:          # e.g. the store's key ring does not open with our wrapping key
            return _config_error(exc)
        except OSError as exc:
            print(f"ikecore: cannot start the gateway: {exc}", file=sys.stderr)
            return 1
        await stop.wait()
        await gw.stop(timeout=args.shutdown_timeout)
        if writer is not None:
            writer.close()
        return 0

    return asyncio.run(run())


def _redacted(url: str) -> str:
    from .aio.resumption import _safe_url
    return _safe_url(url)


def _keygen(args: argparse.Namespace) -> int:
    """Write a new ticket-ring wrapping key file (mode 0600) for a gateway cluster."""
    from .errors import ConfigError
    from .store import create_wrapping_key_file
    try:
        create_wrapping_key_file(args.wrapping_key)
    except ConfigError as exc:
        print(f"ikecore: {exc}", file=sys.stderr)
        return 1
    print(f"{args.wrapping_key}: new ticket-ring wrapping key (mode 0600); copy it to every gateway "
          "of the cluster and name it in [resumption] wrapping_key_file")
    return 0


def _report_status(gw, path: str | None) -> None:
    """SIGUSR1: the gateway's status (no keys) as JSON to ``path`` (replaced
    atomically), and a summary line in the log."""
    import json
    import logging
    import os
    log = logging.getLogger("ikecore.status")
    try:
        status = gw.status()
        children = sum(len(sa["child_sas"]) for sa in status["ike_sas"])
        if path:
            tmp = f"{path}.tmp"
            with open(tmp, "w") as f:
                json.dump(status, f, indent=2, sort_keys=True)
            os.replace(tmp, path)
        log.info("status: %d IKE SA(s), %d Child SA(s)%s", len(status["ike_sas"]), children,
                 f"; written to {path}" if path else "")
        for sa in status["ike_sas"]:
            log.info("status: %s %s %s_i %s_r with %s (%s), %d Child SA(s)", sa["name"], sa["role"], sa["spi_i"],
                     sa["spi_r"], sa["remote"], sa["remote_id"], len(sa["child_sas"]))
    except Exception:            # a status request must never take the daemon down
        log.exception("status report failed")


def _connect(args: argparse.Namespace) -> int:
    import asyncio
    import ipaddress

    from .aio import ConnectionSpec, Gateway, GatewayConfig, GatewayError, load_config, setup_logging
    from .aio.config import KeyExportSpec, LoggingSpec
    from .errors import ConfigError
    from .protocol.config import ChildConfig, EspProposal, IkeProposal, TrafficSelectorSpec, psk_config

    try:
        if args.config:
            cfg = load_config(args.config)
            if not args.name:
                raise ConfigError(f"{args.config}: name the connection to initiate")
            spec = cfg.connection(args.name)
            if args.remote:
                spec.remote_addrs = [args.remote]
            name = args.name
        else:
            if not (args.remote and args.psk and args.local_ts and args.remote_ts):
                raise ConfigError("without --config, give REMOTE, --psk, --local-ts and --remote-ts")
            child = ChildConfig("net", [TrafficSelectorSpec.parse(t) for t in args.local_ts],
                                [TrafficSelectorSpec.parse(t) for t in args.remote_ts],
                                [EspProposal.parse(p) for p in args.esp])
            ike = psk_config(args.local_id, args.remote_id, args.psk.encode(), children=[child],
                             proposals=[IkeProposal.parse(p) for p in args.proposal], name="connect",
                             force_encap=True, mobike=args.mobike or bool(args.move_to))
            host = args.remote
            family = ipaddress.ip_address(host).version if _is_ip(host) else 4
            cfg = GatewayConfig(connections={}, listen=args.listen or ["0.0.0.0" if family == 4 else "::"],
                                port=args.local_port, natt_port=args.local_natt_port, source="<command line>")
            spec = ConnectionSpec("connect", ike, remote_addrs=[host], remote_port=args.port,
                                  remote_natt_port=args.natt_port)
            cfg.connections["connect"] = spec
            name = "connect"
    except (ConfigError, ValueError) as exc:
        return _config_error(exc)
    if args.key_export:
        cfg.key_export = KeyExportSpec(args.key_export)
    cfg.logging = LoggingSpec(level=args.log_level or "warning")
    setup_logging(cfg.logging)

    async def run() -> int:
        import time
        from .aio.demo import udp_packet
        gw = Gateway(cfg)
        report: dict = {"connection": name, "ok": False}
        try:
            await gw.start()
            t0 = time.perf_counter()
            conn = await gw.initiate(name, timeout=args.timeout)
            child = gw.child_sas(conn)[0]
            report.update(ok=True, handshake_ms=round((time.perf_counter() - t0) * 1000, 3),
                          local=list(conn.local), remote=list(conn.remote),
                          spi_i=conn.spi_i.hex(), spi_r=conn.spi_r.hex(),
                          remote_id=str(conn.remote_id) if conn.remote_id else None,
                          child={"name": child.name, "spi_in": child.spi_in.hex(), "spi_out": child.spi_out.hex(),
                                 "mode": child.mode, "udp_encap": child.udp_encap})
            if not args.json:
                print(f"IKE SA established in {report['handshake_ms']:.1f} ms with "
                      f"{report['remote_id']} at {conn.remote[0]}:{conn.remote[1]} "
                      f"(SPIs {report['spi_i']}_i {report['spi_r']}_r)")
                print(f"Child SA {child.name}: in {child.spi_in.hex()} out {child.spi_out.hex()}, {child.mode}"
                      f"{', ESP-in-UDP' if child.udp_encap else ''}")
            if args.send:
                src, dst = _first_host(child.local_ts[0]), _first_host(child.remote_ts[0])
                report["sent"] = gw.send_packets([udp_packet(src, dst, i, args.size) for i in range(args.send)],
                                                 child)
                if not args.json:
                    print(f"sent {report['sent']} packets {src} -> {dst} through the Child SA")
            if args.move_to:
                # MOBIKE (RFC 4555): move the IKE SA and its Child SA to another local address
                moved = await gw.update_addresses(conn, local=args.move_to)
                report["moved"] = {"local": list(moved.local), "remote": list(moved.remote),
                                   "previous_local": list(moved.previous_local)}
                if not args.json:
                    print(f"moved to {moved.local[0]}:{moved.local[1]} (from {moved.previous_local[0]})")
                if args.send:
                    report["sent_after_move"] = gw.send_packets(
                        [udp_packet(src, dst, i, args.size) for i in range(args.send)], child)
            if args.hold:
                await asyncio.sleep(args.hold)
            state = gw.child_state(child)
            if state is not None:
                report["esp"] = state.current().stats()
                if not args.json:
                    s = report["esp"]
                    print(f"ESP: {s['tx_packets']} packets / {s['tx_bytes']} bytes out, "
                          f"{s['rx_packets']} packets / {s['rx_bytes']} bytes in")
        except GatewayError as exc:
            report["error"] = str(exc)
            if not args.json:
                print(f"ikecore: {exc}", file=sys.stderr)
        except OSError as exc:
            report["error"] = str(exc)
            if not args.json:
                print(f"ikecore: {exc}", file=sys.stderr)
        finally:
            await gw.stop()
        if args.json:
            print(json.dumps(report, indent=2))
        return 0 if report["ok"] else 1

    return asyncio.run(run())


def _first_host(ts) -> str:
    """The first usable address of a selector (skips a network address)."""
    import ipaddress
    start, end = ipaddress.ip_address(ts.start_addr), ipaddress.ip_address(ts.end_addr)
    return str(start + 1 if end > start else start)


def _is_ip(text: str) -> bool:
    import ipaddress
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def _demo(args: argparse.Namespace) -> int:
    import asyncio

    from .aio.demo import format_summary, run_demo

    if args.log_level:
        import logging
        logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    else:
        import logging
        logging.getLogger("ikecore").setLevel(logging.ERROR)   # the summary is the output
    summary = asyncio.run(run_demo(packets=args.packets, size=args.size, family=6 if args.ipv6 else 4,
                                   ike=args.ike, esp=args.esp, key_export=args.key_export, pcap=args.pcap,
                                   redis_url=args.redis))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary))
        if args.pcap and args.key_export and summary.get("ports"):
            import shlex

            from .aio.keylog import tshark_options
            p = summary["ports"]
            opts = tshark_options(args.key_export, ike_ports=[p[s]["ike"] for s in p],
                                  natt_ports=[p[s]["natt"] for s in p])
            print("\n  decrypt the capture with:\n  " + shlex.join(["tshark", "-r", args.pcap, *opts]))
    return 0 if summary["ok"] else 1


def _add_gateway_commands(sub) -> None:
    gw = sub.add_parser("gateway", help="run the IKEv2 gateway daemon from a TOML configuration")
    gw.add_argument("--config", "-c", required=True, help="the TOML configuration file")
    gw.add_argument("--check", action="store_true", help="check the configuration and exit")
    gw.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="override [logging] level")
    gw.add_argument("--key-export", metavar="DIR", help="write Wireshark/tshark key tables to DIR (secrets!)")
    gw.add_argument("--pcap", metavar="FILE", help="record every datagram sent and received to FILE")
    gw.add_argument("--status-file", metavar="FILE",
                    help="on SIGUSR1, write the IKE and Child SAs and the counters to FILE as JSON")
    gw.add_argument("--shutdown-timeout", type=float, default=5.0,
                    help="seconds to wait for the peers to answer our Deletes on SIGTERM/SIGINT")
    gw.set_defaults(func=_gateway)

    kg = sub.add_parser("keygen", help="create key files for the gateway")
    kg.add_argument("--wrapping-key", metavar="FILE", required=True,
                    help="a new ticket-ring wrapping key (32 random octets as hex, mode 0600); "
                         "refuses to overwrite FILE")
    kg.set_defaults(func=_keygen)

    c = sub.add_parser("connect", help="initiate one IKE SA + Child SA, report, optionally send traffic")
    c.add_argument("remote", nargs="?", help="peer address (or, with --config, overrides remote_addrs)")
    c.add_argument("--config", "-c", help="TOML configuration; then NAME picks the connection")
    c.add_argument("--name", help="the connection to initiate (with --config)")
    c.add_argument("--port", type=int, default=500, help="peer IKE port (default 500)")
    c.add_argument("--natt-port", type=int, default=4500, help="peer NAT-T port (default 4500)")
    c.add_argument("--listen", action="append", help="local address to bind (default: any)")
    c.add_argument("--local-port", type=int, default=0, help="local IKE port (default: ephemeral)")
    c.add_argument("--local-natt-port", type=int, default=0, help="local NAT-T port (default: ephemeral)")
    c.add_argument("--psk", help="pre-shared key")
    c.add_argument("--local-id", default="ikecore-connect", help="our identity")
    c.add_argument("--remote-id", help="the peer's identity (default: any)")
    c.add_argument("--local-ts", action="append", help="local traffic selector (repeatable)")
    c.add_argument("--remote-ts", action="append", help="remote traffic selector (repeatable)")
    c.add_argument("--proposal", action="append", default=None, help="IKE proposal, strongSwan style")
    c.add_argument("--esp", action="append", default=None, help="ESP proposal, strongSwan style")
    c.add_argument("--send", type=int, default=0, metavar="N", help="send N UDP packets through the Child SA")
    c.add_argument("--size", type=int, default=64, help="payload size of those packets")
    c.add_argument("--mobike", action="store_true", help="offer MOBIKE (RFC 4555; without --config)")
    c.add_argument("--move-to", metavar="ADDR",
                   help="after sending, move the IKE SA to this local address with MOBIKE, send again")
    c.add_argument("--hold", type=float, default=0.0, metavar="SECONDS", help="stay up this long, then delete")
    c.add_argument("--timeout", type=float, default=15.0, help="give up establishing after this long")
    c.add_argument("--key-export", metavar="DIR", help="write Wireshark/tshark key tables to DIR")
    c.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    c.add_argument("--json", action="store_true", help="machine-readable report")
    c.set_defaults(func=_connect_defaults)

    d = sub.add_parser("demo", help="responder + initiator on loopback: handshake, ESP, rekeys, delete")
    d.add_argument("--json", action="store_true", help="machine-readable summary")
    d.add_argument("--packets", type=int, default=1000, help="ESP packets each way (default 1000)")
    d.add_argument("--size", type=int, default=512, help="UDP payload size of each packet (default 512)")
    d.add_argument("--ipv6", action="store_true", help="run over ::1 with IPv6 inner packets")
    d.add_argument("--ike", default="aes256gcm16-prfsha256-x25519", help="IKE proposal")
    d.add_argument("--esp", default="aes256gcm16", help="ESP proposal")
    d.add_argument("--key-export", metavar="DIR", help="write the keys for tshark/Wireshark to DIR")
    d.add_argument("--pcap", metavar="FILE", help="record the demo's datagrams to FILE")
    d.add_argument("--redis", metavar="URL",
                   help="the resumption steps' gateways share this Redis (redis://host:port/db) as ticket store")
    d.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    d.set_defaults(func=_demo)


def _connect_defaults(args: argparse.Namespace) -> int:
    args.proposal = args.proposal or ["aes256gcm16-prfsha256-x25519"]
    args.esp = args.esp or ["aes256gcm16"]
    return _connect(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ikecore", description="IKEv2 library and gateway")
    parser.add_argument("--version", action="version", version=f"ikecore {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="versions, OpenSSL providers per operation class, CPU features")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.set_defaults(func=_info)
    bench = sub.add_parser("bench", help="benchmark suite for sizing a server: ESP, SK, key schedules, handshakes, "
                           "each against a baseline measured in the same run")
    from .benchmarks.runner import add_arguments
    add_arguments(bench)
    bench.set_defaults(func=_bench)
    _add_gateway_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
