"""Failures an operator can diagnose: each refusal, sent or received, is logged
once at info level (or above) with the notify's name and the reason (both
sides' proposals, the identity and method, both sides' selectors); debug logs
carry a one-line payload summary of every message, never a key; established
SAs log their algorithms."""
from __future__ import annotations

import logging

import pytest

from aio_helpers import PSK, child, ike_configs, initiator, responder, run
from ikecore.aio import GatewayError
from ikecore.protocol.config import IkeProposal


def lines(caplog, *words) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.INFO and all(w in r.getMessage() for w in words)]


async def attempt(ci, cr):
    gr = await responder(cr)
    gi = await initiator(ci, gr)
    try:
        try:
            await gi.initiate("to-r", timeout=10)
            return None
        except GatewayError as exc:
            return str(exc)
    finally:
        await gi.stop(timeout=1)
        await gr.stop(timeout=1)


def test_ike_proposal_mismatch_names_both_proposals(caplog):
    caplog.set_level(logging.INFO, logger="ikecore")
    ci, _ = ike_configs(ike="aes128gcm16-prfsha256-ecp256")
    _, cr = ike_configs(ike="aes256gcm16-prfsha384-x25519")
    error = run(attempt(ci, cr))
    assert "IKE_SA_INIT refused: NO_PROPOSAL_CHOSEN" in error
    assert "we offered aes128gcm16-prfsha256-ecp256" in error
    sent = lines(caplog, "sending NO_PROPOSAL_CHOSEN")
    assert len(sent) == 1, sent
    assert "the peer offered IKE:aes128gcm16-prfsha256-ecp256" in sent[0]
    assert "from-i accepts aes256gcm16-prfsha384-x25519" in sent[0]
    assert len(lines(caplog, "NO_PROPOSAL_CHOSEN", "we offered")) >= 1      # the initiator's line


def test_esp_proposal_mismatch_names_both_proposals(caplog):
    caplog.set_level(logging.INFO, logger="ikecore")
    ci, _ = ike_configs(esp="aes128gcm16")
    _, cr = ike_configs(esp="chacha20poly1305")
    error = run(attempt(ci, cr))
    assert "NO_PROPOSAL_CHOSEN (we offered ESP:aes128gcm16-noesn)" in error
    refused = lines(caplog, "refusing a Child SA")
    assert len(refused) == 1, refused
    assert "NO_PROPOSAL_CHOSEN: the peer offered ESP:aes128gcm16-noesn" in refused[0]
    assert "child net accepts chacha20poly1305-noesn" in refused[0]


def test_ts_mismatch_names_both_sides_selectors(caplog):
    caplog.set_level(logging.INFO, logger="ikecore")
    ci, _ = ike_configs()
    _, cr = ike_configs()
    ci.children[0] = child("10.9.0.0/16", "10.2.0.0/16")         # not what the responder allows
    error = run(attempt(ci, cr))
    assert "TS_UNACCEPTABLE (we proposed TSi 10.9.0.0/16 TSr 10.2.0.0/16)" in error
    refused = lines(caplog, "refusing a Child SA")
    assert len(refused) == 1, refused
    assert "TS_UNACCEPTABLE: the peer's TSi 10.9.0.0/16 TSr 10.2.0.0/16" in refused[0]
    assert "net: 10.1.0.0/16 === 10.2.0.0/16" in refused[0]


def test_authentication_failure_names_identity_and_method(caplog):
    caplog.set_level(logging.INFO, logger="ikecore")
    ci, cr = ike_configs(psk_i=b"not the responder's key at all")
    error = run(attempt(ci, cr))
    assert "authentication failed" in error
    sent = lines(caplog, "sending AUTHENTICATION_FAILED")
    assert len(sent) == 1, sent
    assert "initiator initiator@test (auth SHARED_KEY_MIC) at 127.0.0.1" in sent[0]
    got = lines(caplog, "received AUTHENTICATION_FAILED")
    assert len(got) == 1 and "refused us as initiator@test (auth PSK)" in got[0], got


def test_debug_summaries_and_algorithms(caplog):
    caplog.set_level(logging.DEBUG, logger="ikecore")
    ci, cr = ike_configs()
    assert run(attempt(ci, cr)) is None
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "sending IKE_SA_INIT request 0 [ SA KE No N(NATD_S_IP) N(NATD_D_IP)" in text
    assert "received IKE_SA_INIT request 0 [ SA KE No" in text
    assert "sending IKE_AUTH request 1 [ IDi IDr AUTH N(INIT_CONTACT) SA TSi TSr ]" in text
    assert "received IKE_AUTH response 1 [ IDr AUTH" in text
    assert "IKE SA established with responder@test (initiator), 127.0.0.1:" in text
    assert "aes256gcm16-prfsha256-x25519" in text
    assert "aes256gcm16-noesn, 10.1.0.0/16 <=> 10.2.0.0/16" in text
    assert PSK.hex() not in text and PSK.decode() not in text


def test_legacy_sha1_suite_when_configured():
    """PRF_HMAC_SHA1 / AUTH_HMAC_SHA1_96 (configured on both sides): the SAs come
    up, carry traffic, and name their algorithms."""
    from aio_helpers import exchange_traffic, pair

    async def body():
        ci, cr = ike_configs(ike="aes128-sha1-x25519", esp="aes128-sha1")
        gi, gr, conn = await pair(ci=ci, cr=cr)
        try:
            await exchange_traffic(gi, gr, "127.0.0.1", n=10)
            [sa] = gi.status()["ike_sas"]
            assert sa["algorithms"] == "aes128-sha1-prfsha1-x25519"
            assert sa["child_sas"][0]["algorithms"] == "aes128-sha1-noesn"
        finally:
            await gi.stop(timeout=1)
            await gr.stop(timeout=1)
    run(body())
