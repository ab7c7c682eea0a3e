"""What content consumes.

- Its own `content.events`: a lesson's edit, publication or deletion, and a course's
  publication, drop the cached learner's JSON of the lessons they name (the writing process
  also drops them right after its write). Dropping again drops nothing, so a redelivered event
  is harmless. A shared cache (Redis) is dropped from by one group for every process
  (`content.cache`); an in-process cache by a group of each process's own, named after its
  search index as search's group is (`content.cache.<index id>`), so every process drops its own
  copies.
- `user.events`: a deleted user is taken out of the co-authors of every course, and out of the
  owner's place of those they own (their first co-author takes it, or with none the course is
  left to the tenant's admins). Running it again changes nothing.
- `video.events`: when an AI job completes with audio or video outputs, their bytes are copied
  from the AI service (its outputs object in this process, else the signed link of each output
  over its HTTP API) into the tenant's media, and each is appended to the lesson's draft as an
  audio or a video block: its authors review it, and learners see it once they publish. The
  WebVTT captions made with one (a `subtitles` output of the same name but its extension) are
  stored as media too, and the block names them (`captions`), in the job's language (its
  course's when an older worker did not say). Identical bytes are stored once and a draft
  already showing a media gets it not again, so a redelivered event adds nothing; a block made
  by an earlier job of the same kind is replaced, not joined by a second. An output content
  refuses (type, size, quota, an edit the lesson refuses), whose lesson is gone, or whose
  lesson's text, title or language changed after the job read it (`lesson_changed`), is not
  retried, which would not change it: it is logged and announced in `ai_media.not_attached`
  with the reason, for the AI service to show on the job.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable
from pathlib import PurePosixPath
from typing import Protocol

from bloop.ai.jobs.events import TOPIC as AI_EVENTS
from bloop.ai.jobs.events import JobCompleted, OutputRef
from bloop.platform.content.events import (
    TOPIC,
    CoursePublished,
    LessonDeleted,
    LessonPublished,
    LessonUpdated,
    UnattachedOutput,
)
from bloop.platform.content.media.service import MediaService
from bloop.platform.content.model import (
    LANGUAGE_PATTERN,
    AudioBlock,
    Captions,
    MadeByAi,
    VideoBlock,
    ai_title,
)
from bloop.platform.content.service import ContentService
from bloop.platform.identity.events import TOPIC as USER_EVENTS
from bloop.platform.identity.events import UserDeleted
from bloop.platform.kit.errors import NotFound, Problem
from bloop.platform.kit.events.bus.port import Subscription
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.types import type_of

CACHE_GROUP = "content.cache"
AUTHORS_GROUP = "content.authors"
AI_MEDIA_GROUP = "content.ai-media"
LESSON_EVENTS = (LessonUpdated, LessonPublished, LessonDeleted)
ATTACHED_KINDS: dict[str, type[AudioBlock] | type[VideoBlock]] = {
    "audio": AudioBlock, "video": VideoBlock}
CAPTIONS_KIND, CAPTIONS_TYPE = "subtitles", "text/vtt"
_LANGUAGE = re.compile(LANGUAGE_PATTERN)
log = logging.getLogger("bloop.content")


class JobOutputs(Protocol):
    """The AI service's jobs' output files, through its public surface (`ai_outputs`)."""

    def read(self, tenant: str, job_id: str, output: OutputRef) -> AsyncIterator[bytes]:
        """The output's bytes, in chunks; a Problem (404 when it is gone, 503 when the AI
        service cannot be reached) when they cannot be read."""


def ai_media_subscription(service: ContentService, media: MediaService,
                          outputs: JobOutputs) -> Subscription:
    completed = type_of(JobCompleted)

    async def attach(envelope: Envelope) -> None:
        job = completed.parse(envelope)
        tenant = envelope.tenant
        wanted = [o for o in job.outputs if o.kind in ATTACHED_KINDS]
        if not wanted or not job.lesson_id:  # a video from a prompt alone goes to no lesson
            return
        refused: list[UnattachedOutput] = []

        def refuse(out: OutputRef, code: str, detail: str) -> None:
            log.warning("an AI output was not attached to its lesson", extra={
                "tenant": tenant, "lesson": job.lesson_id, "job": job.job_id,
                "output": out.name, "code": code})
            refused.append(UnattachedOutput(name=out.name, kind=out.kind, code=code,
                                            detail=detail))

        lesson = await service.repo.get_lesson(tenant, job.lesson_id)
        if lesson is None:
            for out in wanted:
                refuse(out, "lesson_gone", f"the lesson {job.lesson_id!r} was deleted")
            await _report(service, tenant, job.job_id, job.lesson_id, refused)
            return
        if job.made_from is not None and job.made_from != await service.made_from(lesson):
            for out in wanted:
                refuse(out, "lesson_changed", f"the lesson {job.lesson_id!r} was changed (its "
                       "text, title or language) after the job read it")
            await _report(service, tenant, job.job_id, job.lesson_id, refused)
            return
        blocks: dict[str, AudioBlock | VideoBlock] = {}
        created: list[str] = []
        captions = _captions_of(wanted, job.outputs)
        language = await _language(service, tenant, job)

        async def store(out: OutputRef, kind: str) -> str | None:
            """The id of the output stored as media, when it is of `kind` (a media kind or
            `text/vtt`); None, and the output refused, otherwise."""
            try:
                stored = await media.upload(tenant, outputs.read(tenant, job.job_id, out),
                                            filename=out.name, declared_size=out.bytes,
                                            by=job.requested_by)
            except Problem as exc:
                if exc.status >= 500:
                    raise
                refuse(out, exc.code, str(exc))
                return None
            found = stored.info.content_type if kind == CAPTIONS_TYPE else stored.info.kind
            if found != kind:
                refuse(out, "kind_mismatch", f"the file is {found}, not {kind}")
                if stored.created:
                    with contextlib.suppress(NotFound):  # claimed by another upload: it stays
                        await media.delete(tenant, stored.info.id, unless_claimed=True)
                return None
            if stored.created:
                created.append(stored.info.id)
            return stored.info.id

        for out in wanted:
            media_id = await store(out, out.kind)
            if media_id is None:
                continue
            vtt = captions.get(out.name)
            vtt_id = None if vtt is None else await store(vtt, CAPTIONS_TYPE)
            blocks[out.name] = ATTACHED_KINDS[out.kind](
                media=media_id, title=ai_title(out.kind, job.kind),
                captions=None if vtt_id is None else Captions(media=vtt_id, language=language),
                made_by_ai=MadeByAi(job=job.job_id, kind=job.kind))
        shown = [o for o in wanted if o.name in blocks]
        shown += [captions[o.name] for o in shown
                  if o.name in captions and blocks[o.name].captions is not None]
        try:
            attached = await service.attach_media(tenant, job.lesson_id, list(blocks.values()),
                                                  source=job.made_from)
        except Problem as exc:
            if exc.status >= 500 or exc.code == "stale_version":
                raise
            for out in shown:
                refuse(out, exc.code, str(exc))
            attached = None
        else:
            if attached is None and blocks and \
                    await service.repo.get_lesson(tenant, job.lesson_id) is None:
                for out in shown:  # deleted since the check above
                    refuse(out, "lesson_gone", f"the lesson {job.lesson_id!r} was deleted")
        if attached is None:  # refused, or the lesson went meanwhile: no lesson shows them
            for media_id in created:
                with contextlib.suppress(NotFound):  # claimed by another upload: it stays
                    await media.delete(tenant, media_id, unless_claimed=True)
        await _report(service, tenant, job.job_id, job.lesson_id, refused)

    return Subscription(AI_MEDIA_GROUP, (AI_EVENTS,), attach,
                        types=frozenset({completed.type_id}))


def _captions_of(wanted: list[OutputRef], outputs: list[OutputRef]) -> dict[str, OutputRef]:
    """The WebVTT output made with each of `wanted`, by its name: the one of the same name but
    its extension (`video.mp4`, `video.vtt`)."""
    vtt = {PurePosixPath(o.name).stem: o for o in outputs
           if o.kind == CAPTIONS_KIND and o.content_type == CAPTIONS_TYPE}
    return {o.name: vtt[stem] for o in wanted if (stem := PurePosixPath(o.name).stem) in vtt}


async def _language(service: ContentService, tenant: str, job: JobCompleted) -> str:
    """The captions' language: the job's, else its course's, else English."""
    if job.language is not None and _LANGUAGE.match(job.language):
        return job.language
    course = await service.repo.get_course(tenant, job.course_id) if job.course_id else None
    return course.language if course is not None else "en"


