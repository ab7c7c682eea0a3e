"""Partial edits: a request body of optional fields, at least one of them given."""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, model_validator


def _one_given(schema: dict[str, Any], model: type[Any]) -> None:
    """The document says what the validator checks: some field is given and not null."""
    schema["anyOf"] = [{"required": [name], "properties": {name: {"not": {"type": "null"}}}}
                       for name in model.model_fields]


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
