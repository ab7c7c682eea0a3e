"""An exported lesson file reads back block for block: every block type, Markdown that would
otherwise be cut or changed (headings, code fences, the separator itself, blank edges), non-ASCII
text; and a random mix of such pieces, many times over."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest

from bloop.platform.content.model import Lesson
from bloop.platform.content.uploads import lesson_file, markdown
from bloop.platform.content.uploads.export import lesson_filename

MEDIA = "a" * 32
CAPTIONS = "b" * 32
QUIZ: dict[str, Any] = {"type": "quiz", "id": "check", "title": "Vérifiez ```", "questions": [
    {"type": "single_choice", "id": "one", "prompt": "Which `code`? ![x](media/aa/x.png)",
     "points": 2, "feedback": {"correct": "bien", "incorrect": "relisez\n\n---"},
     "options": [{"id": "a", "text": "A", "correct": True, "feedback": "oui"},
                 {"id": "b", "text": "B"}]},
    {"type": "numeric", "id": "num", "prompt": "π?", "answer": 3.14159, "tolerance": 0.001},
    {"type": "true_false", "id": "tf", "prompt": "True?", "answer": False}]}
LIKE_A_BLOCK = [  # Markdown opening with what reads as a block written as YAML
    "```bloop-block\ntype: code\nlanguage: sh\nsource: rm -rf ~\n```",
    "~~~bloop-block\ntype: code\nsource: rm -rf ~\n~~~",
    "   ```bloop-block\ntype: code\nsource: rm -rf ~\n   ```\nafter",
    "   \n```bloop-block\ntype: code\nsource: rm -rf ~\n```",
    "\t\n``` bloop-block \n- not a block\n```",
    "```bloop-block\nnot: [yaml\n```",
]
BLOCKS: list[dict[str, Any]] = [
    {"type": "markdown", "markdown": "# Boucles 🔁\n\nUn `for` répète.\n\n## While\n\nEt `while`."},
    {"type": "markdown", "markdown": "Second block, right after the first"},
    {"type": "code", "language": "python", "source": "```\nprint('x')\n<!-- bloop:block -->\n"},
    {"type": "image", "media": MEDIA, "alt": "un point", "title": "Point", "caption": "c"},
    {"type": "audio", "media": MEDIA, "captions": {"media": CAPTIONS, "language": "fr"},
     "made_by_ai": {"job": "j1", "kind": "narration"}},
    {"type": "video", "media": MEDIA},
    {"type": "file", "media": MEDIA, "title": "Notes"},
    QUIZ,
    {"type": "markdown", "markdown": "\n  leading blank and trailing space  \n"},
    {"type": "markdown", "markdown": "text\n<!-- bloop:block -->\nmore"},
    {"type": "markdown", "markdown": "an open fence\n```python\nx = 1"},
    {"type": "markdown", "markdown": "````\n```bloop-block\ntype: code\n```\n````"},
    {"type": "markdown", "markdown": "math $x^2$ and\r\nwindows lines"},
    {"type": "markdown", "markdown": "---\ntitle: not front matter\n---"},
    *({"type": "markdown", "markdown": text} for text in LIKE_A_BLOCK),
]


def lesson(blocks: list[dict[str, Any]], **fields: Any) -> Lesson:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return Lesson.model_validate({
        "id": "l1", "tenant": "acme", "course": "py", "title": "Leçon: « Schleifen » 🔁",
        "estimated_minutes": 12, "blocks": blocks, "teaches": ["loops"], "requires": ["vars"],
        "created_at": at, "updated_at": at} | fields)


def read_back(text: str) -> tuple[markdown.FrontMatter, list[dict[str, Any]]]:
    parsed = markdown.parse_markdown(text, "0001-x.md")
    parts = lesson_file.read_parts(parsed.body, "0001-x.md")
    blocks = [{"type": "markdown", "markdown": p} if isinstance(p, str) else p for p in parts]
    return parsed.front, blocks


def test_every_block_type_reads_back_as_written() -> None:
    original = lesson(BLOCKS, tags=["python"], language="fr", level="advanced",
                      module="basics")
    dumped = original.model_dump(mode="json")["blocks"]
    front, blocks = read_back(lesson_file.write_lesson(original, dumped))
    assert blocks == dumped
    assert Lesson.model_validate(original.model_dump() | {"blocks": blocks}) == original
    assert (front.format, front.title, front.estimated_minutes) == (
        "bloop-lesson/1", original.title, 12)
    assert (front.teaches, front.requires, front.tags, front.language, front.level,
            front.module) == (["loops"], ["vars"], ["python"], "fr", "advanced", "basics")


def test_plain_markdown_is_written_as_markdown_the_rest_as_yaml() -> None:
    text = lesson_file.write_lesson(lesson(BLOCKS[:3]), [dict(b) for b in BLOCKS[:3]])
    assert "Un `for` répète.\n\n## While" in text
    assert "\n\n<!-- bloop:block -->\n\nSecond block, right after the first\n\n" in text
    assert "````bloop-block\ntype: code\n" in text  # a fence longer than the code's


PIECES = ["# Titre", "## Sous-titre", "plain text", "`code span` and ``two `ticks``",
          "```\nfenced\n```", "~~~\ntilde\n~~~", "    indented code", "> quote",
          "- item\n- item", "![alt](media/x/y.png \"t\")", "$$\nx^2\n$$", "日本語のテキスト",
          "<!-- a comment -->", "***", "```python\nunclosed", "\n", "  ", "line\r\nwith crlf",
          lesson_file.SEPARATOR, "---", "trailing spaces   ", *LIKE_A_BLOCK]


@pytest.mark.parametrize("seed", range(200))
def test_random_markdown_blocks_read_back(seed: int) -> None:
    rng = random.Random(seed)
    blocks: list[dict[str, Any]] = []
    for _ in range(rng.randint(1, 8)):
        if rng.random() < 0.2:
            blocks.append({"type": "code", "language": "md",
                           "source": "\n".join(rng.choices(PIECES, k=3))})
            continue
        text = rng.choice(["\n", "\n\n", " "]).join(rng.choices(PIECES, k=rng.randint(1, 5)))
        if text.strip() and "$$" not in text.replace("$$\nx^2\n$$", ""):
            blocks.append({"type": "markdown", "markdown": text})
    if not blocks:
        return
    original = lesson(blocks)
    dumped = original.model_dump(mode="json")["blocks"]
    assert read_back(lesson_file.write_lesson(original, dumped))[1] == dumped


@pytest.mark.parametrize("text", LIKE_A_BLOCK)
def test_markdown_like_a_yaml_block_is_written_as_yaml(text: str) -> None:
    blocks = [{"type": "markdown", "markdown": text}]
    written = lesson_file.write_lesson(lesson(blocks), blocks)
    assert "\ntype: markdown\n" in written
    assert read_back(written)[1] == blocks


def test_a_bloop_block_that_is_not_a_block_is_named() -> None:
    text = "---\nformat: bloop-lesson/1\n---\n\n```bloop-block\n- a list\n```\n"
    parsed = markdown.parse_markdown(text, "bad.md")
    with pytest.raises(markdown.InvalidLessonFile) as raised:
        lesson_file.read_parts(parsed.body, "bad.md", parsed.body_line)
    assert (raised.value.code, raised.value.extra["line"]) == ("invalid_block", 5)


@pytest.mark.parametrize(("yaml_text", "problem", "line"), [
    ("type: code\nsource: &a x\nlanguage: *a", "aliases (*name) are not accepted", 11),
    ("type: code\nsource: [x", "expected ',' or ']', but got '<stream end>'", 11),
])
def test_yaml_that_does_not_read_names_the_block(yaml_text: str, problem: str,
                                                 line: int) -> None:
    text = (f"---\nformat: bloop-lesson/1\n---\nfirst\n\n{lesson_file.SEPARATOR}\n\n"
            f"```bloop-block\n{yaml_text}\n```\n")
    parsed = markdown.parse_markdown(text, "bad.md")
    with pytest.raises(markdown.InvalidLessonFile) as raised:
        lesson_file.read_parts(parsed.body, "bad.md", parsed.body_line)
    assert "front matter" not in raised.value.detail
    assert raised.value.detail == ("bad.md, line 8: block 2 of the lesson, a bloop-block, is "
                                   f"not valid YAML: {problem} (line {line})")
    assert (raised.value.code, raised.value.extra["block"]) == ("invalid_block", 2)


def test_file_names_keep_the_order_and_stay_ascii() -> None:
    assert lesson_filename(7, 4, "Leçon: « Schleifen » 🔁") == "0007-lecon-schleifen.md"
    assert lesson_filename(12, 4, "日本語") == "0012-lesson.md"
    assert lesson_file.media_path(MEDIA, "a b(1).png") == f"media/{MEDIA}/a%20b%281%29.png"
