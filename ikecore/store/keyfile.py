"""The gateway's ticket-ring wrapping key, read from a key file."""
from __future__ import annotations

import os
import stat

from ..errors import ConfigError
from ..resumption.keyring import WRAPPING_KEY_LENGTH


def load_wrapping_key(path: str | os.PathLike) -> bytes:
    """32 octets from ``path``: either raw, or 64 hex digits (a trailing newline
    allowed). The file must be a regular file no one but its owner may read or
    write (mode 0600 or 0400); anything looser is a ConfigError."""
    path = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot open the ticket wrapping key file: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{path}: the ticket wrapping key must be a regular file")
        if st.st_mode & 0o077:
            raise ConfigError(f"{path}: the ticket wrapping key file has mode "
                              f"{stat.S_IMODE(st.st_mode):04o}; it must be 0600 (chmod 600 {path})")
        data = os.read(fd, 4 * WRAPPING_KEY_LENGTH)
    finally:
        os.close(fd)
    if len(data) == WRAPPING_KEY_LENGTH:
        return data
    text = data.strip()
    if len(text) == 2 * WRAPPING_KEY_LENGTH:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            pass
    raise ConfigError(f"{path}: the ticket wrapping key must be {WRAPPING_KEY_LENGTH} raw octets "
                      f"or {2 * WRAPPING_KEY_LENGTH} hex digits")


def create_wrapping_key_file(path: str | os.PathLike) -> None:
    """Write a fresh random wrapping key to a new file of mode 0600 (64 hex
    digits and a newline); refuses to overwrite an existing file. Copy the same
    file to every gateway of the cluster."""
    path = os.fspath(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create the ticket wrapping key file: {exc.strerror}") from None
    try:
        os.fchmod(fd, 0o600)      # whatever the umask
        os.write(fd, (os.urandom(WRAPPING_KEY_LENGTH).hex() + "\n").encode())
    finally:
        os.close(fd)
