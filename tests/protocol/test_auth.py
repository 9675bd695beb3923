"""AUTH payload computation: signed octets, PSK MIC, RFC 7427 / RFC 4754
signatures, certificate path validation and ID matching."""
import datetime
import hashlib
import hmac
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from ikecore.errors import AuthenticationFailed, BackendError, ParseError, UnsupportedAlgorithm
from ikecore.protocol import auth
from ikecore.protocol.auth import (
    AUTH_DIGITAL_SIGNATURE,
    AUTH_ECDSA_SHA256_P256,
    AUTH_ECDSA_SHA384_P384,
    AUTH_ECDSA_SHA512_P521,
    AUTH_RSA_DIGITAL_SIGNATURE,
    AUTH_SHARED_KEY_MIC,
    HASH_IDENTITY,
    HASH_SHA1,
    HASH_SHA2_256,
    HASH_SHA2_384,
    HASH_SHA2_512,
    ID_DER_ASN1_DN,
    ID_FQDN,
    ID_IPV4_ADDR,
    ID_IPV6_ADDR,
    ID_RFC822_ADDR,
    SCHEMES_BY_IDENTIFIER,
    SCHEMES_BY_NAME,
    TrustStore,
    check_identity_matches_certificate,
    decode_hash_algorithms,
    encode_hash_algorithms,
    identity_matches_certificate,
    load_certificate,
    load_public_key,
    psk_auth,
    sign_auth,
    sign_legacy_auth,
    sign_signature_auth,
    signed_octets,
    verify_auth,
    verify_legacy_auth,
    verify_psk_auth,
    verify_signature_auth,
)

OCTETS = b"IKE_SA_INIT message | nonce | prf(SK_p, ID')"

# --- prf: the C core when built, otherwise a local HMAC stand-in ------------------

_HMAC_PRF = {5: hashlib.sha256, 6: hashlib.sha384, 7: hashlib.sha512}


def hmac_prf(prf_id, key, data):
    return hmac.new(key, data, _HMAC_PRF[prf_id]).digest()


try:
    from ikecore.crypto.prf import prf as native_prf
except (ImportError, BackendError):  # C core not built: test the formulas with the stand-in
    native_prf = None

needs_native = pytest.mark.skipif(native_prf is None, reason="ikecore._native not built")


@pytest.fixture
def prf_in_use(monkeypatch):
    if native_prf is None:
        monkeypatch.setattr(auth, "_prf", hmac_prf)
    return auth._prf


@needs_native
@pytest.mark.parametrize("prf_id", sorted(_HMAC_PRF))
def test_native_prf_is_the_hmac_the_stand_in_assumes(prf_id):
    assert auth._prf(prf_id, b"key", b"data") == hmac_prf(prf_id, b"key", b"data")


# --- signed octets and PSK ------------------------------------------------------

@pytest.mark.parametrize("prf_id", sorted(_HMAC_PRF))
def test_signed_octets_layout(prf_in_use, prf_id):
    message, nonce, sk_p = b"\x11" * 300, b"\x22" * 32, b"\x33" * 32
    id_body = bytes([ID_FQDN, 0, 0, 0]) + b"vpn.example.com"
    octets = signed_octets(message, nonce, prf_id, sk_p, id_body)
    assert octets == message + nonce + hmac_prf(prf_id, sk_p, id_body)


@pytest.mark.parametrize("prf_id", sorted(_HMAC_PRF))
def test_psk_auth_formula(prf_in_use, prf_id):
    psk = b"correct horse battery staple"
    expected = hmac_prf(prf_id, hmac_prf(prf_id, psk, b"Key Pad for IKEv2"), OCTETS)
    assert psk_auth(prf_id, psk, OCTETS) == expected
    verify_psk_auth(prf_id, psk, OCTETS, expected)


def test_psk_mismatch_fails(prf_in_use):
    good = psk_auth(5, b"secret", OCTETS)
    flipped = bytes([good[0] ^ 1]) + good[1:]
    for bad_data, psk, octets in ((flipped, b"secret", OCTETS), (good, b"Secret", OCTETS),
                                  (good, b"secret", OCTETS + b"x"), (good[:-1], b"secret", OCTETS),
                                  (b"", b"secret", OCTETS)):
        with pytest.raises(AuthenticationFailed) as info:
            verify_psk_auth(5, psk, octets, bad_data)
        assert info.value.notify_type == 24


