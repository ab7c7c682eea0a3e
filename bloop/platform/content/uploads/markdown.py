"""Markdown lessons as files: YAML front matter, the body cut into blocks, and the links the body
makes to files beside it (rewritten to media once those are stored). No I/O here.

A file may open with front matter between `---` lines:

    ---
    title: Loops
    summary: Repeating work with for and while
    tags: [python, basics]
    language: en
    level: beginner
    estimated_minutes: 15
    teaches: [loops]
    requires: [variables]
    module: basics
    ---

Every key is optional and no other key is accepted (a `module` the course does not have is
left out, with a note); `format: bloop-lesson/1` marks a lesson a
course export wrote (lesson_file.py). Without a title, the first `# heading` of
the body is the title, else the file's name.
"""

from __future__ import annotations

import bisect
import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bloop.platform.content.media.model import clean_filename
from bloop.platform.content.model import (
    MAX_BLOCKS,
    ConceptIds,
    Language,
    Level,
    Minutes,
    Slug,
    Summary,
    Tags,
    Title,
)
from bloop.platform.kit.errors import Problem

MAX_BLOCK_CHARS = 50_000
MAX_TITLE_CHARS = 200


class InvalidLessonFile(Problem):
    status, code = 422, "invalid_lesson_file"


class FrontMatter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    title: Title | None = None
    summary: Summary = ""
    tags: Tags = Field(default_factory=list)
    language: Language | None = None
    level: Level | None = None
    estimated_minutes: Minutes | None = None
    teaches: ConceptIds = Field(default_factory=list)
    requires: ConceptIds = Field(default_factory=list)
    module: Slug | None = None
    format: Literal["bloop-lesson/1"] | None = Field(default=None, description=(
        "an exported lesson: its body is its blocks, block for block (lesson_file.py)"))


@dataclass(frozen=True)
class MarkdownFile:
    source: str
    front: FrontMatter
    title: str
    body: str
    body_line: int = 1
    """The line of the file `body` starts on."""


