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


def notify_name(notify_type) -> str:
    """``NO_PROPOSAL_CHOSEN`` for 14; the number for a type we have no name for."""
    from .constants import NotifyType
    if notify_type is None:
        return "no notify"
    try:
        return NotifyType(notify_type).name
    except ValueError:
        return f"notify {notify_type}"


def selectors_text(selectors) -> str:
    """Traffic selectors (payload selectors or TrafficSelectorSpec) as ``10.1.0.0/16 10.9.0.1[udp/53]``."""
    import ipaddress
    out = []
    for ts in selectors or ():
        try:
            if hasattr(ts, "start_addr"):
                a, b = ipaddress.ip_address(ts.start_addr), ipaddress.ip_address(ts.end_addr)
            else:
                a, b = ipaddress.ip_address(ts.start), ipaddress.ip_address(ts.end)
            nets = list(ipaddress.summarize_address_range(a, b))
            text = ",".join(str(n) for n in nets) if len(nets) <= 2 else f"{a}-{b}"
        except (ValueError, TypeError, AttributeError):
            text = "?"
        proto = getattr(ts, "ip_protocol", 0)
        if proto:
            text += f"[{proto}/{ts.start_port}-{ts.end_port}]"
        out.append(text)
    return " ".join(out) or "(none)"


def refusal_text(notify_type, *, offered: str | None = None, ours: str | None = None) -> str:
    """``NO_PROPOSAL_CHOSEN (peer offered ...; we offered ...)``: a refusal
    received, named, with what we proposed."""
    text = notify_name(notify_type)
    detail = "; ".join(x for x in (offered, ours) if x)
    return f"{text} ({detail})" if detail else text


__all__ += ["notify_name", "selectors_text", "refusal_text"]


# strongSwan's short names, so that debug logs of both read alike
_PAYLOAD_SHORT = {33: "SA", 34: "KE", 35: "IDi", 36: "IDr", 37: "CERT", 38: "CERTREQ", 39: "AUTH", 40: "No",
                  42: "D", 43: "V", 44: "TSi", 45: "TSr", 46: "SK", 47: "CP", 48: "EAP", 53: "SKF"}
_NOTIFY_SHORT = {"INITIAL_CONTACT": "INIT_CONTACT", "NAT_DETECTION_SOURCE_IP": "NATD_S_IP",
                 "NAT_DETECTION_DESTINATION_IP": "NATD_D_IP", "IKEV2_FRAGMENTATION_SUPPORTED": "FRAG_SUP",
                 "SIGNATURE_HASH_ALGORITHMS": "HASH_ALG", "MOBIKE_SUPPORTED": "MOBIKE_SUP"}


def message_summary(msg) -> str:
    """``IKE_AUTH request 1 [ IDi AUTH SA TSi TSr N(INIT_CONTACT) ]``: payload
    types only (for a protected message, the inner ones), never their content."""
    from .constants import ExchangeType
    try:
        exchange = ExchangeType(msg.exchange_type).name
    except ValueError:
        exchange = f"exchange {msg.exchange_type}"
    words = []
    payloads = msg.payloads + msg.inner if msg.inner is not None else msg.payloads
    for p in payloads:
        t = p.payload_type
        if t == 41:
            name = notify_name(p.notify_type)
            words.append(f"N({_NOTIFY_SHORT.get(name, name)})")
        elif t == 42 and getattr(p, "protocol_id", None) == 1:
            words.append("D(IKE)")
        else:
            words.append(_PAYLOAD_SHORT.get(t, str(t)))
    kind = "response" if msg.is_response else "request"
    return f"{exchange} {kind} {msg.message_id} [ {' '.join(words)} ]"


__all__ += ["message_summary"]
