"""Configuration of IKE SAs and Child SAs: proposals, identities, credentials, policies.

Proposals can be written the way strongSwan users know them
(``IkeProposal.parse("aes256gcm16-prfsha384-ecp384")``,
``EspProposal.parse("aes128-sha256-esn")``) or built from transform ids.
"""
from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from typing import Callable, Sequence

from ..crypto.transforms import AEAD_ENCR, Encr, Integ, Prf
from ..errors import ConfigError
from .constants import IdType

_ENCR_WORDS = {
    "aes128gcm16": (Encr.AES_GCM_16, 128), "aes192gcm16": (Encr.AES_GCM_16, 192),
    "aes256gcm16": (Encr.AES_GCM_16, 256), "aes128gcm12": (Encr.AES_GCM_12, 128),
    "aes256gcm12": (Encr.AES_GCM_12, 256), "aes128gcm8": (Encr.AES_GCM_8, 128),
    "aes256gcm8": (Encr.AES_GCM_8, 256), "aes128gcm": (Encr.AES_GCM_16, 128),
    "aes256gcm": (Encr.AES_GCM_16, 256),
    "chacha20poly1305": (Encr.CHACHA20_POLY1305, None),
    "aes128": (Encr.AES_CBC, 128), "aes192": (Encr.AES_CBC, 192), "aes256": (Encr.AES_CBC, 256),
}
_INTEG_WORDS = {"sha1": Integ.HMAC_SHA1_96, "sha256": Integ.HMAC_SHA2_256_128, "sha384": Integ.HMAC_SHA2_384_192,
                "sha512": Integ.HMAC_SHA2_512_256}
_PRF_WORDS = {"prfsha1": Prf.HMAC_SHA1, "prfsha256": Prf.HMAC_SHA2_256, "prfsha384": Prf.HMAC_SHA2_384,
              "prfsha512": Prf.HMAC_SHA2_512, "prfaesxcbc": Prf.AES128_XCBC,
              "prfaescmac": Prf.AES128_CMAC}
_PRF_FOR_INTEG = {Integ.HMAC_SHA1_96: Prf.HMAC_SHA1, Integ.HMAC_SHA2_256_128: Prf.HMAC_SHA2_256, Integ.HMAC_SHA2_384_192: Prf.HMAC_SHA2_384,
                  Integ.HMAC_SHA2_512_256: Prf.HMAC_SHA2_512}
_DH_WORDS = {"modp2048": 14, "modp3072": 15, "ecp256": 19, "ecp384": 20, "ecp521": 21,
             "x25519": 31, "curve25519": 31}
KNOWN_GROUPS = frozenset(_DH_WORDS.values())


def _split_words(text: str, what: str) -> list[str]:
    words = [w for w in text.strip().lower().split("-") if w]
    if not words:
        raise ConfigError(f"empty {what} proposal")
    return words


@dataclass(frozen=True)
class IkeProposal:
    """One IKE SA proposal: any of each transform type may be chosen (RFC 7296 §3.3)."""

    encr: tuple[tuple[int, int | None], ...]
    prf: tuple[int, ...]
    integ: tuple[int, ...]
    dh: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.encr or not self.prf or not self.dh:
            raise ConfigError("an IKE proposal needs ENCR, PRF and key exchange transforms")
        aead = {e for e, _ in self.encr if e in AEAD_ENCR}
        if aead and len(aead) != len(self.encr):
            raise ConfigError("an IKE proposal cannot mix AEAD and non-AEAD ciphers (RFC 5282 §8)")
        if not aead and not self.integ:
            raise ConfigError("a non-AEAD IKE proposal needs an integrity transform")
        if aead and self.integ:
            raise ConfigError("an AEAD IKE proposal takes no integrity transform")
        unknown = set(self.dh) - KNOWN_GROUPS
        if unknown:
            raise ConfigError(f"unsupported key exchange group(s) {sorted(unknown)}")

    @property
    def is_aead(self) -> bool:
        return self.encr[0][0] in AEAD_ENCR

    @classmethod
    def parse(cls, text: str) -> "IkeProposal":
        encr, prf, integ, dh = [], [], [], []
        for word in _split_words(text, "IKE"):
            if word in _ENCR_WORDS:
                encr.append(_ENCR_WORDS[word])
            elif word in _PRF_WORDS:
                prf.append(_PRF_WORDS[word])
            elif word in _INTEG_WORDS:
                integ.append(_INTEG_WORDS[word])
            elif word in _DH_WORDS:
                dh.append(_DH_WORDS[word])
            else:
                raise ConfigError(f"unknown IKE proposal keyword {word!r} in {text!r}")
        if not prf:   # strongSwan's rule: the PRF follows the integrity algorithm, else SHA-256
            prf = [_PRF_FOR_INTEG[i] for i in integ] or [Prf.HMAC_SHA2_256]
        aead = [e for e in encr if e[0] in AEAD_ENCR]
        if aead and len(aead) == len(encr):
            integ = []
        return cls(tuple(encr), tuple(dict.fromkeys(prf)), tuple(integ), tuple(dh))