class _NoAliases(yaml.SafeLoader):
    """Safe YAML without anchors and aliases (which let a few bytes expand enormously)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.MarkedYAMLError(None, None, "aliases (*name) are not accepted",
                                       event.start_mark)
        return super().compose_node(parent, index)


_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_H1 = re.compile(r"^ {0,3}#\s+(.+?)\s*#*\s*$")
_HEADING = re.compile(r"^ {0,3}#{1,2}\s")


def _front_matter_problem(source: str, detail: str, field_name: str | None = None,
                          line: int | None = None) -> InvalidLessonFile:
    where = f"{source}" + (f", line {line}" if line else "")
    extra: dict[str, Any] = {"file": source}
    if field_name:
        extra["field"] = field_name
    if line:
        extra["line"] = line
    return InvalidLessonFile(f"{where}: {detail}", code="invalid_front_matter", extra=extra)


def _split(text: str, source: str) -> tuple[str | None, str, int]:
    """(front matter text, body, the body's first line number)."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].rstrip() != "---":
        return None, text, 1
    for i, line in enumerate(lines[1:], start=1):
        if line.rstrip() in ("---", "..."):
            return "".join(lines[1:i]), "".join(lines[i + 1:]), i + 2
    raise _front_matter_problem(source, "the front matter opened on line 1 is never closed "
                                "with a `---` line", line=1)


def parse_front_matter(raw: str, source: str, max_bytes: int = 16 * 1024) -> FrontMatter:
    if len(raw.encode()) > max_bytes:
        raise _front_matter_problem(source, f"the front matter is longer than {max_bytes} bytes")
    try:
        data = yaml.load(raw, Loader=_NoAliases)  # noqa: S506  (a SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 2 if mark is not None else None
        raise _front_matter_problem(source, f"the front matter is not valid YAML: "
                                    f"{exc.problem or exc.context}", line=line) from None
    except yaml.YAMLError as exc:
        raise _front_matter_problem(source, f"the front matter is not valid YAML: {exc}") from None
    except RecursionError:
        raise _front_matter_problem(source, "the front matter nests too deeply") from None
    except (ValueError, OverflowError) as exc:  # a value its tag cannot be, such as 2001-02-30
        raise _front_matter_problem(source, f"the front matter holds a value YAML cannot read: "
                                    f"{exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise _front_matter_problem(source, "the front matter must be a mapping of keys to "
                                    f"values, not a {type(data).__name__}")
    try:
        return FrontMatter.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = ".".join(str(p) for p in err["loc"]) or "front matter"
        raise _front_matter_problem(
            source, f"front matter field {name!r}: {err['msg']}", field_name=name,
        ) from None


def _check_fences(body: str, source: str, first_line: int) -> None:
    opened: tuple[str, int] | None = None
    for n, line in enumerate(body.splitlines(), start=first_line):
        m = _FENCE.match(line)
        if not m:
            continue
        mark = m.group(1)
        if opened is None:
            opened = (mark, n)
        elif mark[0] == opened[0][0] and len(mark) >= len(opened[0]) and not line.strip()[len(mark):]:
            opened = None
    if opened is not None:
        raise InvalidLessonFile(f"{source}, line {opened[1]}: a code fence ({opened[0]}) is never "
                                "closed", code="invalid_markdown",
                                extra={"file": source, "line": opened[1]})


def parse_markdown(text: str, source: str, *, max_front_matter: int = 16 * 1024) -> MarkdownFile:
    """The front matter and body of a Markdown lesson file; 422 naming the file, line and field
    for what is wrong."""
    if "\x00" in text:
        raise InvalidLessonFile(f"{source}: the file holds NUL characters",
                                code="invalid_markdown", extra={"file": source})
    raw, body, first_line = _split(text.removeprefix("\ufeff"), source)
    front = FrontMatter() if raw is None else parse_front_matter(raw, source, max_front_matter)
    _check_fences(body, source, first_line)
    title = front.title or _first_heading(body) or _title_from_name(source)
    return MarkdownFile(source=source, front=front, title=title[:MAX_TITLE_CHARS],
                        body=body.strip("\n"),
                        body_line=first_line + len(body) - len(body.lstrip("\n")))


def _first_heading(body: str) -> str | None:
    fenced = False
    for line in body.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and (m := _H1.match(line)):
            return m.group(1)
    return None


def _title_from_name(source: str) -> str:
    stem = posixpath.splitext(clean_filename(source, ""))[0]
    return re.sub(r"[-_]+", " ", stem).strip().capitalize() or "Untitled"


def to_blocks(body: str, source: str) -> list[str]:
    """The body cut before each level-1 or level-2 heading (outside code), and where a part is
    still too long, between paragraphs."""
    parts: list[list[str]] = [[]]
    fenced = False
    for line in body.splitlines(keepends=True):
        if _FENCE.match(line):
            fenced = not fenced
        if not fenced and _HEADING.match(line) and any(x.strip() for x in parts[-1]):
            parts.append([])
        parts[-1].append(line)
    blocks: list[str] = []
    for part in ("".join(p).strip("\n") for p in parts):
        blocks += _fit(part, source) if part.strip() else []
    if len(blocks) > MAX_BLOCKS:
        raise InvalidLessonFile(f"{source}: the lesson would have {len(blocks)} blocks, more than "
                                f"{MAX_BLOCKS}; split it into several files",
                                code="lesson_too_long", extra={"file": source})
    return blocks


def page_blocks(pages: Sequence[str], source: str, room: int) -> list[str]:
    """Pages of text as at most `room` blocks, in order: a page a block when they fit, else the
    fewest pages a block that do (each block still within `MAX_BLOCK_CHARS`); 422 naming the
    file when the text cannot fit `room` blocks at all."""
    parts = [part for page in pages for part in _fit(page, source)]
    if len(parts) <= room:
        return parts
    if room < 1 or len(_joined(parts, len(parts))) > room:
        raise InvalidLessonFile(
            f"{source}: the text does not fit in one lesson: it needs more than the {room} "
            f"blocks of at most {MAX_BLOCK_CHARS:,} characters a lesson has for it; split it "
            "into several files", code="lesson_too_long", extra={"file": source})
    low, high = -(-len(parts) // room), len(parts)
    while low < high:  # fewer blocks for more pages a block: the fewest pages that fit
        middle = (low + high) // 2
        if len(_joined(parts, middle)) <= room:
            high = middle
        else:
            low = middle + 1
    return _joined(parts, low)


def _joined(parts: Sequence[str], per_block: int) -> list[str]:
    """`parts` in order, up to `per_block` of them a block, as long as a block stays within
    `MAX_BLOCK_CHARS`."""
    blocks: list[str] = []
    count = 0
    for part in parts:
        if blocks and count < per_block and len(blocks[-1]) + 2 + len(part) <= MAX_BLOCK_CHARS:
            blocks[-1] += "\n\n" + part
            count += 1
        else:
            blocks.append(part)
            count = 1
    return blocks


def _fit(text: str, source: str) -> list[str]:
    if len(text) <= MAX_BLOCK_CHARS:
        return [text]
    out: list[str] = []
    current = ""
    for para in re.split(r"(\n\s*\n)", text):
        if len(para) > MAX_BLOCK_CHARS:
            raise InvalidLessonFile(f"{source}: a paragraph is longer than {MAX_BLOCK_CHARS} "
                                    "characters", code="lesson_too_long", extra={"file": source})
        if len(current) + len(para) > MAX_BLOCK_CHARS:
            out.append(current.strip("\n"))
            current = ""
        current += para
    if current.strip():
        out.append(current.strip("\n"))
    return [x for x in out if x.strip()]


@dataclass(frozen=True)
class Figure:
    """An image alone in its paragraph: `![alt](target "title")` on a line of its own."""

    text: str
    """The line as written, with its line break."""
    target: str
    alt: str
    title: str


_FIGURE = re.compile(r"!\[(?P<alt>[^\[\]\n]*)\]\(\s*"
                     r"(?P<target><[^<>\n]+>|(?:[^\s()<\n]|\([^\s()<\n]*\))+)"
                     r"(?:\s+\"(?P<title>[^\"\n]*)\")?\s*\)[ \t]*")
_ATX = re.compile(r"^ {0,3}#{1,6}(?:[ \t]|$)")
_RAW_HTML = re.compile(r"^ {0,3}<(?:!--|pre\b|script\b|style\b|textarea\b)", re.IGNORECASE)
_RAW_HTML_END = re.compile(r"-->|</(?:pre|script|style|textarea)\s*>", re.IGNORECASE)
_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")


def _closes(fence: str, line: str) -> bool:
    """Whether `line` (without its line break) closes the code fence opened with `fence`."""
    mark = _FENCE.match(line)
    return mark is not None and mark.group(1)[0] == fence[0] \
        and len(mark.group(1)) >= len(fence) and not line.strip()[len(mark.group(1)):].strip()


def _apart(line: str | None) -> bool:
    """Whether `line`, beside another, leaves that one a paragraph of its own: none (the
    body's start or end), a blank line or a `#` heading."""
    return line is None or not line.strip() or _ATX.match(line) is not None


def _plain(text: str) -> str:
    return _ESCAPED.sub(r"\1", text).strip()


def figures(body: str) -> list[str | Figure]:
    """`body` cut around each image that stands alone in its paragraph: a line of just
    `![alt](target "title")`, unindented, between blank lines or headings, outside code and
    raw HTML (comments, `<pre>`). Joined, the pieces give back `body`."""
    lines = body.splitlines(keepends=True)
    pieces: list[str | Figure] = []
    text = ""
    fence: str | None = None
    raw = False
    for n, line in enumerate(lines):
        bare = line.rstrip("\r\n")
        found: re.Match[str] | None = None
        if fence is not None:
            if _closes(fence, bare):
                fence = None
        elif raw:
            raw = _RAW_HTML_END.search(bare) is None
        elif mark := _FENCE.match(bare):
            fence = mark.group(1)
        elif opened := _RAW_HTML.match(bare):
            raw = _RAW_HTML_END.search(bare, opened.end()) is None
        elif (_apart(lines[n - 1] if n else None)
              and _apart(lines[n + 1] if n + 1 < len(lines) else None)):
            found = _FIGURE.fullmatch(bare)
        if found is None:
            text += line
            continue
        if text:
            pieces.append(text)
            text = ""
        pieces.append(Figure(text=line, target=found.group("target"),
                             alt=_plain(found.group("alt")),
                             title=_plain(found.group("title") or "")))
    if text:
        pieces.append(text)
    return pieces


def escape(text: str) -> str:
    """Plain text made safe to show as Markdown (no accidental emphasis, links, headings or
    math)."""
    return re.sub(r"([\\`*_\[\]<>#|~$])", r"\\\1", text)


# Links and images: [text](target "title"), ![alt](<target>), and reference definitions. No
# part may run past the character that would start another match (a "[", a "<", an unmatched
# "("): a match tried from every start would otherwise scan the rest of the line each time, and
# a line of "[x](" repeated would take time growing with its length squared. A target may hold
# one level of balanced parentheses, as CommonMark's do.
_INLINE = re.compile(r"(!?\[[^\[\]\n]*\]\(\s*)(<[^<>\n]+>|(?:[^\s()<\n]|\([^\s()<\n]*\))+)"
                     r"((?:\s+\"[^\"\n]*\")?\s*\))")
_DEFINITION = re.compile(r"^( {0,3}\[[^\]\n]+\]:\s*)(<[^>\n]+>|\S+)", re.MULTILINE)
_HTML_SRC = re.compile(r"(<(?:img|audio|video|source)\b[^<>]*?\bsrc\s*=\s*[\"'])([^\"'\n]+)([\"'])",
                       re.IGNORECASE)
_HTML_HREF = re.compile(r"(<a\b[^<>]*?(?<![\w-])href\s*=\s*[\"'])([^\"'\n]+)([\"'])",
                        re.IGNORECASE)
# An autolink `<scheme:…>`, or one to a media as a lesson or its export writes it (`</v1/…>`,
# `<media/<id>/…>`); not a closing tag (`</div>`).
_AUTOLINK = re.compile(r"(<)((?:[a-zA-Z][a-zA-Z0-9+.-]{1,31}:|/[^<>\s/]+/|media/[0-9a-f]{32}/)"
                       r"[^<>\s]*)(>)")
_PATTERNS = (_INLINE, _DEFINITION, _HTML_SRC, _HTML_HREF, _AUTOLINK)
_EXTERNAL = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*:|//|#|/)")


def is_local(target: str) -> bool:
    return not _EXTERNAL.match(target)


def local_path(target: str, base: str) -> str | None:
    """The path a relative link `target` in the file at `base` names (inside the upload), or
    None when it leaves it. Query and fragment are dropped."""
    bare = target.strip("<>").split("#", 1)[0].split("?", 1)[0]
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(base), unquote(bare)))
    if joined.startswith("../") or joined == ".." or joined.startswith("/"):
        return None
    return joined


