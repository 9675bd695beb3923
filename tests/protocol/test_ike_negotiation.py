"""Proposal negotiation (RFC 7296 §3.3.6) end to end and as pure functions.

Every IKE suite the core offers is negotiated through the in-memory pair
(fake clock, seeded RNG), both sides derive the same seven keys, and the
first Child SA's keys drive a pair of EspSA objects.

    Initiator                               Responder
    HDR, SAi1, KEi, Ni, N(NAT_D)*   -->
                                    <--  HDR, SAr1, KEr, Nr, N(NAT_D)*
    HDR, SK {IDi, AUTH, SAi2, TSi, TSr}  -->
                                    <--  HDR, SK {IDr, AUTH, SAr2, TSi, TSr}
"""
import itertools

import pytest

from ike_pair import Pair, configs
from ikecore.crypto.transforms import Encr, Integ, Prf
from ikecore.errors import NoProposalChosen, ProtocolError
from ikecore.protocol import events as ev
from ikecore.protocol.config import EspProposal, IkeProposal
from ikecore.protocol.constants import NotifyType, ProtocolId, TransformType
from ikecore.protocol.negotiation import (accept_esp_reply, accept_ike_reply, esp_sa_payload,
                                          ike_sa_payload, select_esp, select_ike)
from ikecore.protocol.payloads import Proposal, SaPayload, Transform

AEAD = ["aes128gcm16", "aes256gcm16", "chacha20poly1305"]
CBC = ["aes128", "aes256"]
PRFS = ["prfsha256", "prfsha384", "prfsha512", "prfaesxcbc", "prfaescmac"]
INTEGS = ["sha256", "sha384", "sha512"]
GROUPS = ["modp2048", "modp3072", "ecp256", "ecp384", "ecp521", "x25519"]
GROUP_IDS = {"modp2048": 14, "modp3072": 15, "ecp256": 19, "ecp384": 20, "ecp521": 21, "x25519": 31}

IKE_SUITES = ([f"{e}-{p}-{g}" for e, p, g in itertools.product(AEAD, PRFS, GROUPS)]
              + [f"{e}-{i}-{p}-{g}" for e, i, p, g in itertools.product(CBC, INTEGS, PRFS, GROUPS)])

KEY_FIELDS = ("sk_d", "sk_ai", "sk_ar", "sk_ei", "sk_er", "sk_pi", "sk_pr")


def _handshake(ike, esp="aes256gcm16", seed=1, **kw):
    p = Pair(*configs(ike, esp, **kw), seed=seed)
    p.connect()
    assert p.run(p.established), f"{ike} / {esp} did not establish"
    return p


def _check_child_traffic(p):
    [a] = p.of(ev.ChildSaInstalled, "i")
    [b] = p.of(ev.ChildSaInstalled, "r")
    a, b = a.child, b.child
    assert (a.spi_in, a.spi_out) == (b.spi_out, b.spi_in)
    assert a.suite == b.suite
    assert a.outbound_keys == b.inbound_keys and a.inbound_keys == b.outbound_keys
    out_i, in_i = a.esp_sas()
    out_r, in_r = b.esp_sas()
    for n in range(3):
        inner = bytes([0x45]) + bytes(19) + bytes([n]) * 40
        assert in_r.decrypt(out_i.encrypt(inner, 4)) == (inner, 4)
        assert in_i.decrypt(out_r.encrypt(inner[::-1], 41)) == (inner[::-1], 41)
    return a


@pytest.mark.parametrize("ike", IKE_SUITES)
def test_every_ike_suite_negotiates_with_identical_keys(ike):
    p = _handshake(ike)
    ci, cr = p.conn("i"), p.conn("r")
    assert ci.suite == cr.suite
    suite = ci.suite
    assert suite.dh_group == GROUP_IDS[ike.rsplit("-", 1)[1]]
    for name in KEY_FIELDS:
        assert getattr(ci.keys, name) == getattr(cr.keys, name), name
    if suite.is_aead:
        assert suite.integ_id == Integ.NONE and ci.keys.sk_ai == b""
    else:
        assert len(ci.keys.sk_ai) == {Integ.HMAC_SHA2_256_128: 32, Integ.HMAC_SHA2_384_192: 48,
                                      Integ.HMAC_SHA2_512_256: 64}[suite.integ_id]
    # the SK keys also work: an INFORMATIONAL round trip after establishment
    ci.check_liveness(p.now)
    p.ei.collect_all()
    assert p.run(lambda: p.of(ev.PeerAlive, "i"))
    _check_child_traffic(p)