@needs_native
@pytest.mark.parametrize("prf_id", [4, 8])
def test_psk_with_aes_prfs_takes_any_key_length(prf_id):
    for psk in (b"short", b"exactly sixteen!", b"a rather longer pre-shared key of 40 oct"):
        data = psk_auth(prf_id, psk, OCTETS)
        assert len(data) == 16
        verify_psk_auth(prf_id, psk, OCTETS, data)


# --- SIGNATURE_HASH_ALGORITHMS --------------------------------------------------

def test_hash_algorithms_round_trip():
    data = encode_hash_algorithms([HASH_SHA2_256, HASH_SHA2_384, HASH_SHA2_512, HASH_IDENTITY])
    assert data == bytes.fromhex("0002000300040005")
    assert decode_hash_algorithms(data) == [2, 3, 4, 5]
    assert decode_hash_algorithms(b"") == []
    assert decode_hash_algorithms(b"\x12\x34") == [0x1234]  # unknown ids are kept


def test_hash_algorithms_errors():
    with pytest.raises(ParseError):
        decode_hash_algorithms(b"\x00\x02\x00")
    with pytest.raises(ValueError):
        encode_hash_algorithms([0x10000])


# --- RFC 7427 signatures ----------------------------------------------------------

@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_keys():
    return {bits: ec.generate_private_key(curve) for bits, curve in
            ((256, ec.SECP256R1()), (384, ec.SECP384R1()), (521, ec.SECP521R1()))}


def _key_for(kind, rsa_key, ec_keys):
    if kind == "rsa":
        return rsa_key
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "ed448":
        return ed448.Ed448PrivateKey.generate()
    return ec_keys[int(kind[2:])]


SIGNING_CASES = [
    # key, hash_alg, rsa_pss, expected scheme
    ("rsa", HASH_SHA2_256, True, "rsassa-pss-sha256"),
    ("rsa", HASH_SHA2_384, True, "rsassa-pss-sha384"),
    ("rsa", HASH_SHA2_512, True, "rsassa-pss-sha512"),
    ("rsa", None, True, "rsassa-pss-sha256"),
    ("rsa", HASH_SHA2_256, False, "sha256WithRSAEncryption"),
    ("rsa", HASH_SHA2_384, False, "sha384WithRSAEncryption"),
    ("rsa", HASH_SHA2_512, False, "sha512WithRSAEncryption"),
    ("ec256", None, True, "ecdsa-with-SHA256"),
    ("ec384", None, True, "ecdsa-with-SHA384"),
    ("ec521", None, True, "ecdsa-with-SHA512"),
    ("ec256", HASH_SHA2_512, True, "ecdsa-with-SHA512"),
    ("ed25519", None, True, "Ed25519"),
    ("ed448", None, True, "Ed448"),
]


@pytest.mark.parametrize("kind,hash_alg,rsa_pss,scheme_name", SIGNING_CASES,
                         ids=[f"{c[3]}-{c[0]}" for c in SIGNING_CASES])
def test_signature_round_trip_and_tamper(rsa_key, ec_keys, kind, hash_alg, rsa_pss, scheme_name):
    key = _key_for(kind, rsa_key, ec_keys)
    data = sign_auth(key, OCTETS, hash_alg=hash_alg, rsa_pss=rsa_pss)
    identifier = SCHEMES_BY_NAME[scheme_name].algorithm_identifier
    assert data[0] == len(identifier) and data[1:1 + len(identifier)] == identifier
    assert verify_auth(key.public_key(), data, OCTETS).name == scheme_name

    flipped = bytearray(data)
    flipped[-1] ^= 0x01
    with pytest.raises(AuthenticationFailed):
        verify_auth(key.public_key(), bytes(flipped), OCTETS)
    with pytest.raises(AuthenticationFailed):
        verify_auth(key.public_key(), data, OCTETS[:-1] + b"?")


def test_ecdsa_method_14_signature_is_der(ec_keys):
    data = sign_auth(ec_keys[256], OCTETS)
    signature = data[1 + data[0]:]
    assert signature[0] == 0x30  # Ecdsa-Sig-Value SEQUENCE (RFC 7427 §3)


