"""Caption cues and their WebVTT form. No I/O here."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bloop.ai.providers.tts import Timing

MAX_LINE = 42
MAX_LINES = 2


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    text: str

    def shifted(self, seconds: float) -> Cue:
        return Cue(round(self.start_s + seconds, 3), round(self.end_s + seconds, 3), self.text)


def cues_from(timings: Iterable[Timing], *, max_line: int = MAX_LINE,
              max_lines: int = MAX_LINES) -> list[Cue]:
    """One cue per sentence; a sentence too long for `max_lines` lines of `max_line`
    characters is cut into several cues, timed by their share of its characters."""
    out: list[Cue] = []
    for t in timings:
        lines = textwrap.wrap(t.text, max_line) or [t.text]
        chunks = [" ".join(lines[i:i + max_lines]) for i in range(0, len(lines), max_lines)]
        total = sum(len(c) for c in chunks)
        span = t.end_s - t.start_s
        done = 0
        for chunk in chunks:
            start = t.start_s + span * done / total
            done += len(chunk)
            out.append(Cue(round(start, 3), round(t.start_s + span * done / total, 3), chunk))
    return out


def _stamp(seconds: float) -> str:
    ms = max(0, round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def webvtt(cues: Sequence[Cue], *, max_line: int = MAX_LINE) -> str:
    """The cues as a WebVTT file, each cue's text wrapped to `max_line` characters a line."""
    parts = ["WEBVTT", ""]
    for i, cue in enumerate(cues, 1):
        text = "\n".join(textwrap.wrap(cue.text, max_line)) or cue.text
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        parts += [str(i), f"{_stamp(cue.start_s)} --> {_stamp(cue.end_s)}", text, ""]
    return "\n".join(parts)
