from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

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
