"""content's GraphQL reads: courses (with their lessons), lessons and concepts of a tenant.

Under the HTTP API's rules: any member of the tenant reads what is published; a
course's owner, its co-authors and the tenant's admins also read its draft. A lesson's blocks are
a union (`Block`); a quiz is always shown as learners see it (no answers, no feedback), drafts
included: its answers are edited and read through the HTTP API. A course's lessons load through
DataLoaders (drafts by (tenant, course), publications by course version), so a query over many
courses reads the lessons of all of them at once; so do the courses a query names (`course`).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from enum import Enum
from typing import Annotated

import strawberry
from strawberry.dataloader import DataLoader

from bloop.graphql.context import Context, shared
from bloop.graphql.fields import Page, field, page_size, selected, sized
from bloop.graphql.limits import MAX_BLOCKS, MAX_LESSONS
from bloop.graphql.scalars import Slug
from bloop.platform.content import model, quiz
from bloop.platform.content.api import LessonId
from bloop.platform.content.media.refs import is_media_id, lesson_media, media_url, urls_media
from bloop.platform.content.media.service import MediaService, reach_of
from bloop.platform.content.service import ContentService
from bloop.platform.kit.auth import STAFF, Forbidden, Principal
from bloop.platform.kit.errors import NotFound
from bloop.platform.kit.pagination import After

Info = strawberry.Info[Context, None]
BLOCK_READS = frozenset({"blocks", "mediaLinks"})
"""A lesson's fields that read each of its blocks."""
BLOCKS = "blocks (a quiz's questions and choices each counting one more)"
CourseKey = tuple[str, str]  # (tenant, course id)


def _service(info: Info) -> ContentService:
    return info.context.service("content", ContentService)


def _reader(info: Info, tenant: str) -> Principal:
    """Authorises a content read in `tenant`."""
    return info.context.authorise(tenant, scopes=["content:read"])


def _drafts_loader(info: Info) -> DataLoader[CourseKey, list[model.Lesson]]:
    service = _service(info)

    async def load(keys: list[CourseKey]) -> list[list[model.Lesson]]:
        by_tenant: dict[str, list[str]] = defaultdict(list)
        for tenant, course_id in keys:
            by_tenant[tenant].append(course_id)
        found = {tenant: await service.lessons_of_courses(tenant, ids)
                 for tenant, ids in by_tenant.items()}
        return [found[tenant].get(course_id, []) for tenant, course_id in keys]

    return info.context.loader("content.lessons", lambda: DataLoader(load_fn=load))


def _published_loader(info: Info) -> DataLoader[model.Course, list[model.Lesson]]:
    service = _service(info)

    async def load(keys: list[model.Course]) -> list[list[model.Lesson]]:
        by_tenant: dict[str, list[model.Course]] = defaultdict(list)
        for course in keys:
            by_tenant[course.tenant].append(course)
        found = {tenant: await service.published_lessons_of(tenant, courses)
                 for tenant, courses in by_tenant.items()}
        return [found[c.tenant].get(c.id, []) for c in keys]

    return info.context.loader("content.published_lessons", lambda: DataLoader(
        load_fn=load, cache_key_fn=lambda c: (c.tenant, c.id, c.version)))


def _courses_loader(info: Info) -> DataLoader[CourseKey, tuple[model.CourseDetail, bool] | None]:
    """What the caller reads of each course (`ContentService.course_for`); None when nothing.
    Its results are the caller's own: the loader lives for their request only."""
    service, me = _service(info), info.context.principal

    async def load(keys: list[CourseKey]) -> list[tuple[model.CourseDetail, bool] | None]:
        by_tenant: dict[str, list[str]] = defaultdict(list)
        for tenant, course_id in keys:
            by_tenant[tenant].append(course_id)
        found = {tenant: await service.courses_for(tenant, ids, me)
                 for tenant, ids in by_tenant.items()}
        return [found[tenant].get(course_id) for tenant, course_id in keys]

    return info.context.loader("content.courses", lambda: DataLoader(load_fn=load))


