"""IKE_SA_INIT + IKE_AUTH + first Child SA between two in-memory endpoints."""
import pytest

from ike_pair import Pair, configs
from ikecore.protocol import events as ev


@pytest.mark.parametrize("ike, esp", [
    ("aes256gcm16-prfsha256-x25519", "aes256gcm16"),
    ("aes128-sha256-modp2048", "aes128-sha256"),
    ("chacha20poly1305-prfsha256-ecp256", "chacha20poly1305"),
    ("aes256gcm16-prfsha384-ecp384", "aes128gcm16-esn"),
])
def test_handshake_and_child(ike, esp):
    p = Pair(*configs(ike, esp))
    p.connect()
    assert p.run(p.established)
    ci, cr = p.conn("i"), p.conn("r")
    assert ci.keys.sk_d == cr.keys.sk_d and ci.keys.sk_ei == cr.keys.sk_ei
    [child_i] = p.of(ev.ChildSaInstalled, "i")
    [child_r] = p.of(ev.ChildSaInstalled, "r")
    a, b = child_i.child, child_r.child
    assert a.spi_in == b.spi_out and a.spi_out == b.spi_in
    assert a.outbound_keys == b.inbound_keys
    out_i, in_i = a.esp_sas()
    out_r, in_r = b.esp_sas()
    packet = out_i.encrypt(b"\x45" + bytes(39), 4)
    assert in_r.decrypt(packet) == (b"\x45" + bytes(39), 4)
    assert in_i.decrypt(out_r.encrypt(b"reply", 4)) == (b"reply", 4)
