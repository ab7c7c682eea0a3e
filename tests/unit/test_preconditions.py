"""The record version an `If-Match` names, or a 400 problem (before, a superscript digit or a
5,000-digit number passed the check and made int() fail: a 500)."""

from __future__ import annotations

import pytest

from bloop.platform.kit.errors import Problem
from bloop.platform.kit.preconditions import entity_tags, version_named


@pytest.mark.parametrize(("header", "version"), [
    (None, None), ("", None), ('"3"', 3), ("3", 3), ('W/"4"', 4), (' "12" ', 12)])
def test_a_version_is_named(header: str | None, version: int | None) -> None:
    assert version_named(header, "card") == version


@pytest.mark.parametrize("header", [
    '"\u00b2"', '"\u0663"', "9" * 5000, '"1", "2"', "*", '"-1"', '"three"', '""'])
def test_anything_else_is_a_bad_if_match(header: str) -> None:
    with pytest.raises(Problem) as refused:
        version_named(header, "card")
    assert (refused.value.status, refused.value.code) == (400, "bad_if_match")
    assert "card version" in refused.value.detail


def test_entity_tags_ignore_weakness_and_blanks() -> None:
    assert entity_tags('W/"a", "b",, ') == ['"a"', '"b"']
    assert entity_tags(None) == []
