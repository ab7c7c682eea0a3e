"""Text that may be accepted from clients, and text that may not be blank.

Client text never holds a C0 control (U+0000-U+001F), DEL or a C1 control (U+007F-U+009F),
except tab, line feed and carriage return in multi-line text (Markdown, descriptions, bios,
summaries, captions, quiz prompts, options and feedback, cards, instructions). Single-line text
(names, titles, tags, identifiers, emails) keeps no tab or line break either, nor the
bidirectional overrides and isolates (U+202A-U+202E, U+2066-U+2069) that make a name read as
another; multi-line text keeps them, for right-to-left writing. No client text holds a
noncharacter (U+FDD0-U+FDEF, and the last two code points of each plane, U+FFFE, U+FFFF, …).

Text that may not be blank holds a visible character: one that is not white space, a format
character (Cf: a zero-width space, a soft hyphen, a tag), private use (Co), nor another default
ignorable code point (a Hangul filler, a variation selector). A code point unassigned in this
Python's Unicode counts as visible, so a character added by a later Unicode is not refused.

Each alias wraps a `str` type (with its `StringConstraints`): `NonBlankLine[Annotated[str,
StringConstraints(strip_whitespace=True, min_length=1)]]`. The check runs on the value as
pydantic leaves it (stripped or not), and the JSON Schema `pattern` says exactly that in the
Basic Multilingual Plane (a pattern cannot name a code point past it in every dialect), so
generated clients refuse what the server refuses. A record read back from a store (`STORED`)
is not checked again: what was kept under an older rule still reads.

A field typed `StringConstraints(strip_whitespace=True, min_length=1)` refuses "   ", but its
JSON Schema (`minLength: 1`) accepts it: the `NonBlank…` patterns need some character that
pydantic's strip (Unicode White_Space, as Rust's `trim`) does not take away."""

from __future__ import annotations

import re
import unicodedata
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
NONCHARACTERS = r"\ufdd0-\ufdef\ufffe\uffff"
LINE_REFUSED = CONTROLS + BIDI + NONCHARACTERS
LINES_REFUSED = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f" + NONCHARACTERS
# Format (Cf) and private-use (Co) characters and the other default ignorable code points
# (Unicode's DerivedCoreProperties), in the Basic Multilingual Plane and past it.
INVISIBLE = (r"\xad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160"
             r"\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164"
             r"\ue000-\uf8ff\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb")
_INVISIBLE_PAST_BMP = (r"\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
                       r"\U0001d173-\U0001d17a\U000e0000-\U000e0fff\U000f0000-\U0010ffff")
_NONCHARACTERS_PAST_BMP = "".join(f"\\U{p:04x}fffe\\U{p:04x}ffff" for p in range(1, 17))


def text_pattern(refused: str, *, stripped: bool, blank: bool) -> str:
    """What a client may send: after the strip (the leading and trailing `STRIPPED` characters
    it takes away, when the field strips), nothing `refused`, and, unless `blank`, a visible
    character."""
    edge = f"[{STRIPPED}]*" if stripped else ""
    shown = f"[^{refused}{STRIPPED}{INVISIBLE}]"
    core = f"[^{refused}]*" if blank else f"[^{refused}]*{shown}[^{refused}]*"
    return f"^{edge}{core}{edge}$"


_NONCHARACTER = re.compile(f"[{NONCHARACTERS}{_NONCHARACTERS_PAST_BMP}]")
_SHOWN = re.compile(f"[^{STRIPPED}{INVISIBLE}{_INVISIBLE_PAST_BMP}{_NONCHARACTERS_PAST_BMP}]")


def visible(text: str) -> bool:
    """Whether `text` holds a character that shows (see above): a name of zero-width spaces,
    Hangul fillers or tags is blank."""
    return _SHOWN.search(text) is not None


_HIDDEN = re.compile(f"[{CONTROLS}{INVISIBLE}{_INVISIBLE_PAST_BMP}{NONCHARACTERS}"
                     f"{_NONCHARACTERS_PAST_BMP}]")


def lookalike(text: str) -> bool:
    """Whether `text` (an email address) could pass for another once compared (`.lower()` folds
    the Kelvin sign onto a K: Unicode compatibility, NFKC, changes it) or look like one it is
    not (it holds a control, format or other invisible character, or a noncharacter)."""
    return unicodedata.normalize("NFKC", text) != text or _HIDDEN.search(text) is not None


def _checker(refused: str, what: str, *, blank: bool) -> AfterValidator:
    found = re.compile(f"[{refused}{_NONCHARACTERS_PAST_BMP}]")

    def check(value: str, info: ValidationInfo) -> str:
        if read_back(info):
            return value
        if bad := found.search(value):
            kind = "noncharacter" if _NONCHARACTER.match(bad.group()) else "control character"
            raise ValueError(f"{what} may not hold the {kind} U+{ord(bad.group()):04X}")
        if not blank and not visible(value):
            raise ValueError(f"{what} must hold a visible character, not only spaces, format "
                             "characters (a zero-width space) or fillers")
        return value

    return AfterValidator(check)


_LINE = _checker(LINE_REFUSED, "a single line", blank=True)
_NON_BLANK_LINE = _checker(LINE_REFUSED, "a single line", blank=False)
_LINE_REFUSED = re.compile(f"[{LINE_REFUSED}{_NONCHARACTERS_PAST_BMP}]+")
_LINES = _checker(LINES_REFUSED, "text", blank=True)
_NON_BLANK_LINES = _checker(LINES_REFUSED, "text", blank=False)


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
NonBlankLine = Annotated[_S, _NON_BLANK_LINE, _doc(LINE_REFUSED, stripped=True, blank=False)]
"""Single-line, stripped, `min_length=1`."""
RawLine = Annotated[_S, _LINE, _doc(LINE_REFUSED, stripped=False, blank=True)]
"""Single-line, kept as sent."""
Lines = Annotated[_S, _LINES, _doc(LINES_REFUSED, stripped=True, blank=True)]
"""Multi-line, stripped, may be empty."""
NonBlankLines = Annotated[_S, _NON_BLANK_LINES, _doc(LINES_REFUSED, stripped=True, blank=False)]
"""Multi-line, stripped, `min_length=1`."""
RawLines = Annotated[_S, _LINES, _doc(LINES_REFUSED, stripped=False, blank=True)]
"""Multi-line, kept as sent (Markdown, code)."""

NonBlank = Field(json_schema_extra={"pattern": NON_BLANK})
"""Put after `StringConstraints(strip_whitespace=True, min_length=1, ...)` of text that is not
a client's (a model's output, checked as it is parsed)."""
