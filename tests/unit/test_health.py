"""`/readyz` probes answer within their timeout, whatever the dependency's client does; the ops
routes answer HEAD as GET."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bloop.platform.kit.health import Probe, run_probe
from tests.support import embedded_app


async def test_a_check_that_swallows_its_cancellation_does_not_hold_up_the_answer() -> None:
    ended = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await asyncio.sleep(0.5)  # cleans up against a dead server, then ends
            ended.set()

    started = time.monotonic()
    result = await run_probe(Probe("mongodb", stubborn, timeout_s=0.1))
    assert time.monotonic() - started < 0.4
    assert not result.up
    assert result.error == "TimeoutError: no answer within 0.1s"
    async with asyncio.timeout(5):
        await ended.wait()


async def test_a_check_that_fails_is_down_with_its_error_and_one_that_answers_is_up() -> None:
    async def refused() -> None:
        raise ConnectionRefusedError("connection refused\nsecond line")

    async def fine() -> None:
        await asyncio.sleep(0)

    down = await run_probe(Probe("redis", refused))
    assert (down.up, down.error) == (False, "ConnectionRefusedError: connection refused")
    up = await run_probe(Probe("redis", fine))
    assert (up.up, up.error) == (True, None)
    assert up.latency_ms >= 0


async def test_a_cancelled_readiness_request_cancels_its_check() -> None:
    cancelled = asyncio.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    probe = asyncio.ensure_future(run_probe(Probe("neo4j", slow, timeout_s=30)))
    await asyncio.sleep(0.05)
    probe.cancel()
    await asyncio.wait({probe})
    assert probe.cancelled()
    async with asyncio.timeout(1):
        await cancelled.wait()


async def test_a_check_that_must_not_be_cancelled_is_left_to_end_and_not_started_twice() -> None:
    """A pymongo call cancelled in server selection may keep the client's topology locked for
    good: the MongoDB probe lets a late ping end by itself and starts no other meanwhile."""
    started, cancelled = 0, 0
    release = asyncio.Event()

    async def ping() -> None:
        nonlocal started, cancelled
        started += 1
        try:
            await release.wait()
        except asyncio.CancelledError:
            cancelled += 1
            raise

    probe = Probe("mongodb", ping, timeout_s=0.05, cancellable=False)
    first = await run_probe(probe)
    second = await run_probe(probe)
    assert (first.up, second.up) == (False, False)
    assert second.error == "TimeoutError: no answer within 0.05s"
    assert (started, cancelled) == (1, 0)
    release.set()
    assert (await run_probe(probe)).up  # the late ping answered; the next is a new one
    assert (await run_probe(probe)).up
    assert (started, cancelled) == (2, 0)


async def test_a_check_that_outlives_its_cancellation_is_not_started_again_meanwhile() -> None:
    started = 0
    let_go = asyncio.Event()

    async def stubborn() -> None:
        nonlocal started
        started += 1
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await let_go.wait()

    probe = Probe("neo4j", stubborn, timeout_s=0.05)
    results = [await run_probe(probe) for _ in range(3)]
    assert not any(r.up for r in results)
    assert started == 1
    let_go.set()
    await asyncio.sleep(0)
    assert probe.running is not None
    async with asyncio.timeout(1):
        await asyncio.wait({probe.running})
    assert not (await run_probe(probe)).up  # a new check, itself too slow
    assert started == 2


async def test_the_ops_routes_answer_head_as_get_without_a_body(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Some health checkers ask with HEAD, which was 405."""
    async with embedded_app(tmp_path, monkeypatch, ["identity"]) as (_, client):
        for path in ("/healthz", "/readyz", "/metrics"):
            got, head = await client.get(path), await client.head(path)
            assert (got.status_code, head.status_code) == (200, 200), (path, head.text)
            assert head.content == b"", path
            assert head.headers["content-type"] == got.headers["content-type"], path
            assert int(head.headers["content-length"]) > 0, path
        assert (await client.head("/healthz")).headers["content-length"] == str(
            len(b'{"status":"ok"}'))


async def test_readyz_s_checks_are_in_the_metrics(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, /metrics said nothing of the stores /readyz checks."""
    async with embedded_app(tmp_path, monkeypatch, ["identity"]) as (_, client):
        checks = (await client.get("/readyz")).json()["checks"]
        text = (await client.get("/metrics")).text
    assert checks
    for store in checks:
        assert f'bloop_store_up{{store="{store}"}} 1.0' in text.splitlines()
