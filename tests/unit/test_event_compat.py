from __future__ import annotations

import copy
import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

import bloop
from bloop.platform.kit.events.compat import breaking_changes


class V1(BaseModel):
    lesson_id: str
    minutes: int
    level: Literal["beginner", "advanced"]
    tags: list[str] = []


def schema(model: type[BaseModel]) -> dict[str, object]:
    return model.model_json_schema()


def test_identical_schemas_are_compatible() -> None:
    assert breaking_changes(schema(V1), schema(V1)) == []


def test_adding_an_optional_field_is_compatible() -> None:
    class V1b(V1):
        note: str | None = None

    assert breaking_changes(schema(V1), schema(V1b)) == []


def test_widening_an_enum_breaks_older_consumers() -> None:
    """Older consumers refuse the new value (user.registered's roles gaining "observer" was
    dead-lettered by every group reading user.events)."""
    class V1c(BaseModel):
        lesson_id: str
        minutes: int
        level: Literal["beginner", "advanced", "expert"]
        tags: list[str] = []

    assert breaking_changes(schema(V1), schema(V1c)) == [
        "data.level: enum gained ['expert'] (older consumers refuse it)"]


def test_removing_a_field_breaks() -> None:
    class Shrunk(BaseModel):
        lesson_id: str
        level: Literal["beginner", "advanced"]
        tags: list[str] = []

    assert any("minutes: removed" in p for p in breaking_changes(schema(V1), schema(Shrunk)))


def test_changing_a_type_breaks() -> None:
    class Retyped(BaseModel):
        lesson_id: int
        minutes: int
        level: Literal["beginner", "advanced"]
        tags: list[str] = []

    assert any("lesson_id: type changed" in p for p in breaking_changes(schema(V1), schema(Retyped)))


def test_a_new_required_field_breaks() -> None:
    class Stricter(V1):
        course_id: str

    assert any("course_id: became required" in p
               for p in breaking_changes(schema(V1), schema(Stricter)))


def test_narrowing_an_enum_or_list_items_breaks() -> None:
    class Narrow(BaseModel):
        lesson_id: str
        minutes: int
        level: Literal["beginner"]
        tags: list[int] = []

    problems = breaking_changes(schema(V1), schema(Narrow))
    assert any("enum lost ['advanced']" in p for p in problems)
    assert any("tags[]: type changed" in p for p in problems)


def test_restricting_a_free_field_to_an_enum_breaks() -> None:
    class Free(BaseModel):
        lesson_id: str

    class Restricted(BaseModel):
        lesson_id: Literal["intro", "outro"]

    assert any("lesson_id: now restricted to" in p
               for p in breaking_changes(schema(Free), schema(Restricted)))


def test_refusing_additional_properties_breaks() -> None:
    class Closed(V1):
        model_config = ConfigDict(extra="forbid")

    assert any("no longer accepts additional properties" in p
               for p in breaking_changes(schema(V1), schema(Closed)))
    assert breaking_changes(schema(Closed), schema(V1)) == []


def test_narrowing_a_bound_breaks_newer_consumers_and_widening_it_older_ones() -> None:
    class Bounded(BaseModel):
        title: str = Field(max_length=200)
        minutes: int = Field(ge=1)

    class Tighter(BaseModel):
        title: str = Field(max_length=100)
        minutes: int = Field(ge=5)

    class Looser(BaseModel):
        title: str = Field(max_length=400)
        minutes: int = Field(ge=0)

    problems = breaking_changes(schema(Bounded), schema(Tighter))
    assert any("title: maxLength narrowed to 100" in p for p in problems)
    assert any("minutes: minimum narrowed to 5" in p for p in problems)
    problems = breaking_changes(schema(Bounded), schema(Looser))
    assert any("title: maxLength widened to 400" in p for p in problems)
    assert any("minutes: minimum widened to 0" in p for p in problems)
    unbounded = breaking_changes(schema(Bounded), {**schema(Bounded), "properties": {
        "title": {"type": "string"}, "minutes": {"type": "integer", "minimum": 1}}})
    assert unbounded == ["data.title: maxLength 200 dropped (older consumers refuse what it now "
                         "admits)"]