def test_rsa_pss_uses_salt_of_hash_length(rsa_key):
    data = sign_auth(rsa_key, OCTETS, hash_alg=HASH_SHA2_384)
    signature = data[1 + data[0]:]
    rsa_key.public_key().verify(signature, OCTETS, padding.PSS(
        mgf=padding.MGF1(hashes.SHA384()), salt_length=48), hashes.SHA384())


def _signature_algorithm_of(certificate_der: bytes) -> bytes:
    """The DER signatureAlgorithm element of a Certificate (second child)."""
    def element(buf, start):
        length, body = buf[start + 1], start + 2
        if length & 0x80:
            count = length & 0x7F
            length = int.from_bytes(buf[body:body + count], "big")
            body += count
        return body, body + length
    content, _ = element(certificate_der, 0)
    _, tbs_end = element(certificate_der, content)
    _, algorithm_end = element(certificate_der, tbs_end)
    return certificate_der[tbs_end:algorithm_end]


@pytest.mark.parametrize("scheme_name", sorted(set(SCHEMES_BY_NAME) - {"sha1WithRSAEncryption"}))
def test_algorithm_identifiers_match_openssl_encoding(rsa_key, ec_keys, scheme_name):
    # Independent check of the table: OpenSSL writes the same AlgorithmIdentifier
    # into certificates it signs with that scheme.
    scheme = SCHEMES_BY_NAME[scheme_name]
    digest = {HASH_SHA2_256: hashes.SHA256(), HASH_SHA2_384: hashes.SHA384(),
              HASH_SHA2_512: hashes.SHA512(), HASH_IDENTITY: None}[scheme.hash_algorithm]
    kind = {"rsa": "rsa", "ec": "ec256", "ed25519": "ed25519", "ed448": "ed448"}[scheme.key_family]
    key = _key_for(kind, rsa_key, ec_keys)
    extra = {}
    if scheme.rsa_pss:
        extra["rsa_padding"] = padding.PSS(padding.MGF1(digest), padding.PSS.DIGEST_LENGTH)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "algorithm check")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(1)
                   .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
                   .sign(key, digest, **extra))
    assert _signature_algorithm_of(certificate.public_bytes(Encoding.DER)) == \
        scheme.algorithm_identifier
    assert SCHEMES_BY_IDENTIFIER[scheme.algorithm_identifier] is scheme


def test_sha1_rsa_identifier_is_rfc7427_a11():
    scheme = SCHEMES_BY_NAME["sha1WithRSAEncryption"]
    assert scheme.algorithm_identifier.hex() == "300d06092a864886f70d0101050500"


def test_unknown_algorithm_identifier_fails(rsa_key):
    signature = rsa_key.sign(OCTETS, padding.PKCS1v15(), hashes.SHA256())
    # sha224WithRSAEncryption: well-formed but not in our table
    identifier = bytes.fromhex("300d06092a864886f70d01010e0500")
    with pytest.raises(AuthenticationFailed, match="unknown"):
        verify_auth(rsa_key.public_key(), bytes([len(identifier)]) + identifier + signature, OCTETS)


@pytest.mark.parametrize("data", [b"", b"\x00abc", b"\x0f" + bytes(15), b"\x20" + bytes(10)])
def test_malformed_signature_auth_data_is_a_parse_error(rsa_key, data):
    with pytest.raises(ParseError):
        verify_auth(rsa_key.public_key(), data, OCTETS)


def test_hash_must_be_negotiated(rsa_key):
    data = sign_auth(rsa_key, OCTETS, hash_alg=HASH_SHA2_384)
    verify_auth(rsa_key.public_key(), data, OCTETS, allowed_hashes=[HASH_SHA2_384])
    with pytest.raises(AuthenticationFailed, match="not negotiated"):
        verify_auth(rsa_key.public_key(), data, OCTETS, allowed_hashes=[HASH_SHA2_256])


def test_sha1_is_refused_by_default_under_method_14(rsa_key):
    data = sign_auth(rsa_key, OCTETS, hash_alg=HASH_SHA1, rsa_pss=False)
    with pytest.raises(AuthenticationFailed):
        verify_auth(rsa_key.public_key(), data, OCTETS)
    verify_auth(rsa_key.public_key(), data, OCTETS, allowed_hashes=[HASH_SHA1])