async def _report(service: ContentService, tenant: str, job_id: str, lesson_id: str,
                  refused: list[UnattachedOutput]) -> None:
    if refused and not await service.report_unattached(tenant, job_id, lesson_id, refused):
        log.warning("an AI job finished for a lesson that never was", extra={
            "tenant": tenant, "lesson": lesson_id, "job": job_id})


def cache_group(shared: bool, index_id: str | None) -> str | None:
    """The group that drops the cached lessons: `CACHE_GROUP` for a cache every process shares;
    for an in-process one, a group of this process's own, named after its search index (which
    serves it alone); None for a process without one (a one-off command, which serves no
    reader)."""
    if shared:
        return CACHE_GROUP
    return None if index_id is None else f"{CACHE_GROUP}.{index_id}"


def subscriptions(service: ContentService, media: MediaService,
                  cache: str | None = CACHE_GROUP) -> list[Subscription]:
    """`cache` names the group that drops the cached lessons (see `cache_group`); None
    subscribes none."""
    course_published = type_of(CoursePublished)
    lesson_types: dict[str, Callable[[Envelope], str]] = {
        type_of(t).type_id: (lambda e, t=t: type_of(t).parse(e).lesson_id)  # type: ignore[misc]
        for t in LESSON_EVENTS}
    deleted = type_of(UserDeleted)

    async def invalidate(envelope: Envelope) -> None:
        if envelope.type == course_published.type_id:
            await service.forget(envelope.tenant, course_published.parse(envelope).lesson_ids)
        else:
            await service.forget(envelope.tenant, [lesson_types[envelope.type](envelope)])

    async def forget_author(envelope: Envelope) -> None:
        user_id = deleted.parse(envelope).user_id
        await service.forget_author(envelope.tenant, user_id)
        await media.forget_uploader(envelope.tenant, user_id)

    return [
        *([] if cache is None else [
            Subscription(cache, (TOPIC,), invalidate,
                         types=frozenset({course_published.type_id, *lesson_types}))]),
        Subscription(AUTHORS_GROUP, (USER_EVENTS,), forget_author,
                     types=frozenset({deleted.type_id})),
    ]
