"""IKE_AUTH with every authentication method and identity type, RFC 7383
fragmentation of certificate-laden messages, and every kind of
authentication failure ending both sides cleanly.

    Initiator                                       Responder
    HDR, SK {IDi, [CERT+,] [CERTREQ,] [IDr,] AUTH,
             [N(INITIAL_CONTACT),] SAi2, TSi, TSr}  -->
                                               <--  HDR, SK {IDr, [CERT+,] AUTH, SAr2, TSi, TSr}
    failure seen by the responder:             <--  HDR, SK {N(AUTHENTICATION_FAILED)}
    failure seen by the initiator:
    HDR, SK {N(AUTHENTICATION_FAILED), D(IKE)}  -->
                                               <--  HDR, SK {}

Certificates are validated at a fixed instant (IkeConfig.certificate_time),
so no test depends on the wall clock.
"""
import datetime
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ike_pair import ADDR_R, Network, Pair, child
from ikecore.protocol import events as ev
from ikecore.protocol.auth import TrustStore
from ikecore.protocol.config import (IkeConfig, IkeProposal, Identity, LocalAuth, RemoteAuth,
                                     psk_config)
from ikecore.protocol.constants import AuthMethod, IdType, NotifyType, PayloadType
from ikecore.protocol.exchanges import ike_auth
from ikecore.protocol.message import parse_message

