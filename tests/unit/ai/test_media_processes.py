"""The local voice's and the offline generator's work stays off the event loop: espeak-ng is
started (forked) on another thread, its cancelled children die, and the CPU-heavy joining and
matching run on threads. Started on the loop (uvloop forks the whole server there), one
narration stalled a 700 MB server's loop for 41 s in all."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import uvloop

from bloop.ai.providers import tts as tts_module
from bloop.ai.providers.tts import EspeakTts
from bloop.ai.text import offline
from bloop.ai.text.model import LessonText
from bloop.platform.kit import processes
from tests.support import require_tools


@pytest.fixture
def espeak() -> None:
    """espeak-ng is installed (`make install`); under CI its absence fails the test."""
    require_tools("espeak-ng")


def children(name: str) -> list[tuple[int, str]]:
    """This process's children called `name`, with their state (`Z` a zombie)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:]
        state, ppid = rest.split()[:2]
        if int(ppid) == os.getpid() and comm == name:
            found.append((int(entry.name), state))
    return found


async def test_espeak_is_started_on_a_thread_other_than_the_loops(
        espeak: None, monkeypatch: pytest.MonkeyPatch) -> None:
    loop_thread = threading.get_ident()
    started: list[tuple[str, int]] = []
    real = subprocess.Popen

    def recorded(args: Any, *rest: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        started.append((Path(args[0]).name, threading.get_ident()))
        return real(args, *rest, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", recorded)
    speech = await EspeakTts().synthesize("One sentence here. Another one there. And a third.")
    assert len(speech.sentences) == 3
    spoken = [thread for name, thread in started if name == "espeak-ng"]
    assert len(spoken) >= 3
    assert loop_thread not in spoken


async def test_a_cancelled_narration_leaves_no_espeak_running(espeak: None) -> None:
    """On uvloop, as `bloop serve` runs: its processes outlived their cancelled waits."""
    long_sentence = " ".join(["photosynthesis turns light into sugar"] * 3000) + "."

    async def cancelled() -> list[tuple[int, str]]:
        await EspeakTts().synthesize("Voices listed first.")
        task = asyncio.create_task(EspeakTts().synthesize(f"{long_sentence} {long_sentence}"))
        deadline = time.monotonic() + 20
        while len(children("espeak-ng")) < 2:
            assert time.monotonic() < deadline, "espeak-ng never started"
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return children("espeak-ng")

    assert await asyncio.to_thread(uvloop.run, cancelled()) == []  # none running or unreaped


async def test_a_process_whose_wait_times_out_is_killed_and_reaped() -> None:
    proc = await processes.start("sleep", "30", stdout=processes.PIPE)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await proc.communicate()
    assert proc.returncode == -9
    assert children("sleep") == []


async def test_joining_the_sentences_runs_off_the_loop(espeak: None,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[int] = []
    join = tts_module.join_sentences

    def recorded(*args: Any, **kwargs: Any) -> tts_module.Speech:
        threads.append(threading.get_ident())
        return join(*args, **kwargs)

    monkeypatch.setattr(tts_module, "join_sentences", recorded)
    await EspeakTts().synthesize("A sentence. And another.")
    assert threads
    assert threading.get_ident() not in threads


@pytest.mark.parametrize("kind", ["quiz", "flashcards"])
async def test_the_offline_generator_blanks_terms_off_the_loop(
        kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[int] = []
    blanked = offline._blanked

    def recorded(sentence: str, term: str) -> str | None:
        threads.append(threading.get_ident())
        return blanked(sentence, term)

    monkeypatch.setattr(offline, "_blanked", recorded)
    lesson = LessonText(id="l1", version=1, title="Loops", text=(
        "A **loop** repeats a block of code many times over. The **condition** of a loop is "
        "checked before each pass through the body. A `for` loop walks over every item of a "
        "list in its order."))
    generator = offline.OfflineTextGenerator()
    if kind == "quiz":
        await generator.quiz(lesson, 2, quiz_id="q")
    else:
        await generator.flashcards(lesson, 2)
    assert threads
    assert threading.get_ident() not in threads
