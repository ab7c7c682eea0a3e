"""A lesson as an exported Markdown file (`format: bloop-lesson/1` in its front matter), which an
import reads back block for block. No I/O here.

Its body holds the lesson's blocks in order, separated by `<!-- bloop:block -->` lines (outside
code). A Markdown block is written as it is, when reading it back gives the same text; any other
block (and such a Markdown block) is a fenced `bloop-block` code block holding the block as
YAML. Media are named by their path in the archive (`media/<id>/<file name>`, percent-encoded):
a block's `media` fields hold the path, and Markdown links (in Markdown blocks, and in the text
of quizzes and captions) link it; importing swaps them back for the media stored, and keeps
other relative links as written (no file is needed for them).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import yaml

from bloop.platform.content.model import Lesson
from bloop.platform.content.uploads import markdown

FORMAT = "bloop-lesson/1"
SEPARATOR = "<!-- bloop:block -->"
INFO = "bloop-block"
_BACKTICKS = re.compile(r"`+")
_MEDIA_PATH = re.compile(r"<?media/[0-9a-f]{32}/[^/<>\s]+>?")

Block = dict[str, Any]
Part = str | Block
"""A Markdown block's text, or a block written as YAML."""


def media_path(media_id: str, filename: str) -> str:
    """Where a media file is kept in an archive, as a link names it."""
    return f"media/{media_id}/{quote(filename, safe='')}"


def names_media(target: str) -> bool:
    """Whether a link target is a media path as `media_path` writes it: the only links of an
    exported lesson an import needs a file for (others are kept as written)."""
    return _MEDIA_PATH.fullmatch(target) is not None


def bracketed(target: str, new: str) -> str:
    """`new` for the link target `target`, in angle brackets when `target` was."""
    return f"<{new}>" if target.startswith("<") else new


def map_block(block: Block, media: Callable[[str], str], text: Callable[[str], str]) -> Block:
    """`block` (as JSON) with each media id it names swapped for `media(id)` and each text
    for `text(text)`; a code block's source is shown as written, so it is kept."""
    if block.get("type") == "code":
        return block

    def walk(value: Any, key: str) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, key) for v in value]
        if isinstance(value, str) and key == "media":
            return media(value)
        if isinstance(value, str) and key not in ("type", "id"):
            return text(value)
        return value

    out: Block = walk(block, "")
    return out


def _inline(text: str) -> bool:
    """Whether a Markdown block's text reads back as itself when written between separators
    (read back here, so no text `read_parts` would take for something else is written as is:
    a fence left open, a separator line, blank edges, a leading `bloop-block` fence)."""
    if not text.strip() or "\f" in text or text.startswith("\ufeff"):
        return False  # an import reads a page break as a line's end
    try:
        return read_parts(f"{SEPARATOR}\n\n{text}\n\n{SEPARATOR}\n", "") == [text]
    except markdown.InvalidLessonFile:
        return False


def _fenced(block: Block) -> str:
    body = yaml.safe_dump(block, allow_unicode=True, sort_keys=False, width=100)
    longest = max((len(m.group()) for m in _BACKTICKS.finditer(body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{INFO}\n{body}{fence}"


def write_lesson(lesson: Lesson, blocks: list[Block]) -> str:
    """The lesson as an exported file, with `blocks` (its blocks as JSON, media already named
    by path)."""
    front: dict[str, Any] = {"format": FORMAT, "title": lesson.title,
                             "estimated_minutes": lesson.estimated_minutes}
    for key in ("teaches", "requires", "tags"):
        if getattr(lesson, key):
            front[key] = list(getattr(lesson, key))
    for key in ("language", "level", "module"):
        if getattr(lesson, key) is not None:
            front[key] = getattr(lesson, key)
    parts = [b["markdown"] if b.get("type") == "markdown" and _inline(b["markdown"])
             else _fenced(b) for b in blocks]
    head = yaml.safe_dump(front, allow_unicode=True, sort_keys=False, width=10_000)
    return f"---\n{head}---\n" + f"\n\n{SEPARATOR}\n\n".join(parts) + "\n"


def read_parts(body: str, source: str, first_line: int = 1) -> list[Part]:
    """The blocks of an exported file's body, which starts on the file's line `first_line`
    (see the module's doc); 422 naming the file and line for a `bloop-block` that is not a
    block written as YAML."""
    parts: list[Part] = []
    lines: list[str] = []
    fence: str | None = None
    yaml_at: int | None = None
    for n, line in enumerate(body.splitlines(keepends=True), start=first_line):
        bare = line.rstrip("\r\n")
        if fence is not None:
            if markdown.closes(fence, bare):
                fence = None
                if yaml_at is not None:
                    parts.append(_block("".join(lines), source, yaml_at, len(parts) + 1))
                    lines, yaml_at = [], None
                    continue
            lines.append(line)
        elif bare.strip() == SEPARATOR:
            _text(lines, parts)
            lines = []
        elif mark := markdown.FENCE.match(bare):
            fence = mark.group(1)
            if bare.strip()[len(fence):].strip() == INFO and not "".join(lines).strip():
                lines, yaml_at = [], n
            else:
                lines.append(line)
        else:
            lines.append(line)
    _text(lines, parts)
    return parts


def _text(lines: list[str], parts: list[Part]) -> None:
    text = "".join(lines).strip("\n")
    if text.strip():
        parts.append(text)


def _block(raw: str, source: str, line: int, place: int) -> Block:
    """The block the `bloop-block` opened on `line` holds, the lesson's `place`-th."""
    where = {"file": source, "line": line, "block": place}
    try:
        found = yaml.load(raw, Loader=markdown.NoAliases)  # noqa: S506  (a SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" (line {line + 1 + mark.line})" if mark is not None else ""
        raise markdown.InvalidLessonFile(
            f"{source}, line {line}: block {place} of the lesson, a {INFO}, is not valid YAML: "
            f"{exc.problem or exc.context}{at}", code="invalid_block", extra=where) from None
    except (yaml.YAMLError, RecursionError, ValueError, OverflowError) as exc:
        raise markdown.InvalidLessonFile(f"{source}, line {line}: block {place} of the lesson, "
                                         f"a {INFO}, is not valid YAML ({exc})",
                                         code="invalid_block", extra=where) from None
    if not isinstance(found, dict) or not isinstance(found.get("type"), str):
        raise markdown.InvalidLessonFile(f"{source}, line {line}: block {place} of the lesson, "
                                         f"a {INFO}, must hold a block: a mapping with its "
                                         "`type`", code="invalid_block", extra=where)
    return found
