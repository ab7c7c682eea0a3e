"""Courses, modules, lessons and concepts, and the rules they keep. No I/O here.

A course is edited as a draft: its head (`Course`: title, modules, authors, …) and its lessons.
Publishing snapshots the draft as a numbered version: a `CourseSnapshot` naming each lesson at
the version it had (`LessonRef`), and each such lesson kept as it was (lesson snapshots are
immutable, keyed by lesson id and lesson version). The head remembers its current publication
(`publication`) and every earlier one (`history`); learners only ever read a publication.

A lesson keeps its own `version`, bumped by each edit; an edit names the version it was made
against, and loses to any edit stored since (optimistic concurrency). A course keeps a
`revision` the same way for changes to its head.

Who may change a course: its owner (who created it), its co-authors, and the tenant's admins. A
course made without an owner (seeded) may be changed by any educator of the tenant. When its
owner's account is deleted, its first co-author becomes its owner; with no co-author left it is
`orphaned`: no owner, and only the tenant's admins change it (a course left without owner by
an erasure before `orphaned` existed cannot be told from a seeded one). Those who may change a
course also read its draft, its history and its old versions; everyone else in the tenant
reads its last publication only.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationInfo,
    model_validator,
)

from bloop.platform.content.quiz import LearnerQuiz, QuizBlock, duplicate_quiz_ids, learner_view
from bloop.platform.kit.edits import Edit, NotNull
from bloop.platform.kit.read_back import STORED, Tolerant, read_back
from bloop.platform.kit.text import Line, Lines, NonBlankLine, RawLines
from bloop.platform.kit.times import Instant

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN)]
Title = NonBlankLine[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                       max_length=200)]]
Summary = Lines[Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]]
LANGUAGE_PATTERN = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$"
Language = Annotated[str, StringConstraints(pattern=LANGUAGE_PATTERN)]
Level = Literal["beginner", "intermediate", "advanced"]
CourseStatus = Literal["draft", "published", "archived"]


MAX_TAG = 40


def canonical_tag(tag: str) -> str:
    """A tag as it is kept and matched: lowercased, in NFC (`Café` typed as `Cafe` and a
    combining accent is `café`)."""
    return unicodedata.normalize("NFC", tag.lower())


def _canonical(value: Any, info: ValidationInfo) -> Any:
    """The tag made canonical before its length is checked (lowercasing `İ` or putting U+0958
    in NFC lengthens it). Read back, a tag kept before tags were in NFC whose canonical form
    is too long stays as it was kept."""
    if not isinstance(value, str):
        return value
    tag = canonical_tag(value)
    return value if read_back(info) and len(tag) > MAX_TAG else tag


Tag = NonBlankLine[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                     max_length=MAX_TAG),
                             BeforeValidator(_canonical)]]

USER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$"
MEDIA_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
MediaId = Annotated[str, StringConstraints(pattern=MEDIA_ID_PATTERN)]
MAX_BLOCKS = 200
MAX_MODULES = 100
MAX_CO_AUTHORS = 50
MAX_LESSON_IDS = 200  # the lessons one question of `GET …/lesson-access` may name


def _unique(values: list[str]) -> list[str]:
    """Each value once, first occurrence kept."""
    return list(dict.fromkeys(values))


Tags = Annotated[list[Tag], Field(max_length=20), AfterValidator(_unique)]
ConceptIds = Annotated[list[Slug], Field(max_length=50), AfterValidator(_unique)]


def now() -> datetime:
    """The current time, to the millisecond (what every store keeps)."""
    t = datetime.now(UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


class _Frozen(Tolerant):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Math in Markdown: `$…$` inline (pandoc's rule: no space inside either `$`, the closing one not
# followed by a digit, so `$5 and $10` is text) and `$$…$$` display. Code is not math.
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,}).*?^ {0,3}\1[ \t]*$", re.M | re.S)
_CODE_SPAN = re.compile(r"(`+)(?!`).+?(?<!`)\1(?!`)", re.S)
_INLINE = re.compile(r"(?<![$\\])\$(?=[^\s$])((?:[^$\n]|\n(?![ \t]*\n))*?[^\s$\\])\$(?!\d)")
_ENV = re.compile(r"\\(begin|end)\{([^{}]*)\}")



def _line(text: str, at: int) -> int:
    return text.count("\n", 0, at) + 1


def _check_tex(tex: str, line: int) -> None:
    depth = 0
    for i, ch in enumerate(tex):
        if ch in "{}" and i > 0 and tex[i - 1] == "\\":
            continue
        depth += 1 if ch == "{" else -1 if ch == "}" else 0
        if depth < 0:
            break
    if depth != 0:
        raise ValueError(f"math on line {line} has unbalanced braces: {tex[:60]!r}")
    envs: list[str] = []
    for kind, name in _ENV.findall(tex):
        if kind == "begin":
            envs.append(name)
        elif not envs or envs.pop() != name:
            raise ValueError(f"math on line {line} has \\end{{{name}}} without its \\begin")
    if envs:
        raise ValueError(f"math on line {line} leaves \\begin{{{envs[-1]}}} open")


def _blank(m: re.Match[str]) -> str:
    return re.sub(r"[^\n]", " ", m.group(0))


def check_math(markdown: str) -> str:
    """`markdown` when its math parses: every `$$` closed, braces and environments balanced."""
    text = _CODE_SPAN.sub(_blank, _FENCE.sub(_blank, markdown)).replace("\\$", "  ")
    parts = text.split("$$")
    if len(parts) % 2 == 0:
        opened = text.rfind("$$")
        raise ValueError(f"display math opened with $$ on line {_line(text, opened)} is never "
                         "closed")
    offset, outside = 0, []
    for n, part in enumerate(parts):
        if n % 2:
            _check_tex(part, _line(text, offset))
        else:
            outside.append((offset, part))
        offset += len(part) + 2
    for start, part in outside:
        for m in _INLINE.finditer(part):
            _check_tex(m.group(1), _line(text, start + m.start()))
    return markdown


def _math(markdown: str, info: ValidationInfo) -> str:
    return markdown if read_back(info) else check_math(markdown)


class MarkdownBlock(_Frozen):
    """CommonMark text; math stays as written (`$…$`, `$$…$$`) and must parse."""

    type: Literal["markdown"] = "markdown"
    markdown: Annotated[RawLines[Annotated[str, StringConstraints(min_length=1, max_length=50_000)]],
                        AfterValidator(_math)]


class CodeBlock(_Frozen):
    type: Literal["code"] = "code"
    language: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_+#.-]{0,31}$")]
    source: RawLines[Annotated[str, StringConstraints(min_length=1, max_length=50_000)]]


Caption = Lines[Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]]
ShortText = Line[Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]]


class _MediaBlock(_Frozen):
    media: MediaId = Field(description="the id of a media file of the tenant")
    title: ShortText = ""
    caption: Caption = ""


class ImageBlock(_MediaBlock):
    type: Literal["image"] = "image"
    alt: ShortText = Field(default="", description="the text read in place of the image")


class Captions(_Frozen):
    """A WebVTT file of the tenant's media, for a player's `<track>`."""

    media: MediaId = Field(description="the id of a WebVTT (text/vtt) media file of the tenant")
    language: Language = Field(description="the language of the captions (a BCP 47 tag)")


class MadeByAi(_Frozen):
    """The AI job an audio or video block was made by, as content attached it."""

    job: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    kind: Slug = Field(description="the job's kind: narration, video")


class _PlayedBlock(_MediaBlock):
    captions: Captions | None = Field(default=None, description=(
        "the captions of the audio or video; its media-links and GraphQL `link` come beside "
        "the media's"))
    made_by_ai: MadeByAi | None = Field(default=None, description=(
        "the AI job that made it, on the blocks content attaches from one: a later output of "
        "a job of the same kind replaces the block; null on an author's own"))


def ai_title(block_type: str, kind: str) -> str:
    """The title of an audio or video block content attaches from an AI job of `kind`."""
    return f"{block_type.title()} made by AI ({kind})"


def lesson_prose(markdowns: Iterable[str]) -> str:
    """What AI jobs read of a lesson: the text of its markdown blocks that are not blank,
    joined by blank lines."""
    return "\n\n".join(m for m in markdowns if m.strip())


def made_from(title: str, prose: str, language: str) -> str:
    """The SHA-256 (hex) of what an AI narration or video of a lesson is made from: its
    title, its prose (`lesson_prose`) and its language (its course's unless it names one)."""
    return hashlib.sha256(json.dumps([title, prose, language]).encode()).hexdigest()


class AudioBlock(_PlayedBlock):
    type: Literal["audio"] = "audio"


class VideoBlock(_PlayedBlock):
    type: Literal["video"] = "video"


def made_by(block: AudioBlock | VideoBlock, kind: str) -> bool:
    """Whether an AI job of `kind` made `block`: as it says, or, for a block attached before
    blocks said so, as its title says."""
    if block.made_by_ai is not None:
        return block.made_by_ai.kind == kind
    return block.title == ai_title(block.type, kind)


class FileBlock(_MediaBlock):
    type: Literal["file"] = "file"


BlockType = MarkdownBlock | CodeBlock | ImageBlock | AudioBlock | VideoBlock | FileBlock | QuizBlock
Block = Annotated[BlockType, Field(discriminator="type")]
Blocks = Annotated[list[Block], Field(max_length=MAX_BLOCKS)]
Minutes = Annotated[StrictInt, Field(ge=1, le=600)]
LearnerBlock = Annotated[
    MarkdownBlock | CodeBlock | ImageBlock | AudioBlock | VideoBlock | FileBlock | LearnerQuiz,
    Field(discriminator="type")]


class NewConcept(_Frozen):
    id: Slug
    name: Title
    description: Summary = ""


class ConceptEdit(Edit):
    """A concept's new name, description, or both."""

    name: Title | None = None
    description: Summary | None = None


class Concept(_Frozen):
    id: Slug
    tenant: Slug
    name: Title
    description: Summary = ""
    version: int = Field(default=1, ge=1, description="raised by each edit; an edit naming it "
                         "in `If-Match` is refused (409) when the concept changed since")

    @classmethod
    def create(cls, tenant: str, new: NewConcept) -> Concept:
        return cls(tenant=tenant, **new.model_dump())

    def edited(self, edit: ConceptEdit) -> Concept:
        return self.model_copy(update=edit.changes() | {"version": self.version + 1})


class Module(_Frozen):
    """A named part of a course; lessons name the module they belong to."""

    id: Slug
    title: Title
    summary: Summary = ""


class CourseHead(_Frozen):
    """A course's own fields as its author gives them (a new course's, an export's)."""

    title: Title
    summary: Summary = ""
    language: Language = "en"
    level: Level = "beginner"
    tags: Tags = Field(default_factory=list)
    modules: Annotated[list[Module], Field(max_length=MAX_MODULES)] = Field(default_factory=list)

    @model_validator(mode="after")
    def _modules_once(self) -> Self:
        _check_modules(self.modules)
        return self


class NewCourse(CourseHead):
    id: Slug | None = Field(default=None, description="a slug; generated when left out")


def _check_modules(modules: Sequence[Module]) -> None:
    ids = [m.id for m in modules]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise ValueError(f"the module id {twice[0]!r} appears twice")


class CourseEdit(_Frozen):
    """A change to a course's head; fields left out stay as they are. `revision`, when given,
    must be the course's current revision (409 otherwise)."""

    revision: StrictInt | None = Field(default=None, ge=0)
    title: Annotated[Title | None, NotNull] = None
    summary: Annotated[Summary | None, NotNull] = None
    language: Annotated[Language | None, NotNull] = None
    level: Annotated[Level | None, NotNull] = None
    tags: Annotated[Tags | None, NotNull] = None


class LessonRef(_Frozen):
    """A lesson as a publication holds it: its id and the version it had."""

    id: str
    version: int = Field(ge=1)


class ConceptName(_Frozen):
    id: str
    name: str


class Publication(_Frozen):
    """What one published version of a course shows: the head as it was, and its lessons."""

    version: int = Field(ge=1)
    snapshot: str = Field(description="the id of the snapshot holding this version")
    published_at: Instant
    title: Title
    summary: Summary
    language: Language
    level: Level
    tags: Tags
    modules: list[Module]
    lessons: list[LessonRef]
    rollback_of: int | None = Field(default=None, description="the version this one restored")
    concepts: list[ConceptName] = Field(default_factory=list, description=(
        "the names its lessons' concepts had, which its events carried to learning"))


class LessonAccess(_Frozen):
    """What a reader may do with a lesson: read it at `version` (its draft's when they may edit
    its course, else the version last published), and edit it or not."""

    id: str
    version: int
    may_edit: bool


class VersionInfo(_Frozen):
    """One entry of a course's version history."""

    version: int
    snapshot: str
    published_at: Instant
    title: str
    lesson_count: int
    rollback_of: int | None = None

    @classmethod
    def of(cls, p: Publication) -> VersionInfo:
        return cls(version=p.version, snapshot=p.snapshot, published_at=p.published_at,
                   title=p.title, lesson_count=len(p.lessons), rollback_of=p.rollback_of)


class CourseSnapshot(_Frozen):
    """One published version of a course, immutable once stored."""

    id: str
    tenant: Slug
    course: Slug
    publication: Publication


class Course(_Frozen):
    """A course's head, as stored: its draft fields, authors and publications."""

    id: Slug
    tenant: Slug
    title: Title
    summary: Summary
    language: Language
    level: Level
    tags: Tags
    modules: list[Module] = Field(default_factory=list)
    owner: str | None = None
    co_authors: list[str] = Field(default_factory=list)
    orphaned: bool = Field(default=False, description=(
        "its owner's account was deleted with no co-author to take it: the admins' alone"))
    status: CourseStatus = "draft"
    version: int = Field(default=0, ge=0, description="the last published version (0: none)")
    revision: int = Field(default=0, ge=0, description="bumped by each change of the head")
    lesson_count: int = Field(default=0, ge=0, description="the draft's lessons")
    next_position: int = Field(default=0, ge=0, description="the place of the next lesson")
    created_at: Instant
    updated_at: Instant
    published_at: Instant | None = None
    archived_at: Instant | None = None
    publication: Publication | None = None
    history: list[VersionInfo] = Field(default_factory=list)

    @classmethod
    def create(cls, tenant: str, new: NewCourse, at: datetime | None = None, *,
               owner: str | None = None) -> Course:
        at = at or now()
        fields = new.model_dump(exclude={"id"})
        return cls(id=new.id or uuid.uuid4().hex[:12], tenant=tenant, created_at=at,
                   updated_at=at, owner=owner, **fields)

    def published(self, at: datetime | None = None, lessons: Sequence[Lesson] = (), *,
                  rollback_of: int | None = None,
                  concept_names: Mapping[str, str] | None = None) -> Course:
        """This course as a new publication of its draft head and `lessons`, whose concepts
        are named `concept_names`."""
        at = at or now()
        version = self.version + 1
        publication = Publication.model_validate(dict(
            version=version, snapshot=f"{self.id}@{version}.{uuid.uuid4().hex[:8]}",
            published_at=at, title=self.title, summary=self.summary, language=self.language,
            level=self.level, tags=self.tags, modules=self.modules,
            lessons=[LessonRef(id=x.id, version=x.version) for x in lessons],
            rollback_of=rollback_of, concepts=[
                ConceptName(id=c, name=n) for c, n in sorted((concept_names or {}).items())]),
            context=STORED)
        return self.model_copy(update={
            "status": "published", "version": version, "published_at": at, "updated_at": at,
            "publication": publication, "history": [*self.history, VersionInfo.of(publication)]})

    def edited(self, edit: CourseEdit, at: datetime | None = None) -> Course:
        changes = edit.model_dump(include=edit.model_fields_set - {"revision"})
        return Course.model_validate(self.model_dump() | changes | {
            "revision": self.revision + 1, "updated_at": at or now()})

    def archived(self, archive: bool, at: datetime | None = None) -> Course:
        """This published course taken out of the catalogue (`archive`) or put back, one
        revision on."""
        at = at or now()
        return self.model_copy(update={
            "status": "archived" if archive else "published",
            "archived_at": at if archive else None, "revision": self.revision + 1,
            "updated_at": at})

    def changed(self, at: datetime | None = None, **fields: Any) -> Course:
        """This head with `fields` replaced, one revision on (checked again)."""
        return Course.model_validate(self.model_dump() | fields | {
            "revision": self.revision + 1, "updated_at": at or now()})

    def may_edit(self, user_id: str, roles: Iterable[str]) -> bool:
        held = set(roles)
        if held & {"tenant_admin", "platform_admin"}:
            return True
        if self.owner is None and not self.orphaned:
            return "educator" in held
        return "educator" in held and (user_id == self.owner or user_id in self.co_authors)

    def without_author(self, user_id: str, at: datetime | None = None) -> Course:
        """This course, one revision on, once `user_id`'s account is deleted: out of its
        co-authors and, its owner, succeeded by the first co-author left (orphaned when none
        is left, never open to every educator)."""
        co_authors = [u for u in self.co_authors if u != user_id]
        if self.owner != user_id:
            return self.changed(at, co_authors=co_authors)
        if co_authors:
            return self.changed(at, owner=co_authors[0], co_authors=co_authors[1:])
        return self.changed(at, owner=None, co_authors=[], orphaned=True)

    def module_ids(self) -> list[str]:
        return [m.id for m in self.modules]


class _LessonRules(_Frozen):
    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> _LessonRules:
        if read_back(info):
            return self
        teaches: list[str] = getattr(self, "teaches", None) or []
        requires: list[str] = getattr(self, "requires", None) or []
        both = sorted(set(teaches) & set(requires))
        if both:
            raise ValueError(f"a lesson cannot both teach and require {', '.join(both)}")
        twice = duplicate_quiz_ids(getattr(self, "blocks", None) or [])
        if twice:
            raise ValueError(f"the quiz id {twice[0]!r} appears twice in the lesson")
        return self


class NewLesson(_LessonRules):
    title: Title
    estimated_minutes: Minutes = 10
    blocks: Blocks = Field(default_factory=list)
    teaches: ConceptIds = Field(default_factory=list)
    requires: ConceptIds = Field(default_factory=list)
    tags: Tags = Field(default_factory=list)
    language: Language | None = Field(default=None, description="null: the course's")
    level: Level | None = Field(default=None, description="null: the course's")
    module: Slug | None = Field(default=None, description="the id of one of the course's modules")


class LessonEdit(_Frozen):
    """An edit of a lesson, made against `version` (or the `If-Match` header); fields left out
    stay as they are."""

    version: StrictInt | None = Field(default=None, ge=1,
                                      description="the lesson version this edit was made against")
    title: Annotated[Title | None, NotNull] = None
    estimated_minutes: Annotated[Minutes | None, NotNull] = None
    blocks: Annotated[Blocks | None, NotNull] = None
    teaches: Annotated[ConceptIds | None, NotNull] = None
    requires: Annotated[ConceptIds | None, NotNull] = None
    tags: Annotated[Tags | None, NotNull] = None
    language: Language | None = Field(default=None, description="null: the course's")
    level: Level | None = Field(default=None, description="null: the course's")
    module: Slug | None = Field(default=None, description="null: in no module")


class Lesson(_LessonRules):
    id: str
    tenant: Slug
    course: Slug
    position: int = Field(default=0, ge=0, description="the lesson's place in its course")
    title: Title
    estimated_minutes: Minutes
    blocks: Blocks
    teaches: ConceptIds
    requires: ConceptIds
    tags: Tags = Field(default_factory=list)
    language: Language | None = None
    level: Level | None = None
    module: Slug | None = None
    version: int = Field(default=1, ge=1, description="bumped by each edit")
    created_at: Instant
    updated_at: Instant

    @classmethod
    def create(cls, tenant: str, course: str, new: NewLesson, at: datetime | None = None) -> Lesson:
        at = at or now()
        # `new`'s fields as they are: its blocks, checked already, are not checked again
        return cls(id=uuid.uuid4().hex, tenant=tenant, course=course, created_at=at,
                   updated_at=at, **dict(new))

    def edited(self, edit: LessonEdit, at: datetime | None = None) -> Lesson:
        """This lesson with `edit` applied, one version on. Raises `ValueError` when the result
        breaks a rule (checked again on the whole lesson)."""
        # The fields the edit set, dumped whole: `exclude_unset` would also drop the defaults
        # of nested models, such as a block's `type`.
        changes = edit.model_dump(include=edit.model_fields_set - {"version"})
        merged = self.model_dump() | changes | {
            "version": self.version + 1, "updated_at": at or now()}
        return Lesson.model_validate(merged)

    @property
    def prose(self) -> str:
        """Its text as AI jobs read it (`lesson_prose`)."""
        return lesson_prose(b.markdown for b in self.blocks if isinstance(b, MarkdownBlock))

    def restored(self, old: Lesson, at: datetime | None = None) -> Lesson:
        """This lesson made equal to `old` (an earlier version of it), one version on."""
        return old.model_copy(update={"version": self.version + 1, "updated_at": at or now()})


class LessonOutline(_Frozen):
    """A lesson listed without its content (its blocks): what a catalogue shows of it."""

    id: str
    tenant: Slug
    course: Slug
    position: int = 0
    title: Title
    estimated_minutes: Minutes
    teaches: ConceptIds
    requires: ConceptIds
    tags: Tags = Field(default_factory=list)
    language: Language | None = None
    level: Level | None = None
    module: Slug | None = None
    version: int = 1


class LearnerLesson(_Frozen):
    """A published lesson as a learner reads it: quizzes without their answers."""

    id: str
    tenant: str
    course: str
    position: int
    title: str
    estimated_minutes: int
    blocks: list[LearnerBlock]
    teaches: list[str]
    requires: list[str]
    tags: list[str]
    language: str | None
    level: Level | None
    module: str | None
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, lesson: Lesson) -> LearnerLesson:
        # `lesson` was checked already; its learner's view needs its types only.
        return cls.model_validate(
            lesson.model_dump() | {"blocks": learner_blocks(lesson.blocks)}, context=STORED)


