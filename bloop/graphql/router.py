"""`/graphql`: the composed schema over HTTP (GraphiQL on GET from a browser). Each request gets a
context with the running services and fresh DataLoaders."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from fastapi import Request
from strawberry.fastapi import GraphQLRouter

from bloop.graphql.context import Context
from bloop.graphql.schema import build_schema
from bloop.platform.services import Service

PATH = "/graphql"


def context_getter(names: Sequence[str]) -> Callable[[Request], Awaitable[Context]]:
    async def get_context(request: Request) -> Context:
        mounted = {name: getattr(request.app.state, name, None) for name in names}
        return Context({name: m.state["service"] for name, m in mounted.items()
                        if m is not None and "service" in m.state})

    return get_context


def graphql_router(services: Sequence[Service]) -> GraphQLRouter[Context, None] | None:
    """The router for the schema of `services`; None when none of them has GraphQL fields."""
    schema = build_schema(services)
    if schema is None:
        return None
    return GraphQLRouter(schema, path=PATH, context_getter=context_getter(
        [s.name for s in services]), tags=["graphql"])