_BACKTICKS = re.compile(r"`+")
_BLANK_LINE = re.compile(r"\n[ \t]*(?:\r?\n|$)")


def _code_spans(body: str, start: int, end: int) -> list[tuple[int, int]]:
    """Where `body[start:end]`, text outside code blocks, has code spans: a run of backticks to
    the next run of as many, within one paragraph. Each run is looked up once, so the time
    grows with the text, however many runs are never closed."""
    if body.find("`", start, end) < 0:
        return []
    runs = [(m.start(), m.end()) for m in _BACKTICKS.finditer(body, start, end)]
    by_length: dict[int, list[int]] = {}
    for n, (a, b) in enumerate(runs):
        by_length.setdefault(b - a, []).append(n)
    breaks = [m.start() for m in _BLANK_LINE.finditer(body, start, end)]
    spans: list[tuple[int, int]] = []
    n, done = 0, start
    while n < len(runs):
        a, b = runs[n]
        if body[a - 1:a] == "\\":  # an escaped backtick is text; the rest may open a span
            first = a - 1
            while first > max(done, runs[n - 1][1] if n else start) and body[first - 1] == "\\":
                first -= 1
            a += (a - first) % 2
        same = by_length.get(b - a, [])
        at = bisect.bisect_right(same, n)
        closer = same[at] if at < len(same) else None
        if a == b or closer is None or _crosses(breaks, b, runs[closer][0]):
            n += 1
            continue
        spans.append((a, runs[closer][1]))
        done = runs[closer][1]
        n = closer + 1
    return spans