def test_key_type_must_match_algorithm(rsa_key, ec_keys):
    data = sign_auth(rsa_key, OCTETS)
    with pytest.raises(AuthenticationFailed, match="peer key"):
        verify_auth(ec_keys[256].public_key(), data, OCTETS)
    other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(AuthenticationFailed):
        verify_auth(other_rsa.public_key(), data, OCTETS)


def test_unsupported_peer_key_type_fails(rsa_key):
    data = sign_auth(rsa_key, OCTETS)
    dsa_key = dsa.generate_private_key(key_size=2048).public_key()
    with pytest.raises(AuthenticationFailed):
        verify_auth(dsa_key, data, OCTETS)
    with pytest.raises(AuthenticationFailed):
        verify_legacy_auth(AUTH_RSA_DIGITAL_SIGNATURE, dsa_key, data, OCTETS)


def test_eddsa_refuses_a_hash():
    with pytest.raises(UnsupportedAlgorithm):
        sign_auth(ed25519.Ed25519PrivateKey.generate(), OCTETS, hash_alg=HASH_SHA2_256)


def test_unsupported_private_key_type():
    with pytest.raises(UnsupportedAlgorithm):
        sign_auth(x25519.X25519PrivateKey.generate(), OCTETS)


# --- classic methods 1 and 9/10/11 ---------------------------------------------

def test_method_1_rsa_sha1_round_trip(rsa_key):
    data = sign_legacy_auth(AUTH_RSA_DIGITAL_SIGNATURE, rsa_key, OCTETS)
    assert len(data) == 256
    rsa_key.public_key().verify(data, OCTETS, padding.PKCS1v15(), hashes.SHA1())
    verify_legacy_auth(AUTH_RSA_DIGITAL_SIGNATURE, rsa_key.public_key(), data, OCTETS)
    with pytest.raises(AuthenticationFailed):
        verify_legacy_auth(AUTH_RSA_DIGITAL_SIGNATURE, rsa_key.public_key(),
                           data[:-1] + bytes([data[-1] ^ 1]), OCTETS)


@pytest.mark.parametrize("method,bits,size", [
    (AUTH_ECDSA_SHA256_P256, 256, 32), (AUTH_ECDSA_SHA384_P384, 384, 48),
    (AUTH_ECDSA_SHA512_P521, 521, 66)])
def test_rfc4754_ecdsa_round_trip(ec_keys, method, bits, size):
    key = ec_keys[bits]
    data = sign_legacy_auth(method, key, OCTETS)
    assert len(data) == 2 * size  # r | s, fixed width, no DER
    verify_legacy_auth(method, key.public_key(), data, OCTETS)
    with pytest.raises(AuthenticationFailed):
        verify_legacy_auth(method, key.public_key(), data[:-1] + bytes([data[-1] ^ 1]), OCTETS)
    with pytest.raises(AuthenticationFailed):
        verify_legacy_auth(method, key.public_key(), data[:-1], OCTETS)


def test_rfc4754_method_needs_its_curve(ec_keys):
    with pytest.raises(UnsupportedAlgorithm):
        sign_legacy_auth(AUTH_ECDSA_SHA256_P256, ec_keys[384], OCTETS)
    data = sign_legacy_auth(AUTH_ECDSA_SHA384_P384, ec_keys[384], OCTETS)
    with pytest.raises(AuthenticationFailed):
        verify_legacy_auth(AUTH_ECDSA_SHA256_P256, ec_keys[256].public_key(), data, OCTETS)
    with pytest.raises(AuthenticationFailed):
        verify_legacy_auth(AUTH_ECDSA_SHA384_P384, ec_keys[256].public_key(), data, OCTETS)


def test_dispatch_over_all_signature_methods(rsa_key, ec_keys):
    cases = [(AUTH_RSA_DIGITAL_SIGNATURE, rsa_key), (AUTH_ECDSA_SHA256_P256, ec_keys[256]),
             (AUTH_DIGITAL_SIGNATURE, rsa_key), (AUTH_DIGITAL_SIGNATURE, ec_keys[521])]
    for method, key in cases:
        data = sign_signature_auth(method, key, OCTETS)
        verify_signature_auth(method, key.public_key(), data, OCTETS)
    with pytest.raises(AuthenticationFailed):
        verify_signature_auth(AUTH_SHARED_KEY_MIC, rsa_key.public_key(), b"x", OCTETS)


