"""IKEv2 authentication: the AUTH payload (RFC 7296 §2.15, §3.8), RFC 7427
digital signatures, RFC 4754 ECDSA, and certificate checks.

Pure functions without I/O. Signing and verification use ``cryptography``;
certificate path validation uses pyOpenSSL's X509Store (OpenSSL's verifier).
"""
from __future__ import annotations

import datetime
import hmac
import ipaddress
from dataclasses import dataclass
from typing import Iterable, Sequence, Union

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm as _CryptoUnsupported
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from ikecore.errors import AuthenticationFailed, ParseError, UnsupportedAlgorithm

# --- numbers -------------------------------------------------------------------------

# Auth Method (RFC 7296 §3.8; RFC 4754 §7; RFC 7427 §3)
AUTH_RSA_DIGITAL_SIGNATURE = 1
AUTH_SHARED_KEY_MIC = 2
AUTH_ECDSA_SHA256_P256 = 9
AUTH_ECDSA_SHA384_P384 = 10
AUTH_ECDSA_SHA512_P521 = 11
AUTH_DIGITAL_SIGNATURE = 14

# Hash Algorithm Identifiers for SIGNATURE_HASH_ALGORITHMS (RFC 7427 §7; RFC 8420 §2)
HASH_SHA1 = 1
HASH_SHA2_256 = 2
HASH_SHA2_384 = 3
HASH_SHA2_512 = 4
HASH_IDENTITY = 5

NOTIFY_SIGNATURE_HASH_ALGORITHMS = 16431

# Without a negotiated list we accept what RFC 8247 §3.2 recommends; SHA-1 is out.
DEFAULT_ALLOWED_HASHES: frozenset[int] = frozenset(
    {HASH_SHA2_256, HASH_SHA2_384, HASH_SHA2_512, HASH_IDENTITY})

# ID Type (RFC 7296 §3.5)
ID_IPV4_ADDR = 1
ID_FQDN = 2
ID_RFC822_ADDR = 3
ID_IPV6_ADDR = 5
ID_DER_ASN1_DN = 9

# RFC 7296 §2.15: 17 ASCII octets, no terminating NUL.
PSK_KEY_PAD = b"Key Pad for IKEv2"

PrivateKey = Union[rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey,
                   ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey]
PublicKey = Union[rsa.RSAPublicKey, ec.EllipticCurvePublicKey,
                  ed25519.Ed25519PublicKey, ed448.Ed448PublicKey]

_HASH_CLASSES = {
    HASH_SHA1: hashes.SHA1,
    HASH_SHA2_256: hashes.SHA256,
    HASH_SHA2_384: hashes.SHA384,
    HASH_SHA2_512: hashes.SHA512,
}


# --- signed octets and PSK ---------------------------------------------------------

def _prf(prf_id: int, key: bytes, data: bytes) -> bytes:
    # Imported on use so that signature code works without the C core built.
    from ikecore.crypto.prf import prf
    return prf(prf_id, key, data)


def signed_octets(real_message: bytes, peer_nonce: bytes, prf_id: int,
                  sk_p: bytes, id_body: bytes) -> bytes:
    """``RealMessage | NonceData | prf(SK_p, IDx')`` (RFC 7296 §2.15).

    ``real_message`` is our IKE_SA_INIT message as sent (from the SPI on, no
    non-ESP marker), ``peer_nonce`` the other side's Nonce Data, ``sk_p`` our
    SK_pi / SK_pr and ``id_body`` our ID payload without its generic header.
    """
    return real_message + peer_nonce + _prf(prf_id, sk_p, id_body)


def psk_auth(prf_id: int, psk: bytes, octets: bytes) -> bytes:
    """Auth Method 2 data: ``prf(prf(PSK, "Key Pad for IKEv2"), octets)``.

    With EAP, pass the MSK (or SK_p for non-key-generating methods) as ``psk``.
    """
    return _prf(prf_id, _prf(prf_id, psk, PSK_KEY_PAD), octets)


def verify_psk_auth(prf_id: int, psk: bytes, octets: bytes, auth_data: bytes) -> None:
    """Raise :class:`AuthenticationFailed` unless ``auth_data`` is the PSK MIC."""
    expected = psk_auth(prf_id, psk, octets)
    if not hmac.compare_digest(expected, auth_data):
        raise AuthenticationFailed("shared key MIC does not match")


# --- SIGNATURE_HASH_ALGORITHMS ---------------------------------------------------

