"""libreswan 5.2 (Debian 13's packages) as an independent IKEv2 peer with RFC 5723
session resumption, in a network namespace the test creates.

Debian 12 ships libreswan 4.10, which cannot resume; ``make-libreswan-root.sh``
builds a trixie root with 5.2 (cached at ``ROOT``). Each pluto runs chrooted into
that root, inside its own network namespace:

    namespace lsw<tag>i (ikecore)       namespace lsw<tag>p (pluto, chroot ROOT)
    veth lswi<tag> 10.78.<n>.1/24 <---> veth lswp<tag> 10.78.<n>.2/24

or, for pluto against pluto, two namespaces joined by one veth pair.

Per pluto, one directory ``ROOT/lsw/<name>/`` holds its ipsec.conf, ipsec.secrets
(0600), NSS db, log and run directory (control socket ``run/pluto.ctl``);
``Pluto.remove()`` stops pluto by its PID and deletes it, after copying the log to
the test's workdir.
pluto 5.2 needs /proc: it is mounted on ``ROOT/proc`` inside the private mount
namespace that ``ip netns exec`` gives pluto, so the host never sees that mount
and it goes when pluto does. The kernel here has no ESP: pluto cannot install
Child SAs, so an initiating pluto runs childless (``--impair
omit_v2_ike_auth_child``, RFC 6023) and a responding one answers a Child SA
request with N(TEMPORARY_FAILURE).
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from netns import VethLink, missing_tools, run, unique_tag

ROOT = Path(os.environ.get("IKECORE_LIBRESWAN_ROOT", "/var/cache/ikecore/trixie-libreswan"))
MAKE_ROOT = Path(__file__).with_name("make-libreswan-root.sh")
STAMP = ".ikecore-libreswan-root"
IPSEC = "/usr/libexec/ipsec"          # pluto, whack, addconn inside the root
PSK = "libreswan-interop-psk-0123456789"
CONN = "peer"                          # the one connection each pluto is given
# libreswan's defaults negotiate exactly this between two plutos (interop guide)
DEFAULT_SUITE = "aes256gcm16-prfsha512-ecp256"
# set by CI: an unusable harness there is a failure, not a skip
REQUIRED_ENV = "IKECORE_REQUIRE_LIBRESWAN"


def root_problem(root: Path = ROOT) -> str | None:
    """Why ``root`` is not a usable libreswan root (None when it is)."""
    stamp = root / STAMP
    if not stamp.is_file():
        return f"no libreswan root at {root} (build it: tests/interop/make-libreswan-root.sh)"
    recipe = re.search(r"^RECIPE=(\S+)", MAKE_ROOT.read_text(), re.M)
    if recipe and f"recipe={recipe.group(1)}" not in stamp.read_text().splitlines():
        return f"{root} was built by another recipe (rebuild: tests/interop/make-libreswan-root.sh)"
    if not os.access(root / IPSEC.lstrip("/") / "pluto", os.X_OK):
        return f"{root} has no pluto"
    return None


def host_problem() -> str | None:
    """Why this host cannot run libreswan interop at all (root, tools)."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, chroot)"
    tool = missing_tools("ip", "chroot")
    return f"missing {tool}" if tool else None


