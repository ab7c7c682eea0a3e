"""A lesson's BCP 47 language as the ISO 639-2 code MP4 tracks carry."""

from __future__ import annotations

import pytest

from bloop.ai.audio.languages import iso639_2


@pytest.mark.parametrize(("tag", "code"), [
    ("en", "eng"), ("fr", "fra"), ("de", "deu"), ("zh", "zho"), ("pt-BR", "por"),
    ("sr-Latn-RS", "srp"), ("FR", "fra"), ("haw", "haw"), ("yue-HK", "yue"),
    ("qq", "und"), ("x", "und"), ("", "und"), ("toolong", "und"), ("é1", "und"),
])
def test_a_tag_s_language_as_iso_639_2(tag: str, code: str) -> None:
    assert iso639_2(tag) == code
