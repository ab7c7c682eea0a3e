"""Child processes started and waited for off the event loop.

`asyncio.create_subprocess_exec` under uvloop forks the whole server on the loop's thread and
waits there for the child's exec, which stalls the loop for longer the more memory the server
holds (hundreds of milliseconds at 700 MB). Here `subprocess.Popen` (vfork, then exec) runs on a
thread of this module's own, and so does every read, write and wait on the child: the loop only
awaits. Each child leads a process group of its own, and a wait that is cancelled (its task
cancelled, or its `asyncio.timeout` over) kills that whole group (the child and whatever it
started, which may hold its pipes open) and reaps the child before the cancellation goes on, so
no child outlives what it was for. In a group of its own a child does not get the terminal's
Ctrl-C: the server's shutdown cancels the jobs and requests that wait for children, which kills
them.

Starts, and the reaping of a killed child, run on a small pool of their own: they take
milliseconds, and must not queue behind the long waits (a 10-minute ffmpeg run) that fill the
other.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
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
START_THREADS = 4
_pool: ThreadPoolExecutor | None = None
_start_pool: ThreadPoolExecutor | None = None


def _threads() -> ThreadPoolExecutor:
    global _pool  # one pool for the process
    if _pool is None:
        _pool = ThreadPoolExecutor(PROCESS_THREADS, thread_name_prefix="bloop-process")
    return _pool


def _start_threads() -> ThreadPoolExecutor:
    global _start_pool  # one pool for the process
    if _start_pool is None:
        _start_pool = ThreadPoolExecutor(START_THREADS, thread_name_prefix="bloop-process-start")
    return _start_pool


def _popen(args: list[str], stdin: Stream, stdout: Stream, stderr: Stream,
           env: dict[str, str] | None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, stdin=stdin, stdout=stdout, stderr=stderr, env=env,
                            start_new_session=True)


async def start(program: str | Path, *args: str | Path, stdin: Stream = DEVNULL,
                stdout: Stream = DEVNULL, stderr: Stream = DEVNULL,
                env: dict[str, str] | None = None) -> Process:
    """`program args` started on a thread; `PIPE`, `DEVNULL` or a file for each stream.
    Raises `OSError` when it cannot start. Cancelled while it starts, it is killed."""
    spawning = _on_start_thread(lambda: _popen([str(program), *map(str, args)], stdin, stdout,
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
        Process(spawning.result()).kill()


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
        """SIGKILL to the child's process group (the child and what it started), unless the
        child has ended and been waited for already."""
        if self.popen.returncode is not None:
            return  # reaped: its pid, and so its group's id, may be another's by now
        with contextlib.suppress(ProcessLookupError):  # reaped meanwhile by another thread
            if os.getpgid(self.pid) == self.pid:  # its own group, never the server's
                os.killpg(self.pid, signal.SIGKILL)
            else:
                self.popen.kill()

    async def kill_and_wait(self) -> int:
        self.kill()
        return await asyncio.shield(_on_start_thread(self.popen.wait))

    async def _waiting(self, work: Callable[[], T]) -> T:
        queued = _threads().submit(work)
        job = asyncio.wrap_future(queued)
        try:
            return await asyncio.shield(job)
        except asyncio.CancelledError:
            self.kill()
            if not queued.cancel():  # it runs: it returns once the group is dead
                with contextlib.suppress(Exception):  # what a killed child said is moot
                    await job
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


def _on_start_thread(work: Callable[[], T]) -> asyncio.Future[T]:
    return asyncio.get_running_loop().run_in_executor(_start_threads(), work)
