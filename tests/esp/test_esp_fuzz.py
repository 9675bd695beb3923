"""Hostile input to the C data path: arbitrary packets, and packet vectors whose
(writable) offsets, lengths and statuses say anything. Every outcome must be a
status or an ikecore error; under .ci/sanitize ASan/UBSan check each access."""
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from ikecore.errors import IkeError
from ikecore.esp import EspSA, InboundSATable, PacketVector

SUITES = [(20, os.urandom(20), None, None), (28, os.urandom(36), None, None),
          (12, os.urandom(16), 12, os.urandom(32))]


def sa_pair(i):
    encr, key, integ, ikey = SUITES[i]
    out = EspSA(0x1000 + i, encr, key, integ_id=integ, integ_key=ikey, direction="out")
    inb = EspSA(0x1000 + i, encr, key, integ_id=integ, integ_key=ikey, esn=False, replay_window=64,
                direction="in")
    return out, inb


PAIRS = [sa_pair(i) for i in range(len(SUITES))]


@settings(max_examples=300, deadline=None)
@given(suite=st.integers(0, len(SUITES) - 1), data=st.binary(max_size=300), keep_spi=st.booleans())
def test_single_decrypt_of_garbage(suite, data, keep_spi):
    _, inb = PAIRS[suite]
    if keep_spi:
        data = (0x1000 + suite).to_bytes(4, "big") + data
    try:
        inb.decrypt(data)
    except (IkeError, ValueError):
        pass


@settings(max_examples=200, deadline=None)
@given(suite=st.integers(0, len(SUITES) - 1),
       fields=st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 5000), st.integers(-20, 8)),
                       min_size=1, max_size=8),
       payload=st.binary(min_size=0, max_size=64))
def test_vectors_with_lying_offsets_and_lengths(suite, fields, payload):
    out, inb = PAIRS[suite]
    vec = PacketVector(capacity=8, slot_size=256, headroom=32)
    good = out.encrypt(payload, 4)
    vec.load([good] * len(fields))
    for i, (off, length, status) in enumerate(fields):
        vec.offsets[i], vec.lengths[i], vec.status[i] = off, length, status
    for op in (lambda: inb.decrypt_batch(vec), lambda: InboundSATable([inb]).decrypt_batch(vec),
               lambda: out.encrypt_batch(vec, next_header=4), vec.classify_udpencap, vec.udp_unwrap,
               lambda: vec.udp_wrap(), vec.mark_pending):
        try:
            op()
        except (IkeError, ValueError):
            pass
    for i in range(len(fields)):
        assert vec.status[i] <= 8          # a defined status or a negative error code
