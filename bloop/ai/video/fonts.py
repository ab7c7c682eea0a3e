"""Which characters the installed fonts draw. Scenes are set in DejaVu Sans; fontconfig falls
back to the fonts `infra/media.sh` installs for other scripts (Noto for Devanagari, Arabic and
many more, WenQuanYi Micro Hei for CJK, Symbola for emoji). A character no font has would be
drawn as an empty box, so a video holding one is refused before anything is rendered."""

from __future__ import annotations

import bisect
import functools
import os
import subprocess
import unicodedata
from pathlib import Path

from bloop.ai.audio.ffmpeg import MediaFailed
from bloop.ai.providers.tts import require_tool

FONTCONFIG_FILE = str(Path(__file__).with_name("fonts.conf"))


def use_scene_fonts() -> None:
    """Points fontconfig, in this process and the processes it starts, at the scenes' font
    configuration; called before Manim (Pango) first sets text."""
    os.environ["FONTCONFIG_FILE"] = FONTCONFIG_FILE


@functools.cache
def _coverage() -> tuple[list[int], list[int]]:
    """The code point ranges some installed font has (starts, ends), merged and sorted."""
    listed = subprocess.run([require_tool("fc-list"), "--format", "%{charset}\n"],
                            capture_output=True, text=True, check=True, timeout=60,
                            env={**os.environ, "FONTCONFIG_FILE": FONTCONFIG_FILE}).stdout
    spans = sorted((int(a, 16), int(b or a, 16)) for item in listed.split()
                   for a, _, b in [item.partition("-")])
    starts: list[int] = []
    ends: list[int] = []
    for a, b in spans:
        if ends and a <= ends[-1] + 1:
            ends[-1] = max(ends[-1], b)
        else:
            starts.append(a)
            ends.append(b)
    return starts, ends


def _drawn(char: str) -> bool:
    if unicodedata.category(char) in ("Cc", "Cf", "Zs", "Zl", "Zp") \
            or 0xFE00 <= ord(char) <= 0xFE0F:  # controls, marks of direction, variation
        return True
    starts, ends = _coverage()
    i = bisect.bisect_right(starts, ord(char)) - 1
    return i >= 0 and ord(char) <= ends[i]


def undrawable(text: str) -> list[str]:
    """The characters of `text` that no installed font has, each once, in order."""
    return [c for c in dict.fromkeys(text) if not _drawn(c)]


def require_glyphs(texts: list[str]) -> None:
    """Raises `MediaFailed` naming the characters of `texts` that no installed font draws."""
    missing = undrawable("".join(texts))
    if missing:
        shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in missing[:8])
        more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        raise MediaFailed(f"the video would show characters no installed font has: {shown}"
                          f"{more}; they would be drawn as empty boxes. Install a font that "
                          f"has them (infra/media.sh installs the fonts for CJK, Devanagari, "
                          f"Arabic, Cyrillic, Greek and emoji)")
