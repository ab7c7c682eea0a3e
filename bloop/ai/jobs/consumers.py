"""What the AI service consumes besides its own `ai.jobs` commands (those are the worker's):
`user.events`, where a deleted user's jobs are anonymised; content's `ai_media.not_attached`,
the outputs of a job content did not add to the lesson's draft and why, recorded on the job,
whose files are removed when content found the lesson gone (a job that ended before this
service heard of the deletion); and content's `lesson.deleted` (a course's deletion deletes each
of its lessons), which keeps the lesson's tombstone (new jobs on it are refused, and one stored
meanwhile is cancelled when it starts), cancels the lesson's unfinished jobs and removes its
jobs' files. Running any again changes nothing, so a redelivered event is harmless."""

from __future__ import annotations

import logging

from bloop.ai.jobs.model import NotAttached
from bloop.ai.jobs.retention import OutputRetention
from bloop.ai.jobs.service import JobService
from bloop.platform.content.events import TOPIC as CONTENT_EVENTS
from bloop.platform.content.events import AiMediaNotAttached, LessonDeleted
from bloop.platform.identity.events import TOPIC as USER_EVENTS
from bloop.platform.identity.events import UserDeleted
from bloop.platform.kit.errors import NotFound
from bloop.platform.kit.events.bus.port import Subscription
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.types import type_of

log = logging.getLogger("bloop.ai")
LESSON_GONE = "lesson_gone"  # content's code for an output of a job whose lesson was deleted


def subscriptions(service: JobService, retention: OutputRetention,
                  group: str = "ai-worker") -> list[Subscription]:
    """The consumer groups are the workers' own (`BLOOP_AI_WORKER_GROUP`) with `.users`,
    `.content` and `.lessons` after it, so each deployment sharing a Kafka cluster (and each
    test run) sees every event."""
    deleted = type_of(UserDeleted)
    not_attached = type_of(AiMediaNotAttached)
    lesson_deleted = type_of(LessonDeleted)

    async def forget(envelope: Envelope) -> None:
        await service.forget_requester(envelope.tenant, deleted.parse(envelope).user_id)

    async def record(envelope: Envelope) -> None:
        data = not_attached.parse(envelope)
        refused = [NotAttached(output=o.name, code=o.code, detail=o.detail, at=data.refused_at)
                   for o in data.outputs]
        try:
            await service.record_not_attached(envelope.tenant, data.job_id, refused)
        except NotFound:
            log.warning("content reported outputs of an unknown AI job", extra={
                "tenant": envelope.tenant, "job": data.job_id})
            return
        if any(o.code == LESSON_GONE for o in data.outputs) and \
                await retention.remove_outputs(envelope.tenant, data.job_id):
            log.info("removed the files of an AI job whose lesson was deleted", extra={
                "tenant": envelope.tenant, "job": data.job_id})

    async def lesson_gone(envelope: Envelope) -> None:
        lesson_id = lesson_deleted.parse(envelope).lesson_id
        changed = await retention.lesson_deleted(envelope.tenant, lesson_id)
        if changed:
            log.info("cancelled the jobs of a deleted lesson and removed their files", extra={
                "tenant": envelope.tenant, "lesson": lesson_id, "jobs": changed})

    return [Subscription(f"{group}.users", (USER_EVENTS,), forget,
                         types=frozenset({deleted.type_id})),
            Subscription(f"{group}.content", (CONTENT_EVENTS,), record,
                         types=frozenset({not_attached.type_id})),
            Subscription(f"{group}.lessons", (CONTENT_EVENTS,), lesson_gone,
                         types=frozenset({lesson_deleted.type_id}))]
