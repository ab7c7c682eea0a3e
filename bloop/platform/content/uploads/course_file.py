"""The course an export came from, as `course.yaml` at the archive's root (`format:
bloop-course/1`): its head (title, summary, language, level, tags), its modules in order, and the
concepts its lessons teach or require, as the tenant defines them. An import adds the modules
and concepts the target lacks, so the lessons keep them; the head stays the target's. No I/O
here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import yaml
from pydantic import ConfigDict, Field, ValidationError, model_validator

from bloop.platform.content.model import Concept, Course, CourseHead, NewConcept
from bloop.platform.content.uploads import markdown

NAME = "course.yaml"
FORMAT = "bloop-course/1"
MAX_CONCEPTS = 10_000
MAX_BYTES = 1024 * 1024


class CourseFile(CourseHead):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["bloop-course/1"]
    concepts: Annotated[list[NewConcept], Field(max_length=MAX_CONCEPTS)] = Field(
        default_factory=list)

    @model_validator(mode="after")
    def _concepts_once(self) -> CourseFile:
        ids = [c.id for c in self.concepts]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"the concept id {twice[0]!r} appears twice")
        return self


def write_course(course: Course, concepts: list[Concept], *, published: bool = False) -> str:
    """`course.yaml` for the course's draft head (or its last publication's), with `concepts`."""
    head: Any = course.publication if published and course.publication else course
    data = {"format": FORMAT, "title": head.title, "summary": head.summary,
            "language": head.language, "level": head.level, "tags": list(head.tags),
            "modules": [m.model_dump() for m in head.modules],
            "concepts": [{"id": c.id, "name": c.name, "description": c.description}
                         for c in concepts]}
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100)


def _problem(source: str, detail: str, **extra: Any) -> markdown.InvalidLessonFile:
    where = f", line {extra['line']}" if "line" in extra else ""
    return markdown.InvalidLessonFile(f"{source}{where}: {detail}", code="invalid_course_file",
                                      extra={"file": source, **extra})


def read_course(raw: bytes, source: str) -> CourseFile:
    """The course `raw` (a `course.yaml`) describes; 422 naming the file, and the line or field,
    for what is wrong."""
    if len(raw) > MAX_BYTES:
        raise _problem(source, f"the file is longer than {MAX_BYTES} bytes")
    try:
        data = yaml.load(raw.decode("utf-8-sig"), Loader=markdown.NoAliases)  # noqa: S506
    except UnicodeDecodeError:
        raise _problem(source, "the file is not UTF-8 text") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = {"line": mark.line + 1} if mark is not None else {}
        raise _problem(source, f"not valid YAML: {exc.problem or exc.context}", **at) from None
    except (yaml.YAMLError, RecursionError, ValueError, OverflowError) as exc:
        raise _problem(source, f"not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise _problem(source, f"must be a mapping with `format: {FORMAT}`")
    if data.get("format") != FORMAT:
        raise _problem(source, f"`format` must be {FORMAT!r}", field="format")
    try:
        return CourseFile.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = ".".join(str(p) for p in err["loc"]) or "course"
        raise _problem(source, f"field {name!r}: {err['msg']}", field=name) from None
