"""Key export in the Wireshark/tshark UAT formats (strongSwan save-keys style),
checked against the SAs' keys and, when tshark is installed, by tshark
decrypting an ikecore capture with the exported keys."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess

import pytest

from aio_helpers import exchange_traffic, ike_configs, initiator, responder, run
from ikecore.aio.keylog import IKE_TABLE, ESP_TABLE, KeyLog, esp_row, ike_row, tshark_options
from ikecore.aio.pcap import PcapWriter, ip_udp_packet
from ikecore.crypto.keyschedule import IkeKeys
from ikecore.protocol import events as ev
from ikecore.errors import ConfigError
from ikecore.protocol.negotiation import EspSuite, IkeSuite


def test_row_formats():
    keys = IkeKeys(5, b"d" * 32, b"", b"", bytes(range(36)), bytes(range(1, 37)), b"p" * 32, b"q" * 32, None)
    row = ike_row(bytes.fromhex("0123456789abcdef"), bytes.fromhex("fedcba9876543210"),
                  IkeSuite(20, 256, 5, 0, 31), keys)
    assert row == ("0123456789abcdef,fedcba9876543210," + bytes(range(36)).hex() + "," +
                   bytes(range(1, 37)).hex() + ',"AES-GCM-256 with 16 octet ICV [RFC5282]",,,"NONE [RFC4306]"')
    cbc = keys._replace(sk_ai=b"\x01" * 32, sk_ar=b"\x02" * 32, sk_ei=b"\x03" * 16, sk_er=b"\x04" * 16)
    row = ike_row(b"\x01" * 8, b"\x02" * 8, IkeSuite(12, 128, 5, 12, 19), cbc)
    assert row == ("0101010101010101,0202020202020202," + "03" * 16 + "," + "04" * 16 +
                   ',"AES-CBC-128 [RFC3602]",' + "01" * 32 + "," + "02" * 32 + ',"HMAC_SHA2_256_128 [RFC4868]"')
    gcm = esp_row("192.0.2.1", "192.0.2.2", b"\xc1\xa0\xb2\xf3", EspSuite(20, 128, 0, False, None),
                  bytes(range(20)), b"")
    assert gcm == ('"IPv4","192.0.2.1","192.0.2.2","0xc1a0b2f3","AES-GCM with 16 octet ICV [RFC4106]","0x'
                   + bytes(range(20)).hex() + '","NULL",""')
    cbc_esp = esp_row("2001:db8::1", "2001:db8::2", 0x1234, EspSuite(12, 256, 12, False, None),
                      b"\xaa" * 32, b"\xbb" * 32)
    assert cbc_esp == ('"IPv6","2001:db8::1","2001:db8::2","0x00001234","AES-CBC [RFC3602]","0x' + "aa" * 32 +
                       '","HMAC-SHA-256-128 [RFC4868]","0x' + "bb" * 32 + '"')
    assert esp_row("192.0.2.1", "192.0.2.2", 1, EspSuite(28, None, 0, False, None), b"k" * 36, b"") is None


class KeySnapshots:
    """The keys each SA had when the gateway exported them: an established SA
    keeps only SK_d afterwards, and a Child SA none (its EspSAs hold them)."""

    def __init__(self, monkeypatch):
        self.ike, self.child = {}, {}
        original_ike, original_child = KeyLog.ike_sa, KeyLog.child_sa

        def ike_sa(log, conn):
            self.ike[conn.spis] = conn.keys
            return original_ike(log, conn)

        def child_sa(log, child, *args):
            self.child[child.spi_in] = (child.outbound_keys, child.inbound_keys, child.keys)
            return original_child(log, child, *args)
        monkeypatch.setattr(KeyLog, "ike_sa", ike_sa)
        monkeypatch.setattr(KeyLog, "child_sa", child_sa)


def _ike_suite_rows(path):
    return [line.split(",") for line in path.read_text().splitlines() if not line.startswith("#")]


def test_gateway_exports_the_keys_of_every_sa(tmp_path, monkeypatch):
    keydir = tmp_path / "keys"
    exported = KeySnapshots(monkeypatch)

    async def body():
        ci, cr = ike_configs()
        gr = await responder(cr)
        gi = await initiator(ci, gr, key_export=__import__("ikecore.aio", fromlist=["KeyExportSpec"])
                             .KeyExportSpec(str(keydir)))
        try:
            conn = await gi.initiate("to-r", timeout=10)
            [child] = gi.child_sas(conn)
            gi.rekey_child(conn)
            await gi.wait_for(ev.ChildSaDeleted, conn)
            [child2] = gi.child_sas(conn)
            gi.rekey(conn)
            await gi.wait_for(ev.IkeSaRekeyed, conn)
            live = gi.current(conn).keys
            return conn, gi.current(conn), child, child2, live
        finally:
            await gi.stop()
            await gr.stop()
    conn, conn2, child, child2, live_keys = run(body())
    ike = _ike_suite_rows(keydir / IKE_TABLE)
    assert [(r[0], r[1]) for r in ike] == [(conn.spi_i.hex(), conn.spi_r.hex()),
                                           (conn2.spi_i.hex(), conn2.spi_r.hex())]
    keys, keys2 = exported.ike[conn.spis], exported.ike[conn2.spis]
    assert ike[0][2] == keys.sk_ei.hex() and ike[0][3] == keys.sk_er.hex()
    assert ike[1][2] == keys2.sk_ei.hex()
    # once exported, an established SA keeps SK_d alone, a Child SA no key at all
    assert live_keys.sk_d == keys2.sk_d and live_keys.sk_ei == live_keys.sk_pi == b""
    # and once deleted (the gateway stopped), none at all
    assert conn2.keys is None and conn2.sk_in is None and conn2.sk_out is None
    assert child.keys is None and child2.keys is None
    esp = [line for line in (keydir / ESP_TABLE).read_text().splitlines()]
    assert len(esp) == 4
    outbound, inbound, _ = exported.child[child.spi_in]
    assert f'"0x{child.spi_out.hex()}","AES-GCM with 16 octet ICV [RFC4106]","0x{outbound[0].hex()}"' \
        in esp[0]
    assert f'"0x{child.spi_in.hex()}"' in esp[1] and inbound[0].hex() in esp[1]
    assert f'"0x{child2.spi_out.hex()}"' in esp[2]
    for f in (IKE_TABLE, ESP_TABLE):
        assert stat.S_IMODE(os.stat(keydir / f).st_mode) == 0o600


def test_keys_are_never_logged(caplog, tmp_path, monkeypatch):
    import logging
    caplog.set_level(logging.DEBUG, logger="ikecore")
    exported = KeySnapshots(monkeypatch)

    async def body():
        ci, cr = ike_configs()
        gr = await responder(cr)
        gi = await initiator(ci, gr, key_export=__import__("ikecore.aio", fromlist=["KeyExportSpec"])
                             .KeyExportSpec(str(tmp_path / "keys")))
        try:
            conn = await gi.initiate("to-r", timeout=10)
            await exchange_traffic(gi, gr, "127.0.0.1", 2)
            gi.rekey(conn)
            await gi.wait_for(ev.IkeSaRekeyed, conn)
            return conn, gi.child_sas()
        finally:
            await gi.stop()
            await gr.stop()
    conn, children = run(body())
    text = caplog.text
    assert "IKE SA established" in text
    secrets = [k for keys in exported.ike.values() for k in (keys.sk_d, keys.sk_ei, keys.sk_er, keys.sk_pi)]
    secrets += [k for _, _, keys in exported.child.values() for k in (keys.encr_i, keys.encr_r)]
    assert len(exported.ike) == 2 and len(exported.child) >= 1
    for s in secrets:
        assert s.hex() not in text and s.hex().upper() not in text


def test_pcap_writer_packets(tmp_path):
    w = PcapWriter(tmp_path / "x.pcap")
    w.write(b"hello", ("127.0.0.1", 1), ("127.0.0.1", 2))
    w.write(b"hello", ("::1", 1), ("::1", 2))
    w.close()
    data = (tmp_path / "x.pcap").read_bytes()
    assert data[:4] == bytes.fromhex("d4c3b2a1") and w.count == 2
    p4 = ip_udp_packet(b"hello", ("127.0.0.1", 1), ("127.0.0.1", 2))
    assert len(p4) == 20 + 8 + 5 and p4[9] == 17


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_tshark_decrypts_an_ikecore_capture(tmp_path):
    keydir, pcap = tmp_path / "keys", tmp_path / "cap.pcap"

    async def body():
        from ikecore.aio import KeyExportSpec
        for ike, esp in (("aes256gcm16-prfsha256-x25519", "aes256gcm16"), ("aes128-sha256-ecp256", "aes128-sha256")):
            ci, cr = ike_configs(ike=ike, esp=esp)
            gr = await responder(cr)
            gi = await initiator(ci, gr, key_export=KeyExportSpec(str(keydir)))
            gi.set_capture(writer)
            try:
                await gi.initiate("to-r", timeout=10)
                await exchange_traffic(gi, gr, "127.0.0.1", 3, b"tshark-" + esp.encode())
                ports["ike"] += [gi.port, gr.port]
                ports["natt"] += [gi.natt_port, gr.natt_port]
            finally:
                await gi.stop()
                await gr.stop()
    writer = PcapWriter(pcap)
    ports = {"ike": [], "natt": []}
    run(body())
    writer.close()
    opts = tshark_options(keydir, ike_ports=ports["ike"], natt_ports=ports["natt"])
    r = subprocess.run(["tshark", "-r", str(pcap), *opts, "-V"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    # the inner packets were decrypted out of ESP (both suites, both directions) ...
    for esp in ("aes256gcm16", "aes128-sha256"):
        for d in ("i2r", "r2i"):
            assert ("tshark-" + esp + d).encode().hex() in out.replace(":", "") or \
                   f"tshark-{esp}{d}" in out, (esp, d)
    assert out.count("Source Address: 10.1.0.1") >= 6 and out.count("Source Address: 10.2.0.1") >= 6
    # ... and the IKE_AUTH payloads out of the SK payload (identities in clear text)
    assert "initiator@test" in out and "responder@test" in out
    assert "[correct]" in out


# ------------------------------------------------------------ key files on disk --

class _Conn:
    """Just enough of an IkeConnection for KeyLog.ike_sa."""

    def __init__(self, n: int):
        from ikecore.crypto.keyschedule import IkeKeys
        self.spi_i, self.spi_r = n.to_bytes(8, "big"), (n + 1).to_bytes(8, "big")
        self.suite = IkeSuite(20, 256, 5, 0, 31)
        self.keys = IkeKeys(5, b"d" * 32, b"", b"", b"e" * 36, b"f" * 36, b"p" * 32, b"q" * 32, None)


def test_export_directory_and_files_are_private(tmp_path):
    keydir = tmp_path / "new" / "keys"
    log = KeyLog(keydir)
    log.ike_sa(_Conn(1))
    assert stat.S_IMODE(os.stat(keydir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(keydir / IKE_TABLE).st_mode) == 0o600


def test_a_loose_export_directory_is_refused(tmp_path):
    keydir = tmp_path / "keys"
    keydir.mkdir(mode=0o755)
    os.chmod(keydir, 0o755)
    with pytest.raises(ConfigError, match="mode 0700"):
        KeyLog(keydir)


def test_an_existing_loose_key_file_is_not_appended_to(tmp_path, caplog):
    keydir = tmp_path / "keys"
    log = KeyLog(keydir)
    (keydir / IKE_TABLE).write_text("old\n")
    os.chmod(keydir / IKE_TABLE, 0o644)
    log.ike_sa(_Conn(1))
    log.ike_sa(_Conn(3))
    assert (keydir / IKE_TABLE).read_text() == "old\n"          # no key went into it
    assert [r.levelname for r in caplog.records if "mode 0600" in r.getMessage()] == ["ERROR"]


def test_a_symlinked_key_file_is_not_followed(tmp_path):
    keydir = tmp_path / "keys"
    log = KeyLog(keydir)
    target = tmp_path / "elsewhere"
    target.write_text("")
    os.chmod(target, 0o600)
    (keydir / IKE_TABLE).symlink_to(target)
    log.ike_sa(_Conn(1))
    assert target.read_text() == "" and log.refused == {keydir / IKE_TABLE}


def test_the_seen_set_is_bounded(tmp_path):
    from ikecore.aio import keylog as keylog_module
    log = KeyLog(tmp_path / "keys")
    for n in range(0, 2 * (keylog_module.SEEN_LIMIT + 10), 2):
        log.ike_sa(_Conn(n))
    assert len(log._seen) == keylog_module.SEEN_LIMIT
    rows = (tmp_path / "keys" / IKE_TABLE).read_text().splitlines()
    assert len(rows) == keylog_module.SEEN_LIMIT + 10           # each SA once
