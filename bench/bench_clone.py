"""Cloning an IKE SA (RFC 7791) against a full IKE_SA_INIT + IKE_AUTH, both
through two in-memory endpoints the way bench_ike.py drives handshakes, in
the same run and with the same suite (AES-256-GCM, PRF SHA-256, X25519).

Run:  python -m pytest bench/bench_clone.py -s -p no:cacheprovider
      python bench/bench_clone.py [--profile psk|rsa] [--parts] [--seconds S]

- ``clone vs handshake``: clones per second on one established IKE SA
  (CREATE_CHILD_SA with N(CLONE_IKE_SA), KEi/KEr, both ends' clone set up)
  against full handshakes per second, for PSK and for RSA-2048 certificates
  (a CA and a leaf each side, RFC 7427 RSASSA-PSS signatures). The handshake
  baseline carries the first Child SA, as IKE_AUTH normally does; a second
  row compares against an IKE_AUTH without a Child SA (no SA/TS payloads,
  no Child SA keys), which is the stricter like-for-like figure.
  Targets: 2x with PSK, 5x with RSA-2048.
- ``responder CPU``: process CPU time inside the responder endpoint's
  ``receive_datagram`` per clone and per handshake (the cloning peer is the
  initiator; a gateway answers clones).
- ``key exchange share``: the clone against two X25519 key generations and
  two shared secrets alone, i.e. which share of a clone is the key exchange
  RFC 7296 §2.18 makes mandatory (RFC 7791 defines no DH-less clone).

Every ratio is given twice: wall-clock rates (the harness's interleaved
rounds) and process CPU time per call (``cpu_interleaved``), which a busy
shared machine disturbs far less. Each clone is forgotten on both ends after it is made (``terminate``, no
Delete exchange), so the SA count stays at two however many rounds run.
Nothing asserts on time.
"""
from __future__ import annotations

import datetime
import statistics
import time

import pytest

from bench_ike import ADDR_I, ADDR_R, PSK, Link, key_exchange_fn
from ikecore.protocol.config import (ChildConfig, EspProposal, IkeConfig, IkeProposal, Identity, LocalAuth,
                                     RemoteAuth, TrafficSelectorSpec)

SUITE = "aes256gcm16-prfsha256-x25519"
TARGETS = {"psk": 2.0, "rsa": 5.0}
CERT_TIME = datetime.datetime(2026, 6, 1, tzinfo=datetime.timezone.utc)


def _pki():
    """An RSA-2048 CA and an RSA-2048 leaf for each end (made once)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def issue(subject, key, issuer, issuer_key, ca, san=None):
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(CERT_TIME - datetime.timedelta(days=1))
             .not_valid_after(CERT_TIME + datetime.timedelta(days=365))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ca:
            b = b.add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                                critical=True)
        if san:
            b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
        return b.sign(issuer_key, hashes.SHA256()).public_bytes(Encoding.DER)

    ca_key = rsa.generate_private_key(65537, 2048)
    ca = issue(name("bench CA"), ca_key, name("bench CA"), ca_key, True)
    out = {"ca": ca}
    for who in ("initiator.bench", "responder.bench"):
        key = rsa.generate_private_key(65537, 2048)
        out[who] = (key, issue(name(who), key, name("bench CA"), ca_key, False, san=who))
    return out


_PKI: dict = {}


def configs(auth: str, *, child: bool = True):
    """Initiator and responder configurations, PSK or RSA-2048 certificates,
    cloning on (and no cap that a long run could reach)."""
    def side(me, peer, local, remote):
        children = [ChildConfig("net", [TrafficSelectorSpec.parse(local)], [TrafficSelectorSpec.parse(remote)],
                                [EspProposal.parse("aes256gcm16")])] if child else []
        common = dict(proposals=[IkeProposal.parse(SUITE)], children=children, dpd_delay=0, clone=True,
                      clone_limit=1_000_000)
        if auth == "psk":
            return IkeConfig(local_id=Identity.parse(me), local_auth=LocalAuth(psk=PSK),
                             remote_auth=RemoteAuth(psk=PSK), remote_id=Identity.parse(peer), **common)
        from ikecore.protocol.auth import TrustStore
        if not _PKI:
            _PKI.update(_pki())
        key, cert = _PKI[me]
        return IkeConfig(local_id=Identity.parse(me), local_auth=LocalAuth(private_key=key, certificates=[cert]),
                         remote_auth=RemoteAuth(trust_store=TrustStore([_PKI["ca"]])),
                         remote_id=Identity.parse(peer), certificate_time=lambda now: CERT_TIME, **common)
    return (side("initiator.bench", "responder.bench", "10.1.0.0/16", "10.2.0.0/16"),
            side("responder.bench", "initiator.bench", "10.2.0.0/16", "10.1.0.0/16"))


class CpuLink(Link):
    """bench_ike's Link, but ``responder_s`` counts process CPU time (the
    machine's other work does not land in it)."""

    def pump(self) -> None:
        ei, er, now, clock = self.ei, self.er, self.now, time.process_time
        while True:
            moved = False
            for data, remote, local in ei.datagrams_to_send():
                t0 = clock()
                er.receive_datagram(data, local, remote, now)
                self.responder_s += clock() - t0
                moved = True
            for data, remote, local in er.datagrams_to_send():
                ei.receive_datagram(data, local, remote, now)
                moved = True
            if not moved:
                break
        for ep in (ei, er):
            while ep.next_event() is not None:
                pass


