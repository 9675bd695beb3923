"""Failures named, against charon in both roles: an IKE proposal mismatch, an
ESP proposal mismatch, a traffic-selector mismatch and a wrong PSK, each
refused by one side; the ikecore log line (or error) names the notify and the
reason (both proposals, both selectors, the identity and method)."""
from __future__ import annotations

import asyncio
import logging

import pytest

import sswan
from ikecore.aio import Gateway, GatewayError
from ikecore.aio.config import parse_config

pytestmark = pytest.mark.interop
_why = sswan.available()
if _why:
    pytestmark = [pytest.mark.interop, pytest.mark.skip(reason=_why)]

OURS_IKE = "aes256gcm16-prfsha256-x25519"


def config(peer: sswan.Peer, *, initiator: bool, ike=OURS_IKE, esp="aes256gcm16", psk=sswan.PSK,
           local_ts=f"{sswan.INNER_LOCAL}/32", remote_ts=f"{sswan.INNER_REMOTE}/32"):
    me, them = ("init@test", "resp@test") if initiator else ("resp@test", "init@test")
    return parse_config({
        "gateway": {"listen": [peer.host_addr], "port": 500, "natt_port": 4500},
        "connections": {"sw": {
            "remote_addrs": [peer.peer_addr], "proposals": [ike], "dpd_delay": 0, "psk": psk,
            "local": {"id": me}, "remote": {"id": them},
            "children": {"net": {"local_ts": [local_ts], "remote_ts": [remote_ts], "esp_proposals": [esp]}},
        }},
    }, source="interop-failures")


# (case, charon's IKE proposals, charon's ESP proposals, our config changes, words of our side's line)
CASES = {
    "ike-proposal": ("aes128gcm16-prfsha384-ecp384", "aes256gcm16", {},
                     {True: ["IKE_SA_INIT refused: NO_PROPOSAL_CHOSEN", f"we offered {OURS_IKE}"],
                      False: ["sending NO_PROPOSAL_CHOSEN", "the peer offered IKE:aes128gcm16-prfsha384-ecp384",
                              f"sw accepts {OURS_IKE}"]}),
    "esp-proposal": (OURS_IKE, "aes128gcm16", {},
                     {True: ["NO_PROPOSAL_CHOSEN (we offered ESP:aes256gcm16-noesn)"],
                      False: ["refusing a Child SA", "NO_PROPOSAL_CHOSEN: the peer offered ESP:aes128gcm16",
                              "child net accepts aes256gcm16-noesn"]}),
    "selectors": (OURS_IKE, "aes256gcm16", {"local_ts": "10.88.7.1/32", "remote_ts": "10.88.7.2/32"},
                  {True: ["TS_UNACCEPTABLE (we proposed TSi 10.88.7.1/32 TSr 10.88.7.2/32)"],
                   False: ["refusing a Child SA", "TS_UNACCEPTABLE: the peer's TSi 10.88.2.1/32 TSr 10.88.1.1/32",
                           "net: 10.88.7.2/32 === 10.88.7.1/32"]}),
    "psk": (OURS_IKE, "aes256gcm16", {"psk": "not the key charon has, at all"},
            {True: ["received AUTHENTICATION_FAILED", "init@test (auth PSK)"],
             False: ["sending AUTHENTICATION_FAILED", "initiator init@test (auth SHARED_KEY_MIC)"]}),
}


@pytest.mark.parametrize("ikecore_initiates", [True, False], ids=["ikecore-initiates", "charon-initiates"])
@pytest.mark.parametrize("case", list(CASES))
def test_refusal_is_named(tmp_path, caplog, case, ikecore_initiates):
    ike, esp, changes, words = CASES[case]
    caplog.set_level(logging.INFO, logger="ikecore")
    peer = sswan.Peer(tmp_path / "charon", ike_proposals=ike, esp_proposals=esp,
                      local_id="resp@test" if ikecore_initiates else "init@test",
                      remote_id="init@test" if ikecore_initiates else "resp@test")
    gw = None

    async def body():
        await gw.start()
        try:
            if ikecore_initiates:
                with pytest.raises(GatewayError) as info:
                    await gw.initiate("sw", timeout=10)
                return str(info.value)
            result = await asyncio.get_running_loop().run_in_executor(None, lambda: peer.initiate(5))
            assert "initiate completed successfully" not in result.stdout
            return ""
        finally:
            await gw.stop(timeout=2)

    peer.netns_up()
    try:
        peer.start()
        gw = Gateway(config(peer, initiator=ikecore_initiates, **changes))
        error = asyncio.run(body())
    finally:
        peer.stop()
        peer.netns_down()
    text = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO) + "\n" + error
    for w in words[ikecore_initiates]:
        assert w in text, f"{w!r} not in:\n{text}"
    if not ikecore_initiates:          # a refusal we send is logged once
        key = words[False][0]
        assert sum(key in r.getMessage() for r in caplog.records) == 1, text
        assert sum(words[False][1] in r.getMessage() for r in caplog.records) == 1, text
