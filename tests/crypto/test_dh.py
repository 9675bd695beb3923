"""D-H key exchange: RFC 5903 / RFC 8031 known answers, both sides agree,
wire lengths, and rejection of bad peer values."""
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from ikecore.crypto import dh
from ikecore.crypto.dh import SUPPORTED_GROUPS, KeyExchange, ke_data_length, shared_secret_length
from ikecore.errors import InvalidKeyExchangeData, ParseError, UnsupportedAlgorithm

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
RFC5903 = json.loads((VECTORS / "rfc5903_ecp_groups_19_20_21.json").read_text())["cases"]
RFC8031 = json.loads((VECTORS / "rfc8031_x25519_ikev2.json").read_text())

ALL_GROUPS = sorted(SUPPORTED_GROUPS)
MODP = {14: dh._MODP_2048_PRIME, 15: dh._MODP_3072_PRIME}


def counter_rng(seed: bytes):
    """Deterministic rng(n) for reproducible keys."""
    state = {"counter": 0}

    def rng(n: int) -> bytes:
        out = b""
        while len(out) < n:
            state["counter"] += 1
            out += hashlib.sha256(seed + state["counter"].to_bytes(4, "big")).digest()
        return out[:n]
    return rng


# --- table ------------------------------------------------------------------------

def test_supported_groups_and_lengths():
    assert SUPPORTED_GROUPS == frozenset({14, 15, 19, 20, 21, 31})
    assert {g: ke_data_length(g) for g in ALL_GROUPS} == {
        14: 256, 15: 384, 19: 64, 20: 96, 21: 132, 31: 32}
    assert {g: shared_secret_length(g) for g in ALL_GROUPS} == {
        14: 256, 15: 384, 19: 32, 20: 48, 21: 66, 31: 32}


@pytest.mark.parametrize("group", [0, 1, 2, 5, 16, 32, 65535])
def test_unknown_group_is_unsupported(group):
    with pytest.raises(UnsupportedAlgorithm):
        ke_data_length(group)
    with pytest.raises(UnsupportedAlgorithm):
        KeyExchange.generate(group)
    with pytest.raises(UnsupportedAlgorithm):
        KeyExchange.from_private(group, b"\x01" * 32)


# --- both sides agree ------------------------------------------------------------

@pytest.mark.parametrize("group", ALL_GROUPS)
def test_both_sides_agree(group):
    initiator = KeyExchange.generate(group)
    responder = KeyExchange.generate(group)
    assert initiator.group == responder.group == group
    assert len(initiator.public_bytes) == ke_data_length(group)
    g_ir = initiator.shared_secret(responder.public_bytes)
    assert g_ir == responder.shared_secret(initiator.public_bytes)
    assert len(g_ir) == shared_secret_length(group)
    assert initiator.public_bytes != responder.public_bytes


@pytest.mark.parametrize("group", ALL_GROUPS)
def test_rng_makes_keys_reproducible(group):
    first = KeyExchange.generate(group, counter_rng(b"a"))
    again = KeyExchange.generate(group, counter_rng(b"a"))
    other = KeyExchange.generate(group, counter_rng(b"b"))
    assert first.public_bytes == again.public_bytes
    assert first.public_bytes != other.public_bytes
    assert first.shared_secret(other.public_bytes) == other.shared_secret(first.public_bytes)


def test_repr_does_not_show_key_material():
    key = KeyExchange.generate(19)
    assert repr(key) == "KeyExchange(group=19)"


# --- known answers ---------------------------------------------------------------

@pytest.mark.parametrize("case", RFC5903, ids=lambda c: f"group{c['group']}")
def test_rfc5903_known_answer(case):
    group = case["group"]
    initiator = KeyExchange.from_private(group, bytes.fromhex(case["i"]))
    responder = KeyExchange.from_private(group, bytes.fromhex(case["r"]))
    assert initiator.public_bytes.hex() == case["gix"] + case["giy"]
    assert responder.public_bytes.hex() == case["grx"] + case["gry"]
    # KE payload = generic header (4) | group (2) | reserved (2) | data
    for payload, key in ((case["KEi_payload"], initiator), (case["KEr_payload"], responder)):
        raw = bytes.fromhex(payload)
        assert int.from_bytes(raw[4:6], "big") == group
        assert raw[8:] == key.public_bytes
    expected = bytes.fromhex(case["girx_shared_secret"])
    assert initiator.shared_secret(responder.public_bytes) == expected
    assert responder.shared_secret(initiator.public_bytes) == expected


def test_rfc8031_known_answer():
    initiator = KeyExchange.from_private(31, bytes.fromhex(RFC8031["random_i"]))
    responder = KeyExchange.from_private(31, bytes.fromhex(RFC8031["random_r"]))
    assert initiator.public_bytes.hex() == RFC8031["ke_data_i"]
    assert responder.public_bytes.hex() == RFC8031["ke_data_r"]
    expected = bytes.fromhex(RFC8031["shared_secret_g_ir"])
    assert initiator.shared_secret(responder.public_bytes) == expected
    assert responder.shared_secret(initiator.public_bytes) == expected


