"""`Range: bytes=…` requests (RFC 9110 §14): one range is served as 206, an unsatisfiable one is
416, and anything else (no header, another unit, several ranges, bad syntax) gets the whole file,
as the RFC allows."""

from __future__ import annotations

import re
from dataclasses import dataclass

_ONE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int
    """Exclusive."""
    size: int
    partial: bool = False
    """True when a range was asked for (answered with 206, even when it covers every byte, as
    Safari's and Chrome's media players expect)."""

    @property
    def length(self) -> int:
        return self.end - self.start

    @property
    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end - 1}/{self.size}"


class Unsatisfiable(ValueError):
    def __init__(self, size: int) -> None:
        super().__init__(f"the range lies outside the file's {size} bytes")
        self.size = size


BEYOND_ANY_FILE = 10**18


def _position(digits: str) -> int:
    """A byte position; one too long to convert (Python refuses over 4,300 digits) lies beyond
    any file, as it would if it were converted."""
    return int(digits) if len(digits) < 19 else BEYOND_ANY_FILE


def parse_range(header: str | None, size: int) -> ByteRange:
    """The part of a `size`-byte file that `header` asks for (the whole file when it asks for
    nothing this server serves partially). Raises `Unsatisfiable`."""
    whole = ByteRange(0, size, size)
    m = _ONE.match(header or "")
    if m is None:
        return whole
    first, last = m.group(1), m.group(2)
    if not first and not last:
        return whole
    if not first:
        suffix = _position(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable(size)
        return ByteRange(max(0, size - suffix), size, size, partial=True)
    start = _position(first)
    if last and _position(last) < start:
        return whole  # invalid syntax: ignored
    if start >= size:
        raise Unsatisfiable(size)
    end = size if not last else min(_position(last) + 1, size)
    return ByteRange(start, end, size, partial=True)
