"""Every Bloop event type matches its committed JSON Schema, or only grew compatibly."""

from __future__ import annotations

import json

import orjson
import pytest

from bloop.platform.kit.events.envelope import parse_envelope
from bloop.platform.kit.events.schema_files import ENVELOPE_SCHEMA, check, check_envelope, load_all_types
from bloop.platform.kit.events.types import EventType, registry, type_of
from tests.support import PingSent

load_all_types()
BLOOP_TYPES = [et for et in registry if et.model.__module__.startswith("bloop.")]


def test_there_are_event_types() -> None:
    assert BLOOP_TYPES


@pytest.mark.parametrize("et", BLOOP_TYPES, ids=lambda et: et.type_id)
def test_event_type_is_compatible_with_its_committed_schema(et: EventType[object]) -> None:  # type: ignore[type-var]
    assert et.schema_path.exists(), f"commit {et.schema_path} (bloop events schemas --write)"
    assert check(et) == []


@pytest.mark.parametrize("et", BLOOP_TYPES, ids=lambda et: et.type_id)
def test_committed_schema_names_its_type(et: EventType[object]) -> None:  # type: ignore[type-var]
    committed = json.loads(et.schema_path.read_text())
    assert committed["title"] == et.type_id


def test_the_envelope_is_compatible_with_its_committed_schema() -> None:
    assert ENVELOPE_SCHEMA.exists()
    assert check_envelope() == []
    committed = json.loads(ENVELOPE_SCHEMA.read_text())
    # Open: consumers leave aside the envelope fields a later version adds.
    assert "additionalProperties" not in committed
    assert set(committed["required"]) == {"id", "type", "source", "time", "tenant", "subject", "data"}


def test_an_envelope_field_a_later_version_adds_is_left_aside() -> None:
    """The envelope refused fields it did not know: one added by a later version was
    dead-lettered `bad_envelope` by every consumer of the older one."""
    sent = type_of(PingSent).envelope(PingSent(run="r", n=1), tenant="t1", subject="a")
    later = orjson.loads(sent.to_bytes()) | {"correlation_id": "c-1"}
    assert parse_envelope(orjson.dumps(later)) == sent
