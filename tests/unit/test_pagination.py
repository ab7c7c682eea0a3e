"""Cursors: what a store's sort key becomes in a URL, and what is refused on the way back."""

from __future__ import annotations

import base64
import json
import sys
from typing import get_args

import pytest
from annotated_types import MaxLen

from bloop.platform.kit.pagination import MAX_CURSOR, After, BadCursor, Slice, cursor, key_of
from tests.support import NESTED_CURSOR


@pytest.mark.parametrize("key", [("Python", "py"), ("Ärger & co", "c1"), (1764762000.125, "j1"),
                                 (1764762000, "media/abc"), (0, "")])
def test_a_key_comes_back_as_it_went(key: tuple[str | int | float, str]) -> None:
    token = cursor(*key)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert key_of(token, type(key[0]), str) == key


def test_a_float_key_takes_a_whole_number() -> None:
    assert key_of(cursor(1764762000, "j"), float, str) == (1764762000, "j")


@pytest.mark.parametrize("token", [
    "", "not a cursor", "%%%", "W10", cursor("a"), cursor("a", "b", "c"), cursor(1, "b"),
    cursor(True, "b"), 'W251bGwsImIiXQ', '["a","b"]', "WyJhIiwiYiJd" + "x",
    cursor("\ud800", "b"),  # half a surrogate pair: no store takes it
    NESTED_CURSOR,  # nested deeper than Python's JSON parser recurses: was a RecursionError, a 500
])
def test_anything_else_is_a_bad_cursor(token: str) -> None:
    with pytest.raises(BadCursor) as raised:
        key_of(token, str, str)
    assert (raised.value.status, raised.value.code) == (422, "bad_cursor")


@pytest.mark.parametrize("number", [float("nan"), float("inf"), 2**53, -(2**53), 10**30])
def test_numbers_a_double_cannot_hold_are_refused(number: float) -> None:
    for kind in (float, int):
        with pytest.raises(BadCursor):
            key_of(cursor(number, "x"), kind, str)


def test_a_slice_goes_on_only_when_more_rows_were_read_than_asked() -> None:
    def key(n: int) -> tuple[int]:
        return (n,)

    assert Slice.of([1, 2, 3], 3, key) == Slice([1, 2, 3])
    assert Slice.of([1, 2, 3, 4], 3, key) == Slice([1, 2, 3], cursor(3))
    assert Slice.of([], 3, key) == Slice([])
    assert Slice.of([1, 2, 3, 4], 3, key).map(str) == Slice(["1", "2", "3"], cursor(3))


def test_a_cursor_of_before_6_dec_with_its_json_in_ascii_still_reads() -> None:
    key = ("программирование на python 🐍", "py")
    ascii_json = json.dumps(key, separators=(",", ":")).encode()
    assert b"\\u" in ascii_json
    token = base64.urlsafe_b64encode(ascii_json).decode().rstrip("=")
    assert token != cursor(*key)
    assert key_of(token, str, str) == key


def test_the_longest_key_of_any_list_fits_an_after() -> None:
    """A course's: its title's 200 characters casefolded and as JSON, at most 6 bytes each (as
    "ῷ", three characters of two bytes once casefolded), and a 63-character id. Every other
    list's key is a few ids and times. Before, a title's JSON was ASCII (18 bytes for "ῷ", 12
    for an emoji) and `after` took 1,000 characters: 120 Cyrillic letters were too many."""
    widest = max(len(json.dumps(c.casefold(), ensure_ascii=False).encode()) - 2
                 for c in map(chr, range(sys.maxunicode + 1)) if not "\ud800" <= c <= "\udfff")
    assert widest == 6
    [most] = [m.max_length for meta in get_args(After)[1:]
              for m in getattr(meta, "metadata", ()) if isinstance(m, MaxLen)]
    assert most == MAX_CURSOR
    for title in ("ῷ" * 200, "🐍" * 200, "ﬃ" * 200, "Программирование на Python" * 8):
        assert len(cursor(title[:200].casefold(), "c" * 63)) <= MAX_CURSOR - 300
