"""`field`: `strawberry.field(description=...)` with a type mypy can check the resolver through;
`page_size`: a list field's `first`, checked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import strawberry
from graphql.error import GraphQLError
from strawberry.types.field import StrawberryField

MAX_PAGE = 200

Resolver = Callable[..., Any]


def field(description: str) -> Callable[[Resolver], StrawberryField]:
    decorate: Callable[[Resolver], StrawberryField] = strawberry.field(description=description)
    return decorate


def page_size(first: int) -> int:
    if not 1 <= first <= MAX_PAGE:
        raise GraphQLError(f"first must be between 1 and {MAX_PAGE}",
                           extensions={"code": "validation_failed", "status": 422})
    return first
