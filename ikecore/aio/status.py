"""What the gateway holds, for operators: counters and a JSON-ready snapshot of
every established IKE SA with its Child SAs (no keys). A mixin of
:class:`~ikecore.aio.gateway.Gateway`."""
from __future__ import annotations

import ipaddress

from ..protocol.describe import esp_suite_text, ike_suite_text


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
                         "algorithms": esp_suite_text(child.suite),
                         "local_ts": _ts_text(child.local_ts), "remote_ts": _ts_text(child.remote_ts),
                         "age_s": round(now - child.created_at, 1),
                         "rekey_in_s": _until(child.rekey_at, now), "expire_in_s": _until(child.expire_at, now)}
                if state is not None:
                    entry.update({k: v for k, v in state.stats().items() if k not in entry and k != "name"})
                children.append(entry)
            sas.append({"name": conn.config.name, "role": "initiator" if conn.initiator else "responder",
                        "spi_i": conn.spi_i.hex(), "spi_r": conn.spi_r.hex(),
                        "local": f"{conn.local[0]}:{conn.local[1]}", "remote": f"{conn.remote[0]}:{conn.remote[1]}",
                        "local_id": str(conn.config.local_id),
                        "remote_id": str(conn.remote_id) if conn.remote_id is not None else None,
                        "algorithms": ike_suite_text(conn.suite),
                        "nat": {"local": conn.nat_local, "remote": conn.nat_remote},
                        "virtual_ip": conn.virtual_ip, "assigned_ip": conn.assigned_ip,
                        "age_s": round(now - conn.created_at, 1),
                        "rekey_in_s": _until(conn.rekey_at, now), "expire_in_s": _until(conn.expire_at, now),
                        "child_sas": children})
        out = {"ike_sas": sas, "connections": self.connections_status(),
               "counters": dict(self.counters), "dataplane": dict(self.dataplane.counters),
               "half_open": self.endpoint.half_open if self.endpoint else 0}
        if self.collector is not None:
            out["collector"] = self.collector.status()
        return out

    def connections_status(self) -> list[dict]:
        """Every configured connection: ``up`` (an IKE SA established), ``connecting``
        (being initiated), ``retrying`` (initiation failed, trying again), ``down``;
        with its IKE SAs' SPIs and the last failure."""
        now = self.loop.time() if self.loop is not None else 0.0
        live: dict[str, list] = {}
        if self.endpoint is not None:
            for conn in self.endpoint.connections.values():
                if conn.config is not None and conn.replaced_by is None:
                    live.setdefault(conn.config.name, []).append(conn)
        out = []
        for name, spec in self.config.connections.items():
            sas = live.get(name, [])
            up = [c for c in sas if c.established]
            failure = self.connection_failures.get(name)
            if up:
                state = "up"
            elif failure is not None and failure.get("retry_at") is not None:
                state = "retrying"
            elif sas:
                state = "connecting"
            else:
                state = "down"
            entry = {"name": name, "state": state, "remote_addrs": list(spec.remote_addrs),
                     "local_id": str(spec.ike.local_id),
                     "remote_id": str(spec.ike.remote_id) if spec.ike.remote_id is not None else None,
                     "start": spec.start, "restart": spec.keep_up,
                     "children": [c.name for c in spec.ike.children],
                     "ike_sas": [f"{c.spi_i.hex()}_i {c.spi_r.hex()}_r" for c in up]}
            if failure is not None:
                entry["last_failure"] = failure["reason"]
                entry["last_failure_ago_s"] = round(now - failure["at"], 1)
                if failure.get("retry_at") is not None and state == "retrying":
                    entry["retry_in_s"] = round(max(0.0, failure["retry_at"] - now), 1)
            out.append(entry)
        return out

    def note_failure(self, name: str | None, reason: str, retry_at: float | None = None) -> None:
        """Remember why connection ``name`` last failed (for ``list-conns``)."""
        if name is None or name not in self.config.connections:
            return
        now = self.loop.time() if self.loop is not None else 0.0
        self.connection_failures[name] = {"reason": reason, "at": now, "retry_at": retry_at}


def _until(deadline: float, now: float) -> float | None:
    return None if deadline == float("inf") else round(deadline - now, 1)


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