def learner_blocks(blocks: Iterable[BaseModel]) -> list[dict[str, Any]]:
    """The blocks as JSON-ready data, each quiz passed through `quiz.learner_view`."""
    return [learner_view(b) if isinstance(b, QuizBlock) else b.model_dump(mode="json")
            for b in blocks]


class CourseView(BaseModel):
    """A course as the API shows it: its draft head to those who may edit it, its last
    publication to everyone else. A view is a projection: fields of a stored course it does not
    show (its publications, its position counter) are dropped, never shown."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    tenant: str
    title: str
    summary: str
    language: str
    level: Level
    tags: list[str]
    modules: list[Module]
    owner: str | None
    co_authors: list[str]
    status: CourseStatus
    version: int
    revision: int
    lesson_count: int
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None
    archived_at: datetime | None = None
    rollback_of: int | None = None

    @classmethod
    def draft(cls, c: Course, lesson_count: int | None = None) -> CourseView:
        return cls.model_validate(dict(id=c.id, tenant=c.tenant, title=c.title, summary=c.summary,
                   language=c.language, level=c.level, tags=c.tags, modules=c.modules,
                   owner=c.owner, co_authors=c.co_authors, status=c.status, version=c.version,
                   revision=c.revision,
                   lesson_count=c.lesson_count if lesson_count is None else lesson_count,
                   created_at=c.created_at, updated_at=c.updated_at,
                   published_at=c.published_at, archived_at=c.archived_at,
                   rollback_of=c.publication.rollback_of if c.publication else None),
                                  context=STORED)

    @classmethod
    def published(cls, c: Course, p: Publication, lesson_count: int | None = None) -> CourseView:
        """`c` as its publication `p` shows it; `lesson_count` is how many of its lessons are
        still there (all of them by default)."""
        return cls.model_validate(dict(id=c.id, tenant=c.tenant, title=p.title, summary=p.summary,
                   language=p.language, level=p.level, tags=p.tags, modules=p.modules,
                   owner=c.owner, co_authors=c.co_authors,
                   status="archived" if c.status == "archived" else "published",
                   version=p.version, revision=c.revision,
                   lesson_count=len(p.lessons) if lesson_count is None else lesson_count,
                   created_at=c.created_at, updated_at=p.published_at,
                   published_at=p.published_at, archived_at=c.archived_at,
                   rollback_of=p.rollback_of), context=STORED)


class CourseDetail(CourseView):
    """A course with its lessons in order (the draft's, or a publication's)."""

    lessons: list[Lesson]

    @classmethod
    def of(cls, view: CourseView, lessons: Sequence[Lesson]) -> CourseDetail:
        return cls.model_validate(dict(view) | {"lessons": list(lessons)}, context=STORED)


class CourseOutline(CourseView):
    """A course with its lessons' outlines in order (the landing page's catalogue)."""

    lessons: list[LessonOutline]

    @classmethod
    def of(cls, view: CourseView, lessons: Sequence[LessonOutline]) -> CourseOutline:
        return cls.model_validate(dict(view) | {"lessons": list(lessons)}, context=STORED)


class LearnerCourseDetail(CourseView):
    lessons: list[LearnerLesson]

    @classmethod
    def of(cls, detail: CourseDetail) -> LearnerCourseDetail:
        fields = {k: v for k, v in dict(detail).items() if k != "lessons"}
        return cls.model_validate(
            fields | {"lessons": [LearnerLesson.of(x) for x in detail.lessons]}, context=STORED)


class Rollback(_Frozen):
    version: StrictInt = Field(ge=1, description="the published version to restore")
    discard_draft: StrictBool = Field(default=False, description=(
        "roll back even though the draft holds changes not published yet, which no version "
        "keeps: they are lost (without it, 409 `unpublished_changes`)"))