NOW = datetime.datetime(2025, 6, 1, tzinfo=datetime.timezone.utc)
DAY = datetime.timedelta(days=1)


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ikecore tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(subject, key, issuer, issuer_key, *, ca, san=(), not_before=NOW - DAY, not_after=NOW + 30 * DAY):
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(not_before).not_valid_after(not_after)
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                            critical=True)
    if san:
        b = b.add_extension(x509.SubjectAlternativeName(list(san)), critical=False)
    algorithm = None if isinstance(issuer_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return b.sign(issuer_key, algorithm)


def _der(cert):
    return cert.public_bytes(Encoding.DER)


class Pki:
    def __init__(self, name="Root CA"):
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        self.root = _issue(_name(name), self.root_key, _name(name), self.root_key, ca=True,
                           not_before=NOW - 365 * DAY, not_after=NOW + 3650 * DAY)
        self.inter_key = ec.generate_private_key(ec.SECP256R1())
        self.inter = _issue(_name(name + " intermediate"), self.inter_key, self.root.subject,
                            self.root_key, ca=True, not_after=NOW + 365 * DAY)
        self.store = TrustStore([_der(self.root)])

    def leaf(self, key, fqdn, *, extra_san=(), **kw):
        san = [x509.DNSName(fqdn), *extra_san]
        cert = _issue(_name(fqdn), key, self.inter.subject, self.inter_key, ca=False, san=san, **kw)
        return (_der(cert), _der(self.inter))


@pytest.fixture(scope="module")
def pki():
    return Pki()


@pytest.fixture(scope="module")
def other_pki():
    return Pki("Other Root")


@pytest.fixture(scope="module")
def keys():
    return {"rsa": rsa.generate_private_key(65537, 2048),
            "rsa2": rsa.generate_private_key(65537, 2048),
            "p256": ec.generate_private_key(ec.SECP256R1()),
            "p384": ec.generate_private_key(ec.SECP384R1()),
            "p521": ec.generate_private_key(ec.SECP521R1()),
            "ed25519": ed25519.Ed25519PrivateKey.generate(),
            "ed25519b": ed25519.Ed25519PrivateKey.generate()}


ID_I, ID_R = "client.example.com", "gw.example.com"


def _cfg(local_id, remote_id, local_auth, remote_auth, *, side, **kw):
    nets = ("10.1.0.0/16", "10.2.0.0/16") if side == "i" else ("10.2.0.0/16", "10.1.0.0/16")
    kw.setdefault("certificate_time", lambda now: NOW)
    return IkeConfig(local_id=Identity.parse(local_id), local_auth=local_auth, remote_auth=remote_auth,
                     remote_id=Identity.parse(remote_id) if remote_id else None,
                     proposals=[IkeProposal.parse("aes256gcm16-prfsha256-x25519")],
                     children=[child(local=nets[0], remote=nets[1])], **kw)


def cert_configs(pki, key_i, key_r, *, cfg_i=None, cfg_r=None, pki_r=None, leaf_i=None, leaf_r=None):
    """The initiator and responder authenticate each other with certificates of ``pki``."""
    pki_r = pki_r or pki
    ci = _cfg(ID_I, ID_R, LocalAuth(private_key=key_i, certificates=leaf_i or pki.leaf(key_i, ID_I)),
              RemoteAuth(trust_store=pki.store), side="i", **(cfg_i or {}))
    cr = _cfg(ID_R, ID_I, LocalAuth(private_key=key_r, certificates=leaf_r or pki_r.leaf(key_r, ID_R)),
              RemoteAuth(trust_store=pki.store), side="r", **(cfg_r or {}))
    return ci, cr


def _swap(ci, cr, swap):
    return (cr, ci) if swap else (ci, cr)


@pytest.fixture
def spy(monkeypatch):
    """Records the AUTH method (and RFC 7427 scheme) of every signature verified."""
    seen = []
    real = ike_auth.verify_signature_auth

    def record(method, key, data, octets, allowed_hashes=None):
        name = None
        if method == AuthMethod.DIGITAL_SIGNATURE:
            from ikecore.protocol.auth import SCHEMES_BY_IDENTIFIER, parse_signature_auth
            scheme = SCHEMES_BY_IDENTIFIER.get(parse_signature_auth(data)[0])
            name = scheme.name if scheme else None
        seen.append((method, name))
        return real(method, key, data, octets, allowed_hashes=allowed_hashes)

    monkeypatch.setattr(ike_auth, "verify_signature_auth", record)
    return seen


def _established(p):
    p.connect()
    assert p.run(p.established), "not established"
    ci, cr = p.conn("i"), p.conn("r")
    assert ci.remote_id == cr.config.local_id and cr.remote_id == ci.config.local_id
    [a] = p.of(ev.ChildSaInstalled, "i")
    [b] = p.of(ev.ChildSaInstalled, "r")
    out, _ = a.child.esp_sas()
    _, inbound = b.child.esp_sas()
    assert inbound.decrypt(out.encrypt(b"\x45" + bytes(30), 4)) == (b"\x45" + bytes(30), 4)
    return ci, cr


# ------------------------------------------------------------------ success --

@pytest.mark.parametrize("key_i, key_r, scheme_i, scheme_r", [
    ("rsa", "rsa2", "rsassa-pss-sha256", "rsassa-pss-sha256"),
    ("p256", "p384", "ecdsa-with-SHA256", "ecdsa-with-SHA384"),
    ("p521", "rsa", "ecdsa-with-SHA512", "rsassa-pss-sha256"),
    ("ed25519", "ed25519b", "Ed25519", "Ed25519"),
])
@pytest.mark.parametrize("swap", [False, True], ids=["i-initiates", "r-initiates"])
def test_rfc7427_signatures_with_certificate_chains(pki, keys, spy, key_i, key_r, scheme_i, scheme_r, swap):
    p = Pair(*_swap(*cert_configs(pki, keys[key_i], keys[key_r]), swap))
    _established(p)
    # the responder verifies first (the initiator's AUTH), then the initiator
    expect = [(AuthMethod.DIGITAL_SIGNATURE, scheme_i), (AuthMethod.DIGITAL_SIGNATURE, scheme_r)]
    assert spy == (expect[::-1] if swap else expect)


def test_rsa_pkcs1_when_pss_is_disabled(pki, keys, spy):
    ci, cr = cert_configs(pki, keys["rsa"], keys["rsa2"])
    ci = _cfg(ID_I, ID_R, LocalAuth(private_key=keys["rsa"], certificates=pki.leaf(keys["rsa"], ID_I),
                                    rsa_pss=False), RemoteAuth(trust_store=pki.store), side="i")
    _established(Pair(ci, cr))
    assert spy[0] == (AuthMethod.DIGITAL_SIGNATURE, "sha256WithRSAEncryption")


@pytest.mark.parametrize("key, method", [("rsa", AuthMethod.RSA_DIGITAL_SIGNATURE),
                                         ("p256", AuthMethod.ECDSA_SHA256_P256),
                                         ("p384", AuthMethod.ECDSA_SHA384_P384),
                                         ("p521", AuthMethod.ECDSA_SHA512_P521)])
def test_legacy_methods_when_the_peer_announces_no_signature_hashes(pki, keys, spy, key, method):
    # the responder announces nothing (RFC 7427 §4 not supported): the initiator signs with
    # the classic method of its key; the responder then verifies that method
    ci, cr = cert_configs(pki, keys[key], keys["p256"], cfg_r={"signature_hashes": ()})
    _established(Pair(ci, cr))
    assert spy[0] == (method, None)
    assert spy[1][0] == AuthMethod.DIGITAL_SIGNATURE


def test_eddsa_needs_the_identity_hash_announced(pki, keys):
    # a peer that verifies only SHA-2 hashes cannot take an Ed25519 signature: it fails cleanly
    ci, cr = cert_configs(pki, keys["ed25519"], keys["p256"], cfg_r={"signature_hashes": (2, 3, 4)})
    p = Pair(ci, cr)
    p.connect()
    p.run()
    assert not p.of(ev.IkeSaEstablished, "i") and not p.ei.connections and not p.er.connections


@pytest.mark.parametrize("key_i, key_r", [("ed25519", "p256"), ("p384", "rsa")])
@pytest.mark.parametrize("swap", [False, True], ids=["i-initiates", "r-initiates"])
def test_raw_public_keys(keys, key_i, key_r, swap):
    ki, kr = keys[key_i], keys[key_r]
    ci = _cfg(ID_I, ID_R, LocalAuth(private_key=ki), RemoteAuth(public_key=kr.public_key()), side="i")
    cr = _cfg(ID_R, ID_I, LocalAuth(private_key=kr), RemoteAuth(public_key=ki.public_key()), side="r")
    _established(Pair(*_swap(ci, cr, swap)))


@pytest.mark.parametrize("swap", [False, True], ids=["i-initiates", "r-initiates"])
def test_mixed_psk_one_way_certificate_the_other(pki, keys, swap):
    psk = b"client secret for the mixed case"
    ci = _cfg(ID_I, ID_R, LocalAuth(psk=psk), RemoteAuth(trust_store=pki.store), side="i")
    cr = _cfg(ID_R, ID_I, LocalAuth(private_key=keys["p256"], certificates=pki.leaf(keys["p256"], ID_R)),
              RemoteAuth(psk=psk), side="r")
    _established(Pair(*_swap(ci, cr, swap)))


@pytest.mark.parametrize("id_i, id_r", [
    ("client.example.com", "gw.example.com"),
    ("alice@example.com", "gw@example.com"),
    ("192.0.2.1", "192.0.2.2"),
    ("2001:db8::1", "2001:db8::2"),
    ("keyid:0102030405", "keyid:a0a1a2"),
    ("dn:CN=alice,O=Example", "dn:CN=gw,O=Example"),
])
def test_psk_with_every_identity_type(id_i, id_r):
    ci = psk_config(id_i, id_r, b"psk for identities", children=[child()])
    cr = psk_config(id_r, id_i, b"psk for identities",
                    children=[child(local="10.2.0.0/16", remote="10.1.0.0/16")])
    ci_, cr_ = _established(Pair(ci, cr))
    assert cr_.remote_id == Identity.parse(id_i) and ci_.remote_id == Identity.parse(id_r)


def test_identity_types_parse():
    assert Identity.parse("192.0.2.1").id_type == IdType.ID_IPV4_ADDR
    assert Identity.parse("2001:db8::1").id_type == IdType.ID_IPV6_ADDR
    assert Identity.parse("a@b.example").id_type == IdType.ID_RFC822_ADDR
    assert Identity.parse("@vpn.example").data == b"vpn.example"
    assert Identity.parse("keyid:00ff").data == b"\x00\xff"
    dn = Identity.parse("dn:CN=gw,O=Example")
    assert dn.id_type == IdType.ID_DER_ASN1_DN
    assert dn.data == x509.Name.from_rfc4514_string("CN=gw,O=Example").public_bytes()


@pytest.mark.parametrize("kind", ["dn", "ip", "email"])
def test_certificate_identities_other_than_fqdn(pki, keys, kind):
    key = keys["p256"]
    leaf_cert = _issue(_name("gw.example.com"), key, pki.inter.subject, pki.inter_key, ca=False,
                       san=[x509.IPAddress(ipaddress.ip_address("192.0.2.2")), x509.RFC822Name("gw@example.com")])
    ident = {"dn": "dn:" + leaf_cert.subject.rfc4514_string(), "ip": "192.0.2.2", "email": "gw@example.com"}[kind]
    if kind == "dn":
        ident_obj = Identity(IdType.ID_DER_ASN1_DN, leaf_cert.subject.public_bytes())
    else:
        ident_obj = Identity.parse(ident)
    ci = _cfg(ID_I, None, LocalAuth(psk=b"k" * 20), RemoteAuth(trust_store=pki.store), side="i")
    cr = IkeConfig(local_id=ident_obj, local_auth=LocalAuth(private_key=key, certificates=(_der(leaf_cert), _der(pki.inter))),
                   remote_auth=RemoteAuth(psk=b"k" * 20), remote_id=Identity.parse(ID_I),
                   children=[child(local="10.2.0.0/16", remote="10.1.0.0/16")], certificate_time=lambda now: NOW)
    ci_, _ = _established(Pair(ci, cr))
    assert ci_.remote_id == ident_obj


def test_certreq_names_the_trust_anchors(pki, keys):
    import hashlib
    from cryptography.hazmat.primitives.serialization import PublicFormat
    p = Pair(*cert_configs(pki, keys["p256"], keys["p384"]))
    p.connect()
    assert p.run(p.established)
    init_reply = next(parse_message(d) for tag, d in p.trace if tag == "r>i")
    [certreq] = init_reply.find_all(PayloadType.CERTREQ)
    spki = pki.root.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert certreq.ca_hashes == [hashlib.sha1(spki).digest()]


# ------------------------------------------------------------ fragmentation --

def _fragments(p, direction):
    from ikecore.protocol.payloads import SkfPayload
    out = []
    for tag, data in p.trace:
        if tag == direction:
            m = parse_message(data[4:] if data[:4] == bytes(4) else data)
            if isinstance(m.sk, SkfPayload):
                out.append(m)
    return out


@pytest.mark.parametrize("swap", [False, True], ids=["i-initiates", "r-initiates"])
def test_certificate_auth_is_fragmented_when_both_support_it(pki, keys, swap):
    size = {"fragment_size": 576}
    ci, cr = cert_configs(pki, keys["rsa"], keys["rsa2"], cfg_i=size, cfg_r=size)
    p = Pair(*_swap(ci, cr, swap))
    _established(p)
    out, back = _fragments(p, "i>r"), _fragments(p, "r>i")
    assert len(out) >= 3 and len(back) >= 3
    assert all(len(d) <= 576 for tag, d in p.trace)
    assert {m.sk.total_fragments for m in out} == {len(out)}


def test_no_fragments_when_the_peer_does_not_support_them(pki, keys):
    ci, cr = cert_configs(pki, keys["rsa"], keys["rsa2"], cfg_i={"fragment_size": 576},
                          cfg_r={"fragment_size": 576, "fragmentation": False})
    p = Pair(ci, cr)
    _established(p)
    assert not _fragments(p, "i>r") and not _fragments(p, "r>i")
    assert max(len(d) for _, d in p.trace) > 576


def test_fragmented_auth_survives_loss_and_reordering(pki, keys):
    from ike_pair import Wire
    size = {"fragment_size": 576}
    ci, cr = cert_configs(pki, keys["rsa"], keys["rsa2"], cfg_i=size, cfg_r=size)
    p = Pair(ci, cr, wire=Wire(loss=0.15, reorder=0.3, duplicate=0.1, seed=3))
    _established(p)


# ----------------------------------------------------------------- failures --

def _failed(p, *, detected_by):
    """Both ends have given the SA up cleanly, reporting AUTHENTICATION_FAILED."""
    p.connect()
    p.run()
    [gone_i] = p.of(ev.IkeSaDeleted, "i")
    [gone_r] = p.of(ev.IkeSaDeleted, "r")
    assert gone_i.notify_type == NotifyType.AUTHENTICATION_FAILED
    assert gone_i.reason == "authentication failed"
    assert not p.of(ev.IkeSaEstablished, "i")
    if detected_by == "r":
        assert gone_r.notify_type == NotifyType.AUTHENTICATION_FAILED
        assert not p.of(ev.IkeSaEstablished, "r") and not p.of(ev.ChildSaInstalled, "r")
    else:
        # the responder had accepted the initiator; the initiator's Delete with
        # N(AUTHENTICATION_FAILED) ends it and says why
        assert gone_r.reason == "authentication failed"
        assert gone_r.notify_type == NotifyType.AUTHENTICATION_FAILED
        assert len(p.of(ev.ChildSaDeleted, "r")) == len(p.of(ev.ChildSaInstalled, "r"))
    assert not p.ei.connections and not p.er.connections and p.er.half_open == 0
    assert not p.in_flight and p.ei.get_timer() is None and p.er.get_timer() is None


def _psk_pair(*, psk_i_sends=b"A" * 16, psk_r_expects=b"A" * 16, psk_r_sends=b"B" * 16,
              psk_i_expects=b"B" * 16, id_i="client@test", id_r="gw@test", expect_i=None, expect_r=None,
              ask_for=None):
    ci = IkeConfig(local_id=Identity.parse(id_i), local_auth=LocalAuth(psk=psk_i_sends),
                   remote_auth=RemoteAuth(psk=psk_i_expects),
                   remote_id=Identity.parse(ask_for or expect_i or id_r), children=[child()])
    cr = IkeConfig(local_id=Identity.parse(id_r), local_auth=LocalAuth(psk=psk_r_sends),
                   remote_auth=RemoteAuth(psk=psk_r_expects), remote_id=Identity.parse(expect_r or id_i),
                   children=[child(local="10.2.0.0/16", remote="10.1.0.0/16")])
    return Pair(ci, cr)


def test_wrong_psk_seen_by_the_responder():
    _failed(_psk_pair(psk_i_sends=b"not the key" * 2), detected_by="r")


def test_wrong_psk_seen_by_the_initiator():
    _failed(_psk_pair(psk_r_sends=b"not the key" * 2), detected_by="i")


def test_wrong_initiator_identity():
    _failed(_psk_pair(expect_r="someone-else@test"), detected_by="r")


def test_initiator_asks_for_an_identity_the_responder_does_not_have():
    # IDr in the request names someone else: the responder refuses
    ci = psk_config("client@test", "gw-expected@test", b"k" * 16, children=[child()])
    cr = psk_config("gw@test", "client@test", b"k" * 16,
                    children=[child(local="10.2.0.0/16", remote="10.1.0.0/16")])
    _failed(Pair(ci, cr), detected_by="r")


def test_responder_identity_mismatch_seen_by_the_initiator(monkeypatch):
    ci = psk_config("client@test", "gw-expected@test", b"k" * 16, children=[child()])
    cr = psk_config("gw@test", "client@test", b"k" * 16,
                    children=[child(local="10.2.0.0/16", remote="10.1.0.0/16")])
    # an initiator that does not send IDr (RFC 7296: optional) but expects one identity
    real = ike_auth.IkeAuthTask.build_request

    def without_idr(self, conn, now):
        msg = real(self, conn, now)
        msg.inner = [x for x in msg.inner if x.payload_type != PayloadType.IDR]
        return msg

    monkeypatch.setattr(ike_auth.IkeAuthTask, "build_request", without_idr)
    _failed(Pair(ci, cr), detected_by="i")


@pytest.mark.parametrize("who", ["i", "r"])
def test_certificate_from_an_unknown_ca(pki, other_pki, keys, who):
    bad = other_pki.leaf(keys["p256"], ID_I if who == "i" else ID_R)
    kw = {"leaf_i": bad} if who == "i" else {"leaf_r": bad}
    ci, cr = cert_configs(pki, keys["p256"], keys["p256"], **kw)
    _failed(Pair(ci, cr), detected_by="r" if who == "i" else "i")


@pytest.mark.parametrize("who", ["i", "r"])
def test_expired_certificate(pki, keys, who):
    old = pki.leaf(keys["p256"], ID_I if who == "i" else ID_R, not_before=NOW - 60 * DAY,
                   not_after=NOW - DAY)
    kw = {"leaf_i": old} if who == "i" else {"leaf_r": old}
    _failed(Pair(*cert_configs(pki, keys["p256"], keys["p384"], **kw)),
            detected_by="r" if who == "i" else "i")


@pytest.mark.parametrize("who", ["i", "r"])
def test_revoked_certificate(pki, keys, who):
    """The other side's trust store carries the intermediate's CRL, which lists
    this certificate: the handshake fails; an unlisted certificate passes."""
    leaf = pki.leaf(keys["p256"], ID_I if who == "i" else ID_R)
    serial = x509.load_der_x509_certificate(leaf[0]).serial_number

    def configs(*revoked_serials):
        builder = (x509.CertificateRevocationListBuilder().issuer_name(pki.inter.subject)
                   .last_update(NOW - DAY).next_update(NOW + 7 * DAY))
        for n in revoked_serials:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(n).revocation_date(NOW - DAY).build())
        crl = builder.sign(pki.inter_key, hashes.SHA256()).public_bytes(Encoding.DER)
        checking = RemoteAuth(trust_store=TrustStore([_der(pki.root)], [crl]))
        key = keys["p256"]
        leaf_i = leaf if who == "i" else pki.leaf(key, ID_I)
        leaf_r = leaf if who == "r" else pki.leaf(key, ID_R)
        ci = _cfg(ID_I, ID_R, LocalAuth(private_key=key, certificates=leaf_i),
                  checking if who == "r" else RemoteAuth(trust_store=pki.store), side="i")
        cr = _cfg(ID_R, ID_I, LocalAuth(private_key=key, certificates=leaf_r),
                  checking if who == "i" else RemoteAuth(trust_store=pki.store), side="r")
        return ci, cr

    _failed(Pair(*configs(serial)), detected_by="r" if who == "i" else "i")
    _established(Pair(*configs(serial + 1)))


