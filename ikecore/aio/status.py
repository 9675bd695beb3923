"""What the gateway holds, for operators: counters and a JSON-ready snapshot of
every established IKE SA with its Child SAs (no keys). A mixin of
:class:`~ikecore.aio.gateway.Gateway`."""
from __future__ import annotations

import ipaddress


class GatewayStatus:
    """``stats()`` and ``status()`` (mixin)."""

    def stats(self) -> dict:
        ep = self.endpoint
        return {"gateway": dict(self.counters),
                "endpoint": dict(ep.stats) if ep else {},
                "half_open": ep.half_open if ep else 0,
                "ike_sas": len(self.connections),
                "dataplane": self.dataplane.stats()}

    def status(self) -> dict:
        """A JSON-ready snapshot for operators: every established IKE SA with its
        Child SAs and their traffic, and the gateway's counters. No keys."""
        now = self.loop.time() if self.loop is not None else 0.0
        sas = []
        for conn in self.connections:
            children = []
            for child in self.child_sas(conn):
                state = self.dataplane.state_of(child)
                entry = {"name": child.name, "mode": child.mode, "spi_in": child.spi_in.hex(),
                         "spi_out": child.spi_out.hex(), "encap": child.udp_encap,
                         "local_ts": _ts_text(child.local_ts), "remote_ts": _ts_text(child.remote_ts)}
                if state is not None:
                    entry.update({k: v for k, v in state.stats().items() if k not in entry and k != "name"})
                children.append(entry)
            sas.append({"name": conn.config.name, "role": "initiator" if conn.initiator else "responder",
                        "spi_i": conn.spi_i.hex(), "spi_r": conn.spi_r.hex(),
                        "local": f"{conn.local[0]}:{conn.local[1]}", "remote": f"{conn.remote[0]}:{conn.remote[1]}",
                        "remote_id": str(conn.remote_id) if conn.remote_id is not None else None,
                        "virtual_ip": conn.virtual_ip, "assigned_ip": conn.assigned_ip,
                        "age_s": round(now - conn.created_at, 1), "child_sas": children})
        return {"ike_sas": sas, "counters": dict(self.counters), "dataplane": dict(self.dataplane.counters),
                "half_open": self.endpoint.half_open if self.endpoint else 0}


def _ts_text(selectors) -> str:
    out = []
    for ts in selectors:
        try:
            a, b = ipaddress.ip_address(ts.start_addr), ipaddress.ip_address(ts.end_addr)
            nets = list(ipaddress.summarize_address_range(a, b))
            text = ",".join(str(n) for n in nets) if len(nets) <= 2 else f"{a}-{b}"
        except (ValueError, TypeError):
            text = "?"
        if ts.ip_protocol:
            text += f"[{ts.ip_protocol}/{ts.start_port}-{ts.end_port}]"
        out.append(text)
    return " ".join(out)
