"""Partial edits: the JSON Schema of an edit says what its validator checks: some field is
given and not null (before, `{}` fit the document and got a 422), and null only where the
record may hold it (a course title of null fit the document and got a 422)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel, ValidationError

from bloop.platform.content.model import (
    ConceptEdit,
    Course,
    CourseEdit,
    Lesson,
    LessonEdit,
    MarkdownBlock,
    NewCourse,
    NewLesson,
)
from bloop.platform.kit.edits import Edit
from bloop.platform.learning.model import CardEdit


@pytest.mark.parametrize("model", [ConceptEdit, CardEdit])
@pytest.mark.parametrize("body_of", [
    lambda names: {},
    lambda names: {names[0]: None},
    lambda names: dict.fromkeys(names),
    lambda names: {names[0]: "new text"},
    lambda names: {names[0]: None, names[-1]: "new text"},
])
def test_the_schema_accepts_what_the_validator_accepts(
        model: type[Edit], body_of: Callable[[list[str]], dict[str, object]]) -> None:
    body = body_of(list(model.model_fields))
    assert Draft202012Validator(model.model_json_schema()).is_valid(body) == accepts(
        lambda: model.model_validate(body)), body


def accepts(apply: Callable[[], object]) -> bool:
    try:
        apply()
    except ValidationError:
        return False
    return True


def edit_a_course(body: dict[str, object]) -> object:
    return Course.create("acme", NewCourse(id="py", title="Python")).edited(
        CourseEdit.model_validate(body))


def edit_a_lesson(body: dict[str, object]) -> object:
    lesson = Lesson.create("acme", "py", NewLesson(
        title="Loops", blocks=[MarkdownBlock(markdown="for x in xs")]))
    return lesson.edited(LessonEdit.model_validate(body))


@pytest.mark.parametrize(("model", "apply", "field"), [
    (model, apply, field) for model, apply in ((CourseEdit, edit_a_course),
                                               (LessonEdit, edit_a_lesson))
    for field in model.model_fields])
def test_an_edit_may_send_null_where_the_document_says_so(
        model: type[BaseModel], apply: Callable[[dict[str, object]], object], field: str) -> None:
    body: dict[str, object] = {field: None}
    assert Draft202012Validator(model.model_json_schema()).is_valid(body) == accepts(
        lambda: apply(body))