def encode_hash_algorithms(hash_ids: Iterable[int]) -> bytes:
    """Notify data for SIGNATURE_HASH_ALGORITHMS: 2-octet ids (RFC 7427 §4)."""
    out = bytearray()
    for hash_id in hash_ids:
        if not 0 <= hash_id <= 0xFFFF:
            raise ValueError(f"hash algorithm id {hash_id} does not fit in 16 bits")
        out += hash_id.to_bytes(2, "big")
    return bytes(out)


def decode_hash_algorithms(data: bytes) -> list[int]:
    """The ids in a SIGNATURE_HASH_ALGORITHMS notify, unknown ones included."""
    if len(data) % 2:
        raise ParseError("SIGNATURE_HASH_ALGORITHMS data has an odd length")
    return [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]


# --- RFC 7427 signature schemes ----------------------------------------------------

@dataclass(frozen=True)
class SignatureScheme:
    """One AlgorithmIdentifier usable in an Auth Method 14 payload."""

    name: str
    key_family: str          # "rsa", "ec", "ed25519" or "ed448"
    hash_algorithm: int      # RFC 7427 §7 id; HASH_IDENTITY for EdDSA
    rsa_pss: bool
    algorithm_identifier: bytes  # full DER AlgorithmIdentifier


# DER AlgorithmIdentifiers. Sources:
#  - PKCS#1 v1.5 and ECDSA: RFC 7427 Appendix A.1 and A.3 (OIDs from RFC 4055,
#    RFC 5758; parameters NULL for RSA, absent for ECDSA).
#  - RSASSA-PSS SHA-256: RFC 7427 Appendix A.4.3; SHA-384/512 follow the same
#    RFC 4055 §3.1 layout (hash, MGF1 with the same hash, salt = hash length,
#    default trailer omitted as DER requires). These three are byte-identical
#    to the encodings fixed in Mozilla Root Store Policy §5.1.1.
#  - Ed25519 / Ed448: RFC 8410 §3 (parameters absent), used by RFC 8420 §2.
# tests/protocol/test_auth.py cross-checks each against the signatureAlgorithm
# of a certificate that cryptography/OpenSSL signs with the same scheme.
def _pss_identifier(hash_oid_last: int, salt_length: int) -> bytes:
    hash_alg = bytes.fromhex("300d06096086480165030402") + bytes([hash_oid_last]) + b"\x05\x00"
    return bytes.fromhex(
        "3041"                                    # AlgorithmIdentifier
        "06092a864886f70d01010a"                  # id-RSASSA-PSS 1.2.840.113549.1.1.10
        "3034"                                    # RSASSA-PSS-params
        "a00f") + hash_alg + bytes.fromhex(       # [0] hashAlgorithm
        "a11c301a06092a864886f70d010108"          # [1] mgf1 1.2.840.113549.1.1.8
        ) + hash_alg + bytes.fromhex(
        "a2030201") + bytes([salt_length])        # [2] saltLength


_SCHEMES: tuple[SignatureScheme, ...] = (
    SignatureScheme("sha1WithRSAEncryption", "rsa", HASH_SHA1, False,
                    bytes.fromhex("300d06092a864886f70d0101050500")),
    SignatureScheme("sha256WithRSAEncryption", "rsa", HASH_SHA2_256, False,
                    bytes.fromhex("300d06092a864886f70d01010b0500")),
    SignatureScheme("sha384WithRSAEncryption", "rsa", HASH_SHA2_384, False,
                    bytes.fromhex("300d06092a864886f70d01010c0500")),
    SignatureScheme("sha512WithRSAEncryption", "rsa", HASH_SHA2_512, False,
                    bytes.fromhex("300d06092a864886f70d01010d0500")),
    SignatureScheme("rsassa-pss-sha256", "rsa", HASH_SHA2_256, True, _pss_identifier(0x01, 32)),
    SignatureScheme("rsassa-pss-sha384", "rsa", HASH_SHA2_384, True, _pss_identifier(0x02, 48)),
    SignatureScheme("rsassa-pss-sha512", "rsa", HASH_SHA2_512, True, _pss_identifier(0x03, 64)),
    SignatureScheme("ecdsa-with-SHA256", "ec", HASH_SHA2_256, False,
                    bytes.fromhex("300a06082a8648ce3d040302")),
    SignatureScheme("ecdsa-with-SHA384", "ec", HASH_SHA2_384, False,
                    bytes.fromhex("300a06082a8648ce3d040303")),
    SignatureScheme("ecdsa-with-SHA512", "ec", HASH_SHA2_512, False,
                    bytes.fromhex("300a06082a8648ce3d040304")),
    SignatureScheme("Ed25519", "ed25519", HASH_IDENTITY, False, bytes.fromhex("300506032b6570")),
    SignatureScheme("Ed448", "ed448", HASH_IDENTITY, False, bytes.fromhex("300506032b6571")),
)

