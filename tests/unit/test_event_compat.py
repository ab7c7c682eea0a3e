from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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


def test_widening_an_enum_is_compatible() -> None:
    class V1c(BaseModel):
        lesson_id: str
        minutes: int
        level: Literal["beginner", "advanced", "expert"]
        tags: list[str] = []

    assert breaking_changes(schema(V1), schema(V1c)) == []


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


def test_narrowing_a_bound_breaks_and_widening_it_does_not() -> None:
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
    assert breaking_changes(schema(Bounded), schema(Looser)) == []


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
