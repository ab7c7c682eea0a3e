"""Narration: a lesson's or a script's text spoken by a `Tts`, encoded as Opus or MP3 with
ffmpeg, with one caption cue per sentence (WebVTT beside the audio)."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path

from bloop.ai import writing
from bloop.ai.audio.captions import Cue, cues_from, webvtt
from bloop.ai.audio.ffmpeg import AUDIO, AudioFormat, encode_audio
from bloop.ai.audio.languages import iso639_2
from bloop.ai.providers.tts import NothingToSay, Speech, Tts, split_sentences

_FENCE = re.compile(r"^\s*(```|~~~).*?^\s*\1[^\n]*$", re.S | re.M)
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__|\*|_)(?=\S)(.+?)(?<=\S)\1")
_MARKER = re.compile(r"^\s{0,3}(#{1,6}\s+|[-*+]\s+|\d+[.)]\s+|>\s?)")
_HTML = re.compile(r"<[^>\n]+>")


class NothingToNarrate(NothingToSay):
    """The text has no prose to speak: it is empty, or only code, images or markup."""

    code = "nothing_to_narrate"


def spoken_text(markdown: str) -> str:
    """What a narrator reads out of lesson markdown: prose, headings and list items as
    sentences; code blocks, images, tables and markup left out."""
    text = _FENCE.sub("\n\n", markdown)
    text = _IMAGE.sub("", text)
    text = _LINK.sub(r"\1", text)
    text = _HTML.sub("", text)
    sentences: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        lines: list[str] = []
        for raw in paragraph.splitlines():
            if raw.lstrip().startswith("|") or re.fullmatch(r"\s*[-=*_]{3,}\s*", raw):
                continue
            item = _MARKER.match(raw) is not None
            line = _EMPHASIS.sub(lambda m: m.group(2), _MARKER.sub("", raw))
            line = line.replace("`", "").replace("$", "").strip()
            if not line:
                continue
            if item and lines:
                lines[-1] = _ended(lines[-1])
            lines.append(line)
        if lines:
            sentences.append(_ended(writing.joined(lines)))
    return writing.joined([s for s in sentences if re.search(r"[^\W_]", s)])


def _ended(text: str) -> str:
    """`text` with a stop at its end, of its script (a heading, a list item, a colon's line)."""
    text = text.rstrip()
    if text[-1:] in ":\uff1a":
        text = text[:-1].rstrip()
    return writing.stopped(text)


def write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@dataclass(frozen=True)
class Narration:
    path: Path
    content_type: str
    duration_s: float
    cues: tuple[Cue, ...]
    captions_path: Path
    provider: str
    voice: str


async def speak(text: str, tts: Tts, voice: str | None = None) -> Speech:
    """`text` (markdown or plain) spoken by `tts`; `NothingToNarrate` when it has no prose."""
    spoken = spoken_text(text)
    if not split_sentences(spoken):
        raise NothingToNarrate("the lesson has nothing to narrate: no prose, only code, images "
                               "or markup (or nothing at all)")
    return await tts.synthesize(spoken, voice)


async def narrate(text: str, tts: Tts, out_dir: Path, fmt: AudioFormat = "opus", *,
                  voice: str | None = None, language: str = "en",
                  name: str = "narration") -> Narration:
    """`text` narrated into `out_dir/<name>.opus|.mp3` with `out_dir/<name>.vtt` captions; the
    audio file is tagged as speaking `language` (a BCP 47 tag)."""
    speech = await speak(text, tts, voice)
    suffix, content_type, _ = AUDIO[fmt]
    path = out_dir / f"{name}{suffix}"
    wav = out_dir / f"{name}.wav"
    await asyncio.to_thread(write_file, wav, speech.wav)
    try:
        await encode_audio(wav, path, fmt, iso639_2(language))
    finally:
        await asyncio.to_thread(wav.unlink, True)
    cues = tuple(cues_from(speech.sentences))
    captions = out_dir / f"{name}.vtt"
    await asyncio.to_thread(write_file, captions, webvtt(cues).encode())
    return Narration(path=path, content_type=content_type, duration_s=speech.duration_s,
                     cues=cues, captions_path=captions, provider=speech.provider,
                     voice=speech.voice)
