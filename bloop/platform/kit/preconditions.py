"""Conditional requests (RFC 9110 §13): the entity tags of `If-Match` / `If-None-Match`, and the
record version an `If-Match` names."""

from __future__ import annotations

import re

from bloop.platform.kit.errors import Problem

_VERSION = re.compile(r"[0-9]{1,18}")  # str.isdigit would pass "²", which int() refuses


def entity_tags(header: str | None) -> list[str]:
    """The entity tags of the header (weakness ignored)."""
    if not header:
        return []
    return [t.strip().removeprefix("W/") for t in header.split(",") if t.strip()]


def version_named(if_match: str | None, what: str) -> int | None:
    """The version of the `what` an `If-Match` names, like "3"; None without the header."""
    tags = entity_tags(if_match)
    if not tags:
        return None
    named = tags[0].strip('"')
    if len(tags) > 1 or not _VERSION.fullmatch(named):
        raise Problem(f'If-Match names one {what} version, like "3"', status=400,
                      code="bad_if_match")
    return int(named)


def named_version(if_match: str | None, given: int | None, what: str,
                  field: str = "version", where: str = "body") -> int | None:
    """The version a request was made against: `If-Match`'s or the one `given` in the body (or
    the query: `where`), 422 when both are given and differ; None when neither is."""
    named = version_named(if_match, what)
    if named is not None and given is not None and named != given:
        raise Problem(f"If-Match names {field} {named} and the {where} {field} {given}",
                      status=422, code="version_mismatch")
    return named if named is not None else given