def test_certificate_time_decides_expiry(pki, keys):
    # the same certificates: valid at NOW, expired a year later
    later = {"certificate_time": lambda now: NOW + 365 * DAY}
    _failed(Pair(*cert_configs(pki, keys["p256"], keys["p384"], cfg_r=later)), detected_by="r")


@pytest.mark.parametrize("who", ["i", "r"])
def test_certificate_not_matching_the_identity(pki, keys, who):
    wrong = pki.leaf(keys["p256"], "somebody-else.example.com")
    kw = {"leaf_i": wrong} if who == "i" else {"leaf_r": wrong}
    _failed(Pair(*cert_configs(pki, keys["p256"], keys["p256"], **kw)),
            detected_by="r" if who == "i" else "i")


@pytest.mark.parametrize("who", ["i", "r"])
def test_certificate_key_not_the_signing_key(pki, keys, who):
    # a valid certificate for someone else's key: the signature cannot verify
    stolen = pki.leaf(keys["p384"], ID_I if who == "i" else ID_R)
    kw = {"leaf_i": stolen} if who == "i" else {"leaf_r": stolen}
    _failed(Pair(*cert_configs(pki, keys["p256"], keys["p256"], **kw)),
            detected_by="r" if who == "i" else "i")


@pytest.mark.parametrize("who", ["i", "r"])
def test_wrong_pinned_key(keys, who):
    ki, kr = keys["ed25519"], keys["p256"]
    pin_i = keys["ed25519b"].public_key() if who == "r" else kr.public_key()  # what the initiator pins
    pin_r = keys["ed25519b"].public_key() if who == "i" else ki.public_key()
    ci = _cfg(ID_I, ID_R, LocalAuth(private_key=ki), RemoteAuth(public_key=pin_i), side="i")
    cr = _cfg(ID_R, ID_I, LocalAuth(private_key=kr), RemoteAuth(public_key=pin_r), side="r")
    _failed(Pair(ci, cr), detected_by="r" if who == "i" else "i")


