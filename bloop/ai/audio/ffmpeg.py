"""ffmpeg and ffprobe, run as subprocesses. Every failure is a `MediaFailed` saying which step
failed; what the tool itself said goes to the server's log only (it names the server's files). A
machine without ffmpeg gets `MissingTool`."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any, Literal

from bloop.ai.providers.llm import ProviderError
from bloop.ai.providers.tts import require_tool
from bloop.platform.kit import processes

log = logging.getLogger("bloop.ai.media")
AudioFormat = Literal["opus", "mp3"]
# Bit-exact: no encoder version tag, and the Ogg stream's serial number its index rather than
# random, so the same speech makes the same file (stored once, as identical bytes are).
BITEXACT = ["-fflags", "+bitexact", "-flags:a", "+bitexact"]
AUDIO = {
    "opus": (".opus", "audio/ogg; codecs=opus", ["-c:a", "libopus", "-b:a", "48k"]),
    "mp3": (".mp3", "audio/mpeg", ["-c:a", "libmp3lame", "-q:a", "5"]),
}


class MediaFailed(ProviderError):
    code = "media_failed"


async def ffmpeg(*args: str | Path, what: str, timeout_s: float = 600) -> None:
    """Runs `ffmpeg args` quietly, overwriting outputs; `what` names the step in errors."""
    binary = require_tool("ffmpeg")
    proc = await processes.start(binary, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                                 *args, stderr=processes.PIPE)
    try:
        async with asyncio.timeout(timeout_s):
            _, err = await proc.communicate()
    except TimeoutError:  # killed and waited for as the wait was cancelled
        raise MediaFailed(f"ffmpeg took over {timeout_s:.0f}s to {what}") from None
    if proc.returncode != 0:
        _logged("ffmpeg", what, proc.returncode, err)
        raise MediaFailed(f"ffmpeg could not {what} (exit status {proc.returncode}; the "
                          "server's log has its message)")


async def ffprobe(path: Path) -> dict[str, Any]:
    """ffprobe's JSON for `path`: its format and streams."""
    binary = require_tool("ffprobe")
    done = await processes.run(binary, "-v", "error", "-print_format", "json", "-show_format",
                               "-show_streams", path)
    if done.returncode != 0:
        _logged("ffprobe", f"read {path.name}", done.returncode, done.stderr)
        raise MediaFailed(f"ffprobe could not read {path.name} (exit status {done.returncode}; "
                          "the server's log has its message)")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _logged(tool: str, what: str, status: int | None, stderr: bytes) -> None:
    log.warning("%s failed", tool, extra={"step": what, "status": status,
                                          "stderr": stderr.decode(errors="replace")[-2000:]})


async def encode_audio(wav: Path, out: Path, fmt: AudioFormat, language: str = "und") -> None:
    """`wav` as `fmt`, tagged as speaking `language` (an ISO 639-2 code)."""
    await ffmpeg("-i", wav, "-ac", "1", *AUDIO[fmt][2], *BITEXACT, "-metadata",
                 f"language={language}", out, what=f"encode the narration as {fmt}")
