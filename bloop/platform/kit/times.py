"""Times as records' JSON keeps them, for stores that compare or sort them as text.

pydantic writes a datetime as short as it can ("…:28Z" at a whole second, "…:28.5Z" half a
second later, "+02:00" in another zone), and "Z" sorts after ".", so text order would not be
time order. `Instant` fields and `json_time` write every time in UTC with all six digits of the
fraction, which does order as the times do.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import PlainSerializer, WithJsonSchema


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


Instant = Annotated[datetime, PlainSerializer(json_time, return_type=str, when_used="json"),
                    WithJsonSchema({"type": "string", "format": "date-time"})]
