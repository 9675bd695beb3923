"""IKEv2 Diffie-Hellman key exchange (Transform Type 4) on top of ``cryptography``.

Groups: 14 and 15 (MODP, RFC 3526), 19/20/21 (ECP, RFC 5903), 31 (Curve25519,
RFC 8031). Wire formats follow RFC 7296 §3.4 and the group RFCs:

==========  ======================================  ===========================
group       KE payload data                         shared secret g^ir
==========  ======================================  ===========================
MODP        g^x mod p, left-padded to len(p)        left-padded to len(p)
ECP         x | y, each len(field), no 0x04 prefix  x only (RFC 5903 §7)
X25519      32-octet u-coordinate (RFC 7748 §5)     32-octet X25519 output
==========  ======================================  ===========================

The sans-I/O core hands randomness in: ``KeyExchange.generate(group, rng)``
derives the private key from ``rng(n)`` so runs are reproducible in tests.
"""
from __future__ import annotations

import os
import warnings
from typing import Callable

from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.utils import CryptographyDeprecationWarning

# cryptography >= 50 marks finite-field DH deprecated; IKEv2 still needs MODP
# group 14 (RFC 8247 §2.4: MUST), e.g. for strongSwan's default proposals.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", CryptographyDeprecationWarning)
    from cryptography.hazmat.primitives.asymmetric.dh import (DHParameterNumbers, DHPrivateKey,
                                                              DHPrivateNumbers, DHPublicNumbers)

from ikecore.errors import InvalidKeyExchangeData, UnsupportedAlgorithm

__all__ = [
    "SUPPORTED_GROUPS",
    "KeyExchange",
    "ke_data_length",
    "shared_secret_length",
]

Rng = Callable[[int], bytes]

# RFC 3526 §3 (group 14, 2048-bit) and §4 (group 15, 3072-bit); generator 2.
_MODP_2048_PRIME = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05"
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB"
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718"
    "3995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF",
    16,
)
_MODP_3072_PRIME = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05"
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB"
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718"
    "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33"
    "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7"
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864"
    "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2"
    "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
    16,
)
_MODP_GENERATOR = 2


class _ModpGroup:
    def __init__(self, prime: int, exponent_bits: int) -> None:
        self.prime = prime
        self.length = (prime.bit_length() + 7) // 8
        # NIST SP 800-56A rev3 §5.6.1.1.4: a private exponent of at least twice
        # the group's security strength (112 / 128 bits) is enough for safe primes.
        self.exponent_bits = exponent_bits
        self.parameters = DHParameterNumbers(prime, _MODP_GENERATOR).parameters()


class _EcpGroup:
    def __init__(self, curve: ec.EllipticCurve, order: int) -> None:
        self.curve = curve
        self.order = order
        self.coordinate_length = (curve.key_size + 7) // 8


_MODP_GROUPS = {
    14: _ModpGroup(_MODP_2048_PRIME, 256),
    15: _ModpGroup(_MODP_3072_PRIME, 256),
}

# Group orders n from SEC 2 / FIPS 186-4 D.1.2; needed to map rng output to a scalar.
_ECP_GROUPS = {
    19: _EcpGroup(
        ec.SECP256R1(),
        0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    ),
    20: _EcpGroup(
        ec.SECP384R1(),
        int("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF"
            "581A0DB248B0A77AECEC196ACCC52973", 16),
    ),
    21: _EcpGroup(
        ec.SECP521R1(),
        int("01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
            "A51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409", 16),
    ),
}

_CURVE25519_GROUP = 31
_X25519_LENGTH = 32

SUPPORTED_GROUPS: frozenset[int] = frozenset(
    (*_MODP_GROUPS, *_ECP_GROUPS, _CURVE25519_GROUP)
)


def _check_group(group: int) -> None:
    if group not in SUPPORTED_GROUPS:
        raise UnsupportedAlgorithm(f"D-H group {group} is not supported")