@strawberry.enum(description=(
    "the courses `courses` lists, by status; any but PUBLISHED needs a staff role (educator, "
    "teaching assistant or admin) and shows a course's draft to those who may edit it, its "
    "last publication to other staff"))
class CourseStatusFilter(Enum):
    PUBLISHED = strawberry.enum_value("published", description=(
        "published courses, archived ones left out, each as last published (the default)"))
    DRAFT = strawberry.enum_value("draft", description="courses never published")
    ARCHIVED = strawberry.enum_value("archived", description=(
        "published courses taken out of the catalogue (`…/archive`), which enrolled learners "
        "keep"))
    ALL = strawberry.enum_value("all", description="courses of every status")


# blocks


@strawberry.type(description="a signed link to a media file's bytes: its own credential, made "
                             "for this query")
class MediaLink:
    url: str = strawberry.field(description="path and query; works until `expiresAt`, and a "
                                            "learner's only while a published lesson references "
                                            "the media")
    expires_at: datetime = strawberry.field(description=(
        "when the link stops working (403): `BLOOP_MEDIA_LINK_TTL_S` after it was made, 4 "
        "hours by default"))


def _link(info: Info, tenant: str, media_id: str) -> MediaLink:
    # Whoever reads a lesson may read the media its blocks name.
    made = info.context.service("content.media", MediaService).signed(
        tenant, media_id, reach_of(info.context.principal))
    return MediaLink(url=made.url, expires_at=made.expires_at)


@strawberry.type(description="a media file a lesson references, with a link to it")
class LessonMedia:
    media: str = strawberry.field(description="the media file's id")
    link: MediaLink = strawberry.field(description="a link to the bytes that is its own "
                                                   "credential")


@strawberry.type(description="a media file a Markdown block shows through its URL")
class MarkdownMedia:
    media: str = strawberry.field(description="the media file's id")
    link: MediaLink = strawberry.field(description="a link to the bytes that is its own "
                                                   "credential")


@strawberry.type(description="a block of Markdown text")
class MarkdownBlock:
    markdown: str = strawberry.field(description=(
        "CommonMark; math stays as written, `$…$` inline and `$$…$$` display"))
    tenant: strawberry.Private[str]

    @field("the media files whose URLs (`…/media/{id}/…`) the Markdown holds, in order, each "
           "with a link that is its own credential: a page shows them by putting `link.url` "
           "in place of their URLs")
    def media_links(self, info: Info) -> list[MarkdownMedia]:
        return [MarkdownMedia(media=m, link=_link(info, self.tenant, m))
                for m in urls_media(self.markdown)]


@strawberry.type(description="a block of source code")
class CodeBlock:
    language: str = strawberry.field(description=(
        "the code's language as its author named it, for highlighting, e.g. `python`"))
    source: str = strawberry.field(description="the code as written, line breaks kept")


@strawberry.type
class MediaBlock:
    media: str = strawberry.field(description="the id of the tenant's media file it shows")
    url: str = strawberry.field(description="the bytes, for a caller that sends its token")
    title: str = strawberry.field(description="a short title; empty when none")
    caption: str = strawberry.field(description="text shown with it; empty when none")
    tenant: strawberry.Private[str]

    @field("a link to the bytes that is its own credential, for `<img>`, `<audio>` and "
           "`<video>` (which cannot send a token); null when `media` is no media id, as "
           "`…/media-links` leaves it out")
    def link(self, info: Info) -> MediaLink | None:
        return _link(info, self.tenant, self.media) if is_media_id(self.media) else None


@strawberry.type(description="an image")
class ImageBlock(MediaBlock):
    alt: str = strawberry.field(description="the text read in place of the image; empty when "
                                            "none")


