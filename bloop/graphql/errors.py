"""Resolver errors, shaped like the HTTP API's problems: a `Problem` keeps its detail and gets its
`code` and `status` as extensions (and its Retry-After as `retryAfter`, in seconds), a store
that is down reads `store_unavailable`, and anything else is masked as 500 `internal_error`
with the `request_id` (a request's first such error is logged with its traceback, the others
counted in one line after it). A query refused by the limits (`refusal`) carries its `code`
too; other errors in the query itself (syntax, validation, variables: those without a `path`)
keep GraphQL's message, held to `MAX_MESSAGE` characters (one quotes a literal of the query
whole), and get 422 `validation_failed`, as the HTTP API's invalid requests do."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from typing import Any

from graphql.error import GraphQLError
from strawberry.extensions import MaskErrors

from bloop.platform.kit.errors import (
    Problem,
    StoreUnavailable,
    count_refusal,
    down_store,
    store_outages,
    unpaired_surrogate,
)
from bloop.platform.kit.logging import request_id_var
from bloop.platform.kit.outages import StoreOutages

log = logging.getLogger("bloop.graphql")
MAX_MESSAGE = 1_000


def _raised_by_a_resolver(error: GraphQLError) -> bool:
    return (error.path is not None and error.original_error is not None
            and not isinstance(error.original_error, GraphQLError))


def _problem(exc: BaseException, outages: StoreOutages) -> Problem | None:
    """The problem `exc` is (a store that is down noted in `outages`); None when it is an
    unexpected error."""
    if isinstance(exc, Problem):
        return exc
    if (refused := unpaired_surrogate(exc)) is not None:
        return refused
    if (store := down_store(exc)) is not None:
        outages.failed(store, exc)
        return StoreUnavailable(store)
    return None


def _retry_after(problem: Problem) -> dict[str, int]:
    """`retryAfter`: the seconds of the problem's Retry-After (its own, or a peer's it passes
    on); nothing when it has none or it is no number."""
    try:
        seconds = math.ceil(float(problem.headers["Retry-After"]))
    except (KeyError, ValueError, OverflowError):
        return {}
    return {"retryAfter": max(0, seconds)}


def in_the_query(error: GraphQLError) -> GraphQLError:
    """`error`, given 422 `validation_failed` when it was raised before execution (it has no
    `path`), has no `code` of its own, and points into the query (an exception of ours, which
    points nowhere, is not the caller's fault)."""
    ours = (error.original_error is not None and not isinstance(error.original_error, GraphQLError)
            and not error.locations)
    if error.path is not None or "code" in (error.extensions or {}) or ours:
        return error
    found = GraphQLError(message=_bounded(error.message), original_error=error.original_error,
                         extensions={**(error.extensions or {}), "code": "validation_failed",
                                     "status": 422})
    # its places as they are: graphql-core would work them out again from the text
    found.nodes, found.source, found.positions = error.nodes, error.source, error.positions
    found.locations = error.locations
    return found


def _bounded(message: str) -> str:
    """`message`, its middle left out past `MAX_MESSAGE` characters."""
    if len(message) <= MAX_MESSAGE:
        return message
    half = MAX_MESSAGE // 2
    return (f"{message[:half]}... ({len(message) - 2 * half} characters left out) ..."
            f"{message[-half:]}")


def refusal(message: str, code: str, limit: int, nodes: Any = None) -> GraphQLError:
    """A query refused before it runs for going past `limit`: 422 with `code`, as a resolver's
    `query_too_large` reads."""
    return GraphQLError(message, nodes, extensions={"code": code, "status": 422, "limit": limit})


class ProblemErrors(MaskErrors):
    """Made for each request."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=_raised_by_a_resolver)
        self.unexpected = 0

    def on_operation(self) -> Iterator[None]:
        yield from super().on_operation()
        if self.unexpected > 1:
            log.error("further unhandled errors in resolvers of this request",
                      extra={"more": self.unexpected - 1})

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        assert error.original_error is not None
        request = getattr(self.execution_context.context, "request", None)
        problem = _problem(error.original_error, store_outages(getattr(request, "app", None)))
        if problem is None:
            self.unexpected += 1
            if self.unexpected == 1:
                log.error("unhandled error in a resolver", exc_info=error.original_error)
            rid = request_id_var.get()
            problem = Problem("an unexpected error occurred", status=500, code="internal_error",
                              extra={"request_id": rid} if rid else None)
        count_refusal(request, problem)
        return GraphQLError(
            message=problem.detail, nodes=error.nodes, source=error.source,
            positions=error.positions, path=error.path, original_error=None,
            extensions={"code": problem.code, "status": problem.status, **problem.extra,
                        **_retry_after(problem)})
