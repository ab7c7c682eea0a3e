"""Narration and video jobs run the rendering library of `bloop.ai.audio` and `bloop.ai.video`
(built beside this package). This module is the one place that calls it:

- `bloop.ai.audio.narrate(text, tts, out_dir, *, voice, language)` and
- `bloop.ai.video.render_lesson_video(script, tts, out_dir, *, voice, language, on_progress)`,
  with the script from `bloop.ai.video.script_from_lesson(title, blocks, *, language)`.

Each is given those of `lesson` (the job's `LessonText`, None for a video made from a prompt
alone), `script` (the prompted script the worker hands over, else the lesson's), `title`, `blocks`
(the lesson's markdown cut by the library's `markdown_parts`, each fenced code block whole even
with blank lines in it; whole without that function), `text`, `tts`, `out_dir`, `voice`,
`language` (the job's BCP 47 tag: asked for, else the lesson's, else `en`), `progress` (async,
percentage and step) and `on_progress` (plain, step and fraction) that it names as parameters.
A cancellation or a lost lease seen while reporting progress stops the rendering.

Each returns what it made: a path, a list of paths, or objects with `path` and, where known,
`content_type`, `kind`, `duration_s` and `captions_path` (a WebVTT file). The text-to-speech
adapter comes from `bloop.ai.providers.tts` (`BLOOP_TTS_*`). Their failures are `ProviderError`s,
so a job retries the transient ones. A kind whose library is missing is not offered, nor, where
jobs run, one whose programs are missing (ffmpeg, espeak-ng, Manim). A job's
voice is checked before it is given to either (`voice_problem` when the job is asked for), and
so is, without one, that the local voice speaks its language (`language_problem`; when it runs,
the adapter's `voice_for` refuses it rather than read it as English)."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import mimetypes
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bloop.ai.jobs.model import VOICE_RULE, Job, voice_name
from bloop.ai.jobs.ports import MediaRenderer, Progress, RenderedFile
from bloop.ai.providers.tts import Tts, VoiceUnavailable

LIBRARIES = {"narration": ("bloop.ai.audio", "narrate"),
             "video": ("bloop.ai.video", "render_lesson_video")}


def _kind(content_type: str) -> str:
    if content_type in ("text/vtt", "application/x-subrip"):
        return "subtitles"
    major = content_type.split("/")[0]
    return major if major in ("audio", "video", "image") else "other"


def _file(path: Path, content_type: str | None = None, kind: str | None = None,
          duration_s: float | None = None) -> RenderedFile:
    ctype = content_type or mimetypes.guess_type(path.name)[0] or (
        "text/vtt" if path.suffix == ".vtt" else "application/octet-stream")
    return RenderedFile(path=path, name=path.name, content_type=ctype,
                        kind=kind or _kind(ctype), duration_s=duration_s)


def rendered(made: Any) -> list[RenderedFile]:
    """What a rendering function returned, as files."""
    items: Iterable[Any] = made if isinstance(made, list | tuple) else [made]
    out = []
    for item in items:
        if isinstance(item, str | Path):
            out.append(_file(Path(item)))
            continue
        out.append(_file(Path(item.path), getattr(item, "content_type", None),
                         getattr(item, "kind", None), getattr(item, "duration_s", None)))
        captions = getattr(item, "captions_path", None)
        if captions is not None:
            out.append(_file(Path(captions), "text/vtt", "subtitles"))
    return out


def _tts() -> Any:
    from bloop.ai.providers import tts

    return tts.make_tts(tts.TtsSettings())


async def voice_problem(voice: str) -> str | None:
    """Why `voice` cannot speak here, when that is known before a job runs: the local engine
    (espeak-ng) lists its voices. A paid provider's voices are its own to refuse, and on a
    machine without espeak-ng (an API process whose jobs run elsewhere) the job checks."""
    from bloop.ai.providers import tts

    if speech_provider() != "local":
        return None
    try:
        if await tts.EspeakTts().has_voice(voice):
            return None
    except tts.MissingTool:
        return None
    return tts.voice_unavailable(voice, "local (espeak-ng)")


async def language_problem(language: str) -> str | None:
    """Why narration cannot speak `language` here, when that is known before a job runs: the
    local engine (espeak-ng) has no voice for it, and would read it as English. A paid
    provider's voices speak many languages; on a machine without espeak-ng the job checks."""
    from bloop.ai.providers import tts
    from bloop.ai.providers.llm import ProviderError

    if speech_provider() != "local":
        return None
    try:
        if await tts.EspeakTts().speaks(language):
            return None
    except ProviderError:
        return None
    return tts.no_voice_for(language, "local (espeak-ng)")


def speech_provider() -> str:
    """The platform's text-to-speech provider (`local`: espeak-ng)."""
    from bloop.ai.providers import tts

    return tts.TtsSettings().chosen()


