"""The events keep the frozen-dataclass behaviour their cheaper ``__init__`` must
not lose (ikecore._frozen.frozen_dataclass)."""
from __future__ import annotations

import dataclasses
import inspect

import pytest

from ikecore.protocol import events as ev


def _all_events():
    return [getattr(ev, name) for name in ev.__all__ if name != "Event"]


@pytest.mark.parametrize("cls", _all_events(), ids=lambda c: c.__name__)
def test_every_event_is_a_frozen_dataclass_with_its_fields_in_order(cls):
    fields = [f.name for f in dataclasses.fields(cls)]
    assert list(inspect.signature(cls).parameters) == fields
    assert cls.__dataclass_params__.frozen


@pytest.mark.parametrize("cls", _all_events(), ids=lambda c: c.__name__)
def test_fields_set_by_position_and_defaults_filled(cls):
    required = [f for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    values = {f.name: f"value-{i}" for i, f in enumerate(required)}
    event = cls(*values.values())
    for f in dataclasses.fields(cls):
        expected = values[f.name] if f.name in values else f.default
        assert getattr(event, f.name) == expected


def test_assignment_and_deletion_raise_frozen_instance_error():
    event = ev.IkeSaDeleted(b"i" * 8, b"r" * 8, "deleted")
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.reason = "other"
    with pytest.raises(dataclasses.FrozenInstanceError):
        del event.spi_i
    assert event.reason == "deleted"


def test_equality_hash_repr_and_replace_are_the_dataclass_ones():
    a = ev.IkeSaEstablished(b"i" * 8, b"r" * 8, True, None, None, None, resumed=True)
    b = ev.IkeSaEstablished(spi_i=b"i" * 8, spi_r=b"r" * 8, initiator=True, suite=None,
                            local_id=None, remote_id=None, virtual_ip=None, resumed=True)
    assert a == b and hash(a) == hash(b)
    assert a != dataclasses.replace(a, resumed=False)
    assert repr(a).startswith("IkeSaEstablished(spi_i=b'iiiiiiii', ")
    # compare=False/repr=False fields stay out of equality and repr
    first = ev.TicketIssued(b"t", 1, 2, store_put="put one")
    second = ev.TicketIssued(b"t", 1, 2, store_put="put two")
    assert first == second and "put" not in repr(first)


def test_wrong_arguments_fail_as_for_any_function():
    with pytest.raises(TypeError):
        ev.ChildSaInstalled()
    with pytest.raises(TypeError):
        ev.PeerAlive(b"i", b"r", b"extra")
    with pytest.raises(TypeError):
        ev.PeerAlive(b"i", spi_x=b"r")
