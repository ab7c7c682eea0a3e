"""Child processes started and waited for off the event loop.

`asyncio.create_subprocess_exec` under uvloop forks the whole server on the loop's thread and
waits there for the child's exec, which stalls the loop for longer the more memory the server
holds (hundreds of milliseconds at 700 MB). Here `subprocess.Popen` (vfork, then exec) runs on a
thread of this module's own, and so does every read, write and wait on the child: the loop only
awaits. A wait that is cancelled (its task cancelled, or its `asyncio.timeout` over) kills the
child and reaps it before the cancellation goes on, so no child outlives what it was for.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

T = TypeVar("T")
PIPE, DEVNULL = subprocess.PIPE, subprocess.DEVNULL
Stream = int | IO[bytes] | None

# Threads that mostly wait (for a child's output or exit), kept off the default pool that
# `asyncio.to_thread` shares: a 10-minute ffmpeg run must not hold one of its few threads.
PROCESS_THREADS = 64
_pool: ThreadPoolExecutor | None = None


def _threads() -> ThreadPoolExecutor:
    global _pool  # one pool for the process
    if _pool is None:
        _pool = ThreadPoolExecutor(PROCESS_THREADS, thread_name_prefix="bloop-process")
    return _pool


def _popen(args: list[str], stdin: Stream, stdout: Stream, stderr: Stream,
           env: dict[str, str] | None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, stdin=stdin, stdout=stdout, stderr=stderr, env=env)


async def start(program: str | Path, *args: str | Path, stdin: Stream = DEVNULL,
                stdout: Stream = DEVNULL, stderr: Stream = DEVNULL,
                env: dict[str, str] | None = None) -> Process:
    """`program args` started on a thread; `PIPE`, `DEVNULL` or a file for each stream.
    Raises `OSError` when it cannot start. Cancelled while it starts, it is killed."""
    spawning = _on_thread(lambda: _popen([str(program), *map(str, args)], stdin, stdout,
                                         stderr, env))
    try:
        popen = await asyncio.shield(spawning)
    except asyncio.CancelledError:
        spawning.add_done_callback(_kill_started)  # even if this wait is cancelled too
        with contextlib.suppress(OSError):
            await Process(await asyncio.shield(spawning)).kill_and_wait()
        raise
    return Process(popen)


def _kill_started(spawning: asyncio.Future[subprocess.Popen[bytes]]) -> None:
    if not spawning.cancelled() and spawning.exception() is None:
        spawning.result().kill()


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: bytes
    stderr: bytes


async def run(program: str | Path, *args: str | Path, stdout: Stream = PIPE,
              stderr: Stream = PIPE, env: dict[str, str] | None = None) -> Finished:
    """`program args` run to its end, its output read (what was not piped is b"")."""
    proc = await start(program, *args, stdout=stdout, stderr=stderr, env=env)
    out, err = await proc.communicate()
    return Finished(proc.returncode if proc.returncode is not None else -1, out, err)


class Process:
    """A started child. Each wait runs on a thread; cancelling one kills the child."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    def kill(self) -> None:
        """SIGKILL, unless it has ended and been waited for already."""
        self.popen.kill()

    async def kill_and_wait(self) -> int:
        self.kill()
        return await asyncio.shield(_on_thread(self.popen.wait))

    async def _waiting(self, work: Callable[[], T]) -> T:
        job = _on_thread(work)
        try:
            return await asyncio.shield(job)
        except asyncio.CancelledError:
            self.kill()
            with contextlib.suppress(Exception):  # what a killed child said is moot
                await job  # returns once the child is dead
            await self.kill_and_wait()
            raise

    async def communicate(self, input: bytes | None = None) -> tuple[bytes, bytes]:
        """Writes `input`, reads stdout and stderr to their ends and waits for the exit."""
        out, err = await self._waiting(lambda: self.popen.communicate(input))
        return out or b"", err or b""

    async def wait(self) -> int:
        return await self._waiting(self.popen.wait)

    async def write(self, data: bytes) -> None:
        """`data` written to stdin and flushed; `BrokenPipeError` when the child has gone."""
        stdin = self.popen.stdin
        assert stdin is not None

        def send() -> None:
            stdin.write(data)
            stdin.flush()

        await self._waiting(send)

    async def readline(self) -> bytes:
        """A line of stdout, b"" at its end."""
        stdout = self.popen.stdout
        assert stdout is not None
        return await self._waiting(stdout.readline)

    def close_stdin(self) -> None:
        if self.popen.stdin is not None and not self.popen.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.popen.stdin.close()


def _on_thread(work: Callable[[], T]) -> asyncio.Future[T]:
    return asyncio.get_running_loop().run_in_executor(_threads(), work)
