"""CPU-bound pure work (parsing, validating, extracting text) kept off the event loop.

It runs in a worker thread, a bounded piece at a time. Python in a thread still takes the GIL,
but hands it over every switch interval (5 ms), so the loop goes on answering meanwhile; a
piece is bounded because a thread cannot be cancelled: a caller that goes away wastes one piece
at most."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")
AT_ONCE = 50


async def each_in_thread(fn: Callable[[T], R], items: Sequence[T], *,
                         at_once: int = AT_ONCE) -> list[R]:
    """`fn` of each of `items`, in order, in a worker thread `at_once` items at a time; the
    first exception `fn` raises is raised here, and the items after it are not done."""
    out: list[R] = []
    for at in range(0, len(items), at_once):
        out += await asyncio.to_thread(_each, fn, items[at:at + at_once])
    return out


def _each(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    return [fn(x) for x in items]
