"""`validated`: a mutation's input made the request body its HTTP twin takes, under that body's
rules: a refusal is 422 `validation_failed` with each broken rule in `errors`, its `loc` naming
the argument and the input's fields as the schema spells them (but inside a `JSON` field, which
holds what the HTTP API takes as it is)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import fields, is_dataclass
from enum import Enum
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from strawberry import UNSET
from strawberry.utils.str_converters import to_camel_case

from bloop.platform.kit.errors import Invalid

M = TypeVar("M", bound=BaseModel)
Loc = tuple[int | str, ...]
Placed = Callable[[Loc], Loc]


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
              as_written: Collection[str] = (), placed: Placed | None = None) -> M:
    """`value` (the argument `argument`; the arguments, by name, when none is named) as a
    `model`, or 422 saying which of its rules it breaks. Inside the fields `as_written` (JSON
    the HTTP API's body takes as it is) the `loc` stays as the body spells it. `placed` gives
    the place in `value` of a `loc` in the model where the two are shaped differently."""
    try:
        return model.model_validate(plain(value))
    except ValidationError as exc:
        raise Invalid([{**error, "loc": (*argument, *_spelt(
            placed(error["loc"]) if placed else error["loc"], as_written))}
                       for error in exc.errors()]) from None


def in_argument(refused: Invalid, *argument: str, as_written: Collection[str] = ()) -> Invalid:
    """`refused`, found in the body `argument` made (its `loc` from the body's root, as the
    HTTP API spells it), naming the argument and its fields as `validated` does."""
    return Invalid({**error, "loc": (*argument, *_spelt(tuple(error["loc"]), as_written))}
                   for error in refused.errors)


def at_least(value: int | None, least: int, name: str) -> int | None:
    """`value` of the argument `name`, refused below `least` as the HTTP API's query or
    `If-Match` refuses it."""
    if value is not None and value < least:
        raise Invalid([{"loc": (name,), "type": "greater_than_equal", "input": value,
                        "msg": f"Input should be greater than or equal to {least}"}])
    return value


def _spelt(loc: Loc, as_written: Collection[str]) -> Loc:
    if loc and loc[0] in as_written:
        return (to_camel_case(str(loc[0])), *loc[1:])
    return tuple(to_camel_case(part) if isinstance(part, str) else part for part in loc)