@pytest.mark.parametrize("who", ["i", "r"])
def test_auth_method_mismatch_signature_where_psk_expected(keys, who):
    k = keys["p256"]
    psk = b"shared key for the method test"
    signer, verifier = LocalAuth(private_key=k), RemoteAuth(psk=psk)
    if who == "i":   # the initiator signs, the responder wants a PSK
        ci = _cfg(ID_I, ID_R, signer, RemoteAuth(psk=psk), side="i")
        cr = _cfg(ID_R, ID_I, LocalAuth(psk=psk), verifier, side="r")
    else:
        ci = _cfg(ID_I, ID_R, LocalAuth(psk=psk), verifier, side="i")
        cr = _cfg(ID_R, ID_I, signer, RemoteAuth(psk=psk), side="r")
    _failed(Pair(ci, cr), detected_by="r" if who == "i" else "i")


@pytest.mark.parametrize("who", ["i", "r"])
def test_auth_method_mismatch_psk_where_signature_expected(keys, who):
    k = keys["p256"]
    psk = b"shared key for the method test"
    if who == "i":   # the initiator sends a PSK MIC, the responder wants a signature by k
        ci = _cfg(ID_I, ID_R, LocalAuth(psk=psk), RemoteAuth(psk=psk), side="i")
        cr = _cfg(ID_R, ID_I, LocalAuth(psk=psk), RemoteAuth(public_key=k.public_key()), side="r")
    else:
        ci = _cfg(ID_I, ID_R, LocalAuth(psk=psk), RemoteAuth(public_key=k.public_key()), side="i")
        cr = _cfg(ID_R, ID_I, LocalAuth(psk=psk), RemoteAuth(psk=psk), side="r")
    _failed(Pair(ci, cr), detected_by="r" if who == "i" else "i")