@strawberry.type(description="a WebVTT file for a player's `<track>`")
class Captions:
    media: str = strawberry.field(description="the id of the WebVTT (text/vtt) media file")
    language: str = strawberry.field(description="the captions' language, a BCP 47 tag such "
                                                 "as `en` or `pt-BR`")
    url: str = strawberry.field(description="the bytes, for a caller that sends its token")
    tenant: strawberry.Private[str]

    @field("a link to the bytes that is its own credential, for `<track>`; null when `media` "
           "is no media id, as `…/media-links` leaves it out")
    def link(self, info: Info) -> MediaLink | None:
        return _link(info, self.tenant, self.media) if is_media_id(self.media) else None

    @classmethod
    def of(cls, tenant: str, captions: model.Captions | None) -> Captions | None:
        if captions is None:
            return None
        return cls(media=captions.media, language=captions.language,
                   url=media_url(tenant, captions.media), tenant=tenant)


CAPTIONS = "its captions; null when it has none"
MADE_BY_AI = "the AI job that made it, as content attached it; null on an author's own"


@strawberry.type(description="the AI job an audio or video block was made by")
class MadeByAi:
    job: str = strawberry.field(description="the job's id (`…/ai/jobs/{job}`)")
    kind: str = strawberry.field(description="the job's kind: narration, video")

    @classmethod
    def of(cls, made: model.MadeByAi | None) -> MadeByAi | None:
        return None if made is None else cls(job=made.job, kind=made.kind)


@strawberry.type(description="an audio file to play")
class AudioBlock(MediaBlock):
    captions: Captions | None = strawberry.field(description=CAPTIONS)
    made_by_ai: MadeByAi | None = strawberry.field(description=MADE_BY_AI)


@strawberry.type(description="a video to play")
class VideoBlock(MediaBlock):
    captions: Captions | None = strawberry.field(description=CAPTIONS)
    made_by_ai: MadeByAi | None = strawberry.field(description=MADE_BY_AI)


@strawberry.type(description="a file to download, such as a PDF")
class FileBlock(MediaBlock):
    pass


@strawberry.type(description="an option, an item to order, or one side of a matching pair")
class QuizChoice:
    id: str = strawberry.field(description="its id, unique in its question: what an answer "
                                           "names")
    text: str = strawberry.field(description="its text")


@strawberry.type
class Question:
    """What every question type has (not a schema type of its own)."""

    id: str = strawberry.field(description="the question's id, unique in its quiz: an "
                                           "attempt's answers are keyed by it")
    prompt: str = strawberry.field(description="the question itself")
    points: float = strawberry.field(description="the most it scores")


OPTIONS = "the options, in their author's order"


@strawberry.type(description="one correct option; answered with its id, all or nothing")
class SingleChoiceQuestion(Question):
    options: list[QuizChoice] = strawberry.field(description=OPTIONS)


@strawberry.type(description=(
    "one or more correct options; answered with a list of option ids, scoring `points * "
    "max(0, right - wrong) / correct options`"))
class MultipleChoiceQuestion(Question):
    options: list[QuizChoice] = strawberry.field(description=OPTIONS)


@strawberry.type(description="a statement; answered with true or false, all or nothing")
class TrueFalseQuestion(Question):
    pass


@strawberry.type(description=(
    "answered with a number, correct within a tolerance its author set (not shown); all or "
    "nothing"))
class NumericQuestion(Question):
    unit: str = strawberry.field(description="the unit of the answer, such as `kg`; empty when "
                                             "none")


@strawberry.type(description=(
    "answered with text, correct when it equals an accepted answer (not shown) whatever its "
    "case and runs of whitespace (accents and punctuation count); all or nothing"))
class ShortTextQuestion(Question):
    pass


@strawberry.type(description=(
    "answered with every item's id in order, scoring the share of pairs of items it puts in "
    "their right order relative to each other"))
class OrderingQuestion(Question):
    items: list[QuizChoice] = strawberry.field(
        description="the items, in an order drawn from their ids (which may be the right one)")


@strawberry.type(description=(
    "answered with an object mapping left ids to right ids (each right at most once), scoring "
    "the share of left sides matched to theirs"))
class MatchingQuestion(Question):
    left: list[QuizChoice] = strawberry.field(description="the sides to match, in order")
    right: list[QuizChoice] = strawberry.field(description="shuffled; may hold distractors")


