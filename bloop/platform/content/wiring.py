"""Mounts content in a process: picks its store, sets it up, and registers its outbox."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from functools import partial

from fastapi import APIRouter

from bloop.platform.content import events as _events  # noqa: F401  (registers the event types)
from bloop.platform.content.ai_outputs import AiOutputs
from bloop.platform.content.attempts.wiring import mount_attempts
from bloop.platform.content.consumers import ai_media_subscription, cache_group, subscriptions
from bloop.platform.content.media.service import MediaService
from bloop.platform.content.media.settings import MediaSettings
from bloop.platform.content.media.wiring import (
    LARGE_BODIES,
    media_close,
    media_routers,
    media_setup,
    media_state,
)
from bloop.platform.content.members import TenantMembers
from bloop.platform.content.model import MarkdownBlock, NewConcept, NewCourse, NewLesson
from bloop.platform.content.ports import ContentRepository
from bloop.platform.content.search.settings import SearchSettings
from bloop.platform.content.search.wiring import mount_search
from bloop.platform.content.service import ContentService
from bloop.platform.content.uploads.settings import UploadSettings
from bloop.platform.kit.errors import Conflict
from bloop.platform.kit.wiring import Platform
from bloop.platform.services import Mounted, Service

log = logging.getLogger("bloop.content")


def repository(platform: Platform) -> ContentRepository:
    if platform.settings.mode("mongo") == "real":
        from bloop.platform.content.stores.mongo import MongoContentStore

        return MongoContentStore(platform.require_mongo(), platform.events)
    from bloop.platform.content.stores.embedded import EmbeddedContentStore

    return EmbeddedContentStore(platform.sqlite("content"), platform.events)


async def mount(platform: Platform) -> Mounted:
    repo = repository(platform)
    relay = platform.add_outbox(repo.outbox)
    members = TenantMembers(lambda: platform.services.get("identity"),
                            platform.settings.auth.identity_url)
    service = ContentService(repo, on_write=relay.wake, cache=platform.copies, members=members,
                             on_cache_read=partial(platform.metrics.cache_lookup, "lessons"))
    attempts = mount_attempts(platform, service)
    media = media_state(platform, service)
    files = media["media"]
    assert isinstance(files, MediaService)
    service.media = files
    search = None if platform.one_off else mount_search(platform, service)
    ai_outputs = AiOutputs(lambda: platform.services.get("ai"), platform.settings.ai.url)
    cached = cache_group(platform.cache_shared,
                         None if search is None else search.service.index.index_id)

    async def setup() -> None:
        await repo.setup()
        await attempts.store.setup()
        await media_setup(media)
        if search is not None:
            await search.setup()

    async def seed() -> None:
        await seed_demo(service)

    async def close() -> None:
        await media_close(media)
        if search is not None:
            await search.close()
        await ai_outputs.close()
        await members.close()

    async def personal_data(tenant: str, user_id: str) -> dict[str, object]:
        return {"authored_courses": await service.authored(tenant, user_id),
                "media_uploaded": [m.model_dump(mode="json")
                                   for m in await files.uploaded_by(tenant, user_id)],
                **await attempts.service.personal_data(tenant, user_id)}

    return Mounted(setup=setup, seed=seed,
                   subscriptions=[*subscriptions(service, files, cached), *attempts.subscriptions,
                                  *(search.subscriptions if search is not None else ()),
                                  ai_media_subscription(service, files, ai_outputs)],
                   close=close, personal_data=personal_data,
                   state={"service": service, "attempts": attempts.service, **media,
                          **({"search": search.service} if search is not None else {})})


async def seed_demo(service: ContentService) -> None:
    """The demo tenant's concepts and published course, on first start only. Nothing happens
    once the demo course is published, or when the tenant has courses but not the demo one; a
    seed interrupted before publishing is completed at the next start."""
    from bloop.platform.demo import data

    tenant = data.TENANT_ID
    course = await service.repo.get_course(tenant, data.COURSE_ID)
    if course is not None and course.version > 0:
        return
    if course is None and (await service.repo.list_courses(tenant, None, limit=1)).items:
        return
    for c in data.CONCEPTS:
        with contextlib.suppress(Conflict):
            await service.add_concept(tenant, NewConcept(id=c.id, name=c.name,
                                                         description=c.description))
    if course is None:
        try:
            await service.create_course(tenant, NewCourse(
                id=data.COURSE_ID, title=data.COURSE_TITLE, summary=data.COURSE_SUMMARY,
                language="en", level="beginner", tags=list(data.COURSE_TAGS)))
        except Conflict:
            return  # another process is seeding it
    have = len(await service.repo.list_lessons(tenant, data.COURSE_ID))
    for lesson in data.LESSONS[have:]:
        await service.add_lesson(tenant, data.COURSE_ID, NewLesson(
            title=lesson.title, estimated_minutes=lesson.estimated_minutes,
            teaches=list(lesson.teaches), requires=list(lesson.requires),
            blocks=[MarkdownBlock(markdown=b) for b in lesson.blocks]))
    await service.publish(tenant, data.COURSE_ID)
    log.info("seeded the demo course", extra={"tenant": tenant, "course": data.COURSE_ID})


def routers() -> Sequence[APIRouter]:
    from bloop.platform.content.api import pages, router
    from bloop.platform.content.attempts.api import router as attempts_router
    from bloop.platform.content.search.api import router as search_router

    return (router, pages, attempts_router, *media_routers(), search_router)


SERVICE = Service(name="content", mount=mount, routers=routers, large_bodies=LARGE_BODIES,
                  settings=(MediaSettings, UploadSettings, SearchSettings))