def _crosses(breaks: list[int], start: int, end: int) -> bool:
    """Whether a blank line (a paragraph's end) lies between `start` and `end`."""
    at = bisect.bisect_left(breaks, start)
    return at < len(breaks) and breaks[at] < end


def _columns(line: str) -> int:
    """How far `line`'s first character that is not a space or tab is indented, tabs stopping
    every 4 columns."""
    column = 0
    for char in line:
        if char == " ":
            column += 1
        elif char == "\t":
            column += 4 - column % 4
        else:
            break
    return column


class _Indented:
    """Follows the lines outside fences to tell where an indented code block starts: a line
    indented 4 columns past the list item it sits in (or the margin), after a blank line, a
    heading, a rule or other code, as CommonMark has it; a line right after a paragraph's
    continues that paragraph. Lines in block quotes are read without their `>` marks."""

    def __init__(self) -> None:
        self.item: int | None = None  # the content column of the list item last met
        self.after_paragraph = False
        self.quotes = 0
        self.depth: int | None = None  # while in a code block, the column its lines reach

    def code(self, bare: str) -> bool:
        """Whether `bare` (a line without its break) is code; call once a line, in order."""
        marks = _QUOTED.match(bare)
        line = bare[marks.end():] if marks else bare
        quotes = marks.group().count(">") if marks else 0
        blank = not line.strip()
        column = _columns(line)
        if quotes > self.quotes:  # a quote opened: its first line starts a block of its own
            self.item_ends_before(_columns(bare))
            self.after_paragraph = False
        if quotes >= self.quotes or blank or not self.after_paragraph:
            self.quotes = quotes  # else a paragraph's lazy line: its quote goes on
        if self.depth is not None and (blank or column >= self.depth):
            return True
        self.depth = None
        base = self.item or 0
        if not blank and column >= base + 4 and not self.after_paragraph:
            self.depth = base + 4
            return True
        if blank:
            self.after_paragraph = False
        elif _ATX.match(line) or _RULE.match(line):
            self.item_ends_before(column)
            self.after_paragraph = False
        elif column < base + 4 and (item := _ITEM.match(line)) and (
                not self.after_paragraph or column < (self.item or 0)
                or _INTERRUPTS.match(item.group())):
            marker_end = item.end(1)
            gap = _columns(line[marker_end:]) if item.group(2) else 1
            self.item = column + len(item.group(1).strip()) + (gap if gap <= 4 else 1)
            self.after_paragraph = bool(item.group(2))
        else:
            if not self.after_paragraph:
                self.item_ends_before(column)
            self.after_paragraph = True
        return False

    def fenced(self) -> None:
        """A fence opened or closed: what follows is not a paragraph's continuation."""
        self.depth, self.after_paragraph = None, False

    def item_ends_before(self, column: int) -> None:
        if self.item is not None and column < self.item:
            self.item = None