QuizQuestion = Annotated[
    SingleChoiceQuestion | MultipleChoiceQuestion | TrueFalseQuestion | NumericQuestion
    | ShortTextQuestion | OrderingQuestion | MatchingQuestion,
    strawberry.union("QuizQuestion", description="a quiz question as learners see it: without "
                                                 "its answer or feedback")]


def _choices(items: list[quiz.LearnerChoice]) -> list[QuizChoice]:
    return [QuizChoice(id=c.id, text=c.text) for c in items]


def _question(q: object) -> QuizQuestion:
    match q:
        case quiz.LearnerSingleChoice():
            return SingleChoiceQuestion(id=q.id, prompt=q.prompt, points=q.points,
                                        options=_choices(q.options))
        case quiz.LearnerMultipleChoice():
            return MultipleChoiceQuestion(id=q.id, prompt=q.prompt, points=q.points,
                                          options=_choices(q.options))
        case quiz.LearnerTrueFalse():
            return TrueFalseQuestion(id=q.id, prompt=q.prompt, points=q.points)
        case quiz.LearnerNumeric():
            return NumericQuestion(id=q.id, prompt=q.prompt, points=q.points, unit=q.unit)
        case quiz.LearnerShortText():
            return ShortTextQuestion(id=q.id, prompt=q.prompt, points=q.points)
        case quiz.LearnerOrdering():
            return OrderingQuestion(id=q.id, prompt=q.prompt, points=q.points,
                                    items=_choices(q.items))
        case quiz.LearnerMatching():
            return MatchingQuestion(id=q.id, prompt=q.prompt, points=q.points,
                                    left=_choices(q.left), right=_choices(q.right))
    raise TypeError(f"no GraphQL type for the question {type(q).__name__}")


@strawberry.type(description="a quiz as learners see it: its questions without their answers")
class QuizBlock:
    id: str = strawberry.field(description=(
        "the quiz's id, unique in its lesson: what `…/lessons/{lesson}/quizzes/{quiz}/attempts` "
        "names to have answers graded (against the published quiz)"))
    title: str = strawberry.field(description="its title")
    max_score: float = strawberry.field(description="the most it scores: its questions' points "
                                                    "added up")
    questions: list[QuizQuestion] = strawberry.field(description="its questions, in order")

    @classmethod
    def of(cls, block: quiz.QuizBlock) -> QuizBlock:
        seen = quiz.learner_quiz(block)
        return cls(id=seen.id, title=seen.title, max_score=seen.max_score,
                   questions=[_question(q) for q in seen.questions])


Block = Annotated[
    MarkdownBlock | CodeBlock | ImageBlock | AudioBlock | VideoBlock | FileBlock | QuizBlock,
    strawberry.union("Block", description="one block of a lesson's content")]


def _block(tenant: str, b: model.BlockType) -> Block:
    match b:
        case model.MarkdownBlock():
            return MarkdownBlock(markdown=b.markdown, tenant=tenant)
        case model.CodeBlock():
            return CodeBlock(language=b.language, source=b.source)
        case model.ImageBlock():
            return ImageBlock(media=b.media, url=media_url(tenant, b.media), title=b.title,
                              caption=b.caption, tenant=tenant, alt=b.alt)
        case model.AudioBlock():
            return AudioBlock(media=b.media, url=media_url(tenant, b.media), title=b.title,
                              caption=b.caption, tenant=tenant,
                              captions=Captions.of(tenant, b.captions),
                              made_by_ai=MadeByAi.of(b.made_by_ai))
        case model.VideoBlock():
            return VideoBlock(media=b.media, url=media_url(tenant, b.media), title=b.title,
                              caption=b.caption, tenant=tenant,
                              captions=Captions.of(tenant, b.captions),
                              made_by_ai=MadeByAi.of(b.made_by_ai))
        case model.FileBlock():
            return FileBlock(media=b.media, url=media_url(tenant, b.media), title=b.title,
                             caption=b.caption, tenant=tenant)
        case quiz.QuizBlock():
            return QuizBlock.of(b)