def ensure_root(root: Path = ROOT, timeout: float = 900) -> str | None:
    """Build ``root`` if it is missing (mmdebstrap, the Debian mirror); the reason
    libreswan interop cannot run, or None."""
    why = host_problem()
    if why:
        return why
    if root_problem(root) is None:
        return None
    if missing_tools("mmdebstrap"):
        return f"no libreswan root at {root} and no mmdebstrap to build it (apt-get install mmdebstrap)"
    try:
        res = run("bash", str(MAKE_ROOT), str(root), check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"building the libreswan root took over {timeout:.0f} s (no network?)"
    if res.returncode != 0:
        return f"could not build the libreswan root (no network?): {(res.stdout + res.stderr)[-600:]}"
    return root_problem(root)


def libreswan_version(root: Path = ROOT) -> str:
    for line in (root / STAMP).read_text().splitlines():
        if line.startswith("libreswan="):
            return line.split("=", 1)[1]
    return "?"


# ----------------------------------------------------------------- network ----

def ikecore_link(index: int = 1) -> VethLink:
    """pluto's namespace ``lsw<tag>p`` joined to ikecore's ``lsw<tag>i``: ikecore's sockets
    are made inside its own namespace (``IkecoreSide(..., netns=link.other_ns)``), so
    nothing of the test touches the host's addresses or its port 500."""
    tag = unique_tag(index)
    subnet = 100 + (os.getpid() + index) % 100
    return VethLink(ns=f"lsw{tag}p", near=f"lswi{tag}", far=f"lswp{tag}", other_ns=f"lsw{tag}i",
                    near_addr=f"10.78.{subnet}.1", far_addr=f"10.78.{subnet}.2")


def pluto_pair_link(index: int = 1) -> VethLink:
    """Two namespaces, ``lsw<tag>w`` (west) and ``lsw<tag>e`` (east), joined by a veth pair."""
    tag = unique_tag(index)
    subnet = 100 + (os.getpid() + index) % 100
    return VethLink(ns=f"lsw{tag}e", near=f"lsww{tag}", far=f"lswe{tag}", other_ns=f"lsw{tag}w",
                    near_addr=f"10.79.{subnet}.1", far_addr=f"10.79.{subnet}.2")


# ------------------------------------------------------------------- pluto ----

@dataclass
class Pluto:
    """One pluto in namespace ``ns``, chrooted into ``root``, with connection ``peer``."""

    workdir: Path                        # the test's directory: logs are copied here
    ns: str
    name: str                            # unique per test: ROOT/lsw/<name>
    local_addr: str
    remote_addr: str
    local_id: str = "@libreswan"
    remote_id: str = "@ikecore"
    psk: str = PSK
    ike: str | None = None               # an ike= proposal; None: libreswan's defaults
    esp: str | None = None
    session_resumption: bool = True
    impair: tuple[str, ...] = ()         # pluto --impair flags from the start
    extra_conn: tuple[str, ...] = ()     # more "key=value" lines for the conn
    root: Path = ROOT
    pid: int | None = field(default=None, init=False)
    starts: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)

    # paths, inside the root (as pluto sees them) and outside (as we do)
    @property
    def inner(self) -> str:
        return f"/lsw/{self.name}"

    @property
    def outer(self) -> Path:
        return self.root / "lsw" / self.name

    @property
    def ctl(self) -> str:
        return f"{self.inner}/run/pluto.ctl"

    @property
    def log_path(self) -> Path:
        return self.outer / "pluto.log"

    def config_text(self) -> str:
        conn = [
            f"left={self.local_addr}", f"leftid={self.local_id}",
            f"right={self.remote_addr}", f"rightid={self.remote_id}",
            "authby=secret", "keyexchange=ikev2", "auto=ignore",
            f"session-resumption={'yes' if self.session_resumption else 'no'}",
            # no updown script: it would try to route and firewall in the namespace
            "leftupdown=%disabled", "rightupdown=%disabled",
        ]
        if self.ike:
            conn.append(f"ike={self.ike}")
        if self.esp:
            conn.append(f"esp={self.esp}")
        conn += list(self.extra_conn)
        # "private" logs the derived SK_ai/ar/ei/er, which tests may compare with ikecore's
        setup = [f"logfile={self.inner}/pluto.log", "logtime=yes", "logappend=yes",
                 'plutodebug="all crypt private"', f"dumpdir={self.inner}/run",
                 f"ipsecdir={self.inner}", f"nssdir={self.inner}/nss",
                 f"secretsfile={self.inner}/ipsec.secrets"]
        return ("config setup\n" + "".join(f"\t{line}\n" for line in setup) +
                f"\nconn {CONN}\n" + "".join(f"\t{line}\n" for line in conn))

    def prepare(self) -> None:
        """Fresh directory, configuration, secrets and NSS db."""
        shutil.rmtree(self.outer, ignore_errors=True)
        (self.outer / "run").mkdir(parents=True)
        (self.outer / "nss").mkdir()
        (self.outer / "ipsec.conf").write_text(self.config_text())
        secrets = self.outer / "ipsec.secrets"
        fd = os.open(secrets, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f'{self.local_id} {self.remote_id} : PSK "{self.psk}"\n')
        self._chroot("certutil", "-N", "-d", f"sql:{self.inner}/nss", "--empty-password")

    def _chroot(self, *cmd: str, timeout: float = 20, check: bool = True) -> subprocess.CompletedProcess:
        # whack, addconn and certutil only touch files and the control socket: no namespace needed
        return run("chroot", str(self.root), *cmd, timeout=timeout, check=check)

    def start(self, *, extra_impair: tuple[str, ...] = ()) -> None:
        """Start pluto (``prepare`` first, once) and load the connection."""
        if self.pid is not None:
            raise RuntimeError(f"pluto {self.name} is already running")
        for stale in (self.outer / "run").iterdir():
            stale.unlink()
        flags = " ".join(f"--impair {i}" for i in (*self.impair, *extra_impair))
        self.starts += 1
        out = open(self.workdir / f"{self.name}.stdout", "a")
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, "sh", "-c",
             f"mount -t proc proc '{self.root}/proc' && exec chroot '{self.root}' {IPSEC}/pluto --nofork "
             f"--config {self.inner}/ipsec.conf --rundir {self.inner}/run {flags}"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        out.close()
        # ip netns exec and sh exec: this PID ends up being pluto's own
        self.pid, self._proc = proc.pid, proc
        sock = self.outer / "run" / "pluto.ctl"
        for _ in range(200):
            if sock.exists():
                break
            if proc.poll() is not None:
                self.pid = None
                raise RuntimeError(f"pluto {self.name} exited: {self.stdout_text()[-2000:]}{self.log_text()[-2000:]}")
            time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError(f"pluto {self.name} did not open {sock}")
        res = self._chroot(f"{IPSEC}/addconn", "--config", f"{self.inner}/ipsec.conf",
                           "--ctlsocket", self.ctl, CONN, check=False)
        if res.returncode != 0 or f'"{CONN}": added' not in res.stdout + res.stderr:
            raise RuntimeError(f"addconn failed: {res.stdout}{res.stderr}")

    def stop(self) -> None:
        """SIGTERM by PID (SIGKILL after 10 s). The log stays and grows across restarts."""
        if self.pid is None:
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self._proc.wait(timeout=5)
        self.pid = None

    def restart(self) -> None:
        """A new pluto process: a new ticket key, so every ticket it issued is stale."""
        self.stop()
        self.start()

    def remove(self) -> None:
        """Stop and delete its directory in the root; its log is copied to the workdir."""
        self.stop()
        if self.log_path.exists():
            shutil.copyfile(self.log_path, self.workdir / f"{self.name}.log")
        shutil.rmtree(self.outer, ignore_errors=True)

    # ---------------------------------------------------------------- whack ----
    def whack(self, *args: str, timeout: float = 20, check: bool = False) -> subprocess.CompletedProcess:
        return self._chroot(f"{IPSEC}/whack", "--ctlsocket", self.ctl, *args, timeout=timeout, check=check)

    def set_impair(self, *behaviours: str) -> subprocess.CompletedProcess:
        args = [a for b in behaviours for a in ("--impair", b)]
        return self.whack(*args, check=True)

    def initiate(self, *, asynchronous: bool = False, timeout: float = 30) -> subprocess.CompletedProcess:
        """Start the connection: a full exchange, or IKE_SESSION_RESUME when pluto holds a
        ticket (after ``suspend``). Without ``asynchronous`` whack waits for the outcome, so
        while ikecore is the peer, call it from a thread and keep ikecore's loop running."""
        args = ["--initiate", "--name", CONN] + (["--asynchronous"] if asynchronous else [])
        return self.whack(*args, timeout=timeout)

    def suspend(self) -> subprocess.CompletedProcess:
        """Drop the IKE SA locally and keep its ticket (pluto sends a Delete unless
        ``send_no_delete`` is impaired)."""
        return self.whack("--suspend", "--name", CONN)

    def states(self) -> list[dict]:
        """The states pluto holds, from ``whack --showstates``: number, connection, kind."""
        out = self.whack("--showstates").stdout
        found = []
        for m in re.finditer(r'#(\d+): "([^"]+)"[^ ]* (STATE_\w+|[A-Z_]+) \(([^)]*)\)', out):
            found.append({"serial": int(m.group(1)), "conn": m.group(2), "state": m.group(3),
                          "story": m.group(4), "line": m.group(0)})
        return found

    def established_ike(self) -> list[dict]:
        return [s for s in self.states() if "ESTABLISHED_IKE_SA" in s["state"]]

    # ----------------------------------------------------------------- logs ----
    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stdout_text(self) -> str:
        path = self.workdir / f"{self.name}.stdout"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_log(self, pattern: str, *, after: int = 0, timeout: float = 10) -> re.Match | None:
        """The first match of ``pattern`` in the log past offset ``after``, waiting for it."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.log_text(), after)
            if m or time.monotonic() >= deadline:
                return m
            time.sleep(0.1)

    def log_size(self) -> int:
        return len(self.log_text())

    def logged_keys(self) -> dict[tuple[str, str], dict[str, str]]:
        """The IKE SA keys pluto logged, by (SPIi, SPIr) in hex; see ``pluto_keys``."""
        return pluto_keys(self.log_text())


# plutodebug "crypt private" writes, per IKE SA and direction, one line in the form of
# Wireshark's IKEv2 decryption table: "ikev2 I|R 0xSPIi 0xSPIr <integ>:0xKEY <encr>:0xKEY",
# or "... none: <encr>:0xKEY" for AEAD, whose key appears without its 4-octet salt.
_KEYLINE = re.compile(r"\| ikev2 ([IR]) 0x([0-9a-f]{16}) 0x([0-9a-f]{16}) "
                      r"(\w+)(?::0x([0-9a-f]+))?:? ([\w-]+):0x([0-9a-f]+)")


def pluto_keys(text: str) -> dict[tuple[str, str], dict[str, str]]:
    """{(spi_i, spi_r): {"sk_ei": hex, "sk_ai": hex or "", "sk_er": ..., "sk_ar": ...}}."""
    keys: dict[tuple[str, str], dict[str, str]] = {}
    for m in _KEYLINE.finditer(text):
        side = "i" if m.group(1) == "I" else "r"
        entry = keys.setdefault((m.group(2), m.group(3)), {})
        entry[f"sk_e{side}"] = m.group(7)
        entry[f"sk_a{side}"] = m.group(5) or ""
    return keys


def dump(*plutos: Pluto) -> str:
    """What to print when an interop test fails."""
    parts = []
    for p in plutos:
        states = p.whack("--showstates").stdout if p.pid else "(stopped)"
        parts.append(f"--- pluto {p.name}: states\n{states}\n--- log tail\n{p.log_text()[-6000:]}")
    return "\n".join(parts)


# ----------------------------------------------------------------- capture ----

class Capture:
    """tcpdump of UDP on one interface inside a namespace, decoded later with tshark."""

    def __init__(self, ns: str | None, interface: str, path: Path) -> None:
        self.path = path
        self.proc = None
        if missing_tools("tcpdump", "tshark"):
            return
        # immediate mode: otherwise packets still in the kernel's buffer block are lost at SIGTERM
        cmd = ["tcpdump", "-Z", "root", "--immediate-mode", "-i", interface, "-U", "-w", str(path), "udp"]
        if ns:
            cmd = ["ip", "netns", "exec", ns, *cmd]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(50):                 # tcpdump says "listening on" once it captures
            if path.exists():
                break
            time.sleep(0.05)
        time.sleep(0.3)

    @property
    def enabled(self) -> bool:
        return self.proc is not None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        time.sleep(0.3)                     # the last datagrams in flight
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def ike_messages(self) -> list[dict]:
        """Each IKE message in order: exchange type, response flag, SPIs (hex), message ID,
        and the types of its unencrypted notifies."""
        fields = ("isakmp.exchangetype", "isakmp.flag_r", "isakmp.ispi", "isakmp.rspi",
                  "isakmp.messageid", "isakmp.notify.msgtype")
        res = run("tshark", "-r", str(self.path), "-Y", "isakmp", "-T", "fields", "-E", "separator=;",
                  *(a for f in fields for a in ("-e", f)), check=False, timeout=60)
        out = []
        for line in res.stdout.splitlines():
            xchg, response, ispi, rspi, mid, notifies = (line.split(";") + [""] * 6)[:6]
            if not xchg:
                continue
            first = lambda v: v.split(",")[0]
            out.append({"exchange": int(first(xchg)),
                        "response": first(response) in ("1", "True"),
                        "spi_i": first(ispi), "spi_r": first(rspi), "message_id": int(first(mid) or "0", 0),
                        "notifies": [int(n) for n in notifies.split(",") if n]})
        return out
