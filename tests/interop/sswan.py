"""strongSwan as an independent IKEv2/ESP peer, in a network namespace the test creates.

Layout (addresses private to the test; the namespace is deleted afterwards):

    root namespace                      namespace NS (charon, kernel-libipsec TUN)
    veth HOST  10.77.<n>.1/24  <---->  veth PEER 10.77.<n>.2/24
                                        lo: 10.88.2.1/32 (the inner address behind the tunnel)

charon runs in its own mount namespace with a private /run (its pidfile path is
fixed), configured by its own strongswan.conf, controlled over its VICI socket
with swanctl; filelog at ike=4/chd=4 records the derived keys, which
``charon_keys`` pulls out for comparison with ikecore's.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from netns import VethLink, missing_tools, run, unique_tag

CHARON = "/usr/lib/ipsec/charon"
PLUGINS = ("random nonce openssl pem pkcs1 pkcs8 x509 pubkey revocation constraints aes sha1 sha2 hmac "
           "gcm chapoly curve25519 kdf ctr ccm cmac xcbc gmp kernel-libipsec kernel-netlink "
           "socket-default vici updown")
INNER_LOCAL = "10.88.1.1"     # our side of the tunnel (traffic selector)
INNER_REMOTE = "10.88.2.1"    # strongSwan's side, on lo in its namespace
PSK = "interop-test-psk-0123456789"


def available() -> str | None:
    """Why strongSwan interop cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    tool = missing_tools(CHARON, "swanctl", "ip", "unshare")
    if tool:
        return f"missing {tool} (apt-get install strongswan-charon strongswan-swanctl)"
    return None


@dataclass
class Peer:
    """One strongSwan instance and the namespace it lives in."""

    workdir: Path
    index: int = 1
    ike_proposals: str = "aes256gcm16-prfsha384-ecp384"
    esp_proposals: str = "aes256gcm16"
    local_id: str = "resp@test"
    remote_id: str = "init@test"
    psk: str = PSK
    rekey_time: str = "0"            # 0: no automatic rekeys; tests drive them
    dpd_delay: str = "0"
    extra_conn: str = ""
    remote_ts: str = f"{INNER_LOCAL}/32"
    extra_child: str = ""
    remote_addrs: str | None = None  # default: the host side of the veth pair
    # load tests: extra settings in strongswan.conf's charon section, and quieter logs
    # (the default logs keys, for the key comparison tests)
    charon_options: str = ""
    log_levels: str = "default = 1\n      ike = 4\n      chd = 4\n      knl = 2\n      cfg = 2\n      enc = 1"
    ns: str = field(init=False)
    host_if: str = field(init=False)
    pid: int | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        tag = unique_tag(self.index)
        self.ns, self.host_if, self.peer_if = f"ikc{tag}", f"ikh{tag}", f"ikp{tag}"
        subnet = 100 + (os.getpid() + self.index) % 100
        self.host_addr, self.peer_addr = f"10.77.{subnet}.1", f"10.77.{subnet}.2"
        self.link: VethLink | None = None
        self.workdir.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------ network ----
    def netns_up(self) -> None:
        # built here, from the names and addresses as they are now (subclasses may change them)
        self.link = VethLink(ns=self.ns, near=self.host_if, far=self.peer_if, near_addr=self.host_addr,
                             far_addr=self.peer_addr, loopback=(INNER_REMOTE,))
        self.link.up()
        try:
            self._wire_up()
        except BaseException:
            self.netns_down()      # never leave a half-built namespace behind
            raise

    def _wire_up(self) -> None:
        """More wiring after the namespace and the veth pair are up (for subclasses)."""

    def netns_down(self) -> None:
        if self.link is not None:
            self.link.down()

    # ------------------------------------------------------------- charon ----
    @property
    def vici(self) -> str:
        return f"unix://{self.workdir}/charon.vici"

    @property
    def log_path(self) -> Path:
        return self.workdir / "charon.log"

    def write_config(self) -> None:
        (self.workdir / "strongswan.conf").write_text(f"""
charon {{
  load_modular = no
  load = {PLUGINS}
  install_routes = yes
  retransmit_tries = 3
  retransmit_timeout = 1.0
  filelog {{
    main {{
      path = {self.log_path}
      time_format = %H:%M:%S
      append = no
      flush_line = yes
      {self.log_levels}
    }}
  }}
  syslog {{ daemon {{ default = -1 }} }}
  plugins {{ vici {{ socket = {self.vici} }} }}
  {self.charon_options}
}}
""")
        peer_id = "" if self.remote_id == "%any" else f"id-2 = {self.remote_id}"
        (self.workdir / "swanctl.conf").write_text(f"""
connections {{
  c {{
    version = 2
    local_addrs = {self.peer_addr}
    remote_addrs = {self.remote_addrs or self.host_addr}
    proposals = {self.ike_proposals}
    mobike = no
    rekey_time = {self.rekey_time}
    dpd_delay = {self.dpd_delay}
    {self.extra_conn}
    local {{
      auth = psk
      id = {self.local_id}
    }}
    remote {{
      auth = psk
      id = {self.remote_id}
    }}
    children {{
      net {{
        local_ts = {INNER_REMOTE}/32
        remote_ts = {self.remote_ts}
        esp_proposals = {self.esp_proposals}
        mode = tunnel
        rekey_time = 0
        start_action = none
        {self.extra_child}
      }}
    }}
  }}
}}
secrets {{
  ike-1 {{
    id-1 = {self.local_id}
    {peer_id}
    secret = "{self.psk}"
  }}
}}
""")

    def start(self) -> None:
        self.write_config()
        sock = self.workdir / "charon.vici"
        sock.unlink(missing_ok=True)
        env = dict(os.environ, STRONGSWAN_CONF=str(self.workdir / "strongswan.conf"))
        out = open(self.workdir / "stdout.log", "w")
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, "unshare", "-m", "--propagation", "private",
             "sh", "-c", f"mount -t tmpfs tmpfs /run && exec {CHARON}"],
            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.pid = proc.pid
        self._proc = proc
        for _ in range(100):
            if sock.exists():
                break
            if proc.poll() is not None:
                raise RuntimeError(f"charon exited: {(self.workdir / 'stdout.log').read_text()[-2000:]}")
            time.sleep(0.05)
        else:
            raise RuntimeError("charon did not open its VICI socket")
        res = run("swanctl", "--load-all", "--file", str(self.workdir / "swanctl.conf"), "--uri", self.vici)
        if "loaded connection 'c'" not in res.stdout:
            raise RuntimeError(f"swanctl could not load the connection: {res.stdout}{res.stderr}")

    def stop(self) -> None:
        if self.pid is None:
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self._proc.wait(timeout=5)
        self.pid = None

    # --------------------------------------------------------------- control ----
    def swanctl(self, *args: str, timeout: float = 20, check: bool = False) -> subprocess.CompletedProcess:
        return run("swanctl", *args, "--uri", self.vici, timeout=timeout, check=check)

    def initiate(self, timeout: int = 10) -> subprocess.CompletedProcess:
        return self.swanctl("--initiate", "--child", "net", "--ike", "c", "--timeout", str(timeout),
                            timeout=timeout + 5)

    def list_sas(self) -> list[dict]:
        """The IKE SAs as swanctl's raw output gives them (SPIs, state, children)."""
        res = self.swanctl("--list-sas", "--raw")
        sas = []
        for line in res.stdout.splitlines():
            if "initiator-spi=" not in line:
                continue
            ike = {k: v for k, v in re.findall(r"([\w-]+)=([^ {}]+)", line.split("child-sas")[0])}
            ike["children"] = re.findall(r"spi-in=(\w+) spi-out=(\w+)", line)
            ike["child_states"] = re.findall(r"\{[^{}]*?state=(\w+)[^{}]*?spi-in", line)
            sas.append(ike)
        return sas

    def rekey_ike(self) -> subprocess.CompletedProcess:
        return self.swanctl("--rekey", "--ike", "c")

    def rekey_child(self) -> subprocess.CompletedProcess:
        return self.swanctl("--rekey", "--child", "net")

    def terminate_ike(self) -> subprocess.CompletedProcess:
        return self.swanctl("--terminate", "--ike", "c", "--timeout", "5")

    def ping(self, count: int = 3) -> subprocess.CompletedProcess:
        """From strongSwan's inner address to ours, through the tunnel."""
        return run("ip", "netns", "exec", self.ns, "ping", "-c", str(count), "-i", "0.2", "-W", "2",
                   "-I", INNER_REMOTE, INNER_LOCAL, check=False, timeout=20)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def logged_keys(self) -> list[dict]:
        """Per IKE SA, the keys charon logged (hex, lowercase)."""
        return charon_keys(self.log_text())


