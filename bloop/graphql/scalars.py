"""Scalars the services' GraphQL modules share. A literal that breaks a scalar's rule fails the
query's validation, before any resolver runs."""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime
from typing import NewType

import strawberry
from graphql.pyutils import inspect
from pydantic import TypeAdapter
from strawberry.schema.types.base_scalars import DateTimeDefinition
from strawberry.types.scalar import ScalarDefinition

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
_SLUG = re.compile(SLUG_PATTERN)

Slug = NewType("Slug", str)
"""A tenant's or a record's slug: lower-case letters, digits and inner hyphens, at most 63."""


def _parse_slug(value: object) -> Slug:
    if not isinstance(value, str) or not _SLUG.match(value):
        raise ValueError(f"{inspect(value)} is not a slug (lower-case letters, digits and inner "
                         "hyphens, at most 63 characters)")
    return Slug(value)


_INSTANT: TypeAdapter[datetime] = TypeAdapter(datetime)


def _instant(value: datetime) -> str:
    """A time as the HTTP API writes it (UTC ending in `Z`), so both give the same text."""
    text: str = _INSTANT.dump_python(value, mode="json")
    return text


SCALARS: dict[object, ScalarDefinition] = {
    datetime: dataclasses.replace(DateTimeDefinition, serialize=_instant,
                                  description="date with time (ISO 8601; UTC ending in `Z`)"),
    Slug: strawberry.scalar(name="Slug", serialize=str, parse_value=_parse_slug,
                            description="lower-case letters, digits and inner hyphens, "
                                        "at most 63 characters"),
}
