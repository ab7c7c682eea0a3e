"""content's domain rules, without any store."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bloop.platform.content.model import (
    CodeBlock,
    Course,
    CourseEdit,
    Lesson,
    LessonEdit,
    MarkdownBlock,
    NewCourse,
    NewLesson,
)
from bloop.platform.kit.read_back import STORED


def test_a_new_course_is_an_unpublished_draft() -> None:
    course = Course.create("acme", NewCourse(title=" Python ", tags=["Python", "python", "CS"]))
    assert (course.status, course.version, course.lesson_count) == ("draft", 0, 0)
    assert course.title == "Python"
    assert course.tags == ["python", "cs"]
    assert course.id
    assert course.published_at is None


def test_tags_are_kept_lowercased_in_nfc() -> None:
    """A tag typed with a combining accent (`Cafe` + U+0301) matched no filter for `café`."""
    course = Course.create("acme", NewCourse(title="Coffee", tags=["CAFE\u0301", "café", "x"]))
    assert course.tags == ["café", "x"]


@pytest.mark.parametrize("tag", ["\u0958" * 40, "\u0130" * 40], ids=["U+0958", "U+0130"])
def test_a_tag_longer_once_canonical_is_refused_where_it_is_given(tag: str) -> None:
    """U+0958 is two code points in NFC, and `İ` two once lowercased: the length was checked
    before, and `Lesson.create` refused the 80 characters (a 500)."""
    for make in (lambda: NewLesson(title="t", tags=[tag]),
                 lambda: NewCourse(title="t", tags=["ok", tag])):
        with pytest.raises(ValidationError) as e:
            make()
        [error] = e.value.errors()
        assert (error["loc"][:1], error["type"]) == (("tags",), "string_too_long")
    half = tag[:20]
    lesson = Lesson.create("acme", "py", NewLesson(title="t", tags=[f" {half} ", half.lower()]))
    assert [len(t) for t in lesson.tags] == [40]


def test_a_tag_kept_before_tags_were_in_nfc_still_reads_back() -> None:
    lesson = Lesson.create("acme", "py", NewLesson(title="t", tags=["x"]))
    kept = "\u0958" * 40
    for model, doc in ((Lesson, lesson.model_dump()),
                       (Course, Course.create("acme", NewCourse(title="t")).model_dump())):
        read = model.model_validate(doc | {"tags": [kept, "Cafe\u0301"]}, context=STORED)
        assert read.tags == [kept, "café"]


def test_publishing_bumps_the_version() -> None:
    course = Course.create("acme", NewCourse(id="py", title="Python"))
    once = course.published()
    twice = once.published()
    assert (once.status, once.version, twice.version) == ("published", 1, 2)
    assert once.published_at is not None
    assert once.updated_at == once.published_at
    assert course.version == 0  # models are values; publishing returns a new one


def test_a_lesson_cannot_teach_what_it_requires() -> None:
    with pytest.raises(ValidationError, match="both teach and require functions"):
        NewLesson(title="Loops", teaches=["loops", "functions"], requires=["functions"])


def test_concept_lists_are_slugs_kept_once() -> None:
    new = NewLesson(title="Loops", teaches=["loops", "loops"])
    assert new.teaches == ["loops"]
    with pytest.raises(ValidationError):
        NewLesson(title="Loops", teaches=["Not A Slug"])


def test_unknown_fields_and_block_kinds_are_refused() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        NewCourse.model_validate({"title": "Python", "price": 10})
    with pytest.raises(ValidationError):
        NewLesson.model_validate({"title": "L", "blocks": [{"type": "video", "url": "x"}]})
    with pytest.raises(ValidationError):
        NewCourse.model_validate({"title": "Python", "level": "expert"})


def test_an_edit_changes_only_what_it_names_and_bumps_the_version() -> None:
    lesson = Lesson.create("acme", "py", NewLesson(
        title="Loops", estimated_minutes=5, blocks=[MarkdownBlock(markdown="# Loops")],
        teaches=["loops"]))
    edited = lesson.edited(LessonEdit(version=1, title="For loops"))
    assert edited.title == "For loops"
    assert edited.version == 2
    assert (edited.blocks, edited.teaches, edited.id, edited.created_at) == (
        lesson.blocks, lesson.teaches, lesson.id, lesson.created_at)
    with pytest.raises(ValidationError, match="both teach and require loops"):
        lesson.edited(LessonEdit(version=1, requires=["loops"]))


def test_an_edit_made_in_code_keeps_its_blocks_and_fields() -> None:
    lesson = Lesson.create("acme", "py", NewLesson(
        title="One", blocks=[MarkdownBlock(markdown="Text.")]))
    blocks = [*lesson.blocks, CodeBlock(language="python", source="print(1)")]
    edited = lesson.edited(LessonEdit(version=1, blocks=blocks))
    assert edited.blocks == blocks
    assert (edited.version, edited.title) == (2, "One")
    course = Course.create("acme", NewCourse(id="py", title="Python", tags=["a"]))
    renamed = course.edited(CourseEdit(revision=0, title="Py"))
    assert (renamed.title, renamed.tags, renamed.revision) == ("Py", ["a"], 1)


def test_a_stores_own_documents_skip_the_checks_made_when_they_were_written() -> None:
    lesson = Lesson.create("acme", "py", NewLesson(
        title="One", blocks=[MarkdownBlock(markdown="Text $x^2$.")]))
    broken = lesson.model_dump() | {"blocks": [{"type": "markdown", "markdown": "$$\\frac{1"}]}
    with pytest.raises(ValidationError, match="display math"):
        Lesson.model_validate(broken)
    read = Lesson.model_validate(broken, context=STORED)
    assert read.blocks[0] == MarkdownBlock.model_construct(markdown="$$\\frac{1")
    # types are still checked, trusted or not
    with pytest.raises(ValidationError):
        Lesson.model_validate(broken | {"estimated_minutes": "many"}, context=STORED)
