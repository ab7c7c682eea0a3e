"""Partial edits: a request body of optional fields, at least one of them given."""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


def _one_given(schema: dict[str, Any], model: type[Any]) -> None:
    """The document says what the validator checks: some field is given and not null."""
    schema["anyOf"] = [{"required": [name], "properties": {name: {"not": {"type": "null"}}}}
                       for name in model.model_fields]


def _not_null(schema: dict[str, Any]) -> None:
    options = [o for o in schema.pop("anyOf", []) if o != {"type": "null"}]
    schema.pop("default", None)
    if len(options) == 1:
        schema.update(options[0])
    elif options:
        schema["anyOf"] = options


NotNull = Field(json_schema_extra=_not_null)
"""For an `X | None = None` field that may be left out but not sent as null (the record's field
is not nullable): the document shows no null, as the server refuses one."""


class Edit(BaseModel):
    """Fields left out (or null) stay as they are; a body changing nothing is refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_one_given)

    @model_validator(mode="after")
    def _changes_something(self) -> Self:
        names = type(self).model_fields
        if all(getattr(self, name) is None for name in names):
            raise ValueError(f"give at least one of: {', '.join(names)}")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields given, to update a model with."""
        return self.model_dump(exclude_none=True)