_QUOTED = re.compile(r"^(?: {0,3}> ?)+")
_ITEM = re.compile(r"^[ \t]*((?:[-+*]|\d{1,9}[.)])(?=[ \t]|$))([ \t]*\S)?")
_INTERRUPTS = re.compile(r"[ \t]*(?:[-+*]|1[.)])[ \t]*\S")  # an item that may end a paragraph
_RULE = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")


def _code(body: str) -> list[tuple[int, int]]:
    """Where `body` is code, in order: fenced code blocks (their fences too, and to the end of
    the body when one is never closed), indented code blocks and code spans."""
    found: list[tuple[int, int]] = []
    fence: str | None = None
    indented = _Indented()
    at = opened = prose = 0
    in_block = False
    for line in body.splitlines(keepends=True):
        bare = line.rstrip("\r\n")
        if fence is not None:
            if _closes(fence, bare):
                fence, prose = None, at + len(line)
                found.append((opened, prose))
                indented.fenced()
        else:
            code = indented.code(bare)
            if in_block and not code:
                found.append((opened, at))
                prose, in_block = at, False
            if not code and (mark := _FENCE.match(bare)):
                found += _code_spans(body, prose, at)
                fence, opened = mark.group(1), at
                indented.fenced()
            elif code and not in_block:
                found += _code_spans(body, prose, at)
                opened, in_block = at, True
        at += len(line)
    if fence is not None or in_block:
        found.append((opened, len(body)))
    else:
        found += _code_spans(body, prose, len(body))
    return found


