"""`validated`: a mutation's input made the request body its HTTP twin takes, under that body's
rules: a refusal is 422 `validation_failed` with each broken rule in `errors`, its `loc` naming
the argument and the input's fields as the schema spells them."""

from __future__ import annotations

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


def validated(model: type[M], value: object, *argument: str) -> M:
    """`value` (the argument `argument`; the arguments, by name, when none is named) as a
    `model`, or 422 saying which of its rules it breaks."""
    try:
        return model.model_validate(plain(value))
    except ValidationError as exc:
        raise Invalid([{**error, "loc": (*argument, *(
            to_camel_case(part) if isinstance(part, str) else part for part in error["loc"]))}
            for error in exc.errors()]) from None
