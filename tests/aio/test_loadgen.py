"""``ikecore load`` against a gateway on loopback: a few dozen simulated
initiators come up (each its own identity and Child SA), their Child SAs
rekey, half their IKE SAs rekey, and they are deleted; the responder's view is checked, not the
generator's word. No timing is asserted."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess

from aio_helpers import ikecore_command, responder, run
from ikecore.aio.loadgen import LoadGenerator, LoadSpec, ProcessStats, format_summary, summarize
from ikecore.protocol import events as ev
from ikecore.protocol.config import (ChildConfig, EspProposal, IkeProposal, LocalAuth, TrafficSelectorSpec,
                                     psk_config)
from ikecore.protocol.ike_sa import State

PSK = b"load test pre-shared key"
SAS = 36


def responder_config():
    child = ChildConfig("net", [TrafficSelectorSpec.parse("10.88.2.1/32")], [TrafficSelectorSpec.parse("10.128.0.0/9")],
                        [EspProposal.parse("aes256gcm16")])
    return psk_config("resp@test", None, PSK, proposals=[IkeProposal.parse("aes256gcm16-prfsha256-x25519")],
                      children=[child], name="load", force_encap=True, dpd_delay=0)


def load_template():
    child = ChildConfig("load", [TrafficSelectorSpec.parse("0.0.0.0/0")], [TrafficSelectorSpec.parse("10.88.2.1/32")],
                        [EspProposal.parse("aes256gcm16")])
    return psk_config("load@test", "resp@test", PSK, proposals=[IkeProposal.parse("aes256gcm16-prfsha256-x25519")],
                      children=[child], name="load", force_encap=True, dpd_delay=0)


def established(gw):
    return [c for c in gw.endpoint.connections.values() if c.state == State.ESTABLISHED]


def test_establish_rekey_delete_seen_by_the_responder():
    async def body():
        gr = await responder(responder_config(), cookie_threshold=1000)
        gen = LoadGenerator(LoadSpec("127.0.0.1", load_template(), port=gr.port, natt_port=gr.natt_port,
                                     concurrency=8), responder_pid=os.getpid())
        await gen.start()
        try:
            est = await gen.establish(SAS, timeout=60)
            assert (est.completed, est.ike_sas, est.child_sas, dict(est.failures)) == (SAS, SAS, SAS, {})
            assert len(gen.held) == SAS
            up = established(gr)
            assert len(up) == SAS
            # one identity and one inner host per simulated initiator; none said INITIAL_CONTACT,
            # so the responder replaced nothing
            assert len({str(c.remote_id) for c in up}) == SAS
            assert all(str(c.remote_id).startswith("load-") for c in up)
            selectors = {c.children[next(iter(c.children))].remote_ts[0].start_addr for c in up}
            assert len(selectors) == SAS
            assert len(gr.dataplane.states_of(up[0])) == 1            # its ESP SA is installed
            assert est.responder_after is not None and est.responder_after.cpu_s >= est.responder_before.cpu_s

            spis_before = {c.spi_r: set(c.children) for c in up}
            storm = await gen.rekey_children(0.5, timeout=60)
            assert (storm.completed, dict(storm.failures)) == (SAS, {})
            rekeyed = {c.spi_r: set(c.children) for c in established(gr)}
            assert rekeyed.keys() == spis_before.keys()
            assert all(rekeyed[k].isdisjoint(spis_before[k]) for k in rekeyed)   # new inbound SPIs everywhere

            children_before = {k for c in established(gr) for k in c.children}
            ike_storm = await gen.rekey_ike_sas(0.3, count=SAS // 2, timeout=60)
            assert (ike_storm.completed, dict(ike_storm.failures)) == (SAS // 2, {})
            now_up = established(gr)
            assert len(now_up) == SAS and len({c.spi_r for c in now_up} - set(rekeyed)) == SAS // 2
            assert {k for c in now_up for k in c.children} == children_before   # the new IKE SAs hold them
            assert len(gen.held) == SAS and all(c.state == State.ESTABLISHED for c in gen.held.values())

            gone = await gen.delete_all(timeout=60)
            assert (gone.completed, dict(gone.failures)) == (SAS, {})
            assert gr.endpoint.connections == {} and not gen.held
            summary = summarize(gen, [est, storm, ike_storm, gone], suite="test", auth="PSK")
            assert summary["ok"] and summary["phases"][0]["child_sas"] == SAS
            text = format_summary(summary)
            assert "36 IKE SAs, 36 Child SAs" in text and "36/36 Child SA rekeys" in text
            assert "18/18 IKE SA rekeys" in text
        finally:
            await gen.close()
            await gr.stop()
    run(body(), timeout=120)


def test_failures_are_counted_by_reason():
    """A wrong PSK: every handshake fails, each counted under the responder's
    reason, nothing is held."""
    async def body():
        gr = await responder(responder_config(), cookie_threshold=1000)
        template = dataclasses.replace(load_template(), local_auth=LocalAuth(psk=b"not the responder's key"))
        gen = LoadGenerator(LoadSpec("127.0.0.1", template, port=gr.port, natt_port=gr.natt_port, concurrency=4))
        await gen.start()
        try:
            est = await gen.establish(6, timeout=60)
            assert est.completed == 0 and sum(est.failures.values()) == 6
            assert est.failures == {"IKE SA: authentication failed": 6}
            assert not gen.held and established(gr) == []
        finally:
            await gen.close()
            await gr.stop()
    run(body(), timeout=120)


def test_unanswered_handshakes_time_out_as_failures():
    """Nobody listens: the phase bound ends the wait and counts what was in flight."""
    async def body():
        gen = LoadGenerator(LoadSpec("127.0.0.1", load_template(), port=9, natt_port=9, concurrency=3))
        await gen.start()
        try:
            est = await gen.establish(3, timeout=0.5)
            assert est.completed == 0 and est.failures == {"timed out": 3}
            assert gen.endpoint.connections == {}           # nothing half-open left behind
        finally:
            await gen.close()
    run(body(), timeout=60)


def test_process_stats_reads_this_process():
    s = ProcessStats(os.getpid()).sample()
    assert s is not None and s.rss_kb > 1000 and s.cpu_s > 0
    assert ProcessStats(2 ** 22 + 1).sample() is None


async def _load_cli(gr, *args) -> tuple[dict, str]:
    """``ikecore load --json`` against ``gr`` in a subprocess: its summary and stderr."""
    import asyncio
    argv, env = ikecore_command("load", "127.0.0.1", "--port", str(gr.port), "--natt-port", str(gr.natt_port),
                                "--psk", PSK.decode(), "--remote-ts", "10.88.2.1/32", "--timeout", "60", "--json",
                                *args)
    proc = await asyncio.create_subprocess_exec(*argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 90)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    return json.loads(out), err.decode()


def test_cli_load_json_against_a_gateway():
    async def body():
        import asyncio
        gr = await responder(responder_config(), cookie_threshold=1000, event_queue_size=1000)
        try:
            s, err = await _load_cli(gr, "--sas", "24", "--concurrency", "6", "--rekey-window", "0.3",
                                     "--responder-pid", str(os.getpid()))
            est, storm, gone = s["phases"]
            assert (est["phase"], est["ike_sas"], est["child_sas"]) == ("establish", 24, 24)
            assert est["responder"]["rss_kb_after"] > 0 and est["responder"]["cpu_ms_per_op"] is not None
            assert (storm["phase"], storm["completed"], gone["phase"], gone["completed"]) == ("rekey", 24, "delete", 24)
            assert "establish" in err                                # the progress display went to stderr
            assert gr.endpoint.connections == {}
            # the responder saw 24 Child SA rekeys
            rekeys = 0
            while not gr.events.empty():
                rekeys += isinstance(gr.events.get_nowait()[1], ev.ChildSaRekeyed)
            assert rekeys == 24
        finally:
            await gr.stop()
    run(body(), timeout=120)


def test_cli_load_option_errors_name_the_option():
    for extra, option in ((["--sas", "0"], "--sas"), (["--rate", "-1"], "--rate"),
                          (["--proposal", "aes999-nope"], "--proposal"), (["--inner-net", "10.0.0.0/30"], "--inner-net"),
                          (["--id-template", "load-{m}@x"], "--id-template"), ([], "--psk")):
        args = ["load", "127.0.0.1", *extra]
        if option != "--psk":
            args += ["--psk", "x"]
        argv, env = ikecore_command(*args)
        r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 2, (extra, r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and option in lines[0], (extra, r.stderr)


def _ticket_gateway_config():
    return dataclasses.replace(responder_config(), resumption=True, clone=True)


async def _ticket_gateway():
    import time

    from ikecore.resumption import TicketAuthority, TicketKeyRing
    from ikecore.store import MemoryTicketStore
    gr = await responder(_ticket_gateway_config(), cookie_threshold=1000)
    gr.use_tickets(MemoryTicketStore(), TicketAuthority(TicketKeyRing(rng=os.urandom, now=time.time()),
                                                        rng=os.urandom))
    return gr


def test_mass_reconnect_resumes_every_held_sa_with_its_ticket():
    """Each simulated initiator keeps its own ticket; the resume phase drops every
    SA without a Delete and brings it back with IKE_SESSION_RESUME. The gateway's
    own counts say so: as many resumptions, and the same number of SAs up, each
    replacing the one its ticket came from."""
    async def body():
        gr = await _ticket_gateway()
        gen = LoadGenerator(LoadSpec("127.0.0.1", dataclasses.replace(load_template(), resumption=True),
                                     port=gr.port, natt_port=gr.natt_port, concurrency=8))
        await gen.start()
        try:
            est = await gen.establish(SAS, timeout=60)
            assert est.completed == SAS and len(gen.tickets) == SAS
            before = {c.spi_r for c in established(gr)}
            res = await gen.resume_all(timeout=60)
            assert (res.completed, res.ike_sas, res.child_sas, dict(res.failures)) == (SAS, SAS, SAS, {})
            assert gr.endpoint.stats["resumed"] == SAS and gen.counters["resumptions_refused"] == 0
            up = established(gr)
            assert len(up) == SAS and before.isdisjoint(c.spi_r for c in up)       # all new IKE SAs
            assert all(c.resumed is not None for c in up)
            assert len(gen.held) == SAS and all(c.resumed is not None for c in gen.held.values())
            assert len(gen.tickets) == SAS                       # each came back with a fresh ticket
            assert not gen.lost
            assert "36/36 resumptions" in format_summary(summarize(gen, [est, res], suite="t", auth="PSK"))
            gone = await gen.delete_all(timeout=60)
            assert gone.completed == SAS and gr.endpoint.connections == {}
        finally:
            await gen.close()
            await gr.stop()
    run(body(), timeout=120)


def test_resume_without_tickets_counts_each_sa_as_a_failure():
    """A responder that issues no tickets: the resume phase says so for every SA
    and leaves the SAs as they were."""
    async def body():
        gr = await responder(responder_config(), cookie_threshold=1000)
        gen = LoadGenerator(LoadSpec("127.0.0.1", dataclasses.replace(load_template(), resumption=True),
                                     port=gr.port, natt_port=gr.natt_port, concurrency=4))
        await gen.start()
        try:
            await gen.establish(6, timeout=60)
            res = await gen.resume_all(timeout=10)
            assert res.completed == 0 and res.failures == {"no ticket from the responder": 6}
            assert len(gen.held) == 6 and len(established(gr)) == 6
        finally:
            await gen.close()
            await gr.stop()
    run(body(), timeout=120)


def test_cli_load_clone_and_resume_against_a_gateway():
    async def body():
        import asyncio
        gr = await _ticket_gateway()
        try:
            s, _ = await _load_cli(gr, "--sas", "12", "--concurrency", "4", "--clone", "--resume")
            est, cl, res, gone = s["phases"]
            assert (cl["phase"], cl["completed"], cl["failures"]) == ("clone", 12, {})
            assert (res["phase"], res["completed"], res["child_sas"], res["failures"]) == ("resume", 12, 12, {})
            assert gr.endpoint.stats["resumed"] == 12
            assert (gone["completed"], gone["failures"]) == (24, {})             # the clones too
            assert gr.endpoint.connections == {}
        finally:
            await gr.stop()
    run(body(), timeout=120)


def test_clone_phase_clones_every_held_sa_once():
    """RFC 7791 through the gateway: one clone per held IKE SA, each a new IKE SA
    at the responder (no re-authentication, no Child SA), and the delete phase
    takes the clones too."""
    async def body():
        gr = await responder(dataclasses.replace(responder_config(), clone=True), cookie_threshold=1000)
        gen = LoadGenerator(LoadSpec("127.0.0.1", dataclasses.replace(load_template(), clone=True),
                                     port=gr.port, natt_port=gr.natt_port, concurrency=8))
        await gen.start()
        try:
            await gen.establish(SAS, timeout=60)
            originals = {c.spi_r for c in established(gr)}
            cl = await gen.clone_all(timeout=60)
            assert (cl.completed, dict(cl.failures)) == (SAS, {})
            up = established(gr)
            clones = [c for c in up if c.spi_r not in originals]
            assert len(up) == 2 * SAS and len(clones) == SAS and not any(c.children for c in clones)
            assert {gen_clone.spi_r for gen_clone in gen.clones} == {c.spi_r for c in clones}
            assert "36/36 IKE SA clones" in format_summary(summarize(gen, [cl], suite="t", auth="PSK"))
            gone = await gen.delete_all(timeout=60)
            assert (gone.completed, dict(gone.failures)) == (2 * SAS, {})
            assert gr.endpoint.connections == {} and not gen.clones
        finally:
            await gen.close()
            await gr.stop()
    run(body(), timeout=120)