@pytest.mark.parametrize("esp", ["aes128gcm16", "aes256gcm16", "chacha20poly1305", "aes128-sha256",
                                 "aes256-sha384", "aes256-sha512"])
@pytest.mark.parametrize("esn", ["esn", "noesn"])
def test_esp_suites_with_and_without_esn(esp, esn):
    p = _handshake("aes256gcm16-prfsha256-x25519", f"{esp}-{esn}")
    child = _check_child_traffic(p)
    assert child.suite.esn is (esn == "esn")
    out, inbound = child.esp_sas()
    assert out.esn == inbound.esn == (esn == "esn")


def test_esn_either_way_follows_the_initiators_order():
    # the initiator prefers ESN, the responder accepts both: ESN; and the other way round
    p = _handshake("aes256gcm16-prfsha256-x25519", "aes256gcm16-esn-noesn",
                   esp_r="aes256gcm16-noesn-esn")
    assert _check_child_traffic(p).suite.esn is True
    p = _handshake("aes256gcm16-prfsha256-x25519", "aes256gcm16-noesn-esn",
                   esp_r="aes256gcm16-esn-noesn")
    assert _check_child_traffic(p).suite.esn is False


@pytest.mark.parametrize("swap", [False, True], ids=["a-initiates", "b-initiates"])
def test_responder_picks_a_whole_proposal_in_the_initiators_order(swap):
    a = "aes128-sha256-prfsha256-ecp256,aes256gcm16-prfsha384-x25519"
    b = "aes256gcm16-prfsha384-x25519,aes128-sha256-prfsha256-ecp256"
    ike, ike_r = (b, a) if swap else (a, b)
    p = _handshake(ike, ike_r=ike_r)
    suite = p.conn("i").suite
    first = IkeProposal.parse(ike.split(",")[0])
    assert (suite.encr_id, suite.key_bits) == first.encr[0]
    assert suite.prf_id == first.prf[0] and suite.dh_group == first.dh[0]


def test_no_common_ike_proposal_ends_both_sides():
    p = Pair(*configs("aes128-sha256-prfsha256-ecp256", ike_r="aes256gcm16-prfsha384-x25519"))
    p.connect()
    p.run()
    [gone] = p.of(ev.IkeSaDeleted, "i")
    assert gone.notify_type == NotifyType.NO_PROPOSAL_CHOSEN
    assert not p.of(ev.IkeSaEstablished, "r") and not p.er.connections and p.er.half_open == 0


def test_no_common_esp_proposal_keeps_the_ike_sa():
    p = Pair(*configs(esp="aes128gcm16", esp_r="chacha20poly1305"))
    p.connect()
    assert p.run(p.established)
    [failed] = p.of(ev.ChildSaFailed, "i")
    assert failed.notify_type == NotifyType.NO_PROPOSAL_CHOSEN
    assert not p.of(ev.ChildSaInstalled, "i") and not p.of(ev.ChildSaInstalled, "r")
    assert p.conn("i").established and p.conn("r").established


# ------------------------------------------------------------ pure functions --

def _ike_offer(*texts, spi=b""):
    return ike_sa_payload([IkeProposal.parse(t) for t in texts], spi)


def test_select_ike_does_not_mix_transforms_of_different_configured_proposals():
    # we accept (GCM + SHA-256 PRF) or (CBC + SHA-512); the peer's GCM + SHA-512 matches neither
    ours = [IkeProposal.parse("aes256gcm16-prfsha256-x25519"),
            IkeProposal.parse("aes256-sha512-prfsha512-x25519")]
    with pytest.raises(NoProposalChosen):
        select_ike(_ike_offer("aes256gcm16-prfsha512-x25519"), ours)
    chosen, suite = select_ike(_ike_offer("aes256gcm16-prfsha512-x25519", "aes256-sha512-x25519"), ours)
    assert chosen.num == 2 and suite.encr_id == Encr.AES_CBC and suite.prf_id == Prf.HMAC_SHA2_512


