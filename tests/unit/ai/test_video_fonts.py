"""Video scenes draw CJK, Devanagari, Arabic, Cyrillic, Greek and emoji with the fonts
`infra/media.sh` installs, and a video holding a character no font has is refused."""

from __future__ import annotations

import pytest

from bloop.ai.audio.ffmpeg import MediaFailed
from bloop.ai.video.fonts import require_glyphs, undrawable


def test_the_installed_fonts_draw_the_scripts_lessons_are_written_in() -> None:
    assert undrawable("光合成の仕組み 汉字 प्रकाश संश्लेषण العدد 42 Привет Ωμέγα 🎉🌱 x² → ≈") == []


def test_a_character_no_font_has_is_refused_by_name() -> None:
    with pytest.raises(MediaFailed, match=r"U\+F0001.*empty boxes"):
        require_glyphs(["Title", "a \U000F0001 b"])
