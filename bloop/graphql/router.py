"""`/graphql`: the composed schema over HTTP. Each request gets a context with the running
services and fresh DataLoaders. (A browser's GET for the page gets GraphiQL, from `ide`.)"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import nullcontext
from typing import Annotated, Any

from cross_web import HTTPException
from fastapi import Depends, Request, Response
from fastapi.routing import APIWebSocketRoute
from graphql import DocumentNode, FieldNode, OperationType, get_operation_ast
from strawberry import UNSET
from strawberry.fastapi import GraphQLRouter
from strawberry.http import GraphQLRequestData
from strawberry.types import ExecutionResult

from bloop.graphql import outcomes
from bloop.graphql.context import Context
from bloop.graphql.running import Running, TooManyRunning
from bloop.graphql.schema import build_schema
from bloop.platform.kit.auth import Principal, credentials, require
from bloop.platform.kit.errors import (
    count_refusal,
    json_fault,
    problem_response,
    status_code_name,
)
from bloop.platform.kit.idempotency.layer import changed_nothing, keyed
from bloop.platform.kit.middleware import note_access
from bloop.platform.kit.personal_data import not_stored
from bloop.platform.services import Service

PATH = "/graphql"


def context_getter(names: Sequence[str]) -> Callable[..., Awaitable[Context]]:
    """Every GraphQL request needs a signed-in caller (401 otherwise, before any resolver runs);
    each field then checks tenant, roles and scopes as its HTTP twin does. So every answer is
    made for a caller, and may hold people's data (`users`, a learner's `my…` fields), as
    `PERSONAL_ANSWER`'s routes do: no cache keeps it, a query sent over GET included."""

    async def get_context(request: Request, response: Response,
                          principal: Annotated[Principal, Depends(require())]) -> Context:
        not_stored(response)
        mounted = {name: getattr(request.app.state, name, None) for name in names}
        return Context({name if key == "service" else f"{name}.{key}": value
                        for name, m in mounted.items() if m is not None
                        for key, value in m.state.items()}, principal,
                       credentials(request.headers))

    return get_context


class ProblemGraphQLRouter(GraphQLRouter[Context, None]):
    """A request that is no GraphQL request (a body that is not JSON or no JSON object, no
    query, a mutation over GET) is answered with problem+json, as every other route's errors
    are, not plain text. There are no subscriptions, so no WebSocket route: an upgrade is
    refused as on any path that takes none (its context would need an HTTP request)."""

    def parse_json(self, data: str | bytes) -> Any:
        try:
            parsed = super().parse_json(data)
        except (RecursionError, ValueError) as exc:
            raise HTTPException(400, json_fault(exc) or str(exc)) from None
        # The body comes as bytes; a query string's `variables` and `extensions` come as str,
        # and may be null (strawberry checks their kind).
        if isinstance(data, bytes) and not isinstance(parsed, dict | list):
            raise HTTPException(400, "the body must be a JSON object: "
                                     '{"query": ..., "variables": ..., "operationName": ...}')
        return parsed

    async def execute_single(self, request: Any, request_adapter: Any, sub_response: Any,
                             context: Context, root_value: Any,
                             request_data: GraphQLRequestData) -> ExecutionResult:
        """Runs the operation, counting its outcome and its errors (see `outcomes`), and names
        the outcome and the operation in the access line: its HTTP status is 200 whatever
        failed."""
        context.operation_name = request_data.operation_name
        result = await super().execute_single(request, request_adapter, sub_response, context,
                                              root_value, request_data)
        found = outcomes.record(request.app.state.platform.metrics, result)
        name = outcomes.operation_name(request_data.operation_name)
        note_access(request.scope, graphql=found, **({"operation": name} if name else {}))
        if keyed(request.scope) and _wrote_nothing(context.document,
                                                   request_data.operation_name, result):
            changed_nothing(request.scope)
        return result

    def __init__(self, *args: Any, running: Running, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.running = running

    # Typed Any: the base's overloads (an HTTP request or a WebSocket) do not carry over.
    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        try:
            with (self.running.one_more(context.principal) if isinstance(context, Context)
                  else nullcontext()):
                return await super().run(request, context, root_value)
        except (HTTPException, TooManyRunning) as exc:
            if not isinstance(request, Request):
                raise
            status = exc.status if isinstance(exc, TooManyRunning) else exc.status_code
            found = outcomes.refused(request.app.state.platform.metrics,
                                     status_code_name(status))
            note_access(request.scope, graphql=found)
            if isinstance(exc, TooManyRunning):
                count_refusal(request, exc)
                return problem_response(exc.status, exc.code, exc.detail,
                                        instance=request.url.path, headers=exc.headers)
            return _problem(request, exc)


def _wrote_nothing(document: DocumentNode | None, operation_name: str | None,
                   result: ExecutionResult) -> bool:
    """Whether the operation (`document`, as parsed; None when it could not be) surely wrote
    nothing, so that its Idempotency-Key is freed for it to be sent again: no mutation, one
    that never ran, or one each of whose fields failed where it began (an error inside a
    field's answer came after its write)."""
    operation = None if document is None else get_operation_ast(document, operation_name)
    if operation is None or operation.operation != OperationType.MUTATION:
        return True
    errors = result.errors or []
    if result.data is None and any(not e.path for e in errors):
        return True  # refused as a whole (invalid, too many writes)
    selections = operation.selection_set.selections
    fields = [s for s in selections if isinstance(s, FieldNode)]
    if len(fields) != len(selections):
        return False  # fragments at its root: kept, as what they hold is not worked out
    failed = {e.path[0] for e in errors if e.path and len(e.path) == 1}
    return all((f.alias or f.name).value in failed for f in fields)


def _problem(request: Request, exc: HTTPException) -> Response:
    return problem_response(exc.status_code, status_code_name(exc.status_code), exc.reason,
                            instance=request.url.path)


def graphql_router(services: Sequence[Service], most_running: int
                   ) -> GraphQLRouter[Context, None] | None:
    """The router for the schema of `services`, which lets a caller run `most_running`
    operations at once; None when none of them has GraphQL fields."""
    schema = build_schema(services)
    if schema is None:
        return None
    router = ProblemGraphQLRouter(schema, path=PATH, context_getter=context_getter(
        [s.name for s in services]), tags=["graphql"], graphql_ide=None,
        subscription_protocols=(), running=Running(most_running))
    router.routes[:] = [r for r in router.routes if not isinstance(r, APIWebSocketRoute)]
    return router
