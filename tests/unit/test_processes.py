"""Child processes (kit/processes.py): a cancelled wait kills what the child started too, the
child is kept from the server's process group, and starts and kills never queue behind the
long waits that fill the pool."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bloop.platform.kit import processes


def gone(pid: int) -> bool:
    """No process `pid`, or only its zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2:].split()[0] == "Z"


async def test_a_cancelled_wait_kills_the_childs_own_children() -> None:
    """A grandchild held the pipe open: the wait went on until it ended, and it outlived all."""
    proc = await processes.start("sh", "-c", "sleep 15 & echo $!; wait", stdout=processes.PIPE)
    grandchild = int(await proc.readline())
    began = time.monotonic()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await proc.communicate()
    assert time.monotonic() - began < 3
    assert proc.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 3
    while not gone(grandchild):  # killed; its new parent (init) reaps it
        assert time.monotonic() < deadline, "the grandchild outlived the wait"
        await asyncio.sleep(0.01)


async def test_a_child_leads_a_process_group_of_its_own() -> None:
    """Its group killed, the server is not in it."""
    proc = await processes.start("sleep", "30")
    try:
        assert os.getpgid(proc.pid) == proc.pid != os.getpgrp()
    finally:
        await proc.kill_and_wait()
    assert proc.returncode == -signal.SIGKILL
    proc.kill()  # reaped already: nothing, and no other process's group


@pytest.fixture
async def busy_pool(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """A pool of 2 threads for waits, both waiting for a child that runs 10 s."""
    monkeypatch.setattr(processes, "PROCESS_THREADS", 2)
    monkeypatch.setattr(processes, "_pool", None)
    blockers = [await processes.start("sleep", "10") for _ in range(2)]
    waits = [asyncio.create_task(proc.wait()) for proc in blockers]
    await asyncio.sleep(0.1)
    pool = processes._threads()
    yield
    for wait in waits:
        wait.cancel()
    await asyncio.gather(*waits, return_exceptions=True)
    assert [proc.returncode for proc in blockers] == [-signal.SIGKILL] * 2
    pool.shutdown()


async def test_a_start_does_not_queue_behind_long_waits(busy_pool: None) -> None:
    """A PDF import's reader waited for a thread held by 64 renders."""
    began = time.monotonic()
    proc = await processes.start("sleep", "30")
    assert time.monotonic() - began < 2
    await proc.kill_and_wait()


async def test_a_wait_cancelled_while_it_queues_kills_at_once(busy_pool: None) -> None:
    proc = await processes.start("sleep", "30", stdout=processes.PIPE)
    began = time.monotonic()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await proc.communicate()  # queued behind the two waits
    assert time.monotonic() - began < 2
    assert proc.returncode == -signal.SIGKILL