def test_a_new_bound_on_an_unbounded_field_breaks() -> None:
    class Unbounded(BaseModel):
        title: str

    class Bounded(BaseModel):
        title: str = Field(max_length=100)

    assert any("title: maxLength narrowed to 100" in p
               for p in breaking_changes(schema(Unbounded), schema(Bounded)))


def test_a_change_inside_a_nested_model_breaks() -> None:
    class Step(BaseModel):
        lesson_id: str
        minutes: int

    class ShorterStep(BaseModel):
        lesson_id: str

    class Path(BaseModel):
        steps: list[Step]

    class ShorterPath(BaseModel):
        steps: list[ShorterStep]

    assert any("steps[].minutes: removed" in p
               for p in breaking_changes(schema(Path), schema(ShorterPath)))


def test_retyping_an_optional_field_breaks() -> None:
    class Noted(V1):
        note: str | None = None

    class Renoted(V1):
        note: int | None = None

    assert any("note: type changed" in p for p in breaking_changes(schema(Noted), schema(Renoted)))


def test_a_field_made_nullable_breaks_older_consumers() -> None:
    """lesson.published's title going from a string to a string or null."""
    class Titled(BaseModel):
        title: str

    class MaybeTitled(BaseModel):
        title: str | None

    assert breaking_changes(schema(Titled), schema(MaybeTitled)) == [
        "data.title: type changed from ['string'] to ['null', 'string'] (older consumers "
        "refuse null)"]
    assert any("newer consumers refuse null" in p
               for p in breaking_changes(schema(MaybeTitled), schema(Titled)))


def test_a_pattern_or_format_added_or_dropped_breaks() -> None:
    class Free(BaseModel):
        lesson_id: str
        at: str

    class Patterned(BaseModel):
        lesson_id: str = Field(pattern=r"^l[0-9]+$")
        at: datetime

    forward = breaking_changes(schema(Free), schema(Patterned))
    assert any(p.startswith("data.lesson_id: pattern changed from None to '^l[0-9]+$'")
               for p in forward)
    assert any(p.startswith("data.at: format changed from None to 'date-time'") for p in forward)
    backward = breaking_changes(schema(Patterned), schema(Free))
    assert any(p.startswith("data.lesson_id: pattern changed") for p in backward)
    assert any(p.startswith("data.at: format changed") for p in backward)


def test_the_values_of_a_dict_are_compared() -> None:
    """lesson.published's concept_names going from strings to integers."""
    class Named(BaseModel):
        concept_names: dict[str, str]

    class Numbered(BaseModel):
        concept_names: dict[str, int]

    class Bounded(BaseModel):
        concept_names: dict[str, Annotated[str, Field(max_length=80)]]

    assert any(p.startswith("data.concept_names.*: type changed")
               for p in breaking_changes(schema(Named), schema(Numbered)))
    assert any(p.startswith("data.concept_names.*: maxLength narrowed to 80")
               for p in breaking_changes(schema(Named), schema(Bounded)))


def test_a_nested_enum_and_an_optional_nested_model_are_compared() -> None:
    """The options of an anyOf are compared type by type: a model that may be null keeps its
    fields' rules."""
    class Step(BaseModel):
        kind: Literal["read", "quiz"]

    class WiderStep(BaseModel):
        kind: Literal["read", "quiz", "video"]

    class Plan(BaseModel):
        steps: list[Step]
        next: Step | None = None

    class WiderPlan(BaseModel):
        steps: list[WiderStep]
        next: WiderStep | None = None

    problems = breaking_changes(schema(Plan), schema(WiderPlan))
    assert any(p.startswith("data.steps[].kind: enum gained ['video']") for p in problems)
    assert any(p.startswith("data.next.kind: enum gained ['video']") for p in problems)


def test_a_field_no_longer_required_breaks_older_consumers() -> None:
    class Optional(BaseModel):
        lesson_id: str
        minutes: int = 0
        level: Literal["beginner", "advanced"]
        tags: list[str] = []

    assert breaking_changes(schema(V1), schema(Optional)) == [
        "data.minutes: no longer required (older consumers require it)"]