@dataclass(frozen=True)
class EspProposal:
    """One ESP proposal. ``esn``: the ESN transform ids offered (0 = no ESN,
    1 = ESN); ``dh``: key exchange groups for PFS (empty = none)."""

    encr: tuple[tuple[int, int | None], ...]
    integ: tuple[int, ...] = ()
    esn: tuple[int, ...] = (0,)
    dh: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.encr or not self.esn:
            raise ConfigError("an ESP proposal needs ENCR and ESN transforms")
        aead = {e for e, _ in self.encr if e in AEAD_ENCR}
        if aead and len(aead) != len(self.encr):
            raise ConfigError("an ESP proposal cannot mix AEAD and non-AEAD ciphers")
        if not aead and not self.integ:
            raise ConfigError("a non-AEAD ESP proposal needs an integrity transform")
        if set(self.esn) - {0, 1}:
            raise ConfigError("ESN transform ids are 0 and 1")

    @classmethod
    def parse(cls, text: str) -> "EspProposal":
        encr, integ, esn, dh = [], [], [], []
        for word in _split_words(text, "ESP"):
            if word in _ENCR_WORDS:
                encr.append(_ENCR_WORDS[word])
            elif word in _INTEG_WORDS:
                integ.append(_INTEG_WORDS[word])
            elif word in _DH_WORDS:
                dh.append(_DH_WORDS[word])
            elif word == "esn":
                esn.append(1)
            elif word == "noesn":
                esn.append(0)
            else:
                raise ConfigError(f"unknown ESP proposal keyword {word!r} in {text!r}")
        if encr and all(e[0] in AEAD_ENCR for e in encr):
            integ = []
        return cls(tuple(encr), tuple(integ), tuple(esn or [0]), tuple(dh))


@dataclass(frozen=True)
class Identity:
    """An IKE identity (RFC 7296 §3.5): ID type and data."""

    id_type: int
    data: bytes

    @classmethod
    def parse(cls, text: str) -> "Identity":
        """``1.2.3.4`` / ``2001:db8::1`` -> IP; ``user@host`` -> RFC822; else FQDN.
        ``keyid:HEX`` gives ID_KEY_ID, ``dn:CN=gw,O=Example`` (RFC 4514) ID_DER_ASN1_DN."""
        if text.startswith("keyid:"):
            try:
                return cls(IdType.ID_KEY_ID, bytes.fromhex(text[6:]))
            except ValueError:
                raise ConfigError(f"bad key id {text!r}") from None
        if text.startswith("dn:"):
            from cryptography import x509
            try:
                name = x509.Name.from_rfc4514_string(text[3:])
            except ValueError as exc:
                raise ConfigError(f"bad distinguished name {text!r}: {exc}") from None
            return cls(IdType.ID_DER_ASN1_DN, name.public_bytes())
        try:
            addr = ipaddress.ip_address(text)
        except ValueError:
            pass
        else:
            kind = IdType.ID_IPV4_ADDR if addr.version == 4 else IdType.ID_IPV6_ADDR
            return cls(kind, addr.packed)
        if "@" in text and not text.startswith("@"):
            return cls(IdType.ID_RFC822_ADDR, text.encode())
        return cls(IdType.ID_FQDN, text.lstrip("@").encode())

    def __str__(self) -> str:
        if self.id_type in (IdType.ID_IPV4_ADDR, IdType.ID_IPV6_ADDR):
            return str(ipaddress.ip_address(self.data))
        if self.id_type in (IdType.ID_FQDN, IdType.ID_RFC822_ADDR):
            return self.data.decode(errors="replace")
        return f"{IdType(self.id_type).name if self.id_type in IdType._value2member_map_ else self.id_type}:{self.data.hex()}"


@dataclass(frozen=True)
class LocalAuth:
    """How we prove our identity: a pre-shared key, or a private key (with a
    certificate chain, leaf first, or none for a raw public key)."""

    psk: bytes | None = None
    private_key: object | None = None          # a cryptography private key
    certificates: tuple[bytes, ...] = ()        # DER, leaf first
    rsa_pss: bool = True

    def __post_init__(self) -> None:
        if (self.psk is None) == (self.private_key is None):
            raise ConfigError("local auth needs exactly one of psk or private_key")
        if self.psk is not None and len(self.psk) < 1:
            raise ConfigError("an empty pre-shared key is not allowed")

    def __repr__(self) -> str:
        return "LocalAuth(psk=<hidden>)" if self.psk is not None else \
            f"LocalAuth(private_key=<hidden>, certificates={len(self.certificates)})"


