"""The shape of every list the API returns."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list; `next` is the cursor for the following page (null on the last)."""

    items: list[T]
    next: str | None = None
