"""The asyncio gateway around the sans-I/O core: UDP 500/4500 (IPv4 and IPv6),
NAT-T, ESP-in-UDP through packet batches, a TUN data plane, TOML
configuration and Wireshark key export.

    from ikecore.aio import Gateway, load_config
"""
from .config import (ConnectionSpec, GatewayConfig, KeyExportSpec, LoggingSpec, TunSpec, load_config,
                     parse_config, setup_logging)
from .dataplane import ChildState, DataPlane, TunDevice
from .gateway import Gateway, GatewayError
from .keylog import KeyLog

__all__ = ["Gateway", "GatewayError", "GatewayConfig", "ConnectionSpec", "KeyExportSpec", "LoggingSpec",
           "TunSpec", "load_config", "parse_config", "setup_logging", "DataPlane", "ChildState",
           "TunDevice", "KeyLog"]
