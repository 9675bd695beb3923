"""Opt-in key export in the formats Wireshark and tshark read, like strongSwan's
save-keys plugin: two UAT files in one directory.

- ``ikev2_decryption_table``: one row per IKE SA,
  ``SPIi,SPIr,SK_ei,SK_er,"<encryption>",SK_ai,SK_ar,"<integrity>"`` (SPIs and keys
  as bare hex; AEAD keys end with their salt; AEAD rows have empty SK_a* and
  ``"NONE [RFC4306]"``).
- ``esp_sa``: one row per ESP SA (two per Child SA),
  ``"IPv4","SRC","DST","0xSPI","<encryption>","0xKEY","<integrity>","0xINTEGKEY"``
  (AEAD keys are KEY||SALT; AEAD rows carry ``"NULL",""`` for integrity).

Use them with tshark::

    tshark -r capture.pcap -o esp.enable_encryption_decode:TRUE \
        -o uat:esp_sa:"$(sed -n 1p DIR/esp_sa)" -o uat:ikev2_decryption_table:"$(sed -n 1p DIR/ikev2_decryption_table)"

or copy the files into a Wireshark profile directory (they are UAT files).
Keys go only to these files, never to the log. ChaCha20-Poly1305 has no name
in tshark 4.0: such SAs are written as comment lines.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import stat
from collections import OrderedDict
from pathlib import Path

from ..crypto.transforms import Encr, Integ
from ..errors import ConfigError

log = logging.getLogger("ikecore.keylog")

IKE_TABLE = "ikev2_decryption_table"
ESP_TABLE = "esp_sa"

_IKE_GCM = {Encr.AES_GCM_8: 8, Encr.AES_GCM_12: 12, Encr.AES_GCM_16: 16}
_IKE_INTEG = {Integ.HMAC_SHA1_96: "HMAC_SHA1_96 [RFC2404]", Integ.HMAC_SHA2_256_128: "HMAC_SHA2_256_128 [RFC4868]",
              Integ.HMAC_SHA2_384_192: "HMAC_SHA2_384_192 [RFC4868]",
              Integ.HMAC_SHA2_512_256: "HMAC_SHA2_512_256 [RFC4868]"}
_ESP_INTEG = {Integ.HMAC_SHA1_96: "HMAC-SHA-1-96 [RFC2404]", Integ.HMAC_SHA2_256_128: "HMAC-SHA-256-128 [RFC4868]",
              Integ.HMAC_SHA2_384_192: "HMAC-SHA-384-192 [RFC4868]",
              Integ.HMAC_SHA2_512_256: "HMAC-SHA-512-256 [RFC4868]"}


def ike_encryption_name(encr_id: int, key_bits: int | None) -> str | None:
    """Wireshark's name for an IKE encryption transform, or None if it has none."""
    if encr_id == Encr.AES_CBC:
        return f"AES-CBC-{key_bits or 128} [RFC3602]"
    if encr_id in _IKE_GCM:
        return f"AES-GCM-{key_bits or 128} with {_IKE_GCM[encr_id]} octet ICV [RFC5282]"
    return None


def esp_encryption_name(encr_id: int) -> str | None:
    if encr_id == Encr.AES_CBC:
        return "AES-CBC [RFC3602]"
    if encr_id == Encr.AES_GCM_16:
        return "AES-GCM with 16 octet ICV [RFC4106]"
    if encr_id == Encr.AES_GCM_12:
        return "AES-GCM with 12 octet ICV [RFC4106]"
    if encr_id == Encr.AES_GCM_8:
        return "AES-GCM with 8 octet ICV [RFC4106]"
    return None


def ike_row(spi_i: bytes, spi_r: bytes, suite, keys) -> str | None:
    """One ikev2_decryption_table row for an IKE SA (``suite``: IkeSuite, ``keys``: IkeKeys)."""
    enc = ike_encryption_name(suite.encr_id, suite.key_bits)
    if enc is None:
        return None
    if suite.is_aead:
        integ, ai, ar = "NONE [RFC4306]", "", ""
    else:
        integ = _IKE_INTEG.get(suite.integ_id)
        if integ is None:
            return None
        ai, ar = keys.sk_ai.hex(), keys.sk_ar.hex()
    return f'{spi_i.hex()},{spi_r.hex()},{keys.sk_ei.hex()},{keys.sk_er.hex()},"{enc}",{ai},{ar},"{integ}"'


def esp_row(src: str, dst: str, spi: bytes | int, suite, encr_key: bytes, integ_key: bytes) -> str | None:
    """One esp_sa row for the SA carrying packets ``src`` -> ``dst`` (outer addresses)."""
    enc = esp_encryption_name(suite.encr_id)
    if enc is None:
        return None
    if suite.is_aead:
        integ, ikey = "NULL", ""
    else:
        integ = _ESP_INTEG.get(suite.integ_id)
        if integ is None:
            return None
        ikey = "0x" + integ_key.hex()
    family = "IPv4" if ipaddress.ip_address(src.split("%")[0]).version == 4 else "IPv6"
    spi_int = spi if isinstance(spi, int) else int.from_bytes(spi, "big")
    return (f'"{family}","{src}","{dst}","0x{spi_int:08x}","{enc}","0x{encr_key.hex()}",'
            f'"{integ}","{ikey}"')