def test_missing_certificate(pki, keys):
    ci = _cfg(ID_I, ID_R, LocalAuth(private_key=keys["p256"]), RemoteAuth(trust_store=pki.store), side="i")
    _, cr = cert_configs(pki, keys["p256"], keys["p384"])
    _failed(Pair(ci, cr), detected_by="r")


def test_a_failed_authentication_leaves_other_sas_alone():
    net = Network()
    gw_cfg = IkeConfig(local_id=Identity.parse("gw@test"), local_auth=LocalAuth(psk=b"G" * 16),
                       remote_auth=RemoteAuth(psk=b"C" * 16), remote_id=None,
                       children=[child(local="10.2.0.0/16", remote="10.0.0.0/8")])
    gw = net.add("192.0.2.2", gw_cfg, seed=1)

    def client(ip, seed, psk):
        cfg = IkeConfig(local_id=Identity.parse(f"c{seed}@test"), local_auth=LocalAuth(psk=psk),
                        remote_auth=RemoteAuth(psk=b"G" * 16), remote_id=Identity.parse("gw@test"),
                        children=[child(local=f"10.{seed}.0.0/16", remote="10.2.0.0/16")])
        ep = net.add(ip, cfg, seed=seed)
        ep.connect(cfg, (ip, 500), ADDR_R, net.now)
        net.run()
        return ep

    good = client("192.0.2.10", 10, b"C" * 16)
    assert net.of("192.0.2.10", ev.IkeSaEstablished)
    bad = client("192.0.2.11", 11, b"wrong" * 4)
    assert net.of("192.0.2.11", ev.IkeSaDeleted)[0].notify_type == NotifyType.AUTHENTICATION_FAILED
    [survivor] = gw.connections.values()
    assert survivor.established and survivor.remote_id == Identity.parse("c10@test")
    [conn] = good.connections.values()
    conn.check_liveness(net.now)
    net.run()
    assert net.of("192.0.2.10", ev.PeerAlive) and not bad.connections


