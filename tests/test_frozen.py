"""ikecore._frozen.frozen_dataclass: the cheaper ``__init__`` keeps the frozen
dataclass's behaviour and still runs ``__post_init__`` (TicketState's checks)."""
from __future__ import annotations

import dataclasses

import pytest

from ikecore._frozen import frozen_dataclass
from ikecore.protocol.config import Identity
from ikecore.protocol.negotiation import IkeSuite
from ikecore.protocol.tickets import ClientTicket
from ikecore.resumption.state import TicketState


def _state(**changes) -> TicketState:
    fields = dict(ticket_id=bytes(range(16)), expires_at=1_700_000_000, idi_type=2, idi=b"client",
                  idr_type=2, idr=b"gw", auth_method=1, prf_id=5, encr_id=20, encr_key_bits=256,
                  integ_id=0, dh_group=31, sk_d=b"\xa5" * 32)
    fields.update(changes)
    return TicketState(**fields)


def test_post_init_runs_and_refuses_a_forged_field():
    calls = []

    @frozen_dataclass
    class Checked:
        value: int
        extra: str = "x"

        def __post_init__(self):
            calls.append((self.value, self.extra))
            if self.value < 0:
                raise ValueError("negative")

    assert Checked(3).extra == "x" and calls == [(3, "x")]
    with pytest.raises(ValueError):
        Checked(-1)
    # TicketState's own checks go through the cheap __init__ too
    with pytest.raises(ValueError, match="dh_group"):
        _state(dh_group=0x10000)
    with pytest.raises(TypeError, match="sk_d"):
        _state(sk_d="not bytes")
    with pytest.raises(ValueError, match="ticket_id"):
        _state(ticket_id=b"short")


def test_fields_it_cannot_fill_are_refused_at_class_creation():
    with pytest.raises(TypeError, match="default_factory"):
        @frozen_dataclass
        class WithFactory:
            items: list = dataclasses.field(default_factory=list)
    with pytest.raises(TypeError, match="init=False"):
        @frozen_dataclass
        class WithoutInit:
            a: int
            b: int = dataclasses.field(default=0, init=False)


@pytest.mark.parametrize("make", [
    _state,
    lambda: ClientTicket(ticket=b"T" * 40, expires_at=1.5e9, local_id=Identity.parse("client.example"),
                         remote_id=Identity.parse("gw.example"), suite=IkeSuite(20, 256, 5, 0, 31),
                         sk_d=b"\xa5" * 32, config_name="c")],
    ids=["TicketState", "ClientTicket"])
def test_ticket_types_stay_frozen_comparable_hashable_and_replaceable(make):
    a, b = make(), make()
    assert a == b and hash(a) == hash(b) and a is not b
    assert dataclasses.fields(a) and type(a).__dataclass_params__.frozen
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.sk_d = b"other"
    assert a.sk_d == b"\xa5" * 32
    changed = dataclasses.replace(a, sk_d=b"\x08" * 32)
    assert changed != a and changed.sk_d == b"\x08" * 32
    assert "\\xa5" not in repr(a) and "sk_d" not in repr(a)     # the secret stays out of repr
