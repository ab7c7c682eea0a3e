"""The search box's syntax, parsed without an engine: words (each must match the title, tags or
text), "quoted phrases", and a leading `-` to exclude a word or phrase. Every other character is
text: `c++`, `a:b` or `(x)` search for their words and can never reach a field or an operator
of the engine. An unclosed quote is the one syntax error."""

from __future__ import annotations

from dataclasses import dataclass

MAX_CLAUSES = 32


class QuerySyntaxError(ValueError):
    """The query cannot be read; the message says why, for the caller."""


@dataclass(frozen=True)
class ParsedQuery:
    words: tuple[str, ...] = ()
    phrases: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.words or self.phrases or self.excluded)


def parse(text: str) -> ParsedQuery:
    words: list[str] = []
    phrases: list[str] = []
    excluded: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        negative = text[i] == "-" and i + 1 < n and not text[i + 1].isspace()
        if negative:
            i += 1
        if text[i] == '"':
            end = text.find('"', i + 1)
            if end < 0:
                raise QuerySyntaxError(f"the quote at position {i + 1} is not closed")
            part, i = text[i + 1:end], end + 1
            (excluded if negative else phrases).append(part)
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] != '"':
                i += 1
            (excluded if negative else words).append(text[start:i])
    if len(words) + len(phrases) + len(excluded) > MAX_CLAUSES:
        raise QuerySyntaxError(f"a query may have at most {MAX_CLAUSES} words and phrases")
    return ParsedQuery(tuple(words), tuple(phrases), tuple(excluded))
