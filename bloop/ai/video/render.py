"""A narrated video from a `VideoScript`: each scene narrated first, then rendered by Manim to
the narration's length, then all scenes joined with ffmpeg into one MP4 (H.264 yuv420p + AAC,
faststart) with a WebVTT caption file beside it and, in the MP4, a mov_text subtitle track.

Scenes are rendered by a small pool of worker processes (`bloop.ai.video.worker`), two by
default, while the remaining scenes are still being narrated. A scene is never dropped: one
that overflows the frame or raises is repaired or simplified by its worker; one whose worker
dies or times out is rendered again as a plain card; one that fails even then fails the video.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import math
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

from bloop.ai.audio.captions import Cue, cues_from, webvtt
from bloop.ai.audio.ffmpeg import MediaFailed, ffmpeg, ffprobe
from bloop.ai.audio.languages import iso639_2
from bloop.ai.audio.narration import NothingToNarrate, speak, write_file
from bloop.ai.providers.tts import (
    MissingTool,
    NothingToSay,
    Speech,
    Tts,
    read_wav,
    require_tool,
    silence,
    wav_bytes,
)
from bloop.ai.video.fonts import require_glyphs
from bloop.ai.video.script import VideoScript
from bloop.ai.video.worker import RenderAnswer, RenderJob
from bloop.platform.kit import processes

log = logging.getLogger("bloop.ai.video")

Progress = Callable[[str, float], None]
Captions = Literal["track", "burned", "both"]
TAIL_S = 0.6
SILENT_SCENE_S = 2.5


@dataclass(frozen=True)
class SceneReport:
    index: int
    kind: str
    start_s: float
    duration_s: float
    repairs: tuple[str, ...]


@dataclass(frozen=True)
class Video:
    path: Path
    content_type: str
    duration_s: float
    captions_path: Path
    cues: tuple[Cue, ...]
    scenes: tuple[SceneReport, ...]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def repairs(self) -> list[str]:
        return [f"scene {s.index + 1} ({s.kind}): {r}" for s in self.scenes for r in s.repairs]


def require_video_tools() -> None:
    """Raises `MissingTool` unless ffmpeg, ffprobe and Manim are installed."""
    require_tool("ffmpeg")
    require_tool("ffprobe")
    require_tool("fc-list")
    if importlib.util.find_spec("manim") is None:
        raise MissingTool("Manim Community is not installed; run `bash infra/media.sh`, then "
                          "`pip install -e '.[video]'`, to make video work")


class RenderPool:
    """Up to `size` render worker processes, started on first use and kept for the next scene.
    A worker that dies or overruns `timeout_s` is killed and replaced."""

    def __init__(self, *, size: int = 2, timeout_s: float = 600, log: Path | None = None) -> None:
        self._size = size
        self._timeout_s = timeout_s
        self._log_path = log
        self._log: IO[bytes] | None = None
        self._idle: list[processes.Process] = []
        self._all: list[processes.Process] = []
        self._gate = asyncio.Semaphore(size)

    async def __aenter__(self) -> RenderPool:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def warm(self) -> None:
        """Starts the workers now, so Manim is imported while the narration is spoken."""
        while len(self._all) < self._size:
            self._idle.append(await self._spawn())

    async def _spawn(self) -> processes.Process:
        if self._log is None and self._log_path is not None:
            self._log = self._log_path.open("ab")
        proc = await processes.start(
            sys.executable, "-m", "bloop.ai.video.worker", stdin=processes.PIPE,
            stdout=processes.PIPE, stderr=self._log)
        self._all.append(proc)
        return proc

    async def render(self, job: RenderJob) -> RenderAnswer:
        async with self._gate:
            proc = self._idle.pop() if self._idle else await self._spawn()
            try:
                await proc.write(job.model_dump_json().encode() + b"\n")
                async with asyncio.timeout(self._timeout_s):
                    line = await proc.readline()
            except (TimeoutError, ConnectionError) as exc:
                await self._kill(proc)
                what = f"took over {self._timeout_s:.0f}s" if isinstance(exc, TimeoutError) \
                    else "stopped"
                return RenderAnswer(ok=False, error=f"the render worker {what}")
            except BaseException:
                await self._kill(proc)
                raise
            if not line:
                await self._kill(proc)
                return RenderAnswer(ok=False, error=f"the render worker exited "
                                    f"(code {proc.returncode})")
            self._idle.append(proc)
            return RenderAnswer.model_validate_json(line)

    async def _kill(self, proc: processes.Process) -> None:
        await proc.kill_and_wait()
        if proc in self._all:
            self._all.remove(proc)

    async def close(self) -> None:
        for proc in list(self._all):
            proc.close_stdin()
        for proc in list(self._all):
            try:
                async with asyncio.timeout(5):
                    await proc.wait()
            except TimeoutError:
                await self._kill(proc)
        self._all.clear()
        self._idle.clear()
        if self._log is not None:
            self._log.close()
            self._log = None


@dataclass
class _Clip:
    speech: Speech | None
    frames: int
    answer: RenderAnswer | None = None
    cues: list[Cue] = field(default_factory=list)


async def render_lesson_video(script: VideoScript, tts: Tts, out_dir: Path, *,
                              resolution: tuple[int, int] = (1280, 720), fps: int = 15,
                              captions: Captions = "track", voice: str | None = None,
                              language: str = "en", workers: int = 2, scene_timeout_s: float = 600,
                              name: str = "video",
                              on_progress: Progress | None = None) -> Video:
    """`script` as a narrated MP4 in `out_dir/<name>.mp4`, captions in `out_dir/<name>.vtt`;
    its sound and subtitle tracks are marked as speaking `language` (a BCP 47 tag).
    Raises `MissingTool` when ffmpeg or Manim is missing, a `ProviderError` from the TTS, and
    `MediaFailed` when the script shows characters no installed font has or a scene cannot be
    rendered even as a plain card."""
    require_video_tools()
    await asyncio.to_thread(require_glyphs, [*script.shown(), *(
        [s.spoken() for s in script.scenes] if captions != "track" else [])])
    started = time.perf_counter()
    width, height = resolution
    if width % 2 or height % 2:
        raise ValueError("the resolution must be even in both directions (H.264 4:2:0)")
    work = out_dir / f".{name}-work"
    await asyncio.to_thread(work.mkdir, 0o777, True, True)
    try:
        return await _render(script, tts, out_dir, work, width=width, height=height, fps=fps,
                             captions=captions, voice=voice, language=language,
                             workers=workers, scene_timeout_s=scene_timeout_s, name=name,
                             on_progress=on_progress, started=started)
    finally:
        await asyncio.to_thread(shutil.rmtree, work, True)


async def _render(script: VideoScript, tts: Tts, out_dir: Path, work: Path, *, width: int,
                  height: int, fps: int, captions: Captions, voice: str | None, language: str,
                  workers: int, scene_timeout_s: float, name: str, on_progress: Progress | None,
                  started: float) -> Video:
    total = len(script.scenes)
    done = {"tts": 0, "render": 0}
    spans: dict[str, list[float]] = {}

    def mark(stage: str, t0: float) -> None:
        span = spans.setdefault(stage, [t0, t0])
        span[0], span[1] = min(span[0], t0), max(span[1], time.perf_counter())

    def progress(stage: str) -> None:
        done[stage] += 1
        if on_progress is not None:
            on_progress(f"{stage} {done[stage]}/{total}",
                        0.9 * (0.2 * done["tts"] + 0.8 * done["render"]) / total)

    speaking = asyncio.Semaphore(2)

    async def scene(i: int, pool: RenderPool) -> _Clip:
        chosen = script.scenes[i]
        t0 = time.perf_counter()
        async with speaking:
            try:
                speech: Speech | None = await speak(chosen.spoken(), tts, voice)
            except (NothingToNarrate, NothingToSay):
                speech = None
        mark("tts", t0)
        progress("tts")
        said = speech.duration_s if speech else SILENT_SCENE_S
        seconds = max(said, chosen.reading_s()) + TAIL_S
        clip = _Clip(speech, math.ceil(seconds * fps))
        if speech is not None:
            clip.cues = cues_from(speech.sentences)
        job = RenderJob(scene=chosen, frames=clip.frames, fps=fps, width=width, height=height,
                        out=str(work / f"scene-{i:03d}.mp4"),
                        reveal_at=[t.start_s for t in speech.sentences] if speech else [],
                        captions=[(c.start_s, c.end_s, c.text) for c in clip.cues]
                        if captions != "track" else [])
        t0 = time.perf_counter()
        answer = await pool.render(job)
        if not answer.ok:
            first, first_detail = answer.error, answer.detail
            answer = await pool.render(job.model_copy(update={"simplified": True}))
            if not answer.ok:
                log.warning("a scene could not be rendered", extra={
                    "scene": i + 1, "kind": chosen.kind, "first": first_detail or first,
                    "then": answer.detail or answer.error})
                raise MediaFailed(f"scene {i + 1} ({chosen.kind}) could not be rendered, not even "
                                  f"as a plain card: {first}; then {answer.error}")
            answer = answer.model_copy(update={"repairs": [
                f"simplified to plain card after {first_detail or first}", *answer.repairs]})
        clip.answer = answer
        mark("render", t0)
        progress("render")
        return clip

    async with RenderPool(size=max(1, min(workers, total)), timeout_s=scene_timeout_s,
                          log=work / "render.log") as pool:
        try:
            async with asyncio.TaskGroup() as group:  # one scene failing stops the others
                group.create_task(pool.warm())
                tasks = [group.create_task(scene(i, pool)) for i in range(total)]
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None
        clips = [task.result() for task in tasks]
    t_mux = time.perf_counter()
    if on_progress is not None:
        on_progress("mux", 0.9)
    video = await _assemble(script, clips, out_dir, work, name=name, fps=fps,
                            subtitles=captions != "burned", language=iso639_2(language))
    mark("mux", t_mux)
    timings = {stage: round(b - a, 3) for stage, (a, b) in spans.items()}
    timings["total"] = round(time.perf_counter() - started, 3)
    if on_progress is not None:
        on_progress("done", 1.0)
    return Video(path=video.path, content_type=video.content_type, duration_s=video.duration_s,
                 captions_path=video.captions_path, cues=video.cues, scenes=video.scenes,
                 timings=timings)


async def _assemble(script: VideoScript, clips: list[_Clip], out_dir: Path, work: Path, *,
                    name: str, fps: int, subtitles: bool, language: str) -> Video:
    rate = next((c.speech.sample_rate for c in clips if c.speech is not None), 24_000)
    pcm = bytearray()
    cues: list[Cue] = []
    reports: list[SceneReport] = []
    start = 0.0
    for i, clip in enumerate(clips):
        assert clip.answer is not None
        seconds = clip.answer.frames / fps
        if clip.speech is not None:
            frames, piece_rate = read_wav(clip.speech.wav)
            if piece_rate != rate:
                raise MediaFailed("the narration changed its sample rate between scenes")
        else:
            frames = b""
        pad = round(seconds * rate) * 2 - len(frames)
        pcm += frames[:len(frames) + min(0, pad)] + silence(max(0, pad) / 2 / rate, rate)
        cues += [c.shifted(start) for c in clip.cues]
        reports.append(SceneReport(i, script.scenes[i].kind, round(start, 3), round(seconds, 3),
                                   tuple(clip.answer.repairs)))
        start += seconds
    audio, listing, captions = work / "narration.wav", work / "clips.txt", out_dir / f"{name}.vtt"
    await asyncio.to_thread(write_file, audio, wav_bytes(bytes(pcm), rate))
    await asyncio.to_thread(write_file, listing, "".join(
        f"file '{Path(c.answer.out).name}'\n" for c in clips if c.answer is not None).encode())
    await asyncio.to_thread(write_file, captions, webvtt(cues).encode())
    path = out_dir / f"{name}.mp4"
    subtitle_args: list[str | Path] = ["-i", captions, "-map", "2:s", "-c:s", "mov_text",
                                       "-metadata:s:s:0", f"language={language}"] \
        if subtitles and cues else []
    await ffmpeg("-f", "concat", "-safe", "0", "-i", listing, "-i", audio, *subtitle_args[:2],
                 "-map", "0:v", "-map", "1:a", *subtitle_args[2:], "-c:v", "copy", "-c:a", "aac",
                 "-metadata:s:a:0", f"language={language}",
                 "-b:a", "96k", "-ac", "1", "-metadata", f"title={script.title}",
                 "-movflags", "+faststart", path, what="join the scenes into one MP4")
    await asyncio.to_thread(audio.unlink, True)
    probe = await ffprobe(path)
    duration = float(probe.get("format", {}).get("duration") or start)
    return Video(path=path, content_type="video/mp4", duration_s=round(duration, 3),
                 captions_path=captions, cues=tuple(cues), scenes=tuple(reports))
