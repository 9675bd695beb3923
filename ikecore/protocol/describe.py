"""Algorithms, proposals and SA payloads as strongSwan-style text, for logs,
status and the control socket (``aes256gcm16-prfsha256-x25519``). Never keys."""
from __future__ import annotations

from .config import _DH_WORDS, _ENCR_WORDS, _INTEG_WORDS, _PRF_WORDS

# transform id -> word (the first word of each id wins; aliases such as "aes256gcm" lose)
_ENCR = {}
for _w, _v in _ENCR_WORDS.items():
    _ENCR.setdefault(_v, _w)
_PRF = {v: w for w, v in _PRF_WORDS.items()}
_INTEG = {v: w for w, v in _INTEG_WORDS.items()}
_DH = {}
for _w, _v in _DH_WORDS.items():
    _DH.setdefault(_v, _w)

# IANA "Transform Type" values (RFC 7296 §3.3.2)
_ENCR_T, _PRF_T, _INTEG_T, _DH_T, _ESN_T = 1, 2, 3, 4, 5


def encr_text(encr_id: int, bits: int | None) -> str:
    return _ENCR.get((encr_id, bits)) or _ENCR.get((encr_id, None)) or f"encr{encr_id}" + (f"/{bits}" if bits else "")


def prf_text(prf_id: int) -> str:
    return _PRF.get(prf_id, f"prf{prf_id}")


def integ_text(integ_id: int) -> str:
    return _INTEG.get(integ_id, f"integ{integ_id}")


def dh_text(group: int) -> str:
    return _DH.get(group, f"group{group}")


def ike_suite_text(suite) -> str:
    """An :class:`~ikecore.protocol.negotiation.IkeSuite` as ``aes256gcm16-prfsha256-x25519``."""
    if suite is None:
        return "-"
    words = [encr_text(suite.encr_id, suite.key_bits)]
    if suite.integ_id:
        words.append(integ_text(suite.integ_id))
    words += [prf_text(suite.prf_id), dh_text(suite.dh_group)]
    return "-".join(words)


def esp_suite_text(suite) -> str:
    """An :class:`~ikecore.protocol.negotiation.EspSuite` as ``aes256gcm16-esn`` (PFS group when used)."""
    if suite is None:
        return "-"
    words = [encr_text(suite.encr_id, suite.key_bits)]
    if suite.integ_id:
        words.append(integ_text(suite.integ_id))
    if suite.dh_group:
        words.append(dh_text(suite.dh_group))
    words.append("esn" if suite.esn else "noesn")
    return "-".join(words)


def proposal_text(proposal) -> str:
    """One received or sent :class:`~ikecore.protocol.payloads.Proposal` as strongSwan
    writes it (``IKE:AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE_25519`` there; the
    configuration keywords here, so that an operator can paste it into a config)."""
    words = []
    for t in proposal.transforms:
        if t.type == _ENCR_T:
            words.append(encr_text(t.id, t.key_length))
        elif t.type == _PRF_T:
            words.append(prf_text(t.id))
        elif t.type == _INTEG_T:
            if t.id:
                words.append(integ_text(t.id))
        elif t.type == _DH_T:
            if t.id:
                words.append(dh_text(t.id))
        elif t.type == _ESN_T:
            words.append("esn" if t.id else "noesn")
    proto = {1: "IKE", 2: "AH", 3: "ESP"}.get(proposal.protocol_id, str(proposal.protocol_id))
    return f"{proto}:" + "-".join(words)


def sa_text(sa) -> str:
    """Every proposal of an SA payload, ``, ``-separated."""
    if sa is None:
        return "(none)"
    return ", ".join(proposal_text(p) for p in sa.proposals) or "(no proposals)"


def config_proposals_text(proposals) -> str:
    """Configured IkeProposal/EspProposal objects as text (what we would offer or accept)."""
    out = []
    for p in proposals:
        words = [encr_text(e, b) for e, b in p.encr]
        words += [integ_text(i) for i in p.integ]
        words += [prf_text(f) for f in getattr(p, "prf", ())]
        words += [dh_text(g) for g in p.dh]
        if hasattr(p, "esn"):
            words += ["esn" if e else "noesn" for e in p.esn]
        out.append("-".join(words))
    return ", ".join(out)


__all__ = ["ike_suite_text", "esp_suite_text", "proposal_text", "sa_text", "config_proposals_text",
           "encr_text", "prf_text", "integ_text", "dh_text"]