def test_x25519_masks_the_top_bit_of_peer_value():
    # RFC 8031 §3.2 / RFC 7748 §5: the receiver ignores the most significant bit.
    initiator = KeyExchange.from_private(31, bytes.fromhex(RFC8031["random_i"]))
    peer = bytearray(bytes.fromhex(RFC8031["ke_data_r"]))
    peer[31] |= 0x80
    assert initiator.shared_secret(bytes(peer)).hex() == RFC8031["shared_secret_g_ir"]


def _rfc3526_prime(bits: int, k: int) -> int:
    """p = 2^n - 2^(n-64) - 1 + 2^64 * (floor(2^(n-130) * pi) + k), RFC 3526."""
    scale = 1 << (bits - 130 + 64)  # 64 guard bits

    def arctan_inverse(x: int) -> int:
        total = term = scale // x
        n, sign = 1, -1
        while term:
            term //= x * x
            n += 2
            total += sign * (term // n)
            sign = -sign
        return total
    pi_scaled = (16 * arctan_inverse(5) - 4 * arctan_inverse(239)) >> 64
    return 2**bits - 2**(bits - 64) - 1 + 2**64 * (pi_scaled + k)


@pytest.mark.parametrize("group,bits,k", [(14, 2048, 124476), (15, 3072, 1690314)])
def test_modp_primes_match_rfc3526_definition(group, bits, k):
    prime = MODP[group]
    assert prime == _rfc3526_prime(bits, k)
    assert prime.bit_length() == bits
    # safe prime: p and (p-1)/2 both pass a Fermat test
    assert pow(2, prime - 1, prime) == 1
    q = (prime - 1) // 2
    assert pow(3, q - 1, q) == 1


@pytest.mark.parametrize("group", [19, 20, 21])
def test_ecp_group_orders(group):
    params = dh._ECP_GROUPS[group]
    # (n-1)·G = -G: same x, other y. A wrong n would give a different point.
    g = ec.derive_private_key(1, params.curve).public_key().public_numbers()
    minus_g = ec.derive_private_key(params.order - 1, params.curve).public_key().public_numbers()
    assert (g.x, g.y) != (minus_g.x, minus_g.y) and g.x == minus_g.x


@pytest.mark.parametrize("group", [14, 15])
def test_modp_values_are_left_padded(group):
    prime = MODP[group]
    # exponent 2 with peer value 2: public g^2 = 4 and g^ir = 4, both tiny numbers
    key = KeyExchange.from_private(group, b"\x02")
    length = ke_data_length(group)
    assert key.public_bytes == (4).to_bytes(length, "big")
    assert key.shared_secret((2).to_bytes(length, "big")) == (4).to_bytes(length, "big")
    # and a random exchange matches plain modular arithmetic
    exponent = int.from_bytes(counter_rng(b"x")(32), "big")
    mine = KeyExchange.from_private(group, exponent.to_bytes(32, "big"))
    peer = KeyExchange.generate(group)
    peer_value = int.from_bytes(peer.public_bytes, "big")
    assert mine.shared_secret(peer.public_bytes) == pow(peer_value, exponent, prime).to_bytes(
        length, "big")


# --- bad peer data ----------------------------------------------------------------

@pytest.mark.parametrize("group", ALL_GROUPS)
def test_wrong_length_is_rejected(group):
    key = KeyExchange.generate(group)
    good = KeyExchange.generate(group).public_bytes
    for bad in (b"", good[:-1], good + b"\x00", b"\x04" + good):
        with pytest.raises(InvalidKeyExchangeData) as info:
            key.shared_secret(bad)
        assert isinstance(info.value, ParseError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("group", [14, 15])
def test_modp_out_of_range_values_are_rejected(group):
    key = KeyExchange.generate(group)
    prime, length = MODP[group], ke_data_length(group)
    for value in (0, 1, prime - 1, prime, prime + 1, 2**(8 * length) - 1):
        with pytest.raises(InvalidKeyExchangeData):
            key.shared_secret(value.to_bytes(length, "big"))


@pytest.mark.parametrize("group", [19, 20, 21])
def test_ecp_points_off_the_curve_are_rejected(group):
    key = KeyExchange.generate(group)
    good = bytearray(KeyExchange.generate(group).public_bytes)
    half = len(good) // 2
    off_curve = bytearray(good)
    off_curve[-1] ^= 0x01  # change y only
    for bad in (bytes(off_curve), bytes(len(good)), b"\xff" * len(good),
                bytes(good[:half]) + bytes(half)):
        with pytest.raises(InvalidKeyExchangeData):
            key.shared_secret(bad)


@pytest.mark.parametrize("low_order_point", [
    "00" * 32,
    "01" + "00" * 31,
    # order-8 points on Curve25519 (RFC 7748 §6.1 discussion; libsodium blacklist)
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
])
def test_x25519_low_order_points_are_rejected(low_order_point):
    key = KeyExchange.generate(31)
    with pytest.raises(InvalidKeyExchangeData):
        key.shared_secret(bytes.fromhex(low_order_point))


def test_from_private_range_checks():
    with pytest.raises(ValueError):
        KeyExchange.from_private(14, b"\x01")
    with pytest.raises(ValueError):
        KeyExchange.from_private(19, b"\x00" * 32)
    with pytest.raises(ValueError):
        KeyExchange.from_private(19, dh._ECP_GROUPS[19].order.to_bytes(32, "big"))
    with pytest.raises(ValueError):
        KeyExchange.from_private(31, b"\x01" * 31)