SCHEMES_BY_IDENTIFIER: dict[bytes, SignatureScheme] = {
    scheme.algorithm_identifier: scheme for scheme in _SCHEMES}
SCHEMES_BY_NAME: dict[str, SignatureScheme] = {scheme.name: scheme for scheme in _SCHEMES}


def _key_family(key: PrivateKey | PublicKey) -> str:
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return "rsa"
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return "ec"
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return "ed25519"
    if isinstance(key, (ed448.Ed448PrivateKey, ed448.Ed448PublicKey)):
        return "ed448"
    raise UnsupportedAlgorithm(f"unsupported key type {type(key).__name__}")


def _peer_key_family(key: PublicKey) -> str:
    # A peer presenting a key type we cannot verify is an authentication failure.
    try:
        return _key_family(key)
    except UnsupportedAlgorithm as exc:
        raise AuthenticationFailed(str(exc)) from exc


_EC_NATURAL_HASH = {256: HASH_SHA2_256, 384: HASH_SHA2_384, 521: HASH_SHA2_512}


def select_scheme(private_key: PrivateKey, hash_alg: int | None = None, *,
                  rsa_pss: bool = True) -> SignatureScheme:
    """The scheme :func:`sign_auth` uses for this key.

    ``hash_alg`` None picks SHA2-256 for RSA, the curve's own size for ECDSA
    and Identity for EdDSA. RSA uses PSS unless ``rsa_pss`` is False.
    """
    family = _key_family(private_key)
    if family in ("ed25519", "ed448"):
        if hash_alg not in (None, HASH_IDENTITY):
            raise UnsupportedAlgorithm("EdDSA signs with the Identity hash only")
        return next(s for s in _SCHEMES if s.key_family == family)
    if hash_alg is None:
        hash_alg = (_EC_NATURAL_HASH.get(private_key.curve.key_size, HASH_SHA2_256)
                    if family == "ec" else HASH_SHA2_256)
    for scheme in _SCHEMES:
        if (scheme.key_family == family and scheme.hash_algorithm == hash_alg
                and scheme.rsa_pss == (rsa_pss and family == "rsa")):
            return scheme
    raise UnsupportedAlgorithm(f"no {family} signature scheme with hash {hash_alg}")


def _raw_sign(scheme: SignatureScheme, private_key: PrivateKey, octets: bytes) -> bytes:
    if scheme.key_family == "rsa":
        return private_key.sign(octets, _rsa_padding(scheme), _hash(scheme))
    if scheme.key_family == "ec":
        return private_key.sign(octets, ec.ECDSA(_hash(scheme)))
    return private_key.sign(octets)


def _raw_verify(scheme: SignatureScheme, public_key: PublicKey, signature: bytes,
                octets: bytes) -> None:
    try:
        if scheme.key_family == "rsa":
            public_key.verify(signature, octets, _rsa_padding(scheme), _hash(scheme))
        elif scheme.key_family == "ec":
            public_key.verify(signature, octets, ec.ECDSA(_hash(scheme)))
        else:
            public_key.verify(signature, octets)
    except InvalidSignature as exc:
        raise AuthenticationFailed(f"{scheme.name} signature does not verify") from exc


def _hash(scheme: SignatureScheme) -> hashes.HashAlgorithm:
    return _HASH_CLASSES[scheme.hash_algorithm]()


def _rsa_padding(scheme: SignatureScheme) -> padding.AsymmetricPadding:
    if scheme.rsa_pss:
        digest = _hash(scheme)
        return padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
    return padding.PKCS1v15()


def sign_auth(private_key: PrivateKey, octets: bytes, *, hash_alg: int | None = None,
              rsa_pss: bool = True) -> bytes:
    """Auth Method 14 data: ``len(AlgorithmIdentifier) | AlgorithmIdentifier |
    signature`` over ``octets`` (RFC 7427 §3). See :func:`select_scheme`."""
    scheme = select_scheme(private_key, hash_alg, rsa_pss=rsa_pss)
    identifier = scheme.algorithm_identifier
    return bytes([len(identifier)]) + identifier + _raw_sign(scheme, private_key, octets)