def ke_data_length(group: int) -> int:
    """Octets of Key Exchange Data in a KE payload for ``group``."""
    _check_group(group)
    if group in _MODP_GROUPS:
        return _MODP_GROUPS[group].length
    if group in _ECP_GROUPS:
        return 2 * _ECP_GROUPS[group].coordinate_length
    return _X25519_LENGTH


def shared_secret_length(group: int) -> int:
    """Octets of g^ir as fed to SKEYSEED for ``group``."""
    _check_group(group)
    if group in _ECP_GROUPS:
        return _ECP_GROUPS[group].coordinate_length
    return ke_data_length(group)


def _os_rng(n: int) -> bytes:
    return os.urandom(n)


class KeyExchange:
    """One side's ephemeral D-H key for one IKE exchange.

    Build it with :meth:`generate` (fresh key) or :meth:`from_private` (known
    answer tests); send :attr:`public_bytes` in the KE payload; feed the peer's
    KE data to :meth:`shared_secret`.
    """

    __slots__ = ("_group", "_private_key", "_public_bytes")

    def __init__(self, group: int, private_key: object) -> None:
        # Internal: use generate() / from_private().
        self._group = group
        self._private_key = private_key
        self._public_bytes = _encode_public(group, private_key)

    # --- construction ----------------------------------------------------------

    @classmethod
    def generate(cls, group: int, rng: Rng | None = None) -> "KeyExchange":
        """A fresh private key for ``group``.

        ``rng(n) -> bytes`` supplies the randomness; without it the OS CSPRNG
        is used. The same ``rng`` output always yields the same key.
        """
        draw = rng or _os_rng
        if group == _CURVE25519_GROUP:
            # the usual group, first: one key pair per IKE SA made (handshake, rekey, clone)
            raw = draw(_X25519_LENGTH)
            if len(raw) != _X25519_LENGTH:
                _exact(raw, _X25519_LENGTH, "rng output")
            return cls._x25519(x25519.X25519PrivateKey.from_private_bytes(raw))
        _check_group(group)
        if group in _MODP_GROUPS:
            params = _MODP_GROUPS[group]
            exponent = 0
            while exponent < 2:  # 0 and 1 would give a public value of 1 or g
                exponent = int.from_bytes(draw(params.exponent_bits // 8), "big")
            return cls(group, _modp_private_key(params, exponent))
        if group in _ECP_GROUPS:
            params = _ECP_GROUPS[group]
            # 64 extra bits make the reduction mod n statistically uniform
            # (FIPS 186-4 B.4.1); the +1 keeps the scalar nonzero.
            raw = int.from_bytes(draw(params.coordinate_length + 8), "big")
            scalar = raw % (params.order - 1) + 1
            return cls(group, ec.derive_private_key(scalar, params.curve))
        raise AssertionError("unreachable: every supported group is handled above")

    @classmethod
    def _x25519(cls, private_key: x25519.X25519PrivateKey) -> "KeyExchange":
        kex = cls.__new__(cls)
        kex._group = _CURVE25519_GROUP
        kex._private_key = private_key
        kex._public_bytes = private_key.public_key().public_bytes_raw()
        return kex

    @classmethod
    def from_private(cls, group: int, private_bytes: bytes) -> "KeyExchange":
        """Rebuild a key from its private value (big-endian exponent / scalar,
        or the raw 32-octet X25519 private key), as published in test vectors."""
        _check_group(group)
        if group in _MODP_GROUPS:
            params = _MODP_GROUPS[group]
            exponent = int.from_bytes(private_bytes, "big")
            if not 2 <= exponent < params.prime - 1:
                raise ValueError("MODP private exponent out of range")
            return cls(group, _modp_private_key(params, exponent))
        if group in _ECP_GROUPS:
            params = _ECP_GROUPS[group]
            scalar = int.from_bytes(private_bytes, "big")
            if not 1 <= scalar < params.order:
                raise ValueError("ECP private scalar out of range")
            return cls(group, ec.derive_private_key(scalar, params.curve))
        return cls(group, x25519.X25519PrivateKey.from_private_bytes(
            _exact(private_bytes, _X25519_LENGTH, "X25519 private key")))

    # --- use -----------------------------------------------------------------------

    @property
    def group(self) -> int:
        return self._group

    @property
    def public_bytes(self) -> bytes:
        """Key Exchange Data for our KE payload."""
        return self._public_bytes

    def shared_secret(self, peer_ke_data: bytes) -> bytes:
        """g^ir from the peer's Key Exchange Data.

        Raises :class:`InvalidKeyExchangeData` (a ParseError) when the peer's
        value has the wrong length or is not a valid public value.
        """
        group = self._group
        if group == _CURVE25519_GROUP and len(peer_ke_data) == _X25519_LENGTH:
            return self._x25519_shared_secret(peer_ke_data)     # the usual case, first
        expected = ke_data_length(group)
        if len(peer_ke_data) != expected:
            raise InvalidKeyExchangeData(
                f"group {group} KE data must be {expected} octets, got {len(peer_ke_data)}")
        if group in _MODP_GROUPS:
            return self._modp_shared_secret(_MODP_GROUPS[group], peer_ke_data)
        if group in _ECP_GROUPS:
            return self._ecp_shared_secret(_ECP_GROUPS[group], peer_ke_data)
        return self._x25519_shared_secret(peer_ke_data)

    def __repr__(self) -> str:
        return f"KeyExchange(group={self._group})"

    # --- per family ----------------------------------------------------------------

    def _modp_shared_secret(self, params: _ModpGroup, peer_ke_data: bytes) -> bytes:
        peer_value = int.from_bytes(peer_ke_data, "big")
        # 1 and p-1 generate the order-2 subgroup; with a safe prime every other
        # value in (1, p-1) lies in a subgroup of order >= q, so this is enough.
        if not 1 < peer_value < params.prime - 1:
            raise InvalidKeyExchangeData("MODP public value out of range (1, p-1)")
        peer_key = DHPublicNumbers(
            peer_value, params.parameters.parameter_numbers()).public_key()
        secret = self._private_key.exchange(peer_key)
        return secret.rjust(params.length, b"\0")

    def _ecp_shared_secret(self, params: _EcpGroup, peer_ke_data: bytes) -> bytes:
        try:
            peer_key = ec.EllipticCurvePublicKey.from_encoded_point(
                params.curve, b"\x04" + peer_ke_data)
        except ValueError as exc:
            raise InvalidKeyExchangeData(
                f"ECP public value is not a point on {params.curve.name}") from exc
        # ECDH output is the x coordinate, already fixed-length (RFC 5903 §7).
        return self._private_key.exchange(ec.ECDH(), peer_key)

    def _x25519_shared_secret(self, peer_ke_data: bytes) -> bytes:
        peer_key = x25519.X25519PublicKey.from_public_bytes(peer_ke_data)
        try:
            secret = self._private_key.exchange(peer_key)
        except ValueError as exc:
            # OpenSSL refuses a low-order peer point (all-zero output); RFC 8031 §3.2.
            raise InvalidKeyExchangeData("X25519 shared secret is all zero") from exc
        if not any(secret):
            raise InvalidKeyExchangeData("X25519 shared secret is all zero")
        return secret


def _modp_private_key(params: _ModpGroup, exponent: int) -> DHPrivateKey:
    parameter_numbers = params.parameters.parameter_numbers()
    public_value = pow(_MODP_GENERATOR, exponent, params.prime)
    return DHPrivateNumbers(
        exponent, DHPublicNumbers(public_value, parameter_numbers)).private_key()


def _encode_public(group: int, private_key: object) -> bytes:
    if group in _MODP_GROUPS:
        value = private_key.public_key().public_numbers().y
        return value.to_bytes(_MODP_GROUPS[group].length, "big")
    if group in _ECP_GROUPS:
        point = private_key.public_key().public_bytes(
            Encoding.X962, PublicFormat.UncompressedPoint)
        return point[1:]  # drop the SEC1 0x04 marker: RFC 5903 §7 sends x | y
    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _exact(data: bytes, length: int, what: str) -> bytes:
    if len(data) != length:
        raise ValueError(f"{what} must be {length} octets, got {len(data)}")
    return data
