"""Every Bloop event type matches its committed JSON Schema, or only grew compatibly."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import orjson
import pytest

from bloop.platform.content.events import LessonDeleted
from bloop.platform.kit.events.envelope import MalformedEvent, parse_envelope
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


@pytest.mark.parametrize("time", ["2026-12-06T10:00:00", 1796610600, 0.5])
def test_an_envelope_time_without_its_zone_is_refused(time: object) -> None:
    """A time without a zone was read as naive (and taken in the server's own zone by a
    consumer falling back on it), a number as Unix seconds."""
    sent = type_of(PingSent).envelope(PingSent(run="r", n=1), tenant="t1", subject="a")
    with pytest.raises(MalformedEvent) as refused:
        parse_envelope(orjson.dumps(orjson.loads(sent.to_bytes()) | {"time": time}))
    assert (refused.value.reason, refused.value.detail.split(":")[0]) == ("bad_envelope", "time")


@pytest.mark.parametrize("time", ["2026-12-06T10:00:00", "1796610600", 1796610600, "0.5"])
def test_a_time_in_an_event_s_data_without_its_zone_is_refused(time: object) -> None:
    et = registry.get("bloop.content.lesson.deleted.v1")
    sent = type_of(LessonDeleted).envelope(LessonDeleted(
        lesson_id="l1", course_id="c1", lesson_version=2, deleted_at=datetime.now(UTC)),
        tenant="t1", subject="l1")
    assert et.parse(sent) is not None
    changed = parse_envelope(orjson.dumps(
        orjson.loads(sent.to_bytes()) | {"data": sent.data | {"deleted_at": time}}))
    with pytest.raises(MalformedEvent) as refused:
        et.parse(changed)
    assert "deleted_at" in refused.value.detail
