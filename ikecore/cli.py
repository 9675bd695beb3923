"""The `ikecore` command (also `python -m ikecore`)."""
from __future__ import annotations

import argparse
import json
import os
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

DEFAULT_CONFIG_PATH = "/etc/ikecore/ikecore.toml"
DEFAULT_CONFIG = __import__("os").environ.get("IKECORE_CONFIG", DEFAULT_CONFIG_PATH)

# the largest UDP payload the demo sends: inner IP + UDP headers and ESP-in-UDP overhead must fit the
# data plane's 2048-byte packet slots
DEMO_MAX_SIZE = 1800


def _option_error(command: str, option: str, problem) -> int:
    """A command-line error in the configuration errors' style: one line, the option, exit 2."""
    print(f"ikecore {command}: {option}: {problem}", file=sys.stderr)
    return 2


def _config_error(exc: Exception) -> int:
    print(f"ikecore: configuration error: {exc}", file=sys.stderr)
    return 2


def _gateway(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import signal

    from .aio import Gateway, setup_logging
    from .aio.config import KeyExportSpec
    from .errors import ConfigError

    from .aio.control import DEFAULT_CONTROL_SOCKET, ControlServer, read_config, reload_config

    try:
        cfg, fingerprints = read_config(args.config)
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
    if args.log_file:
        cfg.logging.file = args.log_file
    if args.key_export:
        cfg.key_export = KeyExportSpec(args.key_export)
    try:
        setup_logging(cfg.logging)
        if args.syslog:
            _log_to_syslog()
    except OSError as exc:
        return _option_error("gateway", "--syslog" if args.syslog else "--log-file",
                             f"cannot log there: {exc.strerror or exc}")

    from .aio.collector import CollectorPolicy

    async def run() -> int:
        gw = Gateway(cfg)
        gw.config_fingerprints = fingerprints
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
        if hasattr(signal, "SIGHUP"):
            loop.add_signal_handler(signal.SIGHUP, _reload, gw, args.config, reload_config)
        explicit = args.control_socket or cfg.control_socket
        control = ControlServer(gw, explicit or DEFAULT_CONTROL_SOCKET, config_path=args.config)
        try:
            await gw.start()
            try:
                await control.start()
            except OSError as exc:
                if explicit:
                    raise
                # the default path is taken (another daemon) or not writable: run without
                logging.getLogger("ikecore.control").warning(
                    "no control socket: %s (set [gateway] control_socket or --control-socket)", exc)
        except ConfigError as exc:          # e.g. the store's key ring does not open with our wrapping key
            return _config_error(exc)
        except OSError as exc:
            await gw.stop(timeout=0)
            if str(exc.strerror or "").startswith("TUN device"):     # the [tun] section cannot be honoured
                return _config_error(f"{args.config}: tun.name: {exc.strerror}")
            print(f"ikecore: cannot start the gateway: {exc.strerror or exc}", file=sys.stderr)
            return 1
        collector = CollectorPolicy(cfg.gc_full_interval)      # the daemon's own collector policy
        collector.install()
        gw.collector = collector
        gw._spawn(collector.run(lambda: gw.running))
        try:
            await stop.wait()
            await control.close()
            await gw.stop(timeout=args.shutdown_timeout)
        finally:
            collector.uninstall()
        if writer is not None:
            writer.close()
        return 0

    return asyncio.run(run())


def _log_to_syslog() -> None:
    import logging
    import logging.handlers
    handler = logging.handlers.SysLogHandler(address="/dev/log",
                                             facility=logging.handlers.SysLogHandler.LOG_DAEMON)
    handler.setFormatter(logging.Formatter("ikecore[%(process)d]: %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("ikecore").handlers[:] = [handler]


def _reload(gw, path: str, reload_config) -> None:
    """SIGHUP: read the configuration again; a broken file leaves the old one in force."""
    import logging
    from .errors import ConfigError
    log = logging.getLogger("ikecore.control")
    try:
        reload_config(gw, path)
    except ConfigError as exc:
        log.error("reload refused, the running configuration stays: %s", exc)
    except Exception:            # a reload must never take the daemon down
        log.exception("reload failed")


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
            if args.initial_contact != spec.ike.initial_contact:
                import dataclasses
                spec.ike = dataclasses.replace(spec.ike, initial_contact=args.initial_contact)
            if args.remote:
                spec.remote_addrs = [args.remote]
            name = args.name
        else:
            psk = _connect_psk(args)
            if not (args.remote and psk and args.local_ts and args.remote_ts):
                raise ConfigError("without --config, give REMOTE, a PSK (--psk-file, $IKECORE_PSK), "
                                  "--local-ts and --remote-ts")
            child = ChildConfig("net", [TrafficSelectorSpec.parse(t) for t in args.local_ts],
                                [TrafficSelectorSpec.parse(t) for t in args.remote_ts],
                                [EspProposal.parse(p) for p in args.esp])
            ike = psk_config(args.local_id, args.remote_id, psk, children=[child],
                             proposals=[IkeProposal.parse(p) for p in args.proposal], name="connect",
                             force_encap=True, mobike=args.mobike or bool(args.move_to),
                             initial_contact=args.initial_contact)
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
    if args.initial_contact and not args.json:
        # RFC 7296 §2.4: the peer deletes every other IKE SA between these identities
        print("ikecore connect: sending INITIAL_CONTACT: the peer will delete any other tunnel it has "
              f"with {args.local_id if not args.config else 'this identity'}", file=sys.stderr)

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


def _connect_psk(args) -> bytes | None:
    """The PSK for ``connect``: --psk-file, else $IKECORE_PSK, else --psk (visible
    to every user in the process list: warned about)."""
    import os
    if args.psk_file:
        try:
            with open(args.psk_file, "rb") as f:
                mode = os.fstat(f.fileno()).st_mode
                data = f.read().strip()
        except OSError as exc:
            raise ValueError(f"--psk-file: cannot read {args.psk_file!r}: {exc.strerror}") from None
        if mode & 0o077:
            raise ValueError(f"--psk-file: {args.psk_file!r} is readable by group or others "
                             f"(mode {mode & 0o777:04o}): chmod 600 it")
        if not data:
            raise ValueError(f"--psk-file: {args.psk_file!r} is empty")
        return data
    if os.environ.get("IKECORE_PSK"):
        return os.environ["IKECORE_PSK"].encode()
    if args.psk:
        print("ikecore connect: warning: --psk puts the key in the process list; "
              "use --psk-file or $IKECORE_PSK", file=sys.stderr)
        return args.psk.encode()
    return None


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
    from .errors import ConfigError
    from .protocol.config import EspProposal, IkeProposal

    try:
        IkeProposal.parse(args.ike)
    except ConfigError as exc:
        return _option_error("demo", "--ike", exc)
    try:
        EspProposal.parse(args.esp)
    except ConfigError as exc:
        return _option_error("demo", "--esp", exc)
    if args.packets < 1:
        return _option_error("demo", "--packets", f"must be at least 1 (got {args.packets})")
    if not 8 <= args.size <= DEMO_MAX_SIZE:
        return _option_error("demo", "--size", f"must be 8..{DEMO_MAX_SIZE} bytes (got {args.size}): "
                             "each packet must fit one ESP slot")

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


def _load(args: argparse.Namespace) -> int:
    import asyncio
    import dataclasses
    import logging

    from .aio import load_config
    from .aio.loadgen import LoadGenerator, LoadSpec, format_progress, format_summary, summarize
    from .errors import ConfigError
    from .protocol.config import ChildConfig, EspProposal, IkeProposal, TrafficSelectorSpec, psk_config

    def fail(option: str, message: str) -> int:
        print(f"ikecore: {option}: {message}", file=sys.stderr)
        return 2

    for option, value, low in (("--sas", args.sas, 1), ("--concurrency", args.concurrency, 1)):
        if value < low:
            return fail(option, f"must be at least {low}")
    for option, value in (("--rate", args.rate), ("--rekey-window", args.rekey_window),
                          ("--rekey-ike-window", args.rekey_ike_window), ("--hold", args.hold),
                          ("--timeout", args.timeout)):
        if value < 0:
            return fail(option, "must not be negative")
    if args.responder_pid is not None and not os.path.exists(f"/proc/{args.responder_pid}/stat"):
        return fail("--responder-pid", f"no process {args.responder_pid}")
    if not _is_ip(args.remote):
        return fail("REMOTE", f"{args.remote!r} is not an IP address")
    try:
        if args.config:
            if not args.name:
                return fail("--name", f"name the connection of {args.config} to load with")
            try:
                template = load_config(args.config).connection(args.name).ike
            except ConfigError as exc:
                return _config_error(exc)
            template = dataclasses.replace(template, dpd_delay=0, resumption=template.resumption or args.resume,
                                           clone=template.clone or args.clone)
            auth = "from " + args.config
        else:
            if not args.psk:
                return fail("--psk", "give a pre-shared key (or --config and --name)")
            try:
                proposals = [IkeProposal.parse(p) for p in args.proposal]
            except (ConfigError, ValueError) as exc:
                return fail("--proposal", str(exc))
            try:
                esp = [EspProposal.parse(p) for p in args.esp]
            except (ConfigError, ValueError) as exc:
                return fail("--esp", str(exc))
            try:
                remote_ts = [TrafficSelectorSpec.parse(t) for t in args.remote_ts]
            except ConfigError as exc:
                return fail("--remote-ts", str(exc))
            child = ChildConfig("load", [TrafficSelectorSpec.parse("0.0.0.0/0")], remote_ts, esp)
            try:
                template = psk_config("load@ikecore.test", args.remote_id, args.psk.encode(), children=[child],
                                      proposals=proposals, name="load", force_encap=not args.no_encap,
                                      dpd_delay=0, retransmit_timeout=args.retransmit_timeout,
                                      resumption=args.resume, clone=args.clone)
            except (ConfigError, ValueError) as exc:
                return fail("--remote-id", str(exc))
            auth = "PSK"
        if args.id_template is None:            # a certificate names one identity: keep the config's
            id_template = None if args.config else "load-{n}@ikecore.test"
        else:
            id_template = None if args.id_template.lower() == "none" else args.id_template
        try:
            spec = LoadSpec(args.remote, template, port=args.port, natt_port=args.natt_port, source=args.source,
                            id_template=id_template, inner_net=args.inner_net or None,
                            concurrency=args.concurrency, rate=args.rate)
        except ConfigError as exc:
            option = "--id-template" if "identity" in str(exc) else "--inner-net"
            return fail(option, str(exc))
        capacity = spec.inner_capacity()
        if capacity is not None and args.sas > capacity:
            return fail("--inner-net", f"{args.inner_net} has {capacity:,} host addresses, fewer than --sas")
    except ConfigError as exc:
        return _config_error(exc)
    logging.getLogger("ikecore").setLevel(args.log_level.upper() if args.log_level else logging.ERROR)
    if args.log_level:
        logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    suite = f"IKE {', '.join(args.proposal)}, ESP {', '.join(args.esp)}" if not args.config else args.name
    tty = sys.stderr.isatty()

    def show(snap: dict) -> None:
        line = format_progress(snap)
        if tty:
            print(f"\r\033[K{line}", end="", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)

    async def run() -> dict:
        gen = LoadGenerator(spec, responder_pid=args.responder_pid, progress=None if args.quiet else show,
                            progress_interval=args.progress_interval, freeze_gc=True)
        phases = []
        try:
            await gen.start()
        except OSError as exc:
            raise SystemExit(fail("--source", f"cannot bind: {exc}"))
        try:
            timeout = args.timeout or None
            phases.append(await gen.establish(args.sas, timeout=timeout))
            if args.rekey_window and gen.held:
                phases.append(await gen.rekey_children(args.rekey_window))
            if args.rekey_ike_window and gen.held:
                phases.append(await gen.rekey_ike_sas(args.rekey_ike_window))
            if args.clone and gen.held:
                phases.append(await gen.clone_all(timeout=timeout))
            if args.hold:
                await gen.hold(args.hold)
            if args.resume and gen.held:
                phases.append(await gen.resume_all(timeout=timeout))
            if not args.keep:
                phases.append(await gen.delete_all(timeout=timeout or 60.0))
        finally:
            if tty and not args.quiet:
                print(file=sys.stderr)
            await gen.close()
        return summarize(gen, phases, suite=suite, auth=auth)

    summary = asyncio.run(run())
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary))
    return 0 if summary["ok"] else 1


def _add_gateway_commands(sub) -> None:
    gw = sub.add_parser("gateway", help="run the IKEv2 gateway daemon from a TOML configuration")
    gw.add_argument("--config", "-c", default=DEFAULT_CONFIG,
                    help=f"the TOML configuration file (default $IKECORE_CONFIG or {DEFAULT_CONFIG_PATH})")
    gw.add_argument("--log-file", metavar="FILE", help="log to FILE (overrides [logging] file)")
    gw.add_argument("--syslog", action="store_true", help="log to syslog (/dev/log, facility daemon)")
    gw.add_argument("--check", action="store_true", help="check the configuration and exit")
    gw.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="override [logging] level")
    gw.add_argument("--key-export", metavar="DIR", help="write Wireshark/tshark key tables to DIR (secrets!)")
    gw.add_argument("--pcap", metavar="FILE", help="record every datagram sent and received to FILE")
    gw.add_argument("--status-file", metavar="FILE",
                    help="on SIGUSR1, write the IKE and Child SAs and the counters to FILE as JSON")
    gw.add_argument("--control-socket", metavar="PATH",
                    help="the control socket (default [gateway] control_socket, else /run/ikecore/ikecore.sock)")
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
    c.add_argument("--psk-file", metavar="FILE", help="read the pre-shared key from FILE (mode 0600)")
    c.add_argument("--psk", help="pre-shared key (deprecated: visible in the process list; "
                                 "use --psk-file or $IKECORE_PSK)")
    c.add_argument("--initial-contact", action="store_true",
                   help="send INITIAL_CONTACT: the peer deletes every other IKE SA with our identity "
                        "(a running tunnel included)")
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

    ld = sub.add_parser("load", help="load generator: many IKE SAs + Child SAs against a responder, with rates")
    ld.add_argument("remote", metavar="REMOTE", help="the responder's IP address")
    ld.add_argument("--port", type=int, default=500, help="responder IKE port (default 500)")
    ld.add_argument("--natt-port", type=int, default=4500, help="responder NAT-T port (default 4500)")
    ld.add_argument("--source", help="our address (default: the one routed toward REMOTE)")
    ld.add_argument("--sas", type=int, default=100, help="IKE SAs (each with one Child SA) to establish and hold")
    ld.add_argument("--rate", type=float, default=0.0, help="new handshakes per second (default: unlimited)")
    ld.add_argument("--concurrency", type=int, default=64, help="handshakes in flight at once (default 64)")
    ld.add_argument("--config", "-c", help="TOML configuration: take suites and authentication from a connection")
    ld.add_argument("--name", help="the connection of --config")
    ld.add_argument("--psk", help="pre-shared key (without --config)")
    ld.add_argument("--remote-id", help="the responder's identity (default: any)")
    ld.add_argument("--proposal", action="append", default=None, help="IKE proposal, strongSwan style")
    ld.add_argument("--esp", action="append", default=None, help="ESP proposal, strongSwan style")
    ld.add_argument("--remote-ts", action="append", default=None, help="remote traffic selector (default 0.0.0.0/0)")
    ld.add_argument("--id-template", default=None,
                    help="our identity per SA, {n} its number (default load-{n}@ikecore.test; 'none': one identity)")
    ld.add_argument("--inner-net", default="10.128.0.0/9",
                    help="each SA's local selector is one host of this network (default 10.128.0.0/9)")
    ld.add_argument("--no-encap", action="store_true", help="do not force NAT-T / ESP-in-UDP")
    ld.add_argument("--retransmit-timeout", type=float, default=2.0, help="first IKE retransmission (seconds)")
    ld.add_argument("--rekey-window", type=float, default=0.0, metavar="SECONDS",
                    help="once established, rekey every Child SA, spread over this many seconds")
    ld.add_argument("--rekey-ike-window", type=float, default=0.0, metavar="SECONDS",
                    help="then rekey every IKE SA, spread over this many seconds")
    ld.add_argument("--hold", type=float, default=0.0, metavar="SECONDS", help="hold the SAs this long")
    ld.add_argument("--clone", action="store_true",
                    help="announce RFC 7791 cloning; then every held IKE SA is cloned once (the clones are "
                         "deleted with the rest)")
    ld.add_argument("--resume", action="store_true",
                    help="ask for resumption tickets (RFC 5723); then every held SA is dropped without a "
                         "Delete and resumes with its ticket (a mass reconnect)")
    ld.add_argument("--keep", action="store_true", help="do not delete the SAs at the end")
    ld.add_argument("--timeout", type=float, default=0.0, help="bound each phase (seconds, default: none)")
    ld.add_argument("--responder-pid", type=int, help="the responder's PID: report its CPU and RSS per SA")
    ld.add_argument("--progress-interval", type=float, default=1.0, help="seconds between progress lines")
    ld.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    ld.add_argument("--json", action="store_true", help="machine-readable summary")
    ld.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    ld.set_defaults(func=_load_defaults)


def _connect_defaults(args: argparse.Namespace) -> int:
    args.proposal = args.proposal or ["aes256gcm16-prfsha256-x25519"]
    args.esp = args.esp or ["aes256gcm16"]
    return _connect(args)


def _load_defaults(args: argparse.Namespace) -> int:
    args.proposal = args.proposal or ["aes256gcm16-prfsha256-x25519"]
    args.esp = args.esp or ["aes256gcm16"]
    args.remote_ts = args.remote_ts or ["0.0.0.0/0"]
    return _load(args)


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
    from .cli_control import add_control_commands
    add_control_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
