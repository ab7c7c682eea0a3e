"""The AI job store and media store contracts, run against the embedded adapters (SQLite, files)
and a real MongoDB-wire server (FerretDB v1 from infra/, or MongoDB; GridFS for media). Each real
case uses a database of its own, dropped afterwards."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bloop.ai.jobs.model import (
    Cost,
    Job,
    JobRequest,
    Lease,
    MediaOutput,
    MediaResult,
    TenantAiConfig,
    now,
)
from bloop.ai.jobs.ports import JobLimit, JobStore, MediaStore, TooManyJobs
from bloop.ai.jobs.retention import OutputRetention
from bloop.ai.jobs.service import JobService, requested
from bloop.ai.jobs.stores.embedded import EmbeddedJobStore, FileMediaStore
from bloop.ai.jobs.stores.mongo import GridFsMediaStore, MongoJobStore
from bloop.ai.text.model import LessonText
from bloop.platform.kit import stores
from bloop.platform.kit.events.types import registry
from bloop.platform.kit.pagination import BadCursor
from bloop.platform.kit.settings import AiSettings, MongoSettings
from bloop.platform.kit.sqlite import SqliteDB
from tests.support import paged, require_server


@dataclass
class Stores:
    jobs: JobStore
    media: MediaStore


@pytest.fixture(params=["embedded", pytest.param("real", marks=pytest.mark.real)])
async def ai(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stores]:
    if request.param == "embedded":
        db = SqliteDB(tmp_path / "ai.sqlite3")
        embedded = Stores(EmbeddedJobStore(db, registry), FileMediaStore(tmp_path / "media"))
        await embedded.jobs.setup()
        await embedded.media.setup()
        yield embedded
        await db.close()
        return
    server = require_server("mongo")
    client = stores.mongo_client(MongoSettings(url=server.url, timeout_ms=2000))
    name = f"ai_test_{uuid.uuid4().hex[:12]}"
    real = Stores(MongoJobStore(client, registry, database=name),
                  GridFsMediaStore(client, database=name))
    try:
        await real.jobs.setup()
        await real.media.setup()
        yield real
    finally:
        await client.drop_database(name)
        await client.close()


LESSON = LessonText(id="l1", version=2, title="Names", text="A name refers to a value.")


def job(tenant: str = "acme", key: str = "k1", kind: str = "summary", by: str = "u1",
        at: datetime | None = None) -> Job:
    return Job.create(tenant, JobRequest(kind=kind, lesson_id="l1"),
                      LESSON, by, key, 3, at)


async def test_create_is_idempotent_per_tenant_and_key(ai: Stores) -> None:
    first = job()
    stored, created = await ai.jobs.create(first, [requested(first)])
    assert created
    assert stored == first
    again, created = await ai.jobs.create(job(), [requested(job())])
    assert not created
    assert again.id == first.id
    _, created = await ai.jobs.create(job("beta"), [])
    assert created, "another tenant's same key is another job"
    assert await ai.jobs.get("acme", first.id) == first
    assert await ai.jobs.get("beta", first.id) is None
    assert await ai.jobs.find_by_key("acme", "k1") == first
    assert await ai.jobs.find_by_key("beta", "k2") is None
    pending = await ai.jobs.outbox.pending(100)
    assert [json.loads(p.message.value)["type"] for p in pending] == ["bloop.ai.job.requested.v1"]
    assert pending[0].message.topic == "ai.jobs"


async def test_jobs_asked_for_at_once_count_against_the_hourly_limit(ai: Stores) -> None:
    at = now()
    limit = JobLimit(jobs=3, since=at - timedelta(hours=1))
    old = job(key="old", at=at - timedelta(hours=2))
    await ai.jobs.create(old, [requested(old)], limit=limit)  # outside the window
    asked = [job(key=f"k{i}", at=at) for i in range(8)]
    results = await asyncio.gather(*(ai.jobs.create(j, [requested(j)], limit=limit)
                                     for j in asked), return_exceptions=True)
    made = [r for r in results if not isinstance(r, BaseException)]
    assert all(isinstance(r, TooManyJobs) for r in results if isinstance(r, BaseException))
    # Never one too many; on MongoDB two at once may both step back.
    assert len(made) == 3 if isinstance(ai.jobs, EmbeddedJobStore) else 1 <= len(made) <= 3
    assert (await ai.jobs.spend("acme", limit.since)).jobs == len(made)
    refused = {j.id for j, r in zip(asked, results, strict=True) if isinstance(r, TooManyJobs)}
    assert [await ai.jobs.get("acme", i) for i in refused] == [None] * len(refused)
    values = [json.loads(p.message.value) for p in await ai.jobs.outbox.pending(100)]
    assert len(values) == len(made) + 1, "a refused job leaves no event"


async def test_replace_is_a_compare_and_set_with_its_events(ai: Stores) -> None:
    j = job()
    await ai.jobs.create(j, [])
    at = now()
    running = j.update(at, status="running", attempts=1,
                       lease=Lease(owner="w1", expires_at=at + timedelta(seconds=30)))
    assert running.rev == j.rev + 1
    assert await ai.jobs.replace(running, j.rev, [requested(running)])
    assert not await ai.jobs.replace(j.update(at, step="late"), j.rev, []), "stale revision"
    assert await ai.jobs.get("acme", j.id) == running
    assert len(await ai.jobs.outbox.pending(100)) == 1
    beta = running.model_copy(update={"tenant": "beta"})
    assert not await ai.jobs.replace(beta.update(at), running.rev, [])


async def test_a_key_a_replace_moves_off_is_free(ai: Stores) -> None:
    """What asking again after a failed job relies on: the ended job leaves its key, and a new
    job takes it."""
    ended = job(key="auto:k")
    await ai.jobs.create(ended, [])
    moved = ended.update(status="failed", idempotency_key=f"ended:{ended.id}")
    assert await ai.jobs.replace(moved, ended.rev, [])
    assert await ai.jobs.find_by_key("acme", f"ended:{ended.id}") == moved
    assert await ai.jobs.find_by_key("acme", "auto:k") is None
    new = job(key="auto:k")
    stored, created = await ai.jobs.create(new, [])
    assert (stored.id, created) == (new.id, True)
    assert await ai.jobs.find_by_key("acme", "auto:k") == new


async def test_concurrent_writers_at_one_revision_are_one_winner(ai: Stores) -> None:
    """Two workers (or a worker and a cancel) writing on the same revision at once: exactly one
    wins, and the stored job is the winner's, every time."""
    for round_ in range(20):
        j = job(key=f"race-{round_}")
        await ai.jobs.create(j, [])
        mine = [j.update(step=f"writer {n}", progress=n) for n in range(3)]
        won = await asyncio.gather(*(ai.jobs.replace(m, j.rev, []) for m in mine))
        assert sum(won) == 1, (round_, won)
        assert await ai.jobs.get("acme", j.id) == mine[won.index(True)]


