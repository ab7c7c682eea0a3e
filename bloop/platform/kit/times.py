"""Times as records' JSON keeps them, for stores that compare or sort them as text.

pydantic writes a datetime as short as it can ("…:28Z" at a whole second, "…:28.5Z" half a
second later, "+02:00" in another zone), and "Z" sorts after ".", so text order would not be
time order. `Instant` fields and `json_time` write every time in UTC with all six digits of the
fraction, which does order as the times do.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AwareDatetime, BeforeValidator, PlainSerializer, WithJsonSchema


def utc(at: datetime) -> datetime:
    """`at` in UTC; a time without a zone is taken as UTC."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def json_time(at: datetime) -> str:
    return utc(at).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utc_iso(at: datetime) -> str:
    """`at` as the learning stores keep times ("+00:00", the fraction only when there is one):
    in UTC, where whole seconds ("+" sorts before ".") still order as the times do."""
    return utc(at).isoformat()


def iso_only(value: object) -> object:
    """A `BeforeValidator` for a time sent as text: pydantic would read a bare number as Unix
    seconds (or milliseconds, past 2e10), so `0.5` would be 1970."""
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            float(value)
        except ValueError:
            return value
        raise ValueError("send an ISO-8601 time with its zone offset, such as "
                         "2026-12-04T09:00:00+05:00, not a number")
    return value


_SPACED_OFFSET = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2}[Tt _][0-9:.,]+) ([0-9]{2}:?[0-9]{2})")
FIRST_UTC, LAST_UTC = "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z"


def plus_restored(value: object) -> object:
    """A `BeforeValidator` for a time sent in a query string: a `+` not sent as `%2B` arrives
    as a space, which before a time's zone offset can only have been that `+`."""
    if isinstance(value, str) and (spaced := _SPACED_OFFSET.fullmatch(value)):
        return f"{spaced[1]}+{spaced[2]}"
    return value


def in_utc(at: datetime) -> datetime:
    """An `AfterValidator`: `at` in UTC, refused when UTC has no such time (the first hours of
    year 1 ahead of it, the last of year 9999 behind it)."""
    try:
        return utc(at)
    except OverflowError:
        raise ValueError(f"the time is out of range in UTC, which runs from {FIRST_UTC} to "
                         f"{LAST_UTC}") from None


Instant = Annotated[datetime, PlainSerializer(json_time, return_type=str, when_used="json"),
                    WithJsonSchema({"type": "string", "format": "date-time"})]

EventTime = Annotated[AwareDatetime, BeforeValidator(iso_only)]
"""A time an event carries: read back from JSON only as ISO 8601 with its zone (a time without
one, or a number, says nothing certain of when)."""
