"""Identifiers made in process: version 7 UUIDs (events, requests)."""

from __future__ import annotations

import os
import time
import uuid

_random = bytearray()
_new, _set, _SAFE = object.__new__, object.__setattr__, uuid.SafeUUID.unknown


def new_id() -> uuid.UUID:
    """A version 7 UUID: the time in milliseconds, then 74 random bits, so later ids sort later
    and the processed-events index grows at its end. Randomness is drawn 64 KiB at a time: each
    draw lets go of the GIL, and getting it back can wait for a busy thread."""
    global _random
    if len(_random) < 10:
        _random = bytearray(os.urandom(65_536))
    rand = int.from_bytes(_random[:10])
    del _random[:10]
    ms = time.time_ns() // 1_000_000
    # What UUID(int=...) builds, without re-checking a value made in range.
    made: uuid.UUID = _new(uuid.UUID)
    _set(made, "int", (ms & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | (rand >> 62 & 0xFFF) << 64
         | 0x2 << 62 | rand & 0x3FFF_FFFF_FFFF_FFFF)
    _set(made, "is_safe", _SAFE)
    return made