@dataclass(frozen=True)
class RemoteAuth:
    """How the peer must prove its identity: a pre-shared key, certificates
    that chain to ``trust_store`` (an ``ikecore.protocol.auth.TrustStore``),
    or one pinned raw public key."""

    psk: bytes | None = None
    trust_store: object | None = None
    public_key: object | None = None

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.psk, self.trust_store, self.public_key)) != 1:
            raise ConfigError("remote auth needs exactly one of psk, trust_store or public_key")

    def __repr__(self) -> str:
        kind = "psk" if self.psk is not None else "trust_store" if self.trust_store else "public_key"
        return f"RemoteAuth({kind})"


@dataclass(frozen=True)
class TrafficSelectorSpec:
    """A traffic selector as configured: an address range, IP protocol, port range."""

    start: ipaddress.IPv4Address | ipaddress.IPv6Address
    end: ipaddress.IPv4Address | ipaddress.IPv6Address
    protocol: int = 0
    start_port: int = 0
    end_port: int = 65535

    @classmethod
    def parse(cls, text: str) -> "TrafficSelectorSpec":
        """``10.0.0.0/24``, ``10.0.0.1``, ``10.0.0.0/24[17/500]`` or ``[6]``."""
        proto, ports = 0, (0, 65535)
        if "[" in text:
            text, rest = text.split("[", 1)
            rest = rest.rstrip("]")
            p, _, port = rest.partition("/")
            proto = int(p) if p else 0
            if port:
                lo, _, hi = port.partition("-")
                ports = (int(lo), int(hi or lo))
        try:
            net = ipaddress.ip_network(text.strip(), strict=False)
        except ValueError as exc:
            raise ConfigError(f"bad traffic selector {text!r}: {exc}") from None
        if not 0 <= proto <= 255 or not 0 <= ports[0] <= ports[1] <= 65535:
            raise ConfigError(f"bad protocol/port range in traffic selector {text!r}")
        return cls(net.network_address, net.broadcast_address, proto, *ports)

    @property
    def version(self) -> int:
        return self.start.version


@dataclass
class ChildConfig:
    name: str
    local_ts: Sequence[TrafficSelectorSpec]
    remote_ts: Sequence[TrafficSelectorSpec]
    esp_proposals: Sequence[EspProposal] = (EspProposal.parse("aes256gcm16"),)
    mode: str = "tunnel"                 # or "transport"
    rekey_time: float = 3600.0           # soft lifetime: rekey (seconds)
    life_time: float = 3960.0            # hard lifetime: delete
    replay_window: int = 64

    def __post_init__(self) -> None:
        if self.mode not in ("tunnel", "transport"):
            raise ConfigError(f"child {self.name}: mode must be tunnel or transport")
        if not self.local_ts or not self.remote_ts or not self.esp_proposals:
            raise ConfigError(f"child {self.name}: needs local_ts, remote_ts and esp_proposals")
        if not 0 < self.rekey_time <= self.life_time:
            raise ConfigError(f"child {self.name}: 0 < rekey_time <= life_time is required")