class LibraryRenderer:
    def __init__(self, kind: str, function: Callable[..., Any] | None = None) -> None:
        module_name, name = LIBRARIES[kind]
        module = importlib.import_module(module_name)
        self.kind = kind
        self.function = function or getattr(module, name)
        self.parameters = inspect.signature(self.function).parameters
        self.script_from = getattr(module, "script_from_lesson", None)
        self.script_speaks = self.script_from is not None and "language" in inspect.signature(
            self.script_from).parameters
        self.parts: Callable[[str], list[str]] | None = getattr(module, "markdown_parts", None)

    async def render(self, job: Job, workdir: Path, progress: Progress, *,
                     script: Any = None, meter: Callable[[Tts], Tts] | None = None
                     ) -> list[RenderedFile]:
        lesson = job.lesson
        text = lesson.text if lesson is not None else ""
        title = lesson.title if lesson is not None else getattr(script, "title", "")
        blocks = (self.parts(text) if self.parts is not None
                  else [text] if text.strip() else [])
        if job.params.voice is not None and not voice_name(job.params.voice):
            # asked for before the rule: never given to a provider (a path, an address)
            raise VoiceUnavailable(f"the narration voice is not a voice's name: {VOICE_RULE}")
        tts = _tts() if "tts" in self.parameters else None
        if tts is not None and meter is not None and tts.usd_per_character:
            tts = meter(tts)
        voice = job.params.voice
        if voice is None and tts is not None:
            voice = await tts.voice_for(job.language)
        reports: set[asyncio.Future[None]] = set()
        failures: list[BaseException] = []
        running: list[asyncio.Future[Any]] = []

        def reported(task: asyncio.Future[None]) -> None:
            reports.discard(task)
            if not task.cancelled() and task.exception() is not None:
                failures.append(task.exception())  # type: ignore[arg-type]
                for work in running:
                    work.cancel()

        def on_progress(step: str, fraction: float) -> None:
            task: asyncio.Future[None] = asyncio.ensure_future(
                progress(int(max(0.0, min(fraction, 1.0)) * 100), step))
            reports.add(task)
            task.add_done_callback(reported)

        offered: dict[str, Any] = {
            "lesson": lesson, "title": title, "blocks": blocks, "text": text,
            "tts": tts, "out_dir": workdir, "voice": voice, "progress": progress,
            "language": job.language,
            "on_progress": on_progress}
        if script is not None:
            offered["script"] = script
        elif "script" in self.parameters and self.script_from is not None and lesson is not None:
            offered["script"] = self.script_from(lesson.title, blocks, **(
                {"language": job.language} if self.script_speaks else {}))
        kwargs = {k: v for k, v in offered.items() if k in self.parameters}
        try:
            made = self.function(**kwargs)
            if inspect.isawaitable(made):
                running.append(asyncio.ensure_future(made))
                try:
                    made = await running[0]
                except asyncio.CancelledError:
                    if failures:
                        raise failures[0] from None
                    raise
            if reports:
                await asyncio.gather(*reports, return_exceptions=True)
            if failures:
                raise failures[0]
        finally:
            if tts is not None:
                await tts.close()
        return rendered(made)


def narratable(text: str) -> bool:
    """Whether the narration library would find prose to speak in `text` (not only code, images
    or markup); without the library, whether there is any text."""
    if importlib.util.find_spec("bloop.ai.audio") is None:
        return bool(text.strip())
    from bloop.ai.audio import spoken_text
    from bloop.ai.providers.tts import split_sentences

    return bool(split_sentences(spoken_text(text)))


def missing_tools(kind: str) -> str | None:
    """What this machine lacks to render `kind` (`MissingTool`'s message), else None: ffmpeg and
    ffprobe; for video fc-list and Manim too; espeak-ng when the platform's voice is the local
    one."""
    from bloop.ai.providers import tts

    try:
        if kind == "video":
            from bloop.ai.video import require_video_tools

            require_video_tools()
        else:
            tts.require_tool("ffmpeg")
            tts.require_tool("ffprobe")
        if tts.TtsSettings().chosen() == "local":
            tts.require_tool("espeak-ng")
    except tts.MissingTool as exc:
        return str(exc)
    return None


def available(*, tools: bool = True) -> dict[str, MediaRenderer]:
    """The renderers this deployment has: a kind whose library is missing is left out, and with
    `tools` one whose programs this machine lacks (`missing_tools`)."""
    found: dict[str, MediaRenderer] = {}
    for kind, (module, _function) in LIBRARIES.items():
        if importlib.util.find_spec(module) is None:
            continue
        try:
            renderer = LibraryRenderer(kind)
        except (ImportError, AttributeError):
            continue
        if not tools or missing_tools(kind) is None:
            found[kind] = renderer
    return found
