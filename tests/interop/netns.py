"""Network namespaces and veth pairs for the interop tests (strongSwan, libreswan).

Every namespace a test creates is named with the test's own prefix plus this
process's PID and an index, so parallel runs and other engineers' tests never
collide; deleting a namespace takes the veth end inside it, and so the whole
pair, with it.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass, field

_CLONE_NEWNET = 0x40000000


def run(*cmd: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=timeout)


def missing_tools(*tools: str) -> str | None:
    """The first of ``tools`` (names on PATH or absolute paths) that is not here, or None."""
    for tool in tools:
        if not (shutil.which(tool) if "/" not in tool else os.path.exists(tool)):
            return tool
    return None


def unique_tag(index: int) -> str:
    """A short tag, unique per process and index, that fits interface names (15 octets)."""
    return f"{os.getpid() % 100000}{index}"


@dataclass
class VethLink:
    """Namespace ``ns`` joined by a veth pair to the root namespace, or to ``other_ns``.

    ``near`` is the end outside ``ns`` (root namespace or ``other_ns``) with
    ``near_addr``; ``far`` the end inside ``ns`` with ``far_addr``. ``loopback``
    addresses go onto ``ns``'s lo (inner addresses behind a tunnel).
    """

    ns: str
    near: str
    far: str
    near_addr: str
    far_addr: str
    prefix_len: int = 24
    other_ns: str | None = None
    loopback: tuple[str, ...] = ()
    _created: list[str] = field(default_factory=list, init=False, repr=False)
    _linked: bool = field(default=False, init=False, repr=False)

    def up(self) -> None:
        try:
            for ns in (self.ns, self.other_ns):
                if ns is not None:
                    run("ip", "netns", "add", ns)
                    self._created.append(ns)
            self._wire()
        except BaseException:
            self.down()          # never leave a half-built namespace behind
            raise

    def _ip(self, ns: str | None, *args: str) -> None:
        run("ip", *(("-n", ns) if ns else ()), *args)

    def _wire(self) -> None:
        near_ns = self.other_ns
        # created inside near's namespace, so the root namespace never holds either end
        self._ip(near_ns, "link", "add", self.near, "type", "veth", "peer", "name", self.far, "netns", self.ns)
        self._linked = True
        self._ip(near_ns, "addr", "add", f"{self.near_addr}/{self.prefix_len}", "dev", self.near)
        self._ip(near_ns, "link", "set", self.near, "up")
        if near_ns is not None:
            self._ip(near_ns, "link", "set", "lo", "up")
        self._ip(self.ns, "addr", "add", f"{self.far_addr}/{self.prefix_len}", "dev", self.far)
        for addr in self.loopback:
            self._ip(self.ns, "addr", "add", f"{addr}/32", "dev", "lo")
        self._ip(self.ns, "link", "set", "lo", "up")
        self._ip(self.ns, "link", "set", self.far, "up")

    def down(self) -> None:
        # the pair first, synchronously: a namespace's deletion is finished by the kernel
        # later, and until then its veth peer (and so the names) would still be taken
        if self._linked:
            run("ip", *(("-n", self.other_ns) if self.other_ns else ()), "link", "del", self.near, check=False)
            self._linked = False
        # only the namespaces this link made
        while self._created:
            run("ip", "netns", "del", self._created.pop(), check=False)

    def exec_args(self, *cmd: str, near: bool = False) -> list[str]:
        """``cmd`` run inside ``ns`` (or, with near=True, inside ``other_ns``)."""
        ns = self.other_ns if near else self.ns
        if ns is None:
            return list(cmd)
        return ["ip", "netns", "exec", ns, *cmd]


def socket_in(ns: str | None, family: int = socket.AF_INET, kind: int = socket.SOCK_DGRAM) -> socket.socket:
    """A socket that belongs to network namespace ``ns`` (None: this process's own), made by
    switching only the calling thread into ``ns`` (setns) and back. A socket keeps the
    namespace it was made in, so this process can then use it from any thread."""
    if ns is None:
        return socket.socket(family, kind)
    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if libc.setns(target, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into {ns}: {os.strerror(err)}")
        try:
            return socket.socket(family, kind)
        finally:
            if libc.setns(home, _CLONE_NEWNET) != 0:      # never leave this thread in the test's namespace
                err = ctypes.get_errno()
                raise OSError(err, f"setns back from {ns}: {os.strerror(err)}")
    finally:
        os.close(target)
        os.close(home)
