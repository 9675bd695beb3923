"""The `ikecore` command (also `python -m ikecore`)."""
from __future__ import annotations

import argparse
import json
import sys

from . import __version__


def _info(args: argparse.Namespace) -> int:
    from .crypto import backend

    rep = backend.report()
    data = {
        "ikecore": __version__,
        "openssl": rep.openssl_version,
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
    print(f"providers loaded: {', '.join(data['providers_loaded'])}")
    for cls, prov in data["provider_by_class"].items():
        print(f"  {cls:<7} served by {prov}")
    flags = ", ".join(f"{name} {'yes' if on else 'no'}" for name, on in rep.cpu_features.items())
    print(f"CPU: {flags}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ikecore", description="IKEv2 library and gateway")
    parser.add_argument("--version", action="version", version=f"ikecore {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="versions, OpenSSL providers per operation class, CPU features")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.set_defaults(func=_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
