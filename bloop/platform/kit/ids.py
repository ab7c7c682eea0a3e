"""Identifiers made in process: version 7 UUIDs (events, requests)."""

from __future__ import annotations

import os
import time
import uuid

import orjson

_random: list[int] = []  # 74-bit draws (in 80 bits), used from the end
_new, _set, _SAFE = object.__new__, object.__setattr__, uuid.SafeUUID.unknown


def _draw() -> None:
    drawn = os.urandom(65_530)
    _random.extend([int.from_bytes(drawn[i:i + 10]) for i in range(0, 65_530, 10)])


os.register_at_fork(after_in_child=_random.clear)  # a forked child draws its own


def new_id() -> uuid.UUID:
    """A version 7 UUID: the time in milliseconds, then 74 random bits, so later ids sort later
    and the processed-events index grows at its end. Randomness is drawn 64 KiB at a time: each
    draw lets go of the GIL, and getting it back can wait for a busy thread."""
    try:
        rand = _random.pop()
    except IndexError:  # used up (another thread may have taken the last between draw and pop)
        _draw()
        rand = _random.pop()
    ms = time.time_ns() // 1_000_000
    # What UUID(int=...) builds, without re-checking a value made in range.
    made: uuid.UUID = _new(uuid.UUID)
    _set(made, "int", (ms & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | (rand >> 62 & 0xFFF) << 64
         | 0x2 << 62 | rand & 0x3FFF_FFFF_FFFF_FFFF)
    _set(made, "is_safe", _SAFE)
    return made


def id_text(made: uuid.UUID) -> str:
    """`str(made)`, the canonical lowercase hyphenated form, at a quarter of its cost: every
    event's id is stored and looked up as text."""
    return orjson.dumps(made)[1:-1].decode()