def test_signature_hash_algorithms_are_announced_both_ways(pki, keys):
    from ikecore.protocol.auth import decode_hash_algorithms
    p = Pair(*cert_configs(pki, keys["p256"], keys["ed25519"]))
    _established(p)
    for tag in ("i>r", "r>i"):
        init = next(parse_message(d) for t, d in p.trace if t == tag)
        n = init.notify(NotifyType.SIGNATURE_HASH_ALGORITHMS)
        assert n is not None and decode_hash_algorithms(n.data) == [2, 3, 4, 5]
    assert p.conn("i").peer_signature_hashes == p.conn("r").peer_signature_hashes == [2, 3, 4, 5]


def test_the_signer_follows_the_verifiers_hash_list(pki, keys, spy):
    # the responder verifies SHA-384 only: a P-256 initiator signs with SHA-384, not its natural SHA-256
    ci, cr = cert_configs(pki, keys["p256"], keys["p256"], cfg_r={"signature_hashes": (3,)})
    _established(Pair(ci, cr))
    assert spy[0] == (AuthMethod.DIGITAL_SIGNATURE, "ecdsa-with-SHA384")


def test_a_signature_with_an_unannounced_hash_fails(pki, keys, monkeypatch):
    # an initiator that ignores the list and signs with SHA-256 anyway is refused
    ci, cr = cert_configs(pki, keys["p256"], keys["p256"], cfg_r={"signature_hashes": (3,)})
    monkeypatch.setattr(ike_auth, "_signature_hash", lambda key, peer: 2)
    _failed(Pair(ci, cr), detected_by="r")