# --- certificates -----------------------------------------------------------------

NOW = datetime.datetime(2025, 6, 1, tzinfo=datetime.timezone.utc)
DAY = datetime.timedelta(days=1)


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ikecore tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(subject, subject_key, issuer, issuer_key, *, ca, not_before=NOW - DAY,
           not_after=NOW + 30 * DAY, san=None):
    builder = (x509.CertificateBuilder()
               .subject_name(subject).issuer_name(issuer)
               .public_key(subject_key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(subject_key.public_key()),
                              critical=False))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _der(certificate):
    return certificate.public_bytes(Encoding.DER)


LEAF_SAN = [x509.DNSName("vpn.example.com"), x509.RFC822Name("gw@example.com"),
            x509.IPAddress(ipaddress.ip_address("192.0.2.1")),
            x509.IPAddress(ipaddress.ip_address("2001:db8::1"))]


@pytest.fixture(scope="module")
def pki():
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _issue(_name("Root CA"), root_key, _name("Root CA"), root_key, ca=True,
                  not_before=NOW - 365 * DAY, not_after=NOW + 3650 * DAY)
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter = _issue(_name("Intermediate CA"), inter_key, root.subject, root_key, ca=True,
                   not_before=NOW - 30 * DAY, not_after=NOW + 365 * DAY)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = _issue(_name("vpn.example.com"), leaf_key, inter.subject, inter_key, ca=False,
                  san=LEAF_SAN)
    other_root_key = ec.generate_private_key(ec.SECP256R1())
    other_root = _issue(_name("Other Root"), other_root_key, _name("Other Root"),
                        other_root_key, ca=True, not_before=NOW - DAY, not_after=NOW + 3650 * DAY)
    return dict(root=root, root_key=root_key, inter=inter, inter_key=inter_key, leaf=leaf,
                leaf_key=leaf_key, other_root=other_root)


def test_valid_chain(pki):
    store = TrustStore([_der(pki["root"])])
    leaf = store.verify_chain(_der(pki["leaf"]), [_der(pki["inter"])], at_time=NOW)
    assert leaf == pki["leaf"]


def test_trust_store_takes_pem_bundles(pki):
    bundle = pki["other_root"].public_bytes(Encoding.PEM) + pki["root"].public_bytes(Encoding.PEM)
    store = TrustStore([bundle])
    assert len(store.anchors) == 2
    store.verify_chain(_der(pki["leaf"]), [_der(pki["inter"])], at_time=NOW)


def test_chain_validates_at_current_time_by_default(pki):
    now = datetime.datetime.now(datetime.timezone.utc)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _issue(_name("Live Root"), root_key, _name("Live Root"), root_key, ca=True,
                  not_before=now - DAY, not_after=now + DAY)
    leaf = _issue(_name("live leaf"), pki["leaf_key"], root.subject, root_key, ca=False,
                  not_before=now - DAY, not_after=now + DAY)
    TrustStore([_der(root)]).verify_chain(_der(leaf))


def test_expired_leaf_fails(pki):
    expired = _issue(_name("old"), pki["leaf_key"], pki["inter"].subject, pki["inter_key"],
                     ca=False, not_before=NOW - 20 * DAY, not_after=NOW - 10 * DAY)
    store = TrustStore([_der(pki["root"])])
    with pytest.raises(AuthenticationFailed, match="expired"):
        store.verify_chain(_der(expired), [_der(pki["inter"])], at_time=NOW)
    with pytest.raises(AuthenticationFailed, match="expired"):
        store.verify_chain(_der(pki["leaf"]), [_der(pki["inter"])], at_time=NOW + 60 * DAY)


def test_not_yet_valid_fails(pki):
    store = TrustStore([_der(pki["root"])])
    with pytest.raises(AuthenticationFailed, match="not yet valid"):
        store.verify_chain(_der(pki["leaf"]), [_der(pki["inter"])], at_time=NOW - 2 * DAY)


def test_wrong_ca_fails(pki):
    store = TrustStore([_der(pki["other_root"])])
    with pytest.raises(AuthenticationFailed, match="issuer"):
        store.verify_chain(_der(pki["leaf"]), [_der(pki["inter"])], at_time=NOW)