def _links(body: str) -> list[re.Match[str]]:
    """Each link, image, reference definition, autolink and HTML `src` or `href` of `body`
    outside code, by position; code is
    masked (its characters but line breaks made NUL) so that no match starts in it, and a
    match whose target reaches into it is left out."""
    if not any(pattern.search(body) for pattern in _PATTERNS):
        return []
    code = _code(body)
    if not code:
        masked = body
    else:
        parts: list[str] = []
        last = 0
        for a, b in code:
            held = body[a:b]
            parts += [body[last:a], re.sub(r"[^\n]", "\x00", held) if "\n" in held
                      else "\x00" * len(held)]
            last = b
        masked = "".join([*parts, body[last:]])
    starts = [a for a, _ in code]
    found: list[re.Match[str]] = []
    for pattern in _PATTERNS:
        for m in pattern.finditer(masked):
            a, b = m.span(2)
            n = bisect.bisect_right(starts, b - 1) - 1
            if n < 0 or code[n][1] <= a:  # the target lies outside code
                found.append(m)
    return found


def local_links(body: str, base: str) -> dict[str, str | None]:
    """Each local link target of a body outside code, with the path it names inside the upload
    (None when it leaves the upload)."""
    found: dict[str, str | None] = {}
    for m in _links(body):
        target = body[m.start(2):m.end(2)]
        if is_local(target.strip("<>")):
            found[target] = local_path(target, base)
    return found


def html_links(body: str) -> set[str]:
    """The targets of a body's HTML links (`<a href>`) outside code: written by hand, they may
    name pages the upload does not hold (kept as written then)."""
    return {body[m.start(2):m.end(2)] for m in _links(body) if m.re is _HTML_HREF}


def has_link_definitions(body: str) -> bool:
    """Whether `body` defines reference links (`[name]: target`) outside code, which its
    references reach only within one Markdown block."""
    return any(m.re is _DEFINITION for m in _links(body))


def rewrite_links(body: str, replace: Callable[[str], str | None], *,
                  local_only: bool = True) -> str:
    """`body` with each local link target (each target, unless `local_only`) outside code
    swapped for `replace(target)` (kept when None); code is left as written."""
    swaps: list[tuple[int, int, str]] = []
    for m in _links(body):
        target = body[m.start(2):m.end(2)]
        new = replace(target) if not local_only or is_local(target.strip("<>")) else None
        if new is not None:
            swaps.append((m.start(2), m.end(2), new))
    out: list[str] = []
    last = 0
    for a, b, new in sorted(swaps):
        if a < last:
            continue  # one target found by two patterns
        out += [body[last:a], new]
        last = b
    return "".join([*out, body[last:]])


FENCE = _FENCE
closes = _closes
NoAliases = _NoAliases