async def test_the_relay_never_undoes_a_job_write(ai: Stores) -> None:
    """Marking events sent while a worker writes the job loses neither: the worker's change
    stays, and the sent event does not come back."""
    for round_ in range(15):
        j = job(key=f"relay-{round_}")
        await ai.jobs.create(j, [requested(j)])
        pending = [p for p in await ai.jobs.outbox.pending(1000)
                   if json.loads(p.message.value)["subject"] == j.id]
        assert len(pending) == 1
        claimed = j.update(status="running", step="claimed")
        won, _ = await asyncio.gather(ai.jobs.replace(claimed, j.rev, [requested(claimed)]),
                                      ai.jobs.outbox.mark_sent(pending))
        assert won
        assert await ai.jobs.get("acme", j.id) == claimed, round_
        left = [json.loads(p.message.value)["id"] for p in await ai.jobs.outbox.pending(1000)
                if json.loads(p.message.value)["subject"] == j.id]
        assert json.loads(pending[0].message.value)["id"] not in left
        assert len(left) == 1, "the worker's new event waits"
        await ai.jobs.outbox.mark_sent([p for p in await ai.jobs.outbox.pending(1000)
                                        if json.loads(p.message.value)["subject"] == j.id])
    assert await ai.jobs.outbox.count_pending() == 0