_NAMES = {"Sk_ei secret": "sk_ei", "Sk_er secret": "sk_er", "Sk_ai secret": "sk_ai", "Sk_ar secret": "sk_ar",
          "Sk_d secret": "sk_d", "Sk_pi secret": "sk_pi", "Sk_pr secret": "sk_pr",
          "encryption initiator key": "esp_enc_i", "encryption responder key": "esp_enc_r",
          "integrity initiator key": "esp_int_i", "integrity responder key": "esp_int_r"}
_HEX = re.compile(r"\[\w+\]\s+\d+: ((?:[0-9A-F]{2} )+)")
_KEY = re.compile(r"\] (Sk_[deapir]{2} secret|(?:encryption|integrity) (?:initiator|responder) key) => \d+ bytes")


def charon_keys(text: str) -> list[dict]:
    """Key blocks of a charon log (ike=4, chd=4), in log order, as dicts of hex strings.
    Each block starts where charon derives IKE SA keys (Sk_d) or Child SA keys."""
    blocks: list[dict] = []
    current: dict | None = None
    name = None
    for line in text.splitlines():
        m = _KEY.search(line)
        if m:
            name = _NAMES[m.group(1)]
            if name in ("sk_d", "esp_enc_i") or current is None or name in current:
                current = {}
                blocks.append(current)
            current[name] = ""
            continue
        m = _HEX.search(line)
        if m and name is not None and current is not None:
            current[name] += m.group(1).replace(" ", "").lower()
            continue
        name = None
    return blocks


def dump(peer: Peer) -> str:
    """What to print when an interop test fails."""
    return json.dumps({"sas": peer.list_sas()}, indent=1) + "\n" + peer.log_text()[-6000:]
