"""`validated`: a mutation's input made the request body its HTTP twin takes, under that body's
rules: a refusal is 422 `validation_failed` with each broken rule in `errors`, its `loc` naming
the argument and the input's fields as the schema spells them (but inside a `JSON` field, which
holds what the HTTP API takes as it is)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import fields, is_dataclass
from enum import Enum
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from strawberry import UNSET
from strawberry.utils.str_converters import to_camel_case

from bloop.platform.kit.errors import Invalid

M = TypeVar("M", bound=BaseModel)


def plain(value: object) -> object:
    """`value`, a strawberry input, as JSON-like data: fields left out are left out, an enum is
    its value."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list):
        return [plain(item) for item in value]
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in fields(value)
                if getattr(value, f.name) is not UNSET}
    return value


def validated(model: type[M], value: object, *argument: str,
              as_written: Collection[str] = ()) -> M:
    """`value` (the argument `argument`; the arguments, by name, when none is named) as a
    `model`, or 422 saying which of its rules it breaks. Inside the fields `as_written` (JSON
    the HTTP API's body takes as it is) the `loc` stays as the body spells it."""
    try:
        return model.model_validate(plain(value))
    except ValidationError as exc:
        raise Invalid([{**error, "loc": (*argument, *_spelt(error["loc"], as_written))}
                       for error in exc.errors()]) from None


def _spelt(loc: tuple[int | str, ...], as_written: Collection[str]) -> tuple[int | str, ...]:
    if loc and loc[0] in as_written:
        return (to_camel_case(str(loc[0])), *loc[1:])
    return tuple(to_camel_case(part) if isinstance(part, str) else part for part in loc)
