"""`field`: `strawberry.field(description=...)` with a type mypy can check the resolver through;
`Page` and `page_size`: a list field's page (`XPage` in the schema for a list of `X`) and its
`first`, checked; `sized`: a text argument held to the length rules of its HTTP twin, and
made what its twin makes of it; `selected`: how many fields of some names the items of a field
select."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast, get_args

import strawberry
from annotated_types import MaxLen, MinLen
from graphql import FieldNode, FragmentSpreadNode, InlineFragmentNode, SelectionSetNode
from graphql.error import GraphQLError
from pydantic import AfterValidator
from strawberry.types.field import StrawberryField
from strawberry.types.info import Info

from bloop.platform.kit.pagination import Slice

MAX_PAGE = 200

T = TypeVar("T")
U = TypeVar("U")
S = TypeVar("S", bound=str | None)
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


def invalid(message: str, *loc: str, kind: str = "value_error") -> GraphQLError:
    """422 `validation_failed`; for what is at `loc` (an argument's name as the schema spells
    it), with `errors` listing it as the HTTP API's `Invalid` does."""
    listed = {"errors": [{"loc": list(loc), "msg": message, "type": kind}]} if loc else {}
    return GraphQLError(message, extensions={"code": "validation_failed", "status": 422,
                                             **listed})


def page_size(first: int) -> int:
    if not 1 <= first <= MAX_PAGE:
        raise invalid(f"first must be between 1 and {MAX_PAGE}", "first",
                      kind="greater_than_equal" if first < 1 else "less_than_equal")
    return first


def sized(value: S, name: str, like: object) -> S:
    """`value` of the argument `name`, refused (422 `validation_failed`) outside the lengths
    that `like`, the type of the HTTP API's parameter for it (`Annotated[str, Query(...)]`),
    allows, then passed through its `AfterValidator`s (one taking only the value), as an
    empty `After` becomes None."""
    rules = [rule for meta in get_args(like)[1:] for rule in getattr(meta, "metadata", ())]
    least = max([r.min_length for r in rules if isinstance(r, MinLen)], default=0)
    most = min(r.max_length for r in rules if isinstance(r, MaxLen))
    if value is not None and not least <= len(value) <= most:
        raise invalid(f"{name} must be {least} to {most} characters long" if least else
                      f"{name} may be at most {most} characters long", name,
                      kind="string_too_short" if len(value) < least else "string_too_long")
    for meta in get_args(like)[1:]:
        if isinstance(meta, AfterValidator):
            value = cast(Callable[[S], S], meta.func)(value)
    return value


def selected(info: Info[Any, Any], names: frozenset[str]) -> int:
    """How many fields of `names` each item of the field `info` resolves selects at its own
    level (one per name or alias, as graphql runs them; fragments expanded, `@skip` and
    `@include` not heeded), to count before the list is completed what those fields read."""
    fragments = info._raw_info.fragments
    keys: set[str] = set()

    def walk(selections: SelectionSetNode | None) -> None:
        for node in selections.selections if selections is not None else ():
            if isinstance(node, FieldNode):
                if node.name.value in names:
                    keys.add((node.alias or node.name).value)
            elif isinstance(node, InlineFragmentNode):
                walk(node.selection_set)
            elif isinstance(node, FragmentSpreadNode) and node.name.value in fragments:
                walk(fragments[node.name.value].selection_set)

    for node in info._raw_info.field_nodes:
        walk(node.selection_set)
    return len(keys)