def _weight(lesson: model.Lesson) -> int:
    """What making `lesson`'s blocks costs, in blocks: a quiz's questions and choices are each
    as much work as a block, and a quiz may have 100 questions of 30 choices."""
    return sum(1 + sum(1 + _choices_of(q) for q in b.questions)
               if isinstance(b, quiz.QuizBlock) else 1 for b in lesson.blocks)


def _choices_of(question: object) -> int:
    match question:
        case quiz.SingleChoice() | quiz.MultipleChoice():
            return len(question.options)
        case quiz.Ordering():
            return len(question.items)
        case quiz.Matching():
            return 2 * len(question.pairs) + len(question.distractors)
    return 0


# records

LEVELS = "`beginner`, `intermediate` or `advanced`"
TAGS = "lower-case, each once, at most 20"


@strawberry.type(description="a lesson of a course, as its draft or as last published (`draft` "
                             "says which)")
class Lesson:
    id: str = strawberry.field(description="the lesson's id")
    tenant: str = strawberry.field(description="the id of its tenant")
    course_id: str = strawberry.field(description="the id of its course")
    module: str | None = strawberry.field(description="the id of the course's module it belongs "
                                                      "to; null when in none")
    position: int = strawberry.field(description=(
        "its place in its course: the course lists its lessons by it, ascending (numbers may "
        "skip)"))
    title: str = strawberry.field(description="its title")
    estimated_minutes: int = strawberry.field(description="the minutes its author expects it to "
                                                          "take, 1 to 600")
    teaches: list[str] = strawberry.field(description="the ids of the concepts it teaches")
    requires: list[str] = strawberry.field(description=(
        "the ids of the concepts it needs first (paths order lessons by the prerequisite "
        "graph's edges, not by this)"))
    tags: list[str] = strawberry.field(description=TAGS)
    language: str | None = strawberry.field(description="its language, a BCP 47 tag such as "
                                                        "`en`; null: its course's")
    level: str | None = strawberry.field(description=f"{LEVELS}; null: its course's")
    version: int = strawberry.field(description=(
        "bumped by each edit: the `If-Match` of an edit through the HTTP API; as last "
        "published, the version that was published"))
    created_at: datetime = strawberry.field(description="when the lesson was created")
    updated_at: datetime = strawberry.field(description="when this version of it was made")
    draft: bool = strawberry.field(description=(
        "true when this is the lesson's draft (shown to its course's authors and the tenant's "
        "admins), false when it is the lesson as last published"))
    # Its blocks are made when a query asks for them: most of a lesson's cost, and lists of
    # lessons rarely want them.
    source: strawberry.Private[model.Lesson]
    # Whether its blocks were counted already, with those of the other lessons of its list.
    counted: strawberry.Private[bool] = False

    @field("its content in order; a quiz without its answers, in a draft too")
    def blocks(self, info: Info) -> list[Block]:
        # Counted before they are made: what a lesson costs to answer is mostly its blocks.
        if not self.counted:
            info.context.count(BLOCKS, _weight(self.source), MAX_BLOCKS)
        return [_block(self.tenant, b) for b in self.source.blocks]

    @field("each media file it references, by id, with a link that is its own credential, as "
           "`…/lessons/{lesson}/media-links` gives them: its media blocks' and their captions', "
           "and those whose URLs (`…/media/{id}/…`) any block's text holds (Markdown, captions, "
           "quiz prompts and choices), but a code block's")
    def media_links(self, info: Info) -> list[LessonMedia]:
        if not self.counted:  # each one is read
            info.context.count(BLOCKS, _weight(self.source), MAX_BLOCKS)
        return [LessonMedia(media=m, link=_link(info, self.tenant, m))
                for m in lesson_media(self.source, draft=self.draft)]

    @classmethod
    def of(cls, lesson: model.Lesson, *, draft: bool, counted: bool = False) -> Lesson:
        return cls(id=lesson.id, tenant=lesson.tenant, course_id=lesson.course,
                   module=lesson.module, position=lesson.position, title=lesson.title,
                   estimated_minutes=lesson.estimated_minutes,
                   teaches=list(lesson.teaches), requires=list(lesson.requires),
                   tags=list(lesson.tags), language=lesson.language, level=lesson.level,
                   version=lesson.version, created_at=lesson.created_at,
                   updated_at=lesson.updated_at, draft=draft, source=lesson, counted=counted)


