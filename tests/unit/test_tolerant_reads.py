"""Records a newer version wrote, read back by this one: the fields it does not know are left
aside (`Tolerant` models validated with `STORED`), while a request body keeps refusing them."""

from __future__ import annotations

import ast
import importlib
import inspect
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from bloop.ai.jobs.model import Job, JobRequest, Lease
from bloop.ai.text.model import LessonText, Summary
from bloop.platform.content.model import (
    CodeBlock,
    Course,
    Lesson,
    MarkdownBlock,
    NewCourse,
    NewLesson,
)
from bloop.platform.content.quiz import Option, QuizBlock, SingleChoice
from bloop.platform.identity.model import _Input
from bloop.platform.kit.edits import Edit
from bloop.platform.kit.read_back import STORED, Tolerant
from bloop.platform.learning.model import Card, Mastery, NewCard

# The modules of the models a store reads back.
MODEL_MODULES = [
    "bloop.ai.jobs.model", "bloop.ai.text.model", "bloop.platform.content.attempts.model",
    "bloop.platform.content.media.model", "bloop.platform.content.model",
    "bloop.platform.content.quiz", "bloop.platform.content.search.model",
    "bloop.platform.content.uploads.holds", "bloop.platform.identity.model",
    "bloop.platform.identity.oidc.model", "bloop.platform.learning.model",
]
BLOOP = Path(__file__).parents[2] / "bloop"
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
UNKNOWN = "from_next"


def models() -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    for name in MODEL_MODULES:
        module = importlib.import_module(name)
        found += [m for _, m in inspect.getmembers(module, inspect.isclass)
                  if issubclass(m, BaseModel) and m.__module__ == name]
    return found


def tolerant() -> list[type[Tolerant]]:
    models()  # imports them all
    out: list[type[Tolerant]] = []
    todo = list(Tolerant.__subclasses__())
    while todo:
        model = todo.pop()
        out.append(model)
        todo += model.__subclasses__()
    return sorted(set(out), key=lambda m: f"{m.__module__}.{m.__qualname__}")


def extra_refused(model: type[BaseModel], data: dict[str, Any], context: Any) -> bool:
    """Whether validating `data` as `model` refuses a key as unknown."""
    try:
        model.model_validate(data, context=context)
    except ValidationError as e:
        return any(err["type"] == "extra_forbidden" for err in e.errors())
    return False


def test_every_stored_model_that_refuses_unknown_fields_is_tolerant_on_read_back() -> None:
    strict = [m for m in models() if m.model_config.get("extra") == "forbid"]
    assert strict
    assert [m.__qualname__ for m in strict
            if not issubclass(m, Tolerant | _Input | Edit)] == []  # the others: request bodies


def test_every_store_validates_what_it_reads_as_read_back() -> None:
    """A record a store reads is validated with `STORED`, or a newer version's fields in it
    are refused."""
    missing = []
    for path in sorted(BLOOP.rglob("stores/*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("model_validate", "model_validate_json")
                    and not any(k.arg == "context" for k in node.keywords)):
                missing.append(f"{path.relative_to(BLOOP.parent)}:{node.lineno}")
    assert missing == []

@pytest.mark.parametrize("model", tolerant(), ids=lambda m: f"{m.__module__}.{m.__qualname__}")
def test_an_unknown_key_is_left_aside_on_read_back_and_refused_otherwise(
        model: type[Tolerant]) -> None:
    assert not extra_refused(model, {UNKNOWN: 1}, STORED)
    if model.model_config.get("extra") == "forbid":
        assert extra_refused(model, {UNKNOWN: 1}, None)


def quiz() -> QuizBlock:
    return QuizBlock(id="q", title="Check", questions=[SingleChoice(
        id="q1", prompt="Which?", options=[Option(id="a", text="A", correct=True),
                                           Option(id="b", text="B")])])


def lesson() -> Lesson:
    return Lesson.create("acme", "py", NewLesson(title="One", blocks=[
        MarkdownBlock(markdown="# One"), CodeBlock(language="python", source="print()"),
        quiz()]), at=T0)


def with_unknown(doc: Any) -> Any:
    """`doc` with an unknown key in every object it holds, however deep."""
    if isinstance(doc, dict):
        return {k: with_unknown(v) for k, v in doc.items()} | {UNKNOWN: 1}
    if isinstance(doc, list):
        return [with_unknown(v) for v in doc]
    return doc


def records() -> list[BaseModel]:
    course = Course.create("acme", NewCourse(id="py", title="Python"), at=T0)
    text = LessonText(id="l1", version=1, title="One", text="# One")
    job = Job.create("acme", JobRequest(kind="summary", lesson_id="l1"), text, "u1", "k", 3,
                     at=T0).model_copy(update={
                         "lease": Lease(owner="w1", expires_at=T0),
                         "result": Summary(summary="Short.", key_points=["One"], source="offline")})
    return [lesson(), course.published(T0, [lesson()]), job,
            Mastery(concept="loops", p_known=0.3, mastered=False, observations=[("2025", 1)],
                    attempt_ids=["a1"], version=1, updated_at=T0),
            Card.create("acme", "loops", NewCard(front="for?", back="repeats"), at=T0)]


@pytest.mark.parametrize("record", records(), ids=lambda r: type(r).__name__)
def test_a_record_with_unknown_keys_at_every_depth_reads_back_as_it_was(
        record: BaseModel) -> None:
    model = type(record)
    stored = with_unknown(record.model_dump(mode="json"))
    assert model.model_validate(stored, context=STORED) == record
    assert model.model_validate_json(model.model_validate(
        stored, context=STORED).model_dump_json(), context=STORED) == record
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        model.model_validate(stored)
