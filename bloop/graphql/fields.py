"""`field`: `strawberry.field(description=...)` with a type mypy can check the resolver through."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import strawberry
from strawberry.types.field import StrawberryField

Resolver = Callable[..., Any]


def field(description: str) -> Callable[[Resolver], StrawberryField]:
    decorate: Callable[[Resolver], StrawberryField] = strawberry.field(description=description)
    return decorate