# SAs recently written, so that a second call for one adds no row; bounded, since
# a gateway exports keys for as long as it runs
SEEN_LIMIT = 4096


def _private(st: os.stat_result) -> bool:
    return st.st_uid == os.geteuid() and not st.st_mode & 0o077


class KeyLog:
    """Appends rows to ``<directory>/ikev2_decryption_table`` and ``<directory>/esp_sa``.

    The directory is created with mode 0700 and the files with 0600, opened
    without following symbolic links; an existing directory or file that
    others can read (or that another user owns, or that is no regular file) is
    refused with a ConfigError rather than written to. ``ike``/``esp`` select
    which tables are written. Safe to call for the same SA twice (rows are not
    repeated)."""

    def __init__(self, directory: str | os.PathLike, *, ike: bool = True, esp: bool = True) -> None:
        self.directory = Path(directory)
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.directory.mkdir(mode=0o700)
        except FileExistsError:
            pass
        st = os.lstat(self.directory)
        if not stat.S_ISDIR(st.st_mode) or not _private(st):
            raise ConfigError(f"key export directory {self.directory}: must be a directory of this user "
                              f"with mode 0700 (it is {stat.filemode(st.st_mode)})")
        self.ike, self.esp = ike, esp
        self._seen: OrderedDict = OrderedDict()
        self.refused: set[Path] = set()          # files not written to, for their mode or type
        log.warning("exporting %s keys to %s", " and ".join(
            k for k, on in (("IKE", ike), ("ESP", esp)) if on) or "no", self.directory)

    @property
    def ike_path(self) -> Path:
        return self.directory / IKE_TABLE

    @property
    def esp_path(self) -> Path:
        return self.directory / ESP_TABLE

    def _append(self, path: Path, line: str) -> None:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:          # ELOOP: a symbolic link stands there
            raise ConfigError(f"key export file {path}: {exc.strerror}; not written") from None
        with os.fdopen(fd, "a") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode) or not _private(st):
                raise ConfigError(f"key export file {path}: must be a regular file of this user with "
                                  f"mode 0600 (it is {stat.filemode(st.st_mode)}); not written")
            f.write(line + "\n")

    def _write(self, path: Path, line: str) -> None:
        """Append, or say once per file why not (the gateway keeps running)."""
        try:
            self._append(path, line)
        except ConfigError as exc:
            if path not in self.refused:
                self.refused.add(path)
                log.error("%s", exc)

    def _first_time(self, key: tuple) -> bool:
        if key in self._seen:
            return False
        self._seen[key] = None
        if len(self._seen) > SEEN_LIMIT:
            self._seen.popitem(last=False)
        return True

    def ike_sa(self, conn) -> None:
        """Record an IKE SA (an ``IkeConnection`` with keys)."""
        if not self.ike or conn.keys is None or not self._first_time(("ike", conn.spi_i, conn.spi_r)):
            return
        row = ike_row(conn.spi_i, conn.spi_r, conn.suite, conn.keys)
        self._write(self.ike_path, row if row is not None else
                     f"# {conn.spi_i.hex()},{conn.spi_r.hex()}: encryption {conn.suite.encr_id} "
                     "has no Wireshark name")

    def child_sa(self, child, local_host: str, remote_host: str) -> None:
        """Record both ESP SAs of a Child SA (outer addresses as the packets carry them)."""
        if not self.esp or child.keys is None or not self._first_time(("esp", child.spi_in, child.spi_out)):
            return
        out_k, in_k = child.outbound_keys, child.inbound_keys
        for src, dst, spi, (ek, ik) in ((local_host, remote_host, child.spi_out, out_k),
                                        (remote_host, local_host, child.spi_in, in_k)):
            row = esp_row(src, dst, spi, child.suite, ek, ik)
            self._write(self.esp_path, row if row is not None else
                         f"# 0x{spi.hex()}: encryption {child.suite.encr_id} has no Wireshark name")


__all__ = ["KeyLog", "tshark_options", "ike_row", "esp_row", "ike_encryption_name", "esp_encryption_name",
           "IKE_TABLE", "ESP_TABLE"]


def tshark_options(directory: str | os.PathLike, *, ike_ports=(), natt_ports=()) -> list[str]:
    """tshark arguments that decrypt with the tables in ``directory`` (``-o uat:...``
    per row) and dissect non-standard ports as IKE / ESP-in-UDP (``-d``)."""
    d = Path(directory)
    args = ["-o", "esp.enable_encryption_decode:TRUE", "-o", "esp.enable_authentication_check:TRUE"]
    for port in ike_ports:
        if port != 500:
            args += ["-d", f"udp.port=={port},isakmp"]
    for port in natt_ports:
        if port != 4500:
            args += ["-d", f"udp.port=={port},udpencap"]
    for table in (ESP_TABLE, IKE_TABLE):
        path = d / table
        if path.exists():
            for line in path.read_text().splitlines():
                if line.strip() and not line.startswith("#"):
                    args += ["-o", f"uat:{table}:{line.strip()}"]
    return args
