"""RSA-2048 certificates for the benchmarks that authenticate with signatures:
one CA and a leaf per identity (SAN = the identity), made once per process."""
from __future__ import annotations

import datetime
import functools

CERT_TIME = datetime.datetime(2026, 6, 1, tzinfo=datetime.timezone.utc)   # validity is checked at this time


@functools.lru_cache(maxsize=None)
def rsa_pki(identities: tuple[str, ...]) -> tuple[bytes, dict]:
    """(CA certificate DER, {identity: (private key, leaf certificate DER)})."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def issue(subject, key, issuer, issuer_key, ca, san=None):
        b = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(CERT_TIME - datetime.timedelta(days=1))
             .not_valid_after(CERT_TIME + datetime.timedelta(days=365))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ca:
            b = b.add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                                critical=True)
        if san:
            b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
        return b.sign(issuer_key, hashes.SHA256()).public_bytes(Encoding.DER)

    ca_key = rsa.generate_private_key(65537, 2048)
    ca = issue("bench CA", ca_key, "bench CA", ca_key, True)
    leaves = {}
    for who in identities:
        key = rsa.generate_private_key(65537, 2048)
        leaves[who] = (key, issue(who, key, "bench CA", ca_key, False, san=who))
    return ca, leaves


__all__ = ["CERT_TIME", "rsa_pki"]