def parse_signature_auth(auth_data: bytes) -> tuple[bytes, bytes]:
    """Split Auth Method 14 data into (AlgorithmIdentifier, signature)."""
    if not auth_data:
        raise ParseError("empty Digital Signature AUTH data")
    length = auth_data[0]
    if length == 0 or len(auth_data) <= 1 + length:
        raise ParseError("Digital Signature AUTH data shorter than its ASN.1 length")
    return auth_data[1:1 + length], auth_data[1 + length:]


def verify_auth(public_key: PublicKey | x509.Certificate, auth_data: bytes, octets: bytes,
                allowed_hashes: Iterable[int] | None = None) -> SignatureScheme:
    """Check Auth Method 14 data; return the scheme the peer used.

    ``allowed_hashes`` is the intersection of the SIGNATURE_HASH_ALGORITHMS
    lists (default :data:`DEFAULT_ALLOWED_HASHES`). Raises
    :class:`AuthenticationFailed` for an unknown or disallowed algorithm, a key
    of the wrong type or a bad signature; :class:`ParseError` when malformed.
    """
    public_key = _as_public_key(public_key)
    identifier, signature = parse_signature_auth(auth_data)
    scheme = SCHEMES_BY_IDENTIFIER.get(identifier)
    if scheme is None:
        raise AuthenticationFailed(
            f"unknown signature AlgorithmIdentifier {identifier.hex()}")
    allowed = DEFAULT_ALLOWED_HASHES if allowed_hashes is None else frozenset(allowed_hashes)
    if scheme.hash_algorithm not in allowed:
        raise AuthenticationFailed(f"{scheme.name} uses a hash that was not negotiated")
    peer_family = _peer_key_family(public_key)
    if peer_family != scheme.key_family:
        raise AuthenticationFailed(f"{scheme.name} signature but the peer key is {peer_family}")
    _raw_verify(scheme, public_key, signature, octets)
    return scheme


# --- classic methods 1, 9, 10, 11 ------------------------------------------------

# RFC 4754 §7: method -> (curve, hash); the signature is r | s, each of the
# curve's byte length, instead of DER.
_RFC4754_METHODS = {
    AUTH_ECDSA_SHA256_P256: (ec.SECP256R1, HASH_SHA2_256, 32),
    AUTH_ECDSA_SHA384_P384: (ec.SECP384R1, HASH_SHA2_384, 48),
    AUTH_ECDSA_SHA512_P521: (ec.SECP521R1, HASH_SHA2_512, 66),
}
_RSA_SHA1 = SCHEMES_BY_NAME["sha1WithRSAEncryption"]


def sign_legacy_auth(method: int, private_key: PrivateKey, octets: bytes) -> bytes:
    """AUTH data for method 1 (RSA PKCS#1 v1.5 with SHA-1, RFC 7296 §3.8) or
    9/10/11 (ECDSA, RFC 4754)."""
    if method == AUTH_RSA_DIGITAL_SIGNATURE:
        if _key_family(private_key) != "rsa":
            raise UnsupportedAlgorithm("auth method 1 needs an RSA key")
        return _raw_sign(_RSA_SHA1, private_key, octets)
    _, hash_id, size = _legacy_ecdsa(method, private_key)
    der = private_key.sign(octets, ec.ECDSA(_HASH_CLASSES[hash_id]()))
    r, s = decode_dss_signature(der)
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def verify_legacy_auth(method: int, public_key: PublicKey | x509.Certificate,
                       auth_data: bytes, octets: bytes) -> None:
    """Check AUTH data of method 1 or 9/10/11; raise AuthenticationFailed."""
    public_key = _as_public_key(public_key)
    if method == AUTH_RSA_DIGITAL_SIGNATURE:
        if _peer_key_family(public_key) != "rsa":
            raise AuthenticationFailed("auth method 1 but the peer key is not RSA")
        _raw_verify(_RSA_SHA1, public_key, auth_data, octets)
        return
    try:
        _, hash_id, size = _legacy_ecdsa(method, public_key)
    except UnsupportedAlgorithm as exc:
        raise AuthenticationFailed(str(exc)) from exc
    if len(auth_data) != 2 * size:
        raise AuthenticationFailed(f"auth method {method} signature must be {2 * size} octets")
    r = int.from_bytes(auth_data[:size], "big")
    s = int.from_bytes(auth_data[size:], "big")
    try:
        public_key.verify(encode_dss_signature(r, s), octets,
                          ec.ECDSA(_HASH_CLASSES[hash_id]()))
    except InvalidSignature as exc:
        raise AuthenticationFailed(f"auth method {method} signature does not verify") from exc


