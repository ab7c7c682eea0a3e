"""The validation context of a store reading back what it kept.

A record was checked when it was written, perhaps under an older rule. Read back with `STORED`,
the validators written in Python (an address, an email, a signup domain, math, lesson rules)
keep what is there, so a record stays readable and can be corrected, and nothing is checked
twice; types, patterns and lengths are still checked. Whatever would use a value in a way its
rule guards (fetching an address) checks it again.

A record may also have been written by a newer version, with fields this one does not know: a
`Tolerant` model read back drops them (a request body keeps refusing them), so two versions can
share a store during a rolling update or after a rollback."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import AliasChoices, AliasPath, BaseModel, ValidationInfo, model_validator

STORED: dict[str, Any] = {"stored": True}


def read_back(info: ValidationInfo) -> bool:
    """Whether the value is being read back from a store (validated with `STORED`)."""
    return isinstance(info.context, dict) and info.context.get("stored") is True


class Tolerant(BaseModel):
    """A model a store reads back: the keys it does not know are dropped on read-back. Nested
    models are validated with the same context, so a record's parts need this base too."""

    @model_validator(mode="before")
    @classmethod
    def _without_unknown(cls, data: Any, info: ValidationInfo) -> Any:
        if read_back(info) and isinstance(data, dict):
            known = known_keys(cls)
            if not known.issuperset(data):
                return {k: v for k, v in data.items() if k in known}
        return data


@cache
def known_keys(model: type[BaseModel]) -> frozenset[str]:
    """The keys `model` validates: its fields' names and aliases."""
    keys = set(model.model_fields)
    for field in model.model_fields.values():
        keys.update(_names(field.alias) | _names(field.validation_alias))
    return frozenset(keys)


def _names(alias: str | AliasPath | AliasChoices | None) -> set[str]:
    if isinstance(alias, str):
        return {alias}
    if isinstance(alias, AliasPath):
        first = alias.path[0]
        return {first} if isinstance(first, str) else set()
    if isinstance(alias, AliasChoices):
        return set().union(*(_names(choice) for choice in alias.choices))
    return set()