def _handshake(link: Link, child: bool):
    conn = link.ei.connect(link.cfg_i, ADDR_I, ADDR_R, link.now)
    link.pump()
    if not conn.established or (child and not conn.children):
        raise AssertionError("the benchmark handshake did not complete")
    return conn


def handshake_fn(auth: str, *, child: bool = True):
    """One full IKE_SA_INIT + IKE_AUTH (with or without the first Child SA) per call."""
    cfg_i, cfg_r = configs(auth, child=child)
    counter = iter(range(10**9))

    def run():
        _handshake(Link(cfg_i, cfg_r, next(counter) * 2), child)
    return run


class Cloner:
    """One established IKE SA that the initiator clones once per call."""

    def __init__(self, auth: str, seed: int = 99) -> None:
        cfg_i, cfg_r = configs(auth)
        self.link = CpuLink(cfg_i, cfg_r, seed)
        self.parent = _handshake(self.link, True)
        [self.parent_r] = self.link.er.connections.values()
        self.clones = 0

    def __call__(self) -> None:
        link, ei, er = self.link, self.link.ei, self.link.er
        ei.clone(self.parent, link.now)
        link.pump()
        made = [c for c in ei.connections.values() if c is not self.parent]
        answered = [c for c in er.connections.values() if c is not self.parent_r]
        if len(made) != 1 or len(answered) != 1 or made[0].keys != answered[0].keys:
            raise AssertionError("the clone did not complete")
        # forget it on both ends (no Delete exchange): the SA count stays at two
        for ep, conn in ((ei, made[0]), (er, answered[0])):
            conn.terminate("benchmark", link.now)
            ep.collect(conn, link.now)
            # what an I/O layer does after each batch: it also drains the timer queue's
            # changed-SA set, which would otherwise keep every forgotten clone
            ep.get_timer()
        self.clones += 1


def responder_ms(auth: str, n: int = 40, rounds: int = 7) -> tuple[float, float]:
    """(responder CPU ms per clone, per handshake with a Child SA): medians of
    interleaved rounds, each started after a garbage collection so that no
    round pays for garbage an earlier benchmark left."""
    import gc
    cloner = Cloner(auth, seed=5)
    cfg_i, cfg_r = configs(auth)
    seeds = iter(range(20_000, 10**9, 2))
    per_clone, per_handshake = [], []
    for _ in range(rounds):
        gc.collect()
        cloner.link.responder_s = 0.0
        for _ in range(n):
            cloner()
        per_clone.append(cloner.link.responder_s / n * 1000)
        gc.collect()
        total = 0.0
        for _ in range(n):
            link = CpuLink(cfg_i, cfg_r, next(seeds))
            _handshake(link, True)
            total += link.responder_s
        per_handshake.append(total / n * 1000)
    return statistics.median(per_clone), statistics.median(per_handshake)


# ----------------------------------------------------------------- benchmarks --

def cpu_interleaved(ours, baseline, rounds: int = 9, n_ours: int = 40, n_base: int = 20) -> tuple[float, float]:
    """Median process-CPU seconds per call of each, measured alternately: on a
    machine shared with other work, wall-clock rates mostly measure the neighbours."""
    def per_call(fn, n):
        t0 = time.process_time()
        for _ in range(n):
            fn()
        return (time.process_time() - t0) / n
    a, b = [], []
    for _ in range(rounds):
        a.append(per_call(ours, n_ours))
        b.append(per_call(baseline, n_base))
    return statistics.median(a), statistics.median(b)


