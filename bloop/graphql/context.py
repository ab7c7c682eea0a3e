"""What every resolver gets as `info.context`: the signed-in caller (and the credential headers
they sent, for a call made on their behalf to another Bloop service), the services this process
runs, and DataLoaders made once per request (so a batch never mixes requests and a cache never
outlives one)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar, cast

from graphql import DocumentNode
from strawberry.fastapi import BaseContext

from bloop.platform.kit.auth import Principal, authorise
from bloop.platform.kit.errors import Problem

T = TypeVar("T")


class Context(BaseContext):
    def __init__(self, services: Mapping[str, object], principal: Principal,
                 credentials: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.services = dict(services)
        self.principal = principal
        self.credentials = dict(credentials or {})
        self._loaders: dict[str, Any] = {}
        self._counted: dict[str, int] = {}
        self.operation_name: str | None = None
        self.document: DocumentNode | None = None  # as parsed (limits.TokenLimit)
        """The `operationName` the request gave, if any (set as the request is read)."""

    def authorise(self, tenant: str, *roles: str, scopes: Iterable[str] = ()) -> Principal:
        """The same rule as the HTTP route that reads the same thing: the caller must be in
        `tenant`, hold one of `roles` (any member when none) and every one of `scopes`."""
        authorise(self.principal, tenant, roles, scopes)
        return self.principal

    def service(self, name: str, kind: type[T]) -> T:
        """The running service `name` (or what it keeps beside its service object, as
        `<service>.<name>`); its fields are in the schema only when it runs."""
        service = self.services[name]
        if not isinstance(service, kind):
            raise TypeError(f"the {name} service is a {type(service).__name__}, "
                            f"not a {kind.__name__}")
        return service

    def loader(self, name: str, make: Callable[[], T]) -> T:
        """This request's DataLoader `name`, made by `make` on first use."""
        if name not in self._loaders:
            self._loaders[name] = make()
        return cast(T, self._loaders[name])

    def count(self, what: str, items: int, most: int) -> None:
        """Counts `items` more `what` this request reads; past `most` in all, the field asking
        fails (422 `query_too_large`), and so does each one after it."""
        total = self._counted[what] = self._counted.get(what, 0) + items
        if total > most:
            raise Problem(f"the query reads more than {most} {what}: ask for fewer or smaller "
                          "pages, or fewer aliases", status=422, code="query_too_large")

    def once(self, name: str, work: Callable[[], Awaitable[T]]) -> Awaitable[T]:
        """What `work` gives, worked out once in this request: the fields (and aliases) asking
        for `name` again share it. `work` is called here, by the first only (what it raises,
        that field raises)."""
        return shared(self.loader(f"once:{name}", lambda: asyncio.ensure_future(work())))


def shared(result: Awaitable[T]) -> Awaitable[T]:
    """`result`, which other fields await too (a DataLoader's batch, a `once`), awaited so that
    a field cancelled meanwhile does not cancel it for them: graphql-core cancels the other
    items of a list when one of them fails."""
    return asyncio.shield(result)