def test_select_ike_prefers_the_group_of_the_ke_payload():
    offer = _ike_offer("aes256gcm16-prfsha256-ecp256-x25519")
    ours = [IkeProposal.parse("aes256gcm16-prfsha256-x25519-ecp256")]
    assert select_ike(offer, ours)[1].dh_group == 19
    assert select_ike(offer, ours, ke_group=31)[1].dh_group == 31
    assert select_ike(offer, ours, ke_group=20)[1].dh_group == 19   # not offered: first acceptable


def test_select_ike_reply_has_one_transform_per_type_and_the_peers_number():
    offer = _ike_offer("aes128-aes256-sha256-sha384-prfsha256-prfsha384-ecp256-x25519")
    chosen, suite = select_ike(offer, [IkeProposal.parse("aes256-sha384-prfsha384-x25519")])
    assert chosen.num == 1 and chosen.protocol_id == ProtocolId.IKE
    types = [t.type for t in chosen.transforms]
    assert sorted(types) == sorted({TransformType.ENCR, TransformType.PRF, TransformType.INTEG,
                                    TransformType.DH})
    assert accept_ike_reply(SaPayload([chosen]), offer)[1] == suite


def test_select_ike_skips_proposals_with_unknown_transform_types_or_attributes():
    good = _ike_offer("aes256gcm16-prfsha256-x25519").proposals[0]
    weird = Proposal(1, ProtocolId.IKE, b"", good.transforms + [Transform(77, 1)])
    ours = [IkeProposal.parse("aes256gcm16-prfsha256-x25519")]
    with pytest.raises(NoProposalChosen):
        select_ike(SaPayload([weird]), ours)
    second = Proposal(2, ProtocolId.IKE, b"", good.transforms)
    assert select_ike(SaPayload([weird, second]), ours)[0].num == 2


def test_aead_with_a_real_integrity_transform_is_refused():
    t = _ike_offer("aes256gcm16-prfsha256-x25519").proposals[0].transforms
    bad = Proposal(1, ProtocolId.IKE, b"", t + [Transform(TransformType.INTEG, Integ.HMAC_SHA2_256_128)])
    ours = [IkeProposal.parse("aes256gcm16-prfsha256-x25519")]
    with pytest.raises(NoProposalChosen):
        select_ike(SaPayload([bad]), ours)
    none_ok = Proposal(1, ProtocolId.IKE, b"", t + [Transform(TransformType.INTEG, Integ.NONE)])
    assert select_ike(SaPayload([none_ok]), ours)[1].integ_id == Integ.NONE


def test_key_length_must_match():
    offer = _ike_offer("aes128gcm16-prfsha256-x25519")
    with pytest.raises(NoProposalChosen):
        select_ike(offer, [IkeProposal.parse("aes256gcm16-prfsha256-x25519")])


def test_initiator_rejects_a_reply_it_never_offered():
    offer = _ike_offer("aes128gcm16-prfsha256-x25519")
    other, _ = select_ike(_ike_offer("aes256gcm16-prfsha256-x25519"),
                          [IkeProposal.parse("aes256gcm16-prfsha256-x25519")])
    with pytest.raises(ProtocolError):
        accept_ike_reply(SaPayload([other]), offer)
    two = _ike_offer("aes128gcm16-prfsha256-x25519").proposals * 2
    with pytest.raises(ProtocolError):
        accept_ike_reply(SaPayload(two), offer)


