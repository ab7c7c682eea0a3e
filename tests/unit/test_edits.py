"""Partial edits: the JSON Schema of an edit says what its validator checks: some field is
given and not null (before, `{}` fit the document and got a 422), and null only where the
record may hold it (a course title of null fit the document and got a 422)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from jsonschema import Draft202012Validator
from pydantic import ValidationError

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
    try:
        model.model_validate(body)
        accepted = True
    except ValidationError:
        accepted = False
    assert Draft202012Validator(model.model_json_schema()).is_valid(body) == accepted, body


@pytest.mark.parametrize("field", list(CourseEdit.model_fields))
def test_a_course_edit_may_send_null_where_the_document_says_so(field: str) -> None:
    course = Course.create("acme", NewCourse(id="py", title="Python"))
    body = {field: None}
    try:
        course.edited(CourseEdit.model_validate(body))
        accepted = True
    except ValidationError:
        accepted = False
    assert Draft202012Validator(CourseEdit.model_json_schema()).is_valid(body) == accepted


@pytest.mark.parametrize("field", list(LessonEdit.model_fields))
def test_a_lesson_edit_may_send_null_where_the_document_says_so(field: str) -> None:
    lesson = Lesson.create("acme", "py", NewLesson(
        title="Loops", blocks=[MarkdownBlock(markdown="for x in xs")]))
    body = {field: None}
    try:
        lesson.edited(LessonEdit.model_validate(body))
        accepted = True
    except ValidationError:
        accepted = False
    assert Draft202012Validator(LessonEdit.model_json_schema()).is_valid(body) == accepted