def test_missing_intermediate_fails(pki):
    store = TrustStore([_der(pki["root"])])
    with pytest.raises(AuthenticationFailed, match="issuer"):
        store.verify_chain(_der(pki["leaf"]), [], at_time=NOW)


def _crl(issuer, issuer_key, revoked=(), *, last_update=NOW - DAY, next_update=NOW + 7 * DAY):
    builder = (x509.CertificateRevocationListBuilder().issuer_name(issuer.subject)
               .last_update(last_update).next_update(next_update))
    for cert in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(cert.serial_number)
            .revocation_date(last_update).build())
    return builder.sign(issuer_key, hashes.SHA256())


def _crl_der(crl):
    return crl.public_bytes(Encoding.DER)


def test_crl_rejects_a_revoked_leaf_and_passes_the_others(pki):
    revoked = TrustStore([_der(pki["root"])], [_crl_der(_crl(pki["inter"], pki["inter_key"], [pki["leaf"]]))])
    with pytest.raises(AuthenticationFailed, match="revoked"):
        revoked.verify_chain(_der(pki["leaf"]), [_der(pki["inter"])], at_time=NOW)
    other = _issue(_name("other leaf"), pki["leaf_key"], pki["inter"].subject, pki["inter_key"], ca=False)
    clean = TrustStore([_der(pki["root"])], [_crl_der(_crl(pki["inter"], pki["inter_key"], [other]))])
    assert clean.verify_chain(_der(pki["leaf"]), [_der(pki["inter"])], at_time=NOW) == pki["leaf"]


def test_crl_must_be_there_and_current(pki):
    # only the root's CRL: the leaf's issuer (the intermediate) has none
    root_only = TrustStore([_der(pki["root"])], [_crl_der(_crl(pki["root"], pki["root_key"]))])
    with pytest.raises(AuthenticationFailed, match="CRL"):
        root_only.verify_chain(_der(pki["leaf"]), [_der(pki["inter"])], at_time=NOW)
    stale = TrustStore([_der(pki["root"])], [_crl_der(_crl(pki["inter"], pki["inter_key"],
                                                          last_update=NOW - 10 * DAY,
                                                          next_update=NOW - DAY))])
    with pytest.raises(AuthenticationFailed, match="CRL has expired"):
        stale.verify_chain(_der(pki["leaf"]), [_der(pki["inter"])], at_time=NOW)
    forged_key = ec.generate_private_key(ec.SECP256R1())
    forged = TrustStore([_der(pki["root"])], [_crl_der(_crl(pki["inter"], forged_key))])
    with pytest.raises(AuthenticationFailed, match="CRL signature"):
        forged.verify_chain(_der(pki["leaf"]), [_der(pki["inter"])], at_time=NOW)


def test_crl_check_of_the_whole_chain(pki):
    """The root revoked the intermediate: only a chain-wide check sees it."""
    crls = [_crl_der(_crl(pki["root"], pki["root_key"], [pki["inter"]])),
            _crl_der(_crl(pki["inter"], pki["inter_key"]))]
    TrustStore([_der(pki["root"])], crls).verify_chain(_der(pki["leaf"]), [_der(pki["inter"])], at_time=NOW)
    with pytest.raises(AuthenticationFailed, match="revoked"):
        TrustStore([_der(pki["root"])], crls, crl_check_chain=True).verify_chain(
            _der(pki["leaf"]), [_der(pki["inter"])], at_time=NOW)
    with pytest.raises(ValueError):
        TrustStore([_der(pki["root"])], crl_check_chain=True)


def test_crls_load_from_pem_bundles_and_reject_garbage(pki):
    a, b = _crl(pki["root"], pki["root_key"]), _crl(pki["inter"], pki["inter_key"], [pki["leaf"]])
    store = TrustStore([_der(pki["root"])], [a.public_bytes(Encoding.PEM) + b.public_bytes(Encoding.PEM)])
    assert store.crls == (a, b)
    with pytest.raises(AuthenticationFailed, match="revoked"):
        store.verify_chain(_der(pki["leaf"]), [_der(pki["inter"])], at_time=NOW)
    for garbage in (b"not a crl", b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
                    b"-----BEGIN CERTIFICATE-----\n"):
        with pytest.raises(ParseError):
            TrustStore([_der(pki["root"])], [garbage])