@dataclass
class IkeConfig:
    """Everything one IKE SA (either role) is configured with."""

    local_id: Identity
    local_auth: LocalAuth
    remote_auth: RemoteAuth
    remote_id: Identity | None = None            # None: accept any (and send no IDr)
    proposals: Sequence[IkeProposal] = (IkeProposal.parse("aes256gcm16-prfsha256-x25519"),)
    children: Sequence[ChildConfig] = ()
    name: str = "ike"
    rekey_time: float = 14400.0                  # soft lifetime of the IKE SA
    life_time: float = 15840.0                   # hard lifetime
    retransmit_timeout: float = 2.0              # first retransmission after this
    retransmit_base: float = 1.8                 # back-off factor
    retransmit_tries: int = 5                    # then the peer is given up
    dpd_delay: float = 30.0                      # idle time before a liveness check (0: off)
    mobike: bool = False
    clone: bool = False                          # RFC 7791: announce and accept cloning
    clone_limit: int = 4                         # clones one authenticated peer may hold (responder)
    # RFC 5723 session resumption (docs/resumption.md). An initiator asks for tickets
    # (N(TICKET_REQUEST)) and resumes with them; a responder with a ticket_authority
    # issues them and accepts IKE_SESSION_RESUME
    resumption: bool = False
    ticket_authority: object | None = None       # responder: an ikecore.resumption.TicketAuthority
    ticket_lifetime: float = 3600.0              # responder: upper bound of a ticket's lifetime
    # initiator: the AUTH octets after IKE_SESSION_RESUME: "rfc" (RFC 4306 §2.15:
    # message | peer nonce | prf(SK_p, ID')) or "message" (the message alone, libreswan 5.x)
    resumption_auth: str = "rfc"
    resume_tries: int = 2                        # IKE_SESSION_RESUME retransmissions before a full handshake
    reauth_time: float = 0.0                     # responder: re-authentication deadline (0: none); bounds tickets
    fragmentation: bool = True
    fragment_size: int = 1280
    initial_contact: bool = True
    request_virtual_ip: bool = False             # initiator: CFG_REQUEST an address
    address_pool: Sequence[str] = ()             # responder: addresses to hand out
    force_encap: bool = False                    # act as if behind a NAT (port 4500, ESP-in-UDP)
    signature_hashes: Sequence[int] = (2, 3, 4, 5)  # RFC 7427/8420: SHA2-256/384/512, Identity (EdDSA)
    cookie_threshold: int = 100                  # half-open SAs before cookies engage (endpoint)
    window_size: int = 1
    # MOBIKE (RFC 4555), with ``mobike``: check that the peer is reachable at a new address
    # before its Child SAs follow (§3.7); our other addresses to announce (ADDITIONAL_*_ADDRESS)
    mobike_return_routability: bool = True
    mobike_addresses: Sequence[str] = ()
    # maps the connection's ``now`` to the time certificates are validated at;
    # None: OpenSSL's notion of the current time (the core itself reads no clock)
    certificate_time: Callable[[float], datetime.datetime] | None = None
    # maps the connection's ``now`` (a monotonic loop clock) to unix seconds, for ticket
    # expiry (RFC 5723 tickets carry absolute times); None: ``now`` already is unix time
    wall_clock: Callable[[float], float] | None = None

    def __post_init__(self) -> None:
        if not self.proposals:
            raise ConfigError(f"{self.name}: at least one IKE proposal is needed")
        if not 0 < self.rekey_time <= self.life_time:
            raise ConfigError(f"{self.name}: 0 < rekey_time <= life_time is required")
        if self.retransmit_tries < 0 or self.retransmit_timeout <= 0 or self.retransmit_base < 1:
            raise ConfigError(f"{self.name}: retransmission settings out of range")
        if self.window_size < 1:
            raise ConfigError(f"{self.name}: window_size must be >= 1")
        if self.clone_limit < 0:
            raise ConfigError(f"{self.name}: clone_limit must be >= 0")
        if self.resumption_auth not in ("rfc", "message"):
            raise ConfigError(f"{self.name}: resumption_auth must be 'rfc' or 'message'")
        if self.ticket_lifetime <= 0 or self.resume_tries < 0 or self.reauth_time < 0:
            raise ConfigError(f"{self.name}: ticket_lifetime > 0, resume_tries >= 0, reauth_time >= 0")
        if len({c.name for c in self.children}) != len(self.children):
            raise ConfigError(f"{self.name}: child names must be unique")
        for addr in self.mobike_addresses:
            try:
                ipaddress.ip_address(addr)
            except ValueError:
                raise ConfigError(f"{self.name}: mobike_addresses: not an IP address: {addr!r}") from None

    def child(self, name: str | None = None) -> ChildConfig:
        if not self.children:
            raise ConfigError(f"{self.name}: no child SA configured")
        if name is None:
            return self.children[0]
        for c in self.children:
            if c.name == name:
                return c
        raise ConfigError(f"{self.name}: no child named {name!r}")

    def wall_time(self, now: float) -> float:
        """Unix seconds at the connection time ``now`` (see ``wall_clock``)."""
        return self.wall_clock(now) if self.wall_clock is not None else now

    @property
    def default_group(self) -> int:
        return self.proposals[0].dh[0]


def psk_config(local_id: str, remote_id: str | None, psk: bytes, *, children=(), **kw) -> IkeConfig:
    """A PSK configuration in one line (tests, the demo)."""
    return IkeConfig(local_id=Identity.parse(local_id), local_auth=LocalAuth(psk=psk),
                     remote_auth=RemoteAuth(psk=psk),
                     remote_id=Identity.parse(remote_id) if remote_id else None,
                     children=list(children), **kw)


__all__ = ["IkeProposal", "EspProposal", "Identity", "LocalAuth", "RemoteAuth",
           "TrafficSelectorSpec", "ChildConfig", "IkeConfig", "psk_config", "KNOWN_GROUPS"]