def _legacy_ecdsa(method: int, key: PrivateKey | PublicKey) -> tuple[type, int, int]:
    if method not in _RFC4754_METHODS:
        raise UnsupportedAlgorithm(f"auth method {method} is not a signature method")
    curve, hash_id, size = _RFC4754_METHODS[method]
    if _key_family(key) != "ec" or not isinstance(key.curve, curve):
        raise UnsupportedAlgorithm(f"auth method {method} needs an {curve.name} key")
    return curve, hash_id, size


def sign_signature_auth(method: int, private_key: PrivateKey, octets: bytes, **kwargs) -> bytes:
    """AUTH data for any signature method (1, 9, 10, 11 or 14)."""
    if method == AUTH_DIGITAL_SIGNATURE:
        return sign_auth(private_key, octets, **kwargs)
    return sign_legacy_auth(method, private_key, octets)


def verify_signature_auth(method: int, public_key: PublicKey | x509.Certificate,
                          auth_data: bytes, octets: bytes,
                          allowed_hashes: Iterable[int] | None = None) -> None:
    """Check AUTH data of any signature method; raise AuthenticationFailed."""
    if method == AUTH_DIGITAL_SIGNATURE:
        verify_auth(public_key, auth_data, octets, allowed_hashes)
    elif method in (AUTH_RSA_DIGITAL_SIGNATURE, *_RFC4754_METHODS):
        verify_legacy_auth(method, public_key, auth_data, octets)
    else:
        raise AuthenticationFailed(f"auth method {method} is not a signature method")


# --- keys and certificates -------------------------------------------------------

def _as_public_key(key: PublicKey | x509.Certificate) -> PublicKey:
    return key.public_key() if isinstance(key, x509.Certificate) else key


def load_public_key(der_spki: bytes) -> PublicKey:
    """A DER SubjectPublicKeyInfo (raw public key, RFC 7670) as a key object."""
    try:
        key = serialization.load_der_public_key(der_spki)
    except (ValueError, _CryptoUnsupported) as exc:
        raise ParseError(f"not a usable DER SubjectPublicKeyInfo: {exc}") from exc
    _key_family(key)  # refuse DSA, X25519, ... that cannot sign IKE AUTH
    return key


