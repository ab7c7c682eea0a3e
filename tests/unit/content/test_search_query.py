"""The search box's syntax: words, quoted phrases, exclusions; everything else is plain text."""

from __future__ import annotations

import pytest

from bloop.platform.content.search.query import MAX_CLAUSES, ParsedQuery, QuerySyntaxError, parse


def test_words_phrases_and_exclusions() -> None:
    assert parse('loops "for loop" -while -"do until" x') == ParsedQuery(
        words=("loops", "x"), phrases=("for loop",), excluded=("while", "do until"))


@pytest.mark.parametrize(("text", "expected"), [
    ("", ParsedQuery()),
    ("   ", ParsedQuery()),
    ("c++: (pointers)", ParsedQuery(words=("c++:", "(pointers)"))),
    ("title:secret tenant:other", ParsedQuery(words=("title:secret", "tenant:other"))),
    ("- loose dash", ParsedQuery(words=("-", "loose", "dash"))),
    ('ab"cd"', ParsedQuery(words=("ab",), phrases=("cd",))),
    ('""', ParsedQuery(phrases=("",))),
    ("東京 über", ParsedQuery(words=("東京", "über"))),
    ("AND OR NOT * ~ ^2 [a TO b]", ParsedQuery(words=("AND", "OR", "NOT", "*", "~", "^2", "[a",
                                                       "TO", "b]"))),
])
def test_anything_but_a_quote_is_text(text: str, expected: ParsedQuery) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize("text", ['"unclosed', 'fine "then not', '-"half'])
def test_an_unclosed_quote_is_an_error_that_says_where(text: str) -> None:
    with pytest.raises(QuerySyntaxError, match=f"position {text.index(chr(34)) + 1}"):
        parse(text)


def test_too_many_clauses() -> None:
    parse(" ".join(["w"] * MAX_CLAUSES))
    with pytest.raises(QuerySyntaxError, match="at most"):
        parse(" ".join(["w"] * (MAX_CLAUSES + 1)))
