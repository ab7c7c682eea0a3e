"""The ERROR line of a dead-lettered event names the event: its id, type and request id, those
of its envelope that can be read, however malformed the rest."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import orjson
import pytest

from bloop.platform.kit.events.bus import processor as processor_module
from bloop.platform.kit.events.bus.port import Message, Subscription
from bloop.platform.kit.events.bus.processor import EventProcessor
from bloop.platform.kit.events.dedupe import SqliteProcessedEvents
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.types import registry
from bloop.platform.kit.logging import JsonFormatter, request_id_var
from bloop.platform.kit.metrics import Metrics
from bloop.platform.kit.sqlite import SqliteDB
from tests.support import TEST_TOPIC, PingSent

PING = PingSent.event_type  # type: ignore[attr-defined]


async def test_the_dead_letter_line_names_the_event_and_its_request(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def handler(env: Envelope) -> None:
        raise RuntimeError("cannot handle it")

    published: list[Message] = []

    async def publish(messages: Sequence[Message]) -> None:
        published.extend(messages)

    db = SqliteDB(tmp_path / "processed.sqlite3")
    processed = SqliteProcessedEvents(db)
    await processed.setup()
    processor = EventProcessor(Subscription("g", (TEST_TOPIC,), handler), registry, processed,
                               publish, Metrics(), max_attempts=1, backoff_s=0)
    token = request_id_var.set("req-good")
    try:
        good = PING.envelope(PingSent(run="r", n=1), tenant="t1", subject="s")
    finally:
        request_id_var.reset(token)
    half = orjson.dumps({"id": "not-a-uuid", "type": "bloop.test.ping.sent.v1",
                         "request_id": "req-half", "data": 3})
    odd = orjson.dumps({"id": 5, "type": ["x"], "request_id": {"a": 1}})
    messages = [Message.of(good, TEST_TOPIC), Message(TEST_TOPIC, None, half),
                Message(TEST_TOPIC, None, odd), Message(TEST_TOPIC, None, b"{not json"),
                Message(TEST_TOPIC, None, b"[1, 2]")]
    caplog.handler.setFormatter(JsonFormatter())
    try:
        with caplog.at_level(logging.ERROR, logger="bloop.events"):
            outcomes = await processor.process(messages)
    finally:
        await db.close()
    assert outcomes == ["dead_lettered"] * 5
    lines = [orjson.loads(line) for line in caplog.text.splitlines()]
    assert {line["msg"] for line in lines} == {"event dead-lettered"}
    named = [(line.get("request_id"), line["event_id"], line["type"]) for line in lines]
    assert sorted(named, key=str) == sorted([
        ("req-half", "not-a-uuid", "bloop.test.ping.sent.v1"),
        (None, None, None), (None, None, None), (None, None, None),
        ("req-good", str(good.id), good.type),
    ], key=str)
    assert request_id_var.get() is None
    assert len(published) == 5


async def test_a_chunk_of_failing_events_ends_on_time_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a handled event let a chunk end on time: with every handler failing, 500 events and
    their retries ran before anything was marked or committed (minutes, past Kafka's poll
    interval)."""
    monkeypatch.setattr(processor_module, "CHUNK_S", 0.05)

    async def handler(env: Envelope) -> None:
        raise RuntimeError("cannot handle it")

    async def publish(messages: Sequence[Message]) -> None:
        return None

    db = SqliteDB(tmp_path / "processed.sqlite3")
    processed = SqliteProcessedEvents(db)
    await processed.setup()
    processor = EventProcessor(Subscription("g", (TEST_TOPIC,), handler), registry, processed,
                               publish, Metrics(), max_attempts=2, backoff_s=0.02)
    chunks: list[int] = []

    async def done(messages: Sequence[Message]) -> None:
        chunks.append(len(messages))

    messages = [Message.of(PING.envelope(PingSent(run="r", n=n), tenant="t1", subject="s"),
                           TEST_TOPIC) for n in range(12)]
    try:
        outcomes = await processor.process(messages, done=done)
    finally:
        await db.close()
    assert outcomes == ["dead_lettered"] * 12
    assert sum(chunks) == 12
    assert len(chunks) > 3, chunks