def test_esp_selection_esn_and_dh_rules():
    spi = b"\x00\x00\x10\x01"
    ours = [EspProposal.parse("aes256gcm16-esn-noesn")]
    offer = esp_sa_payload([EspProposal.parse("aes256gcm16-noesn")], spi)
    chosen, suite = select_esp(offer, ours)
    assert suite.esn is False and chosen.spi == spi
    assert accept_esp_reply(SaPayload([chosen]), offer)[1] == suite
    with pytest.raises(NoProposalChosen):
        select_esp(offer, [EspProposal.parse("aes256gcm16-esn")])
    # a PFS group offered in IKE_AUTH is ignored there, refused where no KE may come
    pfs = esp_sa_payload([EspProposal.parse("aes256gcm16-x25519")], spi, pfs=True)
    with pytest.raises(NoProposalChosen):
        select_esp(pfs, ours)
    chosen, suite = select_esp(pfs, ours, ignore_dh=True)
    assert suite.dh_group is None
    assert all(t.type != TransformType.DH for t in chosen.transforms)
    chosen, suite = select_esp(pfs, [EspProposal.parse("aes256gcm16-ecp256-x25519")], allow_dh=True,
                               ke_group=31)
    assert suite.dh_group == 31


def test_esp_suites_are_shared_plain_int_objects_on_both_sides():
    spi = b"\x00\x00\x10\x02"
    offer = esp_sa_payload([EspProposal.parse("aes128-sha256-esn")], spi)
    chosen, responder_suite = select_esp(offer, [EspProposal.parse("aes128-sha256-esn")])
    _, initiator_suite = accept_esp_reply(SaPayload([chosen]), offer)
    assert initiator_suite is responder_suite          # one object per set of values
    assert (responder_suite.encr_id, responder_suite.key_bits, responder_suite.integ_id,
            responder_suite.esn, responder_suite.dh_group) == (Encr.AES_CBC, 128, Integ.HMAC_SHA2_256_128,
                                                               True, None)
    assert all(type(v) is int for v in (responder_suite.encr_id, responder_suite.key_bits,
                                        responder_suite.integ_id))
    # AEAD: no integrity transform, the suite says Integ.NONE
    aead = esp_sa_payload([EspProposal.parse("aes256gcm16")], spi)
    _, suite = select_esp(aead, [EspProposal.parse("aes256gcm16")])
    assert suite.integ_id == Integ.NONE and type(suite.integ_id) is int


def test_esp_reply_without_encr_or_esn_is_refused():
    spi = b"\x00\x00\x10\x03"
    offer = esp_sa_payload([EspProposal.parse("aes256gcm16")], spi)
    chosen, _ = select_esp(offer, [EspProposal.parse("aes256gcm16")])
    for missing in (TransformType.ENCR, TransformType.ESN):
        cut = Proposal(chosen.num, chosen.protocol_id, chosen.spi,
                       [t for t in chosen.transforms if t.type != missing])
        with pytest.raises(ProtocolError, match="lacks a mandatory transform"):
            accept_esp_reply(SaPayload([cut]), offer)


def test_to_payload_gives_a_fresh_selector_per_call_and_follows_each_spec():
    import ipaddress

    from ikecore.protocol.config import TrafficSelectorSpec
    from ikecore.protocol.constants import TsType
    from ikecore.protocol.selectors import to_payload

    v4 = TrafficSelectorSpec.parse("10.1.0.0/24[6/443]")
    first, second = to_payload(v4), to_payload(v4)
    assert first == second and first is not second
    assert (first.ts_type, first.ip_protocol, first.start_port, first.end_port, first.start_addr,
            first.end_addr) == (TsType.TS_IPV4_ADDR_RANGE, 6, 443, 443, bytes([10, 1, 0, 0]),
                                bytes([10, 1, 0, 255]))
    first.start_port = 1                        # a caller's change stays in its own object
    assert to_payload(v4).start_port == 443
    # specs made and dropped one after another (ids may be reused) each give their own
    for n in range(50):
        spec = TrafficSelectorSpec(ipaddress.ip_address(f"2001:db8::{n:x}"),
                                   ipaddress.ip_address(f"2001:db8::{n:x}"))
        ts = to_payload(spec)
        assert ts.ts_type == TsType.TS_IPV6_ADDR_RANGE and ts.start_addr == spec.start.packed
        del spec
