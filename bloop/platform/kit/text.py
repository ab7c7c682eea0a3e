"""Text that may be accepted from clients, and text that may not be blank.

Client text never holds a C0 control (U+0000-U+001F), DEL or a C1 control (U+007F-U+009F),
except tab, line feed and carriage return in multi-line text (Markdown, descriptions, bios,
summaries, captions, quiz prompts, options and feedback, cards, instructions). Single-line text
(names, titles, tags, identifiers, emails) keeps no tab or line break either, nor the
bidirectional overrides and isolates (U+202A-U+202E, U+2066-U+2069) that make a name read as
another; multi-line text keeps them, for right-to-left writing.

Each alias wraps a `str` type (with its `StringConstraints`): `NonBlankLine[Annotated[str,
StringConstraints(strip_whitespace=True, min_length=1)]]`. The check runs on the value as
pydantic leaves it (stripped or not), and the JSON Schema `pattern` says exactly that, so
generated clients refuse what the server refuses. A record read back from a store (`STORED`)
is not checked again: what was kept under an older rule still reads.

A field typed `StringConstraints(strip_whitespace=True, min_length=1)` refuses "   ", but its
JSON Schema (`minLength: 1`) accepts it: the `NonBlank…` patterns need some character that
pydantic's strip (Unicode White_Space, as Rust's `trim`) does not take away."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, TypeVar

from pydantic import AfterValidator, Field, GetJsonSchemaHandler, ValidationInfo
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from bloop.platform.kit.read_back import read_back

STRIPPED = r"\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NON_BLANK = f"[^{STRIPPED}]"

CONTROLS = r"\x00-\x1f\x7f-\x9f"
BIDI = r"\u202a-\u202e\u2066-\u2069"
LINE_REFUSED = CONTROLS + BIDI
LINES_REFUSED = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"


def text_pattern(refused: str, *, stripped: bool, blank: bool) -> str:
    """What a client may send: after the strip (the leading and trailing `STRIPPED` characters
    it takes away, when the field strips), nothing `refused`, and, unless `blank`, something
    the strip keeps."""
    edge = f"[{STRIPPED}]*" if stripped else ""
    core = f"[^{refused}]*" if blank else f"[^{refused}]*[^{refused}{STRIPPED}][^{refused}]*"
    return f"^{edge}{core}{edge}$"


def _checker(refused: str, what: str) -> AfterValidator:
    found = re.compile(f"[{refused}]")

    def check(value: str, info: ValidationInfo) -> str:
        if not read_back(info) and (bad := found.search(value)):
            raise ValueError(f"{what} may not hold the control character "
                             f"U+{ord(bad.group()):04X}")
        return value

    return AfterValidator(check)


_LINE = _checker(LINE_REFUSED, "a single line")
_LINE_REFUSED = re.compile(f"[{LINE_REFUSED}]+")
_LINES = _checker(LINES_REFUSED, "text")


def one_line(text: str) -> str:
    """`text` that is not a client's (a sign-in provider's name for someone) made fit for a
    `…Line` field: each run of refused characters becomes one space."""
    return _LINE_REFUSED.sub(" ", text)


@dataclass(frozen=True)
class Documented:
    """The JSON Schema `pattern` of client text, in requests and responses alike, so that each
    model keeps one schema under its own name (a pattern in requests only would split every
    model used both ways into `…-Input` and `…-Output`). A record kept before the rule may
    break it in a response."""

    pattern: str
    blank: bool

    def __get_pydantic_json_schema__(self, schema: CoreSchema,
                                     handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        found = handler(schema)
        found["pattern"] = self.pattern
        return found


def _doc(refused: str, *, stripped: bool, blank: bool) -> Documented:
    return Documented(text_pattern(refused, stripped=stripped, blank=blank), blank)


_S = TypeVar("_S")

Line = Annotated[_S, _LINE, _doc(LINE_REFUSED, stripped=True, blank=True)]
"""Single-line, stripped, may be empty."""
NonBlankLine = Annotated[_S, _LINE, _doc(LINE_REFUSED, stripped=True, blank=False)]
"""Single-line, stripped, `min_length=1`."""
RawLine = Annotated[_S, _LINE, _doc(LINE_REFUSED, stripped=False, blank=True)]
"""Single-line, kept as sent."""
Lines = Annotated[_S, _LINES, _doc(LINES_REFUSED, stripped=True, blank=True)]
"""Multi-line, stripped, may be empty."""
NonBlankLines = Annotated[_S, _LINES, _doc(LINES_REFUSED, stripped=True, blank=False)]
"""Multi-line, stripped, `min_length=1`."""
RawLines = Annotated[_S, _LINES, _doc(LINES_REFUSED, stripped=False, blank=True)]
"""Multi-line, kept as sent (Markdown, code)."""

NonBlank = Field(json_schema_extra={"pattern": NON_BLANK})
"""Put after `StringConstraints(strip_whitespace=True, min_length=1, ...)` of text that is not
a client's (a model's output, checked as it is parsed)."""
