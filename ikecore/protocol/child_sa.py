"""A negotiated Child SA: SPIs, suite, keys, selectors, lifetimes; ready to become EspSA objects."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..crypto.keyschedule import ChildKeys
from .negotiation import EspSuite


@dataclass(frozen=True)
class PeerRekey:
    """The peer's rekey of a Child SA that we answered while our own rekey of
    it was in flight (RFC 7296 §2.8.1): its nonces (Ni, Nr) and the SA it made."""
    nonces: tuple[bytes, bytes]
    child: "ChildSa"


@dataclass(eq=False, slots=True)      # many live at once: no per-instance dict
class ChildSa:
    name: str
    mode: str                   # "tunnel" or "transport"
    suite: EspSuite
    spi_in: bytes               # ours: the peer sends to it
    spi_out: bytes              # the peer's: we send to it
    keys: ChildKeys = field(repr=False)
    initiator: bool             # we started the exchange that created it (i->r keys are outbound)
    local_ts: list
    remote_ts: list
    created_at: float
    rekey_at: float
    expire_at: float
    replay_window: int = 64
    udp_encap: bool = False     # ESP-in-UDP (RFC 3948): a NAT was detected or encapsulation forced
    config: object = field(default=None, repr=False)          # the ChildConfig it came from
    rekeying: bool = field(default=False, repr=False)         # our rekey of it is in flight
    deleting: bool = field(default=False, repr=False)         # our Delete of it is out
    replaced_by: "ChildSa | None" = field(default=None, repr=False)
    peer_rekey: PeerRekey | None = field(default=None, repr=False)

    @property
    def outbound_keys(self) -> tuple[bytes, bytes]:
        k = self.keys
        return (k.encr_i, k.integ_i) if self.initiator else (k.encr_r, k.integ_r)

    @property
    def inbound_keys(self) -> tuple[bytes, bytes]:
        k = self.keys
        return (k.encr_r, k.integ_r) if self.initiator else (k.encr_i, k.integ_i)

    def release_keys(self) -> None:
        """The ESP SAs are built and the keys exported (if asked for): the
        EspSA objects hold them from here on."""
        self.keys = None

    def esp_sas(self):
        """(outbound, inbound) ``ikecore.esp.EspSA`` for this Child SA."""
        from ..esp import EspSA

        def make(spi: bytes, keys: tuple[bytes, bytes], direction: str, window: int):
            encr, integ = keys
            return EspSA(int.from_bytes(spi, "big"), self.suite.encr_id, encr,
                         integ_id=self.suite.integ_id or None, integ_key=integ or None,
                         esn=self.suite.esn, replay_window=window, direction=direction)

        return (make(self.spi_out, self.outbound_keys, "out", 0),
                make(self.spi_in, self.inbound_keys, "in", self.replay_window))


__all__ = ["ChildSa", "PeerRekey"]
