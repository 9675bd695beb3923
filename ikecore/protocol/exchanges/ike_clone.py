"""Cloning the IKE SA (RFC 7791): an IKE SA rekey that keeps the old SA.

    Initiator                                  Responder
    HDR, SK {N(CLONE_IKE_SA), SA, Ni, KEi}  -->
                                          <--  HDR, SK {SA, Nr, KEr}
                                          <--  HDR, SK {N(TEMPORARY_FAILURE | NO_ADDITIONAL_SAS | ...)}

Allowed only when both ends sent N(CLONE_IKE_SA_SUPPORTED) in IKE_AUTH
(§5.1). The clone is keyed like a rekey (RFC 7296 §2.18: SKEYSEED =
prf_old(SK_d_old, g^ir_new | Ni | Nr), with a fresh key exchange, which
§2.18 makes mandatory), starts its Message IDs at 0 with a window of 1, has
the initiator of this exchange as its original initiator, and carries the
parent's identities and authentication but none of its Child SAs (§5.2).

What this implementation decides where the RFCs leave it open (docs/clone.md):

- The responder refuses, leaving the parent as it was: cloning not negotiated,
  the clone cap of the authenticated peer reached, or its authentication over
  (NO_ADDITIONAL_SAS: retrying will not help); the parent being deleted or a
  rekey of it being resolved (TEMPORARY_FAILURE, §5.3); a request without KEi,
  or whose new SPI is zero or one the peer already uses (NO_PROPOSAL_CHOSEN).
- N(CLONE_IKE_SA) anywhere but in the request of an IKE SA rekey is ignored
  (§5.2): a Child SA CREATE_CHILD_SA stays one, an INFORMATIONAL stays one.
- A clone ends when the parent's authentication does: its hard lifetime, and
  that of every rekey of it, is clamped to the deadline the parent got when
  IKE_AUTH completed (``auth_expires_at``: that SA's hard lifetime), or to the
  configured re-authentication deadline (``reauth_at``) if that is earlier.
- Collisions: a clone never replaces or deletes the parent. The end whose
  clone request is out refuses the other end's rekey of the parent with
  TEMPORARY_FAILURE (as for any exchange in flight, RFC 7296 §2.25.2), so a
  clone and a rekey that cross give the clone now and the rekey later; two
  clone requests that cross give two clones; a clone request that meets the
  parent's Delete gets TEMPORARY_FAILURE and the parent goes.
"""
from __future__ import annotations

import logging

from ...errors import NoAdditionalSas, TemporaryFailure
from .. import events as ev
from ..constants import NotifyType
from ..ike_sa import State
from ..message import Message
from ..payloads import NotifyPayload
from .ike_rekey import RETRY_DELAY, RekeyIkeTask, answer_ike_rekey
from .informational import DeleteIkeTask

log = logging.getLogger("ikecore.ike")


class CloneIkeTask(RekeyIkeTask):
    """Ask the peer for a clone of the IKE SA (``IkeConnection.clone``)."""

    MAX_TEMPORARY_RETRIES = 3
    follows_rekey = True          # queued behind a rekey: clone the SA that replaced the parent
    rekeys_ike_sa = False         # the parent stays: other exchanges may go on beside it

    def __init__(self) -> None:
        super().__init__()
        self.temporary_retries = 0

    def prefix(self) -> list:
        return [NotifyPayload(notify_type=NotifyType.CLONE_IKE_SA)]

    def completed(self, conn, new, peer_nonce: bytes, now: float) -> None:
        adopt_clone(conn, new, now)

    def failed(self, conn, now: float, reason: str, notify_type: int | None = None) -> None:
        self.kex = None
        if notify_type == NotifyType.TEMPORARY_FAILURE and self.temporary_retries < self.MAX_TEMPORARY_RETRIES:
            self.temporary_retries += 1
            conn.queue_later(self, now + RETRY_DELAY + conn.rng(1)[0] / 64.0)   # MUST wait (§2.25)
            return
        log.info("%s: clone failed: %s", conn.name, reason)
        conn.emit(ev.IkeSaCloneFailed(conn.spi_i, conn.spi_r, notify_type, reason))


def respond(conn, msg: Message, now: float) -> list:
    """A CREATE_CHILD_SA IKE rekey request with N(CLONE_IKE_SA)."""
    family = refuse_clone(conn, now)

    def unused(spi: bytes) -> bool:
        # the peer's other IKE SAs with us (a handful: the clone cap bounds them)
        for other in family:
            if spi == other.spi_i or spi == other.spi_r:
                return False
        return True

    new, reply, _ = answer_ike_rekey(conn, msg, now, check_spi=unused, spawn=False)
    adopt_clone(conn, new, now)
    return reply


def refuse_clone(conn, now: float):
    """Raise the error notify a clone request of ``conn`` gets, if it gets one;
    else return the peer's IKE SAs with us (as the endpoint counts them)."""
    cfg = conn.config
    if not (cfg.clone and conn.peer_clone):
        # §5.1: without CLONE_IKE_SA_SUPPORTED both ways the SA MUST NOT be cloned
        raise NoAdditionalSas("cloning was not negotiated")
    if conn.rekey_collision is not None or (conn.tasks and any(isinstance(t, DeleteIkeTask) for t in conn.tasks)):
        raise TemporaryFailure("the IKE SA is being rekeyed or deleted")     # §5.3
    if now >= authentication_deadline(conn):
        raise NoAdditionalSas("the peer's authentication has expired")
    peer_sas = conn.hooks.get("peer_sas")
    if peer_sas is None:
        return ()
    family = peer_sas(conn)
    if len(family) > cfg.clone_limit:
        # §5.3, §8: the cap covers every IKE SA of the authenticated peer
        raise NoAdditionalSas(f"the peer holds {len(family)} IKE SAs (clone_limit {cfg.clone_limit})")
    return family


def authentication_deadline(conn) -> float:
    """When the authentication behind ``conn`` ends: the original SA's hard lifetime
    from IKE_AUTH (``auth_expires_at``), or the configured re-authentication
    deadline (``reauth_at``, config ``reauth_time``) if that comes first."""
    return min(conn.auth_expires_at, conn.reauth_at)


def adopt_clone(parent, new, now: float) -> None:
    """``new`` (made by ``successor``) becomes an established clone of ``parent``."""
    if not new.cloned:            # (successor already clamped a clone of a clone)
        new.cloned = True
        new.expire_at = min(new.expire_at, new.auth_expires_at, new.reauth_at)   # authentication_deadline
    new.ticket_client = False     # the connection's resumption ticket stays the parent's
    # Child SAs over the clone are narrowed to the address the parent leased the peer;
    # the endpoint keeps the lease while any SA of the peer holds it
    new.assigned_ip = parent.assigned_ip
    new.state, new.silent = State.ESTABLISHED, False
    if log.isEnabledFor(logging.INFO):     # the names cost more than the rest of this
        log.info("%s: cloned as %s", parent.name, new.name)
    parent.emit(ev.IkeSaCloned((parent.spi_i, parent.spi_r), (new.spi_i, new.spi_r), new.suite, new))
    new.start_tasks(now)          # its own SET_WINDOW_SIZE, if any (RFC 7296 §2.3)


__all__ = ["CloneIkeTask", "respond", "refuse_clone", "adopt_clone", "authentication_deadline"]