def test_a_field_added_to_a_closed_object_breaks_and_to_an_open_one_does_not() -> None:
    """The envelope was closed (`extra="forbid"`): a `correlation_id` added to it was
    dead-lettered `bad_envelope` by every consumer. Opened, with the same fields, it takes one."""
    class Closed(BaseModel):
        model_config = ConfigDict(extra="forbid")
        id: str

    class ClosedCorrelated(Closed):
        correlation_id: str | None = None

    class Open(BaseModel):
        id: str

    class OpenCorrelated(Open):
        correlation_id: str | None = None

    assert breaking_changes(schema(Closed), schema(ClosedCorrelated)) == [
        "data.correlation_id: added where older consumers refuse unknown fields"]
    assert breaking_changes(schema(Closed), schema(Open)) == []
    assert breaking_changes(schema(Open), schema(OpenCorrelated)) == []


def test_an_integer_is_a_number() -> None:
    class Whole(BaseModel):
        score: int

    class Real(BaseModel):
        score: float

    assert breaking_changes(schema(Whole), schema(Real)) == [
        "data.score: type changed from ['integer'] to ['number'] (older consumers refuse "
        "number)"]
    assert breaking_changes(schema(Real), schema(Whole)) == [
        "data.score: type changed from ['number'] to ['integer'] (newer consumers refuse "
        "number)"]


def test_a_keyword_the_check_does_not_know_must_stay_as_written() -> None:
    old = {"type": "object", "properties": {"a": {"type": "string", "contentEncoding": "base64"}}}
    new = {"type": "object", "properties": {"a": {"type": "string"}}}
    assert breaking_changes(old, new) == ["data.a: contentEncoding changed (compared as written)"]


def test_annotations_may_change() -> None:
    class Described(BaseModel):
        lesson_id: str = Field(description="the lesson", title="Lesson")

    assert breaking_changes(schema(V1), {**schema(V1), "title": "renamed"}) == []
    assert breaking_changes(schema(Described), {**schema(Described), "properties": {
        "lesson_id": {"type": "string"}}}) == []


def test_a_recursive_model_is_compared_once() -> None:
    class Node(BaseModel):
        name: str
        children: list[Node] = []

    assert breaking_changes(schema(Node), schema(Node)) == []


def committed(path: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((Path(bloop.__file__).parent / path).read_text())
    return loaded


def changed(schema: dict[str, Any], field: str, to: dict[str, object]) -> dict[str, Any]:
    """`schema` with `field`'s keywords set to `to`'s (dropped where None)."""
    out = copy.deepcopy(schema)
    merged = out["properties"][field] | to
    out["properties"][field] = {k: v for k, v in merged.items() if v is not None}
    return out


REGISTERED = "platform/identity/schemas/bloop.identity.user.registered.v1.json"
MASTERED = "platform/learning/schemas/bloop.learning.concept.mastered.v1.json"
PUBLISHED = "platform/content/schemas/bloop.content.lesson.published.v1.json"


@pytest.mark.parametrize(("path", "field", "to", "problem"), [
    (REGISTERED, "roles", {"items": {"type": "string", "enum": [
        "learner", "educator", "teaching_assistant", "tenant_admin", "platform_admin",
        "observer"]}}, "data.roles[]: enum gained ['observer']"),
    (MASTERED, "source", {"enum": ["bkt", "placement", "import"]},
     "data.source: enum gained ['import']"),
    (PUBLISHED, "title", {"type": None, "anyOf": [{"type": "string"}, {"type": "null"}]},
     "data.title: type changed from ['string'] to ['null', 'string']"),
    (PUBLISHED, "lesson_id", {"pattern": "^[a-z0-9-]+$"}, "data.lesson_id: pattern changed"),
    (PUBLISHED, "concept_names", {"additionalProperties": {"type": "integer"}},
     "data.concept_names.*: type changed from ['string'] to ['integer']"),
])
def test_the_changes_the_audit_saw_dead_lettered_break(path: str, field: str,
                                                       to: dict[str, object], problem: str) -> None:
    old = committed(path)
    new = changed(old, field, to)
    assert any(p.startswith(problem) for p in breaking_changes(old, new)), breaking_changes(old, new)
