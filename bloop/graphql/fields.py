"""`field`: `strawberry.field(description=...)` with a type mypy can check the resolver through;
`Page` and `page_size`: a list field's page (`XPage` in the schema for a list of `X`) and its
`first`, checked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import strawberry
from graphql.error import GraphQLError
from strawberry.types.field import StrawberryField

from bloop.platform.kit.pagination import Slice

MAX_PAGE = 200

T = TypeVar("T")
U = TypeVar("U")
Resolver = Callable[..., Any]


def field(description: str) -> Callable[[Resolver], StrawberryField]:
    decorate: Callable[[Resolver], StrawberryField] = strawberry.field(description=description)
    return decorate


@strawberry.type(description="one page of a list")
class Page(Generic[T]):
    items: list[T] = strawberry.field(description="this page's items, in the list's order")
    next: str | None = strawberry.field(
        description="the cursor (`after`) of the following page; null on the last")

    @classmethod
    def of(cls, listed: Slice[U], item: Callable[[U], T]) -> Page[T]:
        """The page of what a store listed, each made an item by `item`."""
        return cls(items=[item(x) for x in listed.items], next=listed.next)


def page_size(first: int) -> int:
    if not 1 <= first <= MAX_PAGE:
        raise GraphQLError(f"first must be between 1 and {MAX_PAGE}",
                           extensions={"code": "validation_failed", "status": 422})
    return first