async def test_a_list_of_one_kind_pages_through_that_kind_alone(ai: Stores) -> None:
    """`?kind=quiz` was not read: a list of one kind gave every kind."""
    start = now() - timedelta(minutes=5)
    made = [job(key=f"k{i}", kind="quiz" if i % 2 else "summary",
                at=start + timedelta(seconds=i // 3)) for i in range(9)]
    for x in made:
        await ai.jobs.create(x, [])
    await ai.jobs.create(job("beta", key="other", kind="quiz"), [])
    newest_first = [x.id for x in (await ai.jobs.list_jobs("acme", limit=50)).items]
    quizzes = [i for i in newest_first if i in {x.id for x in made if x.kind == "quiz"}]
    assert len(quizzes) == 4
    for size in (1, 3, 4, 5):
        pages = await paged(lambda after, n: ai.jobs.list_jobs("acme", kind="quiz", after=after,
                                                               limit=n), size)
        assert [x.id for x in pages] == quizzes, size
    assert [x.id for x in (await ai.jobs.list_jobs("acme", kind="quiz", status="succeeded")
                           ).items] == []
    assert (await ai.jobs.list_jobs("acme", kind="video")).items == []


async def test_listing_spend_and_stale_jobs(ai: Stores) -> None:
    a, b, c = job(key="a"), job(key="b", kind="quiz"), job(key="c")
    for x in (a, b, c):
        await ai.jobs.create(x, [])
    done = c.update(status="succeeded", finished_at=now(),
                    cost=Cost(provider="openai", model="m", prompt_tokens=10,
                              completion_tokens=5, usd=0.25))
    assert await ai.jobs.replace(done, c.rev, [])
    listed = (await ai.jobs.list_jobs("acme")).items
    assert {x.id for x in listed} == {a.id, b.id, c.id}
    assert [x.id for x in (await ai.jobs.list_jobs("acme", status="succeeded")).items] == [c.id]
    assert len((await ai.jobs.list_jobs("acme", limit=2)).items) == 2
    assert (await ai.jobs.list_jobs("beta")).items == []
    for size in (1, 2):
        pages = await paged(lambda after, n: ai.jobs.list_jobs("acme", after=after, limit=n), size)
        assert [x.id for x in pages] == [x.id for x in listed]
    with pytest.raises(BadCursor):
        await ai.jobs.list_jobs("acme", after="e30")
    spend = await ai.jobs.spend("acme", now() - timedelta(hours=1))
    assert (spend.jobs, spend.usd) == (3, 0.25)
    assert (await ai.jobs.spend("acme", now() + timedelta(seconds=5))).jobs == 0

    assert await ai.jobs.stale(now() - timedelta(seconds=60)) == []
    later = now() + timedelta(seconds=1)
    assert {i for _, i in await ai.jobs.stale(later)} == {a.id, b.id}, "finished jobs are not"
    held = b.update(status="running",
                    lease=Lease(owner="w1", expires_at=later + timedelta(seconds=30)))
    assert await ai.jobs.replace(held, b.rev, [])
    assert [i for _, i in await ai.jobs.stale(later)] == [a.id], "a live lease is held"
    assert {i for _, i in await ai.jobs.stale(later + timedelta(seconds=31))} == {a.id, b.id}


async def test_unfinished_jobs_are_counted_by_kind_and_status(ai: Stores) -> None:
    assert await ai.jobs.unfinished() == {}
    a, b, c, d = job(key="a"), job(key="b", kind="quiz"), job(key="c"), job(tenant="beta")
    for x in (a, b, c, d):
        await ai.jobs.create(x, [])
    held = b.update(status="running", lease=Lease(owner="w1", expires_at=now()))
    assert await ai.jobs.replace(held, b.rev, [])
    assert await ai.jobs.replace(c.update(status="succeeded", finished_at=now()), c.rev, [])
    assert await ai.jobs.unfinished() == {("summary", "queued"): 2, ("quiz", "running"): 1}


async def test_a_job_waiting_to_retry_is_stale_once_due(ai: Stores) -> None:
    """The sweeper takes up a retry when its wait ends, and a job never claimed only once it
    was left untouched for a while (its command may still come)."""
    waiting, fresh = job(key="w"), job(key="f")
    for x in (waiting, fresh):
        await ai.jobs.create(x, [])
    due = now() + timedelta(seconds=90)
    assert await ai.jobs.replace(waiting.update(not_before=due, attempts=1), waiting.rev, [])
    later = now() + timedelta(seconds=1)
    assert await ai.jobs.stale(later, touched_before=later - timedelta(seconds=30)) == []
    assert [i for _, i in await ai.jobs.stale(later)] == [fresh.id], "not due yet"
    after = due + timedelta(seconds=1)
    assert [i for _, i in await ai.jobs.stale(
        after, touched_before=later - timedelta(seconds=30))] == [waiting.id]
    # Due at the very moment asked (a job a stopping worker handed back, asked for at once).
    assert [i for _, i in await ai.jobs.stale(
        due, touched_before=later - timedelta(seconds=30))] == [waiting.id]


async def test_stale_jobs_come_free_longest_first_but_those_of_tenants_left_out(
        ai: Stores) -> None:
    """The sweeper leaves out the tenants whose share runs and reads on: the 100 jobs read
    first (untouched longest) were one tenant's backlog, which hid the other tenants' retries."""
    at = now()
    fresh = job("acme", key="a", at=at - timedelta(seconds=300))  # free at -270
    retry, lapsed = job("beta", key="b"), job("gamma", key="c")
    for x in (fresh, retry, lapsed):
        await ai.jobs.create(x, [])
    assert await ai.jobs.replace(retry.update(at - timedelta(seconds=250), attempts=1,
                                              not_before=at - timedelta(seconds=60)),
                                 retry.rev, [])
    assert await ai.jobs.replace(lapsed.update(at - timedelta(seconds=200), status="running",
                                               lease=Lease(owner="w1", expires_at=at - timedelta(
                                                   seconds=120))), lapsed.rev, [])
    touched = at - timedelta(seconds=30)
    assert await ai.jobs.stale(at, touched_before=touched) == [
        ("acme", fresh.id), ("gamma", lapsed.id), ("beta", retry.id)]
    assert await ai.jobs.stale(at, touched_before=touched, limit=2) == [
        ("acme", fresh.id), ("gamma", lapsed.id)]
    assert await ai.jobs.stale(at, touched_before=touched, skip_tenants={"acme", "gamma"},
                               limit=1) == [("beta", retry.id)]


async def test_a_requester_s_jobs(ai: Stores) -> None:
    first = job(key="a", at=now() - timedelta(seconds=2))
    second = job(key="b", kind="quiz")
    for x in (first, second, job(key="c", by="u2"), job("beta", key="a")):
        await ai.jobs.create(x, [])
    assert [j.id for j in await ai.jobs.by_requester("acme", "u1")] == [first.id, second.id]
    renamed = first.update(requested_by="deleted-user")
    assert await ai.jobs.replace(renamed, first.rev, [])
    assert [j.id for j in await ai.jobs.by_requester("acme", "u1")] == [second.id]
    assert [j.id for j in await ai.jobs.by_requester("acme", "deleted-user")] == [first.id]
    assert await ai.jobs.by_requester("gamma", "u1") == []


async def test_tenant_settings_keep_their_key(ai: Stores) -> None:
    assert await ai.jobs.get_config("acme") is None
    config = TenantAiConfig.model_validate({"provider": "openai", "api_key": "sk-1",
                                            "model": "m", "monthly_budget_usd": 5})
    await ai.jobs.put_config("acme", config)
    got = await ai.jobs.get_config("acme")
    assert got is not None
    assert got.api_key is not None
    assert got.api_key.get_secret_value() == "sk-1"
    assert (got.model, got.monthly_budget_usd) == ("m", 5)
    await ai.jobs.put_config("acme", TenantAiConfig(model="n"))
    assert (await ai.jobs.get_config("acme")) == TenantAiConfig(model="n")
    assert await ai.jobs.get_config("beta") is None
    # keeping the key: the one stored at the write stays, a rotated one included
    await ai.jobs.put_config("acme", TenantAiConfig.model_validate({"api_key": "sk-2"}))
    await ai.jobs.put_config("acme", TenantAiConfig(model="o", max_jobs_per_hour=3),
                             keep_api_key=True)
    got = await ai.jobs.get_config("acme")
    assert got is not None
    assert got.api_key is not None
    assert (got.api_key.get_secret_value(), got.model, got.max_jobs_per_hour) == ("sk-2", "o", 3)
    await ai.jobs.put_config("beta", TenantAiConfig(model="p"), keep_api_key=True)
    assert (await ai.jobs.get_config("beta")) == TenantAiConfig(model="p")


async def test_settings_kept_before_addresses_were_checked_still_read(ai: Stores) -> None:
    """A base URL stored before the web-address check reads back as kept, so the tenant's
    settings page still opens and an admin can correct it."""
    unchecked = TenantAiConfig.model_construct(base_url="http://127.0\x1f.0.1/v1", model="m")
    await ai.jobs.put_config("acme", unchecked)
    got = await ai.jobs.get_config("acme")
    assert got is not None
    assert (got.base_url, got.model) == ("http://127.0\x1f.0.1/v1", "m")


async def test_media_files_belong_to_their_tenant(ai: Stores, tmp_path: Path) -> None:
    source = tmp_path / "narration.opus"
    payload = bytes(range(256)) * 2000  # 512 KB: several chunks
    source.write_bytes(payload)
    stored = await ai.media.put("acme", "job1", "narration.opus", "audio/ogg", source)
    assert stored.length == len(payload)
    again = await ai.media.put("acme", "job1", "narration.opus", "audio/ogg", source)
    assert again.file_id == stored.file_id, "a retried upload replaces the file"
    info = await ai.media.info("acme", stored.file_id)
    assert info is not None
    assert (info.name, info.content_type, info.length) == ("narration.opus", "audio/ogg",
                                                           len(payload))
    assert b"".join([c async for c in ai.media.read("acme", stored.file_id)]) == payload
    assert await ai.media.info("beta", stored.file_id) is None
    assert [c async for c in ai.media.read("beta", stored.file_id)] == []
    assert await ai.media.info("acme", "nope") is None
    await ai.media.delete("beta", stored.file_id)
    assert await ai.media.info("acme", stored.file_id) is not None, "not another tenant's"
    await ai.media.delete("acme", stored.file_id)
    assert await ai.media.info("acme", stored.file_id) is None
    assert [c async for c in ai.media.read("acme", stored.file_id)] == []
    await ai.media.delete("acme", stored.file_id)  # gone already: nothing to do


async def test_media_files_read_in_ranges(ai: Stores, tmp_path: Path) -> None:
    """Reads gave the whole file only, so outputs could not be served in ranges."""
    source = tmp_path / "video.mp4"
    payload = bytes(range(256)) * 4000  # 1,024,000 bytes: several store chunks
    source.write_bytes(payload)
    stored = await ai.media.put("acme", "job1", "video.mp4", "video/mp4", source)
    size = len(payload)

    async def read(start: int, end: int | None, chunk: int = 256 * 1024,
                   tenant: str = "acme") -> bytes:
        return b"".join([c async for c in ai.media.read(tenant, stored.file_id, start, end,
                                                        chunk=chunk)])

    for start, end in ((0, 100), (size - 500, size), (300_000, None), (5, size + 10),
                       (255 * 1024, 257 * 1024 + 3), (size - 1, size), (0, None)):
        assert await read(start, end) == payload[start:end], (start, end)
    assert await read(1000, 1000) == b""
    assert await read(size, None) == b"", "past the end: nothing"
    parts = [c async for c in ai.media.read("acme", stored.file_id, 10, 10 + 2500, chunk=1000)]
    assert [len(c) for c in parts] == [1000, 1000, 500], "chunks, cut at the range's end"
    assert await read(0, 100, tenant="beta") == b""


async def finished_media(ai: Stores, key: str, ended: datetime, source: Path,
                         tenant: str = "acme") -> Job:
    """A narration job that succeeded at `ended`, its file stored."""
    made = job(tenant, key=key, kind="narration", at=ended - timedelta(minutes=1))
    await ai.jobs.create(made, [])
    file = await ai.media.put(tenant, made.id, "narration.wav", "audio/wav", source)
    done = made.update(ended, status="succeeded", finished_at=ended, result=MediaResult(
        outputs=[MediaOutput(name="narration.wav", kind="audio", content_type="audio/wav",
                             bytes=file.length, file_id=file.file_id, url="/x")]))
    assert await ai.jobs.replace(done, made.rev, [])
    return done


async def test_jobs_whose_outputs_are_due_for_removal(ai: Stores, tmp_path: Path) -> None:
    source = tmp_path / "narration.wav"
    source.write_bytes(b"RIFF" + b"\x00" * 100)
    at = now()
    oldest = await finished_media(ai, "oldest", at - timedelta(days=9), source, "beta")
    old = await finished_media(ai, "old", at - timedelta(days=8), source)
    young = await finished_media(ai, "young", at - timedelta(days=1), source)
    removed = await finished_media(ai, "removed", at - timedelta(days=10), source)
    assert await ai.jobs.replace(removed.update(outputs_removed_at=at), removed.rev, [])
    text = job(key="text", at=at - timedelta(days=20))
    await ai.jobs.create(text, [])
    assert await ai.jobs.replace(text.update(status="succeeded", finished_at=text.created_at),
                                 text.rev, [])
    await ai.jobs.create(job(key="open", kind="narration", at=at - timedelta(days=20)), [])

    week = at - timedelta(days=7)
    assert await ai.jobs.outputs_due(week) == [("beta", oldest.id), ("acme", old.id)]
    assert await ai.jobs.outputs_due(week, limit=1) == [("beta", oldest.id)]
    assert await ai.jobs.outputs_due(at) == [("beta", oldest.id), ("acme", old.id),
                                             ("acme", young.id)]

    service = JobService(ai.jobs, AiSettings())
    retention = OutputRetention(service, ai.media, timedelta(days=7).total_seconds())
    assert await retention.sweep() == 2
    assert await retention.sweep() == 0
    assert await ai.jobs.outputs_due(at) == [("acme", young.id)]
    for gone in (oldest, old):
        assert isinstance(gone.result, MediaResult)
        assert await ai.media.info(gone.tenant, gone.result.outputs[0].file_id) is None
        stored = await ai.jobs.get(gone.tenant, gone.id)
        assert stored is not None
        assert stored.outputs_removed_at is not None
    assert isinstance(young.result, MediaResult)
    assert await ai.media.info("acme", young.result.outputs[0].file_id) is not None


async def test_jobs_stored_before_the_sweep_existed_are_swept_too(ai: Stores,
                                                                   tmp_path: Path) -> None:
    source = tmp_path / "narration.wav"
    source.write_bytes(b"RIFF" + b"\x00" * 100)
    old = await finished_media(ai, "old", now() - timedelta(days=8), source)
    if isinstance(ai.jobs, EmbeddedJobStore):
        await ai.jobs.db.run(lambda c: c.executescript(
            "DROP INDEX ai_jobs_outputs; ALTER TABLE ai_jobs DROP COLUMN outputs_since;"))
    else:
        assert isinstance(ai.jobs, MongoJobStore)
        await ai.jobs.jobs.update_many({}, {"$unset": {"outputs_since": ""}})
    await ai.jobs.setup()  # as the next version starts
    assert await ai.jobs.outputs_due(now() - timedelta(days=7)) == [("acme", old.id)]


async def test_a_deleted_lesson_s_tombstone(ai: Stores) -> None:
    """What the AI service remembers of a lesson's deletion: refuses and stops jobs on it."""
    at = now()
    assert await ai.jobs.deleted_at("acme", "l1") is None
    await ai.jobs.lesson_deleted("acme", "l1", at - timedelta(days=40))
    await ai.jobs.lesson_deleted("acme", "l1", at)  # a redelivery: the first time stays
    await ai.jobs.lesson_deleted("acme", "l2", at - timedelta(days=1))
    first = await ai.jobs.deleted_at("acme", "l1")
    assert first is not None
    assert abs((first - (at - timedelta(days=40))).total_seconds()) < 0.01
    assert await ai.jobs.deleted_at("beta", "l1") is None, "a tenant's own"

    assert await ai.jobs.forget_deleted_lessons(at - timedelta(days=30)) == 1
    assert await ai.jobs.forget_deleted_lessons(at - timedelta(days=30)) == 0
    assert await ai.jobs.deleted_at("acme", "l1") is None
    assert await ai.jobs.deleted_at("acme", "l2") is not None

    service = JobService(ai.jobs, AiSettings())
    retention = OutputRetention(service, ai.media, timedelta(days=7).total_seconds())
    await retention.sweep()
    assert await ai.jobs.deleted_at("acme", "l2") is not None, "kept 30 days at least"
    await ai.jobs.lesson_deleted("acme", "l3", at - timedelta(days=31))
    await retention.sweep()
    assert await ai.jobs.deleted_at("acme", "l3") is None