def test_intermediate_without_ca_flag_fails(pki):
    not_a_ca = _issue(_name("Intermediate CA"), pki["inter_key"], pki["root"].subject,
                      pki["root_key"], ca=False)
    store = TrustStore([_der(pki["root"])])
    with pytest.raises(AuthenticationFailed):
        store.verify_chain(_der(pki["leaf"]), [_der(not_a_ca)], at_time=NOW)


def test_forged_leaf_fails(pki):
    impostor_key = ec.generate_private_key(ec.SECP256R1())
    forged = _issue(_name("vpn.example.com"), pki["leaf_key"], pki["inter"].subject,
                    impostor_key, ca=False)
    store = TrustStore([_der(pki["root"])])
    with pytest.raises(AuthenticationFailed):
        store.verify_chain(_der(forged), [_der(pki["inter"])], at_time=NOW)


def test_garbage_certificate_fails(pki):
    store = TrustStore([_der(pki["root"])])
    with pytest.raises(AuthenticationFailed, match="malformed"):
        store.verify_chain(b"\x30\x03\x02\x01\x00", [], at_time=NOW)
    with pytest.raises(ParseError):
        TrustStore([b"not a certificate"])


def test_signature_checked_against_certificate_key(pki):
    data = sign_auth(pki["leaf_key"], OCTETS)
    verify_auth(pki["leaf"], data, OCTETS)
    with pytest.raises(AuthenticationFailed):
        verify_auth(pki["inter"], data, OCTETS)


# --- ID payload vs certificate --------------------------------------------------

@pytest.mark.parametrize("id_type,id_data,expected", [
    (ID_FQDN, b"vpn.example.com", True),
    (ID_FQDN, b"VPN.Example.COM", True),
    (ID_FQDN, b"other.example.com", False),
    (ID_FQDN, b"\xffvpn", False),
    (ID_RFC822_ADDR, b"gw@example.com", True),
    (ID_RFC822_ADDR, b"root@example.com", False),
    (ID_IPV4_ADDR, bytes([192, 0, 2, 1]), True),
    (ID_IPV4_ADDR, bytes([192, 0, 2, 2]), False),
    (ID_IPV4_ADDR, bytes([192, 0, 2]), False),
    (ID_IPV6_ADDR, ipaddress.ip_address("2001:db8::1").packed, True),
    (ID_IPV6_ADDR, ipaddress.ip_address("2001:db8::2").packed, False),
    (11, b"vpn.example.com", False),  # ID_KEY_ID never names a certificate
])
def test_identity_matches_certificate(pki, id_type, id_data, expected):
    assert identity_matches_certificate(id_type, id_data, pki["leaf"]) is expected


def test_dn_identity(pki):
    leaf = pki["leaf"]
    assert identity_matches_certificate(ID_DER_ASN1_DN, leaf.subject.public_bytes(), leaf)
    assert not identity_matches_certificate(ID_DER_ASN1_DN, leaf.issuer.public_bytes(), leaf)


def test_check_identity_raises(pki):
    check_identity_matches_certificate(ID_FQDN, b"vpn.example.com", pki["leaf"])
    with pytest.raises(AuthenticationFailed, match="does not match"):
        check_identity_matches_certificate(ID_FQDN, b"evil.example.com", pki["leaf"])


# --- raw public keys -------------------------------------------------------------

def test_load_public_key(rsa_key, ec_keys):
    for key in (rsa_key, ec_keys[384], ed25519.Ed25519PrivateKey.generate()):
        spki = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        loaded = load_public_key(spki)
        assert loaded.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo) == spki
        verify_auth(loaded, sign_auth(key, OCTETS), OCTETS)


def test_load_public_key_errors():
    with pytest.raises(ParseError):
        load_public_key(b"\x30\x00")
    x25519_spki = x25519.X25519PrivateKey.generate().public_key().public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(UnsupportedAlgorithm):
        load_public_key(x25519_spki)


def test_load_certificate_pem_and_der(pki):
    leaf = pki["leaf"]
    assert load_certificate(leaf.public_bytes(Encoding.PEM)) == leaf
    assert load_certificate(_der(leaf)) == leaf
    with pytest.raises(ParseError):
        load_certificate(b"\x00\x01")