@pytest.mark.parametrize("family", [4, 6])
def test_fragment_size_bounds_the_whole_ip_packet(pki, keys, family):
    """fragment_size = 1280 (the IPv6 minimum MTU): every datagram plus its IP
    header (20 or 40), UDP header (8) and, on the NAT-T port, the non-ESP
    marker (already in the traced datagram) fits 1280."""
    size = {"fragment_size": 1280}
    ci, cr = cert_configs(pki, keys["rsa"], keys["rsa2"], cfg_i=size, cfg_r=size)
    addrs = {} if family == 4 else {"addr_i": ("2001:db8::1", 500), "addr_r": ("2001:db8::2", 500)}
    p = Pair(ci, cr, **addrs)
    _established(p)
    ip = 20 if family == 4 else 40
    assert _fragments(p, "i>r") or _fragments(p, "r>i")          # the certificates needed fragments
    assert all(len(d) + ip + 8 <= 1280 for _, d in p.trace)
    assert max(len(d) for _, d in p.trace) + ip + 8 > 1200   # and the budget is used, not wasted


def test_message_budget():
    from ikecore.protocol.fragments import message_budget
    assert message_budget(1280, "2001:db8::1", natt=True) == 1280 - 40 - 8 - 4
    assert message_budget(1280, "192.0.2.1", natt=False) == 1280 - 20 - 8