@strawberry.type(description="a named part of a course; its lessons name it in `module`")
class Module:
    id: str = strawberry.field(description="its id, unique in its course")
    title: str = strawberry.field(description="its title")
    summary: str = strawberry.field(description="plain text; empty when none")


@strawberry.type(description="a course of a tenant, as its draft or as last published (`draft` "
                             "says which)")
class Course:
    id: str = strawberry.field(description="the course's id")
    tenant: str = strawberry.field(description="the id of its tenant")
    title: str = strawberry.field(description="its title")
    summary: str = strawberry.field(description="plain text; empty when none")
    language: str = strawberry.field(description="the language it is taught in, a BCP 47 tag "
                                                 "such as `en`")
    level: str = strawberry.field(description=LEVELS)
    tags: list[str] = strawberry.field(description=TAGS)
    modules: list[Module] = strawberry.field(description="its modules, in order")
    owner: str | None = strawberry.field(description=(
        "the id of the user who owns it (who created it, or the co-author who took it over); "
        "null for a seeded course or one left orphaned"))
    co_authors: list[str] = strawberry.field(description="the ids of its co-authors, who edit "
                                                         "it as its owner does")
    status: str = strawberry.field(description=(
        "`draft` (never published), `published`, or `archived` (taken out of the catalogue)"))
    version: int = strawberry.field(description=(
        "as last published, the version shown; as a draft, the version last published (0: "
        "never published)"))
    revision: int = strawberry.field(description=(
        "bumped by each change of the course's head: the `If-Match` of an edit through the "
        "HTTP API"))
    lesson_count: int = strawberry.field(description=(
        "how many lessons `lessons` holds: the draft's, or those of the publication not deleted "
        "since"))
    created_at: datetime = strawberry.field(description="when the course was created")
    updated_at: datetime = strawberry.field(description=(
        "as a draft, when the course itself (not a lesson) last changed; as last published, "
        "when that version was published"))
    published_at: datetime | None = strawberry.field(description=(
        "when its last version was published; null when never"))
    archived_at: datetime | None = strawberry.field(description=(
        "when it was taken out of the catalogue (`…/archive`); null when it is not archived"))
    rollback_of: int | None = strawberry.field(description=(
        "the earlier version its last publication restored (`…/rollback`); null when it "
        "restored none"))
    draft: bool = strawberry.field(description=(
        "true when this is the course's draft (what its authors and the tenant's admins get "
        "from `course`, and from `courses` of a status other than PUBLISHED), false when it is "
        "the course as last published"))
    # What `lessons` reads: the draft's lessons (`draft`), or those of the publication of
    # `stored`; `known` when they were read already.
    stored: strawberry.Private[model.Course | None]
    known: strawberry.Private[list[model.Lesson] | None]

    @classmethod
    def of(cls, view: model.CourseView, *, draft: bool, stored: model.Course | None = None,
           lessons: list[model.Lesson] | None = None) -> Course:
        return cls(id=view.id, tenant=view.tenant, title=view.title, summary=view.summary,
                   language=view.language, level=view.level, tags=list(view.tags),
                   modules=[Module(id=m.id, title=m.title, summary=m.summary)
                            for m in view.modules],
                   owner=view.owner, co_authors=list(view.co_authors), status=view.status,
                   version=view.version, revision=view.revision,
                   lesson_count=view.lesson_count,
                   created_at=view.created_at, updated_at=view.updated_at,
                   published_at=view.published_at, archived_at=view.archived_at,
                   rollback_of=view.rollback_of,
                   draft=draft, stored=stored, known=lessons)

    @field("the course's lessons in order as this object shows the course: its draft's when "
           "`draft`, else as last published; null when they could not be read (its error says "
           "why)")
    async def lessons(self, info: Info) -> list[Lesson] | None:
        # Counted before they are read, so that the lessons past the limit are never read.
        info.context.count("lessons", self.lesson_count, MAX_LESSONS)
        if self.known is not None:
            found = self.known
        elif self.draft or self.stored is None:
            found = await shared(_drafts_loader(info).load((self.tenant, self.id)))
        else:
            found = await shared(_published_loader(info).load(self.stored))
        # The blocks they will make, counted before any is: past the limit, the whole list
        # fails here rather than after its first lessons' blocks were made.
        if reads := selected(info, BLOCK_READS):
            info.context.count(BLOCKS, reads * sum(_weight(x) for x in found), MAX_BLOCKS)
        return [Lesson.of(x, draft=self.draft, counted=True) for x in found]


