"""Fuzzing parse_message, SK opening and reassembly (hypothesis; atheris optional).

Property: on any input the codec either returns a message or raises a
ParseError subclass - never IndexError, struct.error, a bare ValueError, a hang.
A message that parses re-encodes, and the re-encoding parses to the same object.

CI runs a bounded number of examples (IKECORE_FUZZ_EXAMPLES, default 400 per
property). For a long run: ``IKECORE_FUZZ_EXAMPLES=200000 pytest -k fuzz``, or
with atheris installed ``python tests/protocol/test_fuzz_parser.py -max_total_time=600``.
"""
import os
import sys

if __name__ == "__main__":      # run as an atheris script from anywhere
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def _instrumentation():
    """Coverage instrumentation of ikecore when run as an atheris script."""
    if __name__ == "__main__":
        import atheris
        return atheris.instrument_imports(include=["ikecore"])
    return contextlib.nullcontext()


with _instrumentation():
    from ikecore.crypto import Encr, Integ, SkCipher
    from ikecore.errors import ParseError
    from ikecore.protocol import Message, Reassembler, fragment_message, parse_message
    from ikecore.protocol.examples import ike_auth_response, ike_sa_init_request

sys.path.insert(0, os.path.dirname(__file__))
from test_codec_roundtrip import messages  # noqa: E402

N = int(os.environ.get("IKECORE_FUZZ_EXAMPLES", "400"))
FUZZ = settings(max_examples=N, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

GCM = SkCipher(Encr.AES_GCM_16, bytes(range(36)))
CBC = SkCipher(Encr.AES_CBC, bytes(range(16)), Integ.HMAC_SHA2_256_128, bytes(range(32)))

SEEDS = [
    ike_sa_init_request().encode(),
    ike_auth_response(encrypted=False).encode(),
    ike_auth_response().encode(GCM),
    ike_auth_response().encode(CBC),
]
FRAGMENTS = [f for f in fragment_message(ike_auth_response(), GCM, 120)]


def check_one(data: bytes) -> None:
    """The fuzz target: parse, and if that works, re-encode, re-parse, decrypt."""
    try:
        m = parse_message(data)
    except ParseError:
        return
    raw = m.encode()
    again = parse_message(raw)
    assert again == m
    assert parse_message(again.encode()).encode() == raw
    if m.sk is not None and not m.is_fragment:
        for c in (GCM, CBC):
            try:
                m.decrypt(c)
            except ParseError:
                pass


def mutate(seed: bytes, ops) -> bytes:
    b = bytearray(seed)
    for kind, pos, val in ops:
        if not b:
            b.append(val)
            continue
        pos %= len(b)
        if kind == 0:
            b[pos] ^= 1 << (val % 8)
        elif kind == 1:
            b[pos] = val
        elif kind == 2:
            b.insert(pos, val)
        elif kind == 3:
            del b[pos]
        elif kind == 4 and pos + 1 < len(b):           # rewrite a 16-bit length-like field
            b[pos:pos + 2] = (val * 257 % 65536).to_bytes(2, "big")
        elif kind == 5:
            del b[pos:]
    return bytes(b)


ops = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 1 << 16), st.integers(0, 255)),
               min_size=1, max_size=6)


@FUZZ
@given(data=st.binary(max_size=600))
def test_fuzz_random_bytes(data):
    check_one(data)


@FUZZ
@given(data=st.binary(max_size=300))
def test_fuzz_random_bytes_after_a_valid_header(data):
    hdr = SEEDS[0][:24]
    for first in (33, 41, 46, 53, 99):
        raw = hdr[:16] + bytes([first]) + hdr[17:24] + (28 + len(data)).to_bytes(4, "big") + data
        check_one(raw)


@FUZZ
@given(seed=st.sampled_from(SEEDS + FRAGMENTS), ops=ops)
def test_fuzz_mutated_messages(seed, ops):
    data = mutate(seed, ops)
    check_one(data)
    # keep the IKE header Length truthful so mutations reach the payloads
    if len(data) >= 28:
        check_one(data[:24] + len(data).to_bytes(4, "big") + data[28:])


@FUZZ
@given(msg=messages(max_payloads=5), ops=ops)
def test_fuzz_mutated_generated_messages(msg, ops):
    raw = msg.encode()
    data = mutate(raw, ops)
    check_one(data[:24] + len(data).to_bytes(4, "big") + data[28:] if len(data) >= 28 else data)


@FUZZ
@given(frags=st.lists(st.tuples(st.sampled_from(range(len(FRAGMENTS))), ops), max_size=12))
def test_fuzz_reassembly(frags):
    r = Reassembler(max_fragments=16)
    for i, (idx, o) in enumerate(frags):
        data = FRAGMENTS[idx] if i % 2 else mutate(FRAGMENTS[idx], o)
        try:
            m = parse_message(data)
            if m.is_fragment:
                out = r.add(m, GCM, float(i))
                if out is not None:
                    assert out.inner is not None
        except ParseError:
            pass
    assert r.pending_bytes <= r.max_pending * r.max_message_size


@FUZZ
@given(plain=st.binary(max_size=200), first=st.integers(0, 255))
def test_fuzz_sk_inner_chain(plain, first):
    """Authenticated garbage inside SK: the inner parser must hold up too."""
    from ikecore.protocol.message import _gen_pack, _hdr_pack
    sealed_len = GCM.sealed_length(len(plain))
    total = 28 + 4 + sealed_len
    aad = _hdr_pack(bytes(range(8)), bytes(8), 46, 0x20, 37, 0, 1, total) + \
        _gen_pack(first, 0, 4 + sealed_len)
    m = parse_message(aad + GCM.seal(aad, plain))
    try:
        m.decrypt(GCM)
    except ParseError:
        return
    assert m.inner is not None
    Message(m.spi_i, m.spi_r, 37, 0, 1, [], m.inner).encode(GCM)


@pytest.mark.slow
def test_atheris_smoke():
    """A short atheris run when atheris is installed (coverage-guided)."""
    pytest.importorskip("atheris")
    import subprocess
    out = subprocess.run([sys.executable, __file__, "-runs=20000"], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]


def _atheris_main():  # pragma: no cover - run by hand or by test_atheris_smoke
    import atheris

    def target(data: bytes) -> None:
        check_one(data)

    argv = list(sys.argv)
    if not any(not a.startswith("-") for a in argv[1:]):
        # no corpus given: start from the seed messages
        import tempfile
        corpus = tempfile.mkdtemp(prefix="ikecore-fuzz-")
        for i, seed in enumerate(SEEDS + FRAGMENTS):
            with open(os.path.join(corpus, f"seed{i}"), "wb") as f:
                f.write(seed)
        argv.append(corpus)
    atheris.Setup(argv, target)
    atheris.Fuzz()


if __name__ == "__main__":  # pragma: no cover
    _atheris_main()