def load_certificate(data: bytes) -> x509.Certificate:
    """One X.509 certificate, PEM or DER."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise ParseError(f"malformed certificate: {exc}") from exc


def load_crls(blobs: Iterable) -> tuple[x509.CertificateRevocationList, ...]:
    """CRLs from DER blobs or PEM blobs (a PEM blob may hold several); parsed
    CRL objects pass through."""
    out: list[x509.CertificateRevocationList] = []
    marker = b"-----BEGIN X509 CRL-----"
    for blob in blobs:
        if isinstance(blob, x509.CertificateRevocationList):
            out.append(blob)
            continue
        try:
            if blob.lstrip().startswith(b"-----BEGIN"):
                parts = [marker + p for p in blob.split(marker)[1:]]
                if not parts:
                    raise ValueError("no X509 CRL block")
                out.extend(x509.load_pem_x509_crl(p) for p in parts)
            else:
                out.append(x509.load_der_x509_crl(blob))
        except ValueError as exc:
            raise ParseError(f"malformed CRL: {exc}") from exc
    return tuple(out)


class TrustStore:
    """Trust anchors plus path validation through OpenSSL (via pyOpenSSL).

    ``ca_certificates`` items are DER certificates or PEM blobs (a PEM blob
    may hold several certificates). With ``crls`` (DER or PEM blobs, or parsed
    CRLs), the peer's
    certificate must not be revoked, and a CRL from its issuer must be there
    and current (OpenSSL's CRL_CHECK); ``crl_check_chain`` extends that to
    every CA certificate of the chain (CRL_CHECK_ALL).
    """

    def __init__(self, ca_certificates: Iterable[bytes], crls: Iterable[bytes] = (), *,
                 crl_check_chain: bool = False) -> None:
        anchors: list[x509.Certificate] = []
        for blob in ca_certificates:
            if blob.lstrip().startswith(b"-----BEGIN"):
                try:
                    anchors.extend(x509.load_pem_x509_certificates(blob))
                except ValueError as exc:
                    raise ParseError(f"malformed CA certificate: {exc}") from exc
            else:
                anchors.append(load_certificate(blob))
        if not anchors:
            raise ValueError("a TrustStore needs at least one CA certificate")
        self._anchors = tuple(anchors)
        self._crls = load_crls(crls)
        if crl_check_chain and not self._crls:
            raise ValueError("crl_check_chain needs CRLs")
        self._crl_check_chain = crl_check_chain

    @property
    def anchors(self) -> tuple[x509.Certificate, ...]:
        return self._anchors

    @property
    def crls(self) -> tuple[x509.CertificateRevocationList, ...]:
        return self._crls

    def verify_chain(self, end_entity_der: bytes, intermediates_der: Sequence[bytes] = (),
                     at_time: datetime.datetime | None = None) -> x509.Certificate:
        """Validate the peer's certificate up to one of our anchors.

        Returns the end-entity certificate; raises :class:`AuthenticationFailed`
        with OpenSSL's reason (expired, unknown issuer, bad signature, ...).
        """
        from OpenSSL import crypto  # only certificate users need pyOpenSSL

        try:
            leaf = load_certificate(end_entity_der)
            intermediates = [load_certificate(der) for der in intermediates_der]
        except ParseError as exc:
            raise AuthenticationFailed(str(exc)) from exc

        # A fresh store per call: set_time() would otherwise leak between calls.
        store = crypto.X509Store()
        for anchor in self._anchors:
            store.add_cert(crypto.X509.from_cryptography(anchor))
        if self._crls:
            for crl in self._crls:
                store.add_crl(crl)
            store.set_flags(crypto.X509StoreFlags.CRL_CHECK |
                            (crypto.X509StoreFlags.CRL_CHECK_ALL if self._crl_check_chain else 0))
        if at_time is not None:
            store.set_time(at_time)
        context = crypto.X509StoreContext(
            store, crypto.X509.from_cryptography(leaf),
            [crypto.X509.from_cryptography(cert) for cert in intermediates] or None)
        try:
            context.verify_certificate()
        except crypto.X509StoreContextError as exc:
            failing = exc.certificate.to_cryptography().subject.rfc4514_string() if exc.certificate else ""
            raise AuthenticationFailed(
                f"certificate chain rejected: {exc} (at {failing or 'unnamed certificate'})") from exc
        return leaf


def identity_matches_certificate(id_type: int, id_data: bytes,
                                 certificate: x509.Certificate) -> bool:
    """Whether an ID payload (type and data) names the certificate's subject.

    FQDN / RFC822 / IP addresses must appear in subjectAltName; a DN must equal
    the subject exactly (DER) or a directoryName in subjectAltName (RFC 4945
    §3.1). Other ID types never match a certificate here.
    """
    try:
        san = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = x509.SubjectAlternativeName([])

    if id_type in (ID_FQDN, ID_RFC822_ADDR):
        try:
            wanted = id_data.decode("ascii").lower()
        except UnicodeDecodeError:
            return False
        name_class = x509.DNSName if id_type == ID_FQDN else x509.RFC822Name
        return any(name.lower() == wanted for name in san.get_values_for_type(name_class))
    if id_type in (ID_IPV4_ADDR, ID_IPV6_ADDR):
        if len(id_data) != (4 if id_type == ID_IPV4_ADDR else 16):
            return False
        wanted_ip = ipaddress.ip_address(id_data)
        return wanted_ip in san.get_values_for_type(x509.IPAddress)
    if id_type == ID_DER_ASN1_DN:
        if id_data == certificate.subject.public_bytes():
            return True
        return any(name.public_bytes() == id_data
                   for name in san.get_values_for_type(x509.DirectoryName))
    return False


def check_identity_matches_certificate(id_type: int, id_data: bytes,
                                       certificate: x509.Certificate) -> None:
    """Raise :class:`AuthenticationFailed` unless the ID names the certificate."""
    if not identity_matches_certificate(id_type, id_data, certificate):
        raise AuthenticationFailed(
            f"ID (type {id_type}) does not match the certificate of "
            f"{certificate.subject.rfc4514_string()}")