@strawberry.type(description="a concept of the tenant, which lessons teach and require")
class Concept:
    id: str = strawberry.field(description="its id: what lessons' `teaches` and `requires` name")
    tenant: str = strawberry.field(description="the id of its tenant")
    name: str = strawberry.field(description="its name")
    description: str = strawberry.field(description="plain text; empty when none")
    version: int = strawberry.field(description=(
        "raised by each edit: what an edit's `If-Match` names (`PATCH …/concepts/{concept}`)"))

    @classmethod
    def of(cls, concept: model.Concept) -> Concept:
        return cls(id=concept.id, tenant=concept.tenant, name=concept.name,
                   description=concept.description, version=concept.version)


@strawberry.type
class Query:
    @field("the tenant's courses of `status` ordered by the title learners read (a published "
           "course's last published title), ignoring case, `first` of them after the cursor "
           "`after`")
    async def courses(self, info: Info, tenant: Slug,
                      status: CourseStatusFilter = CourseStatusFilter.PUBLISHED, first: int = 50,
                      after: str | None = None) -> Page[Course] | None:
        me = _reader(info, tenant)
        if status is not CourseStatusFilter.PUBLISHED and not me.has_any(STAFF):
            raise Forbidden("drafts are visible to the tenant's educators only",
                            code="missing_role")
        wanted: model.CourseStatus | None = {
            CourseStatusFilter.PUBLISHED: "published", CourseStatusFilter.DRAFT: "draft",
            CourseStatusFilter.ARCHIVED: "archived", CourseStatusFilter.ALL: None}[status]
        service = _service(info)
        readable = await service.readable_courses(tenant, wanted, me,
                                                  after=sized(after, "after", After),
                                                  limit=page_size(first))
        views = await service.views_of(tenant, readable.items)
        out = [Course.of(view, draft=True) if draft or c.publication is None
               else Course.of(view, draft=False, stored=c)
               for (c, draft), view in zip(readable.items, views, strict=True)]
        return Page(items=out, next=readable.next)

    @field("a course of the tenant; null when there is none")
    async def course(self, info: Info, tenant: Slug, id: Slug) -> Course | None:
        _reader(info, tenant)
        found = await shared(_courses_loader(info).load((tenant, id)))
        if found is None:
            return None
        detail, draft = found
        return Course.of(detail, draft=draft, lessons=list(detail.lessons))

    @field("a lesson of the tenant; null when there is none")
    async def lesson(self, info: Info, tenant: Slug, id: str) -> Lesson | None:
        me = _reader(info, tenant)
        try:
            lesson, draft = await _service(info).lesson_for(tenant, sized(id, "id", LessonId),
                                                            me)
            return Lesson.of(lesson, draft=draft)
        except NotFound:
            return None

    @field("the tenant's concepts ordered by id, `first` of them after the cursor `after`")
    async def concepts(self, info: Info, tenant: Slug, first: int = 100,
                       after: str | None = None) -> Page[Concept] | None:
        _reader(info, tenant)
        return Page.of(await _service(info).concept_page(tenant, sized(after, "after", After),
                                                         page_size(first)),
                       Concept.of)
