"""SA payload proposals: building them from configuration, choosing one as a
responder, and checking a responder's choice as an initiator (RFC 7296 §3.3.6)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..crypto.transforms import AEAD_ENCR, Encr, Integ
from ..errors import NoProposalChosen, ProtocolError
from .config import KNOWN_GROUPS, EspProposal, IkeProposal
from .constants import AttributeType, NotifyType, ProtocolId, TransformType
from .payloads import Proposal, SaPayload, Transform, TransformAttribute

_ENCR_OK = {Encr.AES_CBC: (128, 192, 256), Encr.AES_GCM_8: (128, 192, 256),
            Encr.AES_GCM_12: (128, 192, 256), Encr.AES_GCM_16: (128, 192, 256),
            Encr.CHACHA20_POLY1305: (None,)}
_PRF_OK = frozenset({2, 4, 5, 6, 7, 8})     # 2: PRF_HMAC_SHA1, chosen only when configured
_INTEG_OK = frozenset({Integ.HMAC_SHA1_96, Integ.HMAC_SHA2_256_128, Integ.HMAC_SHA2_384_192, Integ.HMAC_SHA2_512_256})


@dataclass(frozen=True)
class IkeSuite:
    """The transforms an IKE SA runs with."""

    encr_id: int
    key_bits: int | None
    prf_id: int
    integ_id: int
    dh_group: int

    @property
    def is_aead(self) -> bool:
        return self.encr_id in AEAD_ENCR


@dataclass(frozen=True)
class EspSuite:
    encr_id: int
    key_bits: int | None
    integ_id: int
    esn: bool
    dh_group: int | None     # PFS group of a CREATE_CHILD_SA, else None

    @property
    def is_aead(self) -> bool:
        return self.encr_id in AEAD_ENCR


# the suites an endpoint meets are a handful: one shared (frozen) object each, since
# building a frozen dataclass costs a microsecond per handshake, rekey and clone
_SUITES: dict[tuple, IkeSuite] = {}
_ESP_SUITES: dict[tuple, EspSuite] = {}
_MAX_SUITES = 1024


def _ike_suite(encr_id: int, key_bits: int | None, prf_id: int, integ_id: int, dh_group: int) -> IkeSuite:
    key = (encr_id, key_bits, prf_id, integ_id, dh_group)
    suite = _SUITES.get(key)
    if suite is None:
        if len(_SUITES) >= _MAX_SUITES:     # only accepted suites get here: never in practice
            _SUITES.clear()
        # plain ints (a locally built offer may hold enum members): the shared object
        # must not depend on which caller made it first
        suite = _SUITES[key] = IkeSuite(*(None if v is None else int(v) for v in key))
    return suite


def _esp_suite(encr_id: int, key_bits: int | None, integ_id: int, esn: bool, dh_group: int | None) -> EspSuite:
    """The same for Child SAs: one shared object per suite, where a copy per SA
    costs 112 bytes (memory per SA, docs/scale.md)."""
    key = (encr_id, key_bits, integ_id, esn, dh_group)
    suite = _ESP_SUITES.get(key)
    if suite is None:
        if len(_ESP_SUITES) >= _MAX_SUITES:
            _ESP_SUITES.clear()
        suite = _ESP_SUITES[key] = EspSuite(int(encr_id), None if key_bits is None else int(key_bits),
                                            int(integ_id), bool(esn), None if dh_group is None else int(dh_group))
    return suite


def _encr_transform(encr_id: int, bits: int | None) -> Transform:
    attrs = [TransformAttribute(AttributeType.KEY_LENGTH, bits)] if bits is not None else []
    return Transform(TransformType.ENCR, encr_id, attrs)


def _key_bits(t: Transform) -> int | None | bool:
    """The Key Length attribute; False when attributes make the transform unusable."""
    bits = None
    for a in t.attributes:
        if a.type != AttributeType.KEY_LENGTH or not isinstance(a.value, int):
            return False   # unknown attribute: this transform is unacceptable (§3.3.6)
        bits = a.value
    return bits


def ike_sa_payload(proposals: Sequence[IkeProposal], spi: bytes = b"",
                   group_first: int | None = None) -> SaPayload:
    """Our offer; ``spi`` is empty in IKE_SA_INIT and the new SPI in a rekey.
    ``group_first`` moves that group to the front (after INVALID_KE_PAYLOAD)."""
    out = []
    for num, p in enumerate(proposals, 1):
        ts = [_encr_transform(e, b) for e, b in p.encr]
        ts += [Transform(TransformType.PRF, x) for x in p.prf]
        ts += [Transform(TransformType.INTEG, x) for x in p.integ]
        groups = list(p.dh)
        if group_first in groups:
            groups.remove(group_first)
            groups.insert(0, group_first)
        ts += [Transform(TransformType.DH, g) for g in groups]
        out.append(Proposal(num, ProtocolId.IKE, spi, ts))
    return SaPayload(out)


def esp_sa_payload(proposals: Sequence[EspProposal], spi: bytes, *, pfs: bool = False,
                   group_first: int | None = None) -> SaPayload:
    out = []
    for num, p in enumerate(proposals, 1):
        ts = [_encr_transform(e, b) for e, b in p.encr]
        ts += [Transform(TransformType.INTEG, x) for x in p.integ]
        if pfs and p.dh:
            groups = list(p.dh)
            if group_first in groups:
                groups.remove(group_first)
                groups.insert(0, group_first)
            ts += [Transform(TransformType.DH, g) for g in groups]
        ts += [Transform(TransformType.ESN, x) for x in p.esn]
        out.append(Proposal(num, ProtocolId.ESP, spi, ts))
    return SaPayload(out)


_KNOWN_TRANSFORM_TYPES = frozenset({TransformType.ENCR, TransformType.PRF, TransformType.INTEG,
                                    TransformType.DH, TransformType.ESN})


def _by_type(proposal: Proposal) -> dict[int, list[Transform]] | None:
    known = _KNOWN_TRANSFORM_TYPES
    groups: dict[int, list[Transform]] = {}
    for t in proposal.transforms:
        if t.type not in known:
            return None   # an unknown transform type makes the whole proposal unacceptable
        groups.setdefault(t.type, []).append(t)
    return groups


def _pick_encr(offered: list[Transform], allowed) -> Transform | None:
    for t in offered:
        bits = _key_bits(t)
        if bits is not False and (t.id, bits) in allowed:
            return t
    return None


def _pick(offered: list[Transform], allowed) -> Transform | None:
    for t in offered:
        if t.id in allowed and not t.attributes:
            return t
    return None


def _pick_integ(offered: list[Transform], allowed, aead: bool) -> Transform | None | bool:
    """The integrity transform to return; None for AEAD; False: unacceptable."""
    if aead:
        # none, or only INTEG NONE, may come with an AEAD cipher (RFC 5282 §8)
        return None if all(t.id == Integ.NONE for t in offered) else False
    return _pick(offered, set(allowed) & _INTEG_OK) or False


def select_ike(sa: SaPayload, ours: Sequence[IkeProposal], *, spi_size: int = 0,
               ke_group: int | None = None) -> tuple[Proposal, IkeSuite]:
    """Responder: the first of the peer's proposals (in its order) that one of
    ours accepts as a whole; each transform type picks the peer's first
    acceptable entry. Returns the reply proposal (one transform per type, the
    peer's number) and the suite. ``ke_group``: the group of the peer's KE
    payload, chosen whenever the proposal allows it (so no INVALID_KE_PAYLOAD
    round trip is needed)."""
    allowed = None
    for prop in sa.proposals:
        if prop.protocol_id != ProtocolId.IKE or len(prop.spi) != spi_size:
            continue
        groups = _by_type(prop)
        if groups is None or TransformType.ESN in groups:
            continue
        if allowed is None:       # what each of our proposals accepts, worked out once
            allowed = [(mine, set(mine.prf) & _PRF_OK, set(mine.dh) & KNOWN_GROUPS) for mine in ours]
        empty: list = []
        encr_offer = groups.get(TransformType.ENCR, empty)
        prf_offer = groups.get(TransformType.PRF, empty)
        dh_offer = groups.get(TransformType.DH, empty)
        for mine, prf_ok, dh_ok in allowed:
            encr = _pick_encr(encr_offer, mine.encr)
            if encr is None:
                continue
            prf = _pick(prf_offer, prf_ok)
            if prf is None:
                continue
            dh = None
            if ke_group:          # the group of the peer's KE, when this proposal allows it
                for t in dh_offer:
                    if t.id == ke_group and t.id in dh_ok and not t.attributes:
                        dh = t
                        break
            if dh is None:
                dh = _pick(dh_offer, dh_ok)
                if dh is None:
                    continue
            integ = _pick_integ(groups.get(TransformType.INTEG, empty), mine.integ, encr.id in AEAD_ENCR)
            if integ is False:
                continue
            chosen = [encr, prf, integ, dh] if integ else [encr, prf, dh]
            suite = _ike_suite(encr.id, _key_bits(encr), prf.id, integ.id if integ else Integ.NONE, dh.id)
            return Proposal(prop.num, ProtocolId.IKE, prop.spi, chosen), suite
    raise NoProposalChosen("no acceptable IKE proposal")


def select_esp(sa: SaPayload, ours: Sequence[EspProposal], *, require_dh: int | None = None,
               allow_dh: bool = False, ke_group: int | None = None,
               ignore_dh: bool = False) -> tuple[Proposal, EspSuite]:
    """Responder: choose an ESP proposal (matched per configured proposal, like
    :func:`select_ike`). ``allow_dh``: a CREATE_CHILD_SA may carry a PFS group
    (it then must match the KE payload, checked by the caller; ``ke_group`` is
    preferred when acceptable). ``ignore_dh``: IKE_AUTH, where the first Child
    SA is keyed without a KE, so offered groups are dropped (RFC 7296 §1.2)."""
    for prop in sa.proposals:
        if prop.protocol_id != ProtocolId.ESP or len(prop.spi) != 4:
            continue
        groups = _by_type(prop)
        if groups is None or TransformType.PRF in groups:
            continue
        dh_offer = [t for t in groups.get(TransformType.DH, []) if t.id != 0]
        if ignore_dh:
            dh_offer = []
        elif dh_offer and not allow_dh:
            continue
        if not dh_offer and require_dh:
            continue
        for mine in ours:
            if allow_dh and mine.dh and not dh_offer:
                continue      # this proposal demands PFS: a CREATE_CHILD_SA without KE does not fit
            encr = _pick_encr(groups.get(TransformType.ENCR, []), mine.encr)
            esn = _pick(groups.get(TransformType.ESN, []), mine.esn)
            if encr is None or esn is None:
                continue
            integ = _pick_integ(groups.get(TransformType.INTEG, []), mine.integ, encr.id in AEAD_ENCR)
            if integ is False:
                continue
            dh = None
            if dh_offer:
                dh_ok = set(mine.dh) & KNOWN_GROUPS
                dh = (_pick([t for t in dh_offer if t.id == ke_group], dh_ok) if ke_group else None) \
                    or _pick(dh_offer, dh_ok)
                if dh is None:
                    continue
            chosen = [encr] + ([integ] if integ else []) + ([dh] if dh else []) + [esn]
            suite = _esp_suite(encr.id, _key_bits(encr), integ.id if integ else Integ.NONE,
                               esn.id == 1, dh.id if dh else None)
            return Proposal(prop.num, ProtocolId.ESP, prop.spi, chosen), suite
    raise NoProposalChosen("no acceptable ESP proposal")


def _check_reply(sa: SaPayload, offered: SaPayload, protocol: int, spi_size: int) -> tuple[Proposal, dict]:
    """Initiator: the reply must be exactly one proposal, one transform per type,
    each taken from the proposal we sent with that number (RFC 7296 §3.3.6)."""
    if len(sa.proposals) != 1:
        raise ProtocolError("the responder must return exactly one proposal",
                            notify_type=NotifyType.INVALID_SYNTAX)
    reply = sa.proposals[0]
    ours = None
    for p in offered.proposals:
        if p.num == reply.num:
            ours = p
            break
    if ours is None or reply.protocol_id != protocol or len(reply.spi) != spi_size:
        raise ProtocolError("the chosen proposal does not match one we offered",
                            notify_type=NotifyType.INVALID_SYNTAX)
    picked: dict = {}
    offered_transforms = ours.transforms
    for t in reply.transforms:
        t_type = t.type
        if t_type in picked:
            raise ProtocolError("the reply holds two transforms of one type",
                                notify_type=NotifyType.INVALID_SYNTAX)
        t_id, t_attrs = t.id, t.attributes
        for o in offered_transforms:
            if o.type == t_type and o.id == t_id and o.attributes == t_attrs:
                break
        else:
            raise ProtocolError(f"the reply chose transform {t_type}/{t_id} we never offered",
                                notify_type=NotifyType.INVALID_SYNTAX)
        picked[t_type] = t
    return reply, picked


def accept_ike_reply(sa: SaPayload, offered: SaPayload, *, spi_size: int = 0) -> tuple[Proposal, IkeSuite]:
    reply, picked = _check_reply(sa, offered, ProtocolId.IKE, spi_size)
    try:
        encr, prf, dh = picked[TransformType.ENCR], picked[TransformType.PRF], picked[TransformType.DH]
    except KeyError:
        raise ProtocolError("the IKE reply lacks a mandatory transform",
                            notify_type=NotifyType.INVALID_SYNTAX) from None
    integ = picked.get(TransformType.INTEG)
    if encr.id not in AEAD_ENCR and integ is None:
        raise ProtocolError("the IKE reply lacks an integrity transform",
                            notify_type=NotifyType.INVALID_SYNTAX)
    return reply, _ike_suite(encr.id, _key_bits(encr), prf.id, integ.id if integ else Integ.NONE, dh.id)


def accept_esp_reply(sa: SaPayload, offered: SaPayload) -> tuple[Proposal, EspSuite]:
    reply, picked = _check_reply(sa, offered, ProtocolId.ESP, 4)
    if TransformType.ENCR not in picked or TransformType.ESN not in picked:
        raise ProtocolError("the ESP reply lacks a mandatory transform",
                            notify_type=NotifyType.INVALID_SYNTAX)
    encr, esn = picked[TransformType.ENCR], picked[TransformType.ESN]
    integ, dh = picked.get(TransformType.INTEG), picked.get(TransformType.DH)
    if encr.id not in AEAD_ENCR and integ is None:
        raise ProtocolError("the ESP reply lacks an integrity transform",
                            notify_type=NotifyType.INVALID_SYNTAX)
    return reply, _esp_suite(encr.id, _key_bits(encr), integ.id if integ else Integ.NONE,
                             esn.id == 1, dh.id if dh else None)


__all__ = ["IkeSuite", "EspSuite", "ike_sa_payload", "esp_sa_payload", "select_ike", "select_esp",
           "accept_ike_reply", "accept_esp_reply"]
