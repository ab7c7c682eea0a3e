"""The shape of every list the API returns, and the cursors that page through a store's lists.

A cursor is the sort key of the last item a page held, as the store that ordered the list wrote
it; to the client it is an opaque token to send back as `after`."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import AfterValidator, BaseModel

from bloop.platform.kit.errors import Problem, is_text

T = TypeVar("T")
U = TypeVar("U")
Key = tuple[str | int | float, ...]
MAX_NUMBER = 2**53  # numbers in keys: times and offsets, never beyond what a double holds
# The longest key is a course's: its title (200 characters, each at most 6 bytes of JSON once
# casefolded, as "ῷ" is) and its 63-character id, 1,270 bytes, 1,694 characters of cursor.
MAX_CURSOR = 2048
After = Annotated[str | None, Query(max_length=MAX_CURSOR,
                                    description="the `next` of the page before (empty or left "
                                                "out for the first page)"),
                  AfterValidator(lambda after: after or None)]


class Page(BaseModel, Generic[T]):
    """One page of a list; `next` is the cursor for the following page (null on the last). A
    page may hold fewer items than asked, even none, and still not be the last."""

    items: list[T]
    next: str | None = None


@dataclass(frozen=True, slots=True)
class Slice(Generic[T]):
    """Items a store listed, and the cursor where its list goes on (None after the last)."""

    items: list[T]
    next: str | None = None

    @classmethod
    def of(cls, rows: list[T], limit: int, key: Callable[[T], Key]) -> Slice[T]:
        """The first `limit` of `rows`, which were read with a limit one higher: when there
        were more, the list goes on after the last of them (`key` gives its sort key)."""
        if len(rows) <= limit:
            return cls(rows)
        return cls(rows[:limit], cursor(*key(rows[limit - 1])))

    @classmethod
    def keyed(cls, rows: list[T], limit: int, key: Callable[[T], str]) -> Slice[T]:
        """`of` for a list whose cursor is the last item's own key as it is (an id, an email),
        which a client may also name itself."""
        if len(rows) <= limit:
            return cls(rows)
        return cls(rows[:limit], key(rows[limit - 1]))

    def map(self, fn: Callable[[T], U]) -> Slice[U]:
        return Slice([fn(x) for x in self.items], self.next)


async def every(read: Callable[[str | None], Awaitable[Slice[T]]]) -> list[T]:
    """All of a list, read a slice at a time: `read` is given each slice's cursor."""
    items: list[T] = []
    after: str | None = None
    while True:
        listed = await read(after)
        items += listed.items
        if listed.next is None:
            return items
        after = listed.next


class BadCursor(Problem):
    status, code = 422, "bad_cursor"


def cursor(*key: str | int | float) -> str:
    """The key as URL-safe text (base64 of JSON as UTF-8, without padding: a title's
    characters as they are, not as 6-byte `\\u` escapes, as cursors before 6 Dec had them,
    which read the same). Half a surrogate pair, which no store takes, gives a cursor
    `key_of` refuses."""
    text = json.dumps(key, separators=(",", ":"), ensure_ascii=False)
    encoded = base64.urlsafe_b64encode(text.encode(errors="surrogatepass"))
    return encoded.decode().rstrip("=")


def key_of(token: str, *types: type[str] | type[int] | type[float]) -> Key:
    """The sort key a cursor holds, checked against the types the store's key has."""
    try:
        key = json.loads(base64.urlsafe_b64decode(token.encode("ascii") + b"=" * (-len(token) % 4)))
    except (ValueError, UnicodeError, binascii.Error, RecursionError):  # `[[[…` nests too deep
        key = None
    if (not isinstance(key, list) or len(key) != len(types)
            or not all(_fits(v, t) for v, t in zip(key, types, strict=True))):
        raise BadCursor("`after` is not a cursor of this list: send the `next` of the page "
                        "before, or nothing for the first page")
    return tuple(key)


def _fits(value: object, kind: type) -> bool:
    if isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, int | float) and abs(value) < MAX_NUMBER
    if kind is int:
        return isinstance(value, int) and abs(value) < MAX_NUMBER
    return isinstance(value, kind) and (not isinstance(value, str) or is_text(value))
