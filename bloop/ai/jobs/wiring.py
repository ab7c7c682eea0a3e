"""Mounts the AI service in a process: picks its stores, registers its outbox, and (unless
`BLOOP_AI_RUN_JOBS=false`) runs jobs: the `ai.jobs` consumer group, the sweeper, the sweep that
removes old output files, and the count of unfinished jobs in the metrics. It also anonymises a
deleted user's jobs, records on a job the outputs content did not attach, cancels the jobs of a
deleted lesson, and gives a user's jobs to the data export."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Sequence
from typing import get_args

from fastapi import APIRouter

from bloop.ai.jobs import consumers, renderers
from bloop.ai.jobs import events as _events  # noqa: F401  (registers the event types)
from bloop.ai.jobs.events import JOBS_TOPIC, JobRequested
from bloop.ai.jobs.lessons import HttpLessons
from bloop.ai.jobs.links import OutputLinks
from bloop.ai.jobs.model import JobKind
from bloop.ai.jobs.outputs import JobOutputs
from bloop.ai.jobs.ports import JobStore, MediaStore
from bloop.ai.jobs.retention import OutputRetention
from bloop.ai.jobs.service import JobService
from bloop.ai.jobs.worker import JobRunner
from bloop.ai.providers.tts import TtsSettings
from bloop.platform.kit.events.bus.port import Subscription
from bloop.platform.kit.events.types import type_of
from bloop.platform.kit.every import Every
from bloop.platform.kit.metrics import Metrics
from bloop.platform.kit.wiring import Platform
from bloop.platform.services import Mounted, Service

log = logging.getLogger("bloop.ai")


def stores(platform: Platform) -> tuple[JobStore, MediaStore]:
    database = platform.settings.ai.database
    if platform.settings.mode("mongo") == "real":
        from bloop.ai.jobs.stores.mongo import GridFsMediaStore, MongoJobStore

        client = platform.require_mongo()
        return (MongoJobStore(client, platform.events, database=database),
                GridFsMediaStore(client, database=database))
    from bloop.ai.jobs.stores.embedded import EmbeddedJobStore, FileMediaStore

    return (EmbeddedJobStore(platform.sqlite(database), platform.events),
            FileMediaStore(platform.settings.runtime.data_dir / f"{database}-media"))


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


async def mount(platform: Platform) -> Mounted:
    settings = platform.settings.ai
    store, media = stores(platform)
    relay = platform.add_outbox(store.outbox)
    # A process that runs no jobs cannot tell what the workers' machines have: they check.
    found = renderers.available(tools=False)
    lacking = {kind: why for kind in found
               if (why := renderers.missing_tools(kind))} if settings.run_jobs else {}
    for kind, why in lacking.items():
        log.warning("%s jobs are refused: %s", kind, why)
        del found[kind]
    service = JobService(store, settings, media_kinds=frozenset(found), lacking=lacking,
                         narratable=renderers.narratable,
                         voice_problem=renderers.voice_problem,
                         language_problem=renderers.language_problem,
                         speech_provider=renderers.speech_provider, on_write=relay.wake)
    secret = settings.link_secret.get_secret_value().encode() if settings.link_secret else None
    links = OutputLinks(secret, settings.link_ttl_s)
    runner = JobRunner(service, media, settings, worker_id(), found,
                       workdir=platform.settings.runtime.data_dir / "ai-work", links=links)
    lessons = HttpLessons(settings.content_url) if settings.content_url else None
    retention = OutputRetention(service, media, settings.keep_outputs_s)
    expiry = Every("ai:outputs", retention.sweep, settings.sweep_interval_s, log=log,
                   failed="could not remove the output files of old AI jobs")
    counting = Every("ai:count", lambda: count_unfinished(store, platform.metrics),
                     settings.sweep_interval_s, log=log,
                     failed="could not count the unfinished AI jobs")
    subscriptions = [*consumers.subscriptions(service, retention, settings.worker_group), *([
        Subscription(settings.worker_group, (JOBS_TOPIC,), runner.handle,
                     types=frozenset({type_of(JobRequested).type_id}))
    ] if settings.run_jobs else [])]

    async def setup() -> None:
        await store.setup()
        await media.setup()
        if settings.run_jobs:
            runner.start_sweeper()
            expiry.start()
            counting.start()

    async def close() -> None:
        await counting.stop()
        await expiry.stop()
        await runner.stop()
        if lessons is not None:
            await lessons.close()

    return Mounted(setup=setup, subscriptions=subscriptions, close=close,
                   personal_data=service.personal_data,
                   state={"service": service, "runner": runner, "media": media,
                          "outputs": JobOutputs(service, media), "links": links,
                          "lessons": lessons, "retention": retention})


async def count_unfinished(store: JobStore, metrics: Metrics) -> None:
    """The queued and running jobs of each kind, every tenant's, in `bloop_ai_jobs_unfinished`
    (0 for a kind and status with none)."""
    found = await store.unfinished()
    for kind in get_args(JobKind):
        for status in ("queued", "running"):
            metrics.ai_jobs.labels(kind, status).set(found.get((kind, status), 0))


def routers() -> Sequence[APIRouter]:
    from bloop.ai.jobs.api import router

    return (router,)


SERVICE = Service(name="ai", mount=mount, routers=routers, settings=(TtsSettings,))
