"""The kit's per-document guard on the real MongoDB-wire server (FerretDB v1 from infra/, whose
updates are a query and a separate write). Each case uses a database of its own, dropped
afterwards. The guard follows BLOOP_MONGO_GUARD (auto: on for FerretDB); with
BLOOP_MONGO_GUARD=off the concurrency cases fail on FerretDB, which is what they show."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from bloop.platform.content.model import Course, Lesson, LessonEdit, MarkdownBlock, NewCourse, NewLesson
from bloop.platform.content.ports import StaleVersion
from bloop.platform.content.stores.mongo import MongoContentStore
from bloop.platform.identity.model import NewUser, User
from bloop.platform.identity.ports import Missing
from bloop.platform.identity.stores.mongo import MongoIdentityStore
from bloop.platform.kit import stores
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.outbox.mongo import MongoOutbox
from bloop.platform.kit.events.types import registry, type_of
from bloop.platform.kit.mongo_guard import DocumentBusy, MongoGuard, is_ferretdb
from bloop.platform.kit.settings import MongoSettings
from tests.support import PingSent, require_server

pytestmark = pytest.mark.real
Client = AsyncMongoClient[dict[str, Any]]


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    server = require_server("mongo")
    c = stores.mongo_client(MongoSettings(url=server.url, timeout_ms=3000))
    yield c
    await c.close()


@pytest.fixture
async def database(client: Client) -> AsyncIterator[str]:
    name = f"guard_test_{uuid.uuid4().hex[:12]}"
    yield name
    await client.drop_database(name)


def ping(run: str, n: int) -> Envelope:
    return type_of(PingSent).envelope(PingSent(run=run, n=n), tenant="acme", subject=run)


async def relay_until(outbox: MongoOutbox, done: asyncio.Event) -> set[str]:
    """What the relay sends: pending events, then marked sent, until `done` and none is left."""
    sent: set[str] = set()
    while True:
        finished = done.is_set()
        batch = await outbox.pending(100)
        sent |= {str(p.ref[2]["id"]) for p in batch}
        await outbox.mark_sent(batch)
        if finished and not batch:
            return sent
        await asyncio.sleep(0)


async def test_the_guard_is_on_for_ferretdb_only_unless_forced(client: Client,
                                                              database: str) -> None:
    db = client[database]
    ferret = is_ferretdb(await db.command("buildInfo"))
    assert await MongoGuard.of(db, mode="auto").active() is ferret
    assert await MongoGuard.of(db, mode="on").active() is True
    assert await MongoGuard.of(db, mode="off").active() is False


async def test_a_held_document_waits_then_is_busy_and_a_stale_claim_is_taken_over(
        client: Client, database: str) -> None:
    db = client[database]
    guard = MongoGuard.of(db, mode="on", stale_s=30, wait_s=0.2)
    docs = db["docs"]
    async with guard.hold(docs, "a"):
        started = time.monotonic()
        with pytest.raises(DocumentBusy) as busy:
            async with guard.hold(docs, "a"):
                pass
        assert 0.2 <= time.monotonic() - started < 2
        assert busy.value.status == 503
        assert busy.value.extra["store"] == "mongodb"  # as /readyz and the other 503s name it
        async with guard.hold(docs, "b"):  # another document is free
            pass
    async with guard.hold(docs, "a"):  # released
        pass
    # a claim left by a writer that died
    await db["guard_claims"].insert_one({"_id": f"{database}.docs/a", "owner": "dead",
                                         "at": time.time() - 60})
    async with guard.hold(docs, "a"):
        pass
    assert await db["guard_claims"].count_documents({}) == 0


# content: a lesson edit is compare-and-set on the lesson's version


def a_course(tenant: str) -> Course:
    return Course.create(tenant, NewCourse(id="py", title="Python"))


def a_lesson(c: Course) -> Lesson:
    return Lesson.create(c.tenant, c.id, NewLesson(
        title="One", blocks=[MarkdownBlock(markdown="# One\n\nText.")]))


@pytest.fixture
async def content(client: Client, database: str) -> MongoContentStore:
    store = MongoContentStore(client, registry, database=database)
    await store.setup()
    return store


async def test_concurrent_edits_at_one_version_let_exactly_one_win(
        content: MongoContentStore) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    c = a_course(tenant)
    await content.add_course(c)
    one = await content.add_lesson(a_lesson(c))
    n = 8
    for rnd in range(10):
        base = one.version
        edits = [one.edited(LessonEdit(version=base, title=f"Edit {rnd}.{i}")) for i in range(n)]
        results = await asyncio.gather(
            *(content.replace_lesson(e, expected_version=base, events=[ping(f"{rnd}.{i}", i)])
              for i, e in enumerate(edits)), return_exceptions=True)
        won = [i for i, r in enumerate(results) if r is None]
        assert len(won) == 1, f"round {rnd}: {len(won)} edits at version {base} succeeded"
        assert all(isinstance(r, StaleVersion) for r in results if r is not None), results
        stored = await content.get_lesson(tenant, one.id)
        assert stored == edits[won[0]]
        one = stored
    # exactly the winners' events are pending
    pending = await content.outbox.pending(1000)
    assert len(pending) == 10


async def test_the_relay_loses_no_lesson_edit_and_no_event(content: MongoContentStore) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    c = a_course(tenant)
    await content.add_course(c)
    one = await content.add_lesson(a_lesson(c))
    written: set[str] = set()
    done = asyncio.Event()

    async def edit() -> None:
        current = one
        try:
            for i in range(40):
                ev = ping("edit", i)
                nxt = current.edited(LessonEdit(version=current.version, title=f"Edit {i}"))
                await content.replace_lesson(nxt, expected_version=current.version, events=[ev])
                written.add(str(ev.id))
                current = nxt
        finally:
            done.set()

    _, sent = await asyncio.gather(edit(), relay_until(content.outbox, done))
    stored = await content.get_lesson(tenant, one.id)
    assert stored is not None
    assert (stored.version, stored.title) == (41, "Edit 39")
    assert written <= sent, f"{len(written - sent)} events lost"
    assert await content.outbox.count_pending() == 0


# identity: a user's writes are conditional on the user being live; the relay writes them too


@pytest.fixture
async def identity(client: Client, database: str) -> MongoIdentityStore:
    store = MongoIdentityStore(client, registry, database=database)
    await store.setup()
    return store


async def test_a_profile_write_racing_a_deletion_never_revives_the_user(
        identity: MongoIdentityStore) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    for rnd in range(10):
        ada = User.register(tenant, NewUser(email=f"ada{rnd}@acme.dev", display_name="Ada",
                                            roles=["educator"]))
        await identity.add_user(ada, [])
        renamed = ada.model_copy(update={"display_name": "Ada L."})
        gone, edit = ping(f"gone{rnd}", rnd), ping(f"edit{rnd}", rnd)
        results = await asyncio.gather(
            *[identity.replace_user(renamed, [edit]) for _ in range(3)],
            identity.delete_user(tenant, ada.id, [gone]), return_exceptions=True)
        assert all(r is None or isinstance(r, Missing) for r in results[:-1]), results
        assert results[-1] == []  # deleted, with no session to end
        assert await identity.get_user(tenant, ada.id) is None, f"round {rnd}: revived"
        doc = await identity.users.find_one({"_id": f"{tenant}/{ada.id}"})
        assert doc is not None
        ids = {e["id"] for e in doc["_outbox"]}
        assert str(gone.id) in ids
        assert len(doc["_outbox"]) == 1 + sum(r is None for r in results[:-1])


async def test_the_relay_loses_no_user_write_and_no_event(identity: MongoIdentityStore) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    ada = User.register(tenant, NewUser(email="ada@acme.dev", display_name="Ada",
                                        roles=["educator"]))
    await identity.add_user(ada, [ping("registered", 0)])
    written: set[str] = set()
    done = asyncio.Event()

    async def edit() -> None:
        try:
            for i in range(40):
                ev = ping("edit", i)
                await identity.replace_user(ada.model_copy(update={"bio": f"Bio {i}"}), [ev])
                written.add(str(ev.id))
        finally:
            done.set()

    _, sent = await asyncio.gather(edit(), relay_until(identity.outbox, done))
    stored = await identity.get_user(tenant, ada.id)
    assert stored is not None
    assert stored.bio == "Bio 39"
    assert written <= sent, f"{len(written - sent)} events lost"
    assert await identity.outbox.count_pending() == 0