@pytest.mark.parametrize("child", [True, False], ids=["with-child", "no-child"])
@pytest.mark.parametrize("auth", ["psk", "rsa"])
def test_clone_vs_handshake(compare, record_ratio, benchmark, auth, child):
    name = {"psk": "PSK", "rsa": "RSA-2048"}[auth]
    what = "IKE_SA_INIT+IKE_AUTH+Child" if child else "IKE_SA_INIT+IKE_AUTH (no Child)"
    cloner, handshake = Cloner(auth), handshake_fn(auth, child=child)
    ratio = compare(cloner, handshake, target=TARGETS[auth], label=f"clone vs {what}, {name} x25519",
                    baseline_name="full handshake")
    t_clone, t_hs = cpu_interleaved(cloner, handshake)
    record_ratio("  the same in process CPU time", 1 / t_clone, 1 / t_hs, TARGETS[auth])
    extra = {"clone_vs_handshake": ratio, "clone_vs_handshake_cpu": t_hs / t_clone,
             "clone_cpu_ms": t_clone * 1e3, "handshake_cpu_ms": t_hs * 1e3}
    if child:
        r_clone, r_hs = responder_ms(auth)
        extra.update({"responder_ms_per_clone": r_clone, "responder_ms_per_handshake": r_hs,
                      "responder_ratio": r_hs / r_clone})
        print(f"\n{name}: responder {r_clone:.3f} ms per clone vs {r_hs:.3f} ms per handshake "
              f"(x{r_hs / r_clone:.2f})")
    benchmark.extra_info.update(extra)


def test_clone_key_exchange_share(compare):
    compare(Cloner("psk"), key_exchange_fn("x25519"), label="clone (PSK x25519): key exchange share",
            baseline_name="key exchange alone")


# ------------------------------------------------------------ stand-alone use --

def _rate(fn, seconds: float) -> float:
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - t0)


def parts(n: int = 1000) -> dict:
    """Process-CPU microseconds of what every clone (and every handshake) does,
    measured alone: where a clone's time goes besides message handling."""
    import random

    from ikecore.crypto import SkCipher
    from ikecore.crypto.keyschedule import ike_keys_rekey
    from ikecore.protocol.ike_sa import IkeConnection

    def cpu_us(fn, count):
        runs = []
        for _ in range(5):
            t0 = time.process_time()
            for _ in range(count):
                fn()
            runs.append((time.process_time() - t0) / count * 1e6)
        return statistics.median(runs)
    cfg = configs("psk")[0]
    rng = random.Random(1).randbytes
    key = bytes(36)
    out = {
        "clone, both ends": cpu_us(Cloner("psk"), max(50, n // 4)),
        "X25519: 2 key pairs + 2 shared secrets": cpu_us(key_exchange_fn("x25519"), max(50, n // 4)),
        "4 SK cipher contexts": 4 * cpu_us(lambda: SkCipher(20, key), n),
        "2 key schedules (SKEYSEED + prf+)": 2 * cpu_us(lambda: ike_keys_rekey(
            5, bytes(32), bytes(32), bytes(32), bytes(32), bytes(8), bytes(8), prf_id=5, encr_id=20,
            encr_key_bits=256, integ_id=0), n),
        "2 IkeConnection objects": 2 * cpu_us(lambda: IkeConnection(
            cfg, initiator=True, local=ADDR_I, remote=ADDR_R, rng=rng, now=0.0), n),
    }
    out["the rest: messages and state, both ends"] = out["clone, both ends"] - sum(
        v for k, v in out.items() if k != "clone, both ends")
    return out


def main(argv=None) -> None:
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", choices=["psk", "rsa"], help="cProfile 500 clones (and the responder alone)")
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--parts", action="store_true", help="CPU time of a clone's parts, each alone")
    args = ap.parse_args(argv)
    if args.parts:
        for name, us in parts().items():
            print(f"{name:42} {us:8.1f} us")
        return
    if args.profile:
        import cProfile
        import pstats
        cloner = Cloner(args.profile)
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(500):
            cloner()
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)
        pstats.Stats(prof).sort_stats("cumulative").print_stats(40)
        return
    kex = _rate(key_exchange_fn("x25519"), args.seconds)
    for auth in ("psk", "rsa"):
        clone = _rate(Cloner(auth), args.seconds)
        hs = _rate(handshake_fn(auth), args.seconds)
        bare = _rate(handshake_fn(auth, child=False), args.seconds)
        r_clone, r_hs = responder_ms(auth)
        print(f"{auth:4} clones/s {clone:8.0f}  handshakes/s {hs:7.0f} (x{clone / hs:.2f}), "
              f"without Child {bare:7.0f} (x{clone / bare:.2f}); key exchange {clone / kex:5.1%} of a clone; "
              f"responder {r_clone:.3f} ms/clone vs {r_hs:.3f} ms/handshake (x{r_hs / r_clone:.2f})")


if __name__ == "__main__":
    main()
