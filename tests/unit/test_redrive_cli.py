"""`bloop events redrive` on the embedded stores: lists what it would send, then sends it back
to its topic as first published."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bloop.platform.consumer_groups import consumer_groups, subscribes
from bloop.platform.content.events import LessonDeleted
from bloop.platform.kit.events.bus.embedded import EmbeddedEventBus
from bloop.platform.kit.events.bus.port import Message
from bloop.platform.kit.events.dedupe import SqliteProcessedEvents
from bloop.platform.kit.events.types import registry, type_of
from bloop.platform.kit.metrics import Metrics
from bloop.platform.kit.sqlite import SqliteDB
from bloop.platform.services import available
from tests.support import embedded_app


def redrive(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLOOP_")}
    env |= {"BLOOP_DATA_DIR": str(data)}
    return subprocess.run([sys.executable, "-m", "bloop.cli", "events", "redrive", *args],
                          capture_output=True, text=True, timeout=120, check=False, env=env)


async def test_an_operator_sends_dead_letters_back(tmp_path: Path) -> None:
    db = SqliteDB(tmp_path / "events.sqlite3")
    bus = EmbeddedEventBus(db, registry, SqliteProcessedEvents(db), Metrics())
    await bus.start()
    event = Message.of(type_of(LessonDeleted).envelope(LessonDeleted(
        lesson_id="l1", course_id="c1", lesson_version=2, deleted_at=datetime.now(UTC)),
        tenant="demo", subject="l1"), "content.events")
    # A pydantic error's detail spans lines: each letter stays on one line.
    dlq = (("dlq.reason", b"handler_failed"),
           ("dlq.detail", b"ValidationError: 1 validation error\nconcepts\r\n  Field required"),
           ("dlq.group", b"learning"), ("dlq.topic", b"content.events"))
    also = (*dlq[:2], ("dlq.group", b"content.cache"), dlq[3])  # the same event, another group
    await bus.publish([
        event._replace(topic="content.events.dlq", headers=event.headers + dlq),
        event._replace(topic="content.events.dlq", headers=event.headers + also),
        Message("content.events.dlq", b"x", b"{not json",
                (("dlq.reason", b"bad_envelope"), ("dlq.group", b"search"))),
    ])
    await bus.close()
    await db.close()

    listed = redrive(tmp_path, "content.events", "--dry-run")
    assert listed.returncode == 0, listed.stderr
    detail = "ValidationError: 1 validation error\\nconcepts\\r\\n  Field required"
    assert listed.stdout.splitlines() == [  # each group's letter listed, the event sent once
        f"bloop.content.lesson.deleted.v1\tlearning\thandler_failed\t{detail}",
        f"bloop.content.lesson.deleted.v1\tcontent.cache\thandler_failed\t{detail}",
        "would send 1 back to content.events (2 dead letters); left: 1 bad_envelope"]
    assert redrive(tmp_path, "content.events", "--group", "search").stdout.splitlines() == [
        "sent 0 back to content.events; left: 1 bad_envelope, 2 handler_failed"]
    typo = redrive(tmp_path, "content.event")
    assert (typo.returncode, typo.stderr.startswith("bloop: no topic 'content.event'; ")) == (2, True)
    typo = redrive(tmp_path, "content.events", "--group", "learnin")
    assert (typo.returncode, typo.stdout, typo.stderr.splitlines()) == (2, "", [
        "bloop: no consumer group 'learnin' reads content.events; its groups are "
        "ai-worker.content, ai-worker.lessons, content.cache, content.cache.<index id>, "
        "content.search.<index id>, learning, search"])
    sent = redrive(tmp_path, "content.events", "--group", "learning", "--group", "search")
    assert sent.stdout.splitlines()[-1] == (
        "sent 1 back to content.events; left: 1 bad_envelope, 1 handler_failed")

    db = SqliteDB(tmp_path / "events.sqlite3")
    bus = EmbeddedEventBus(db, registry, SqliteProcessedEvents(db), Metrics())
    [back] = await bus.read("content.events")
    assert (back.key, back.value, back.headers) == (event.key, event.value, event.headers)
    assert len(await bus.dead_letters("content.events")) == 3
    await db.close()


async def test_the_groups_redrive_knows_are_those_the_services_subscribe(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The list `--group` is checked against is written apart from the services' wiring."""
    names = list(available())
    async with embedded_app(tmp_path, monkeypatch, names) as (app, _):
        subscribed = {(topic, s.group) for name in names
                      for s in getattr(app.state, name).subscriptions for topic in s.topics}
    assert all(subscribes(topic, group, "ai-worker") for topic, group in subscribed), subscribed
    listed = {(topic, group) for topic in registry.topics()
              for group in consumer_groups(topic, "ai-worker")}

    def named(group: str) -> str:
        """A group named after a search index, as the list names it."""
        for per_index in ("content.search.", "content.cache."):
            if group.startswith(per_index):
                return f"{per_index}<index id>"
        return group

    shared_cache = ("content.events", "content.cache")  # with Redis only: this app has none
    assert shared_cache in listed
    assert listed - {shared_cache} == {(t, named(g)) for t, g in subscribed}
