"""The schema of one process: the `Query` and `Mutation` types of the services it runs, each
merged. A service takes part by having a `graphql` module (`bloop/platform/<name>/graphql.py`, or a package)
with a strawberry `Query`, a `Mutation`, or both. Their fields are nullable, so that one failing
answers null beside its error and the others keep their data (a non-null field's error would
null the whole `data`)."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterable, Sequence
from typing import Any

import strawberry
from graphql import parse
from graphql.error import GraphQLError
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.base import get_object_definition
from strawberry.types.graphql import OperationType

from bloop.graphql.context import Context
from bloop.graphql.errors import ProblemErrors, in_the_query
from bloop.graphql.introspection import Introspections, introspection_only, key_of
from bloop.graphql.limits import Validation, limits
from bloop.graphql.operations import OneOperation
from bloop.graphql.scalars import SCALARS
from bloop.platform.services import Service

QUERY = ("the reads of the services this process runs; each field may be null beside its error "
         "in `errors`, the others keeping their data")
MUTATION = ("the writes of the services this process runs, each as its HTTP twin does it, one "
            "after the other; each field may be null beside its error in `errors`, the writes "
            "before and after it keeping their results")


class Schema(strawberry.Schema):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.introspections = Introspections()

    async def execute(
            self, query: str | None, variable_values: dict[str, Any] | None = None,
            context_value: Any | None = None, root_value: Any | None = None,
            operation_name: str | None = None,
            allowed_operation_types: Iterable[OperationType] | None = None,
            operation_extensions: dict[str, Any] | None = None) -> ExecutionResult:
        """Errors in the query (syntax, validation, variables) get their code here, after the
        extensions: a syntax error is raised by the parsing extension, which no extension sees.
        An introspection-only operation answered before is answered again from `introspections`."""
        key = None if operation_extensions else key_of(query, operation_name, variable_values)
        allowed = allowed_operation_types is None or OperationType.QUERY in set(
            allowed_operation_types)
        if key is not None and allowed and (kept := self.introspections.get(key)) is not None:
            return ExecutionResult(data=kept, errors=None)
        result = await super().execute(query, variable_values, context_value, root_value,
                                       operation_name, allowed_operation_types,
                                       operation_extensions)
        if result.errors:
            result.errors = [in_the_query(e) for e in result.errors]
        elif key is not None and query is not None and result.data is not None:
            document = (context_value.document if isinstance(context_value, Context) else None)
            if introspection_only(document or parse(query), operation_name):
                self.introspections.keep(key, result.data)
        return result

    def process_errors(self, errors: list[GraphQLError],
                       execution_context: ExecutionContext | None = None) -> None:
        """Logs nothing: errors in a query are the caller's to read, and resolver errors are
        logged (once, without the noise of expected ones) by `ProblemErrors`."""


def roots(services: Sequence[Service], name: str) -> list[type]:
    """The `name` (`Query` or `Mutation`) types of those of `services` that have a GraphQL
    module, in their order."""
    found: list[type] = []
    for service in services:
        module = f"{service.mount.__module__.rpartition('.')[0]}.graphql"
        if importlib.util.find_spec(module) is None:
            continue
        root = getattr(importlib.import_module(module), name, None)
        if isinstance(root, type):
            found.append(root)
    return found


def _merged(name: str, types: list[type], description: str) -> type | None:
    """`types` merged as `name`; a field two of them define is an error (merging keeps the
    last one's and drops the other's silently)."""
    if not types:
        return None
    seen: dict[str, type] = {}
    for kind in types:
        for found in get_object_definition(kind, strict=True).fields:
            if (other := seen.setdefault(found.name, kind)) is not kind:
                raise TypeError(f"{name}.{found.name} is defined by both {other.__module__} "
                                f"and {kind.__module__}")
    merged = merge_types(name, tuple(types))
    get_object_definition(merged, strict=True).description = description
    return merged


def build_schema(services: Sequence[Service]) -> Schema | None:
    """The merged schema; None when no service of `services` has GraphQL fields."""
    query = _merged("Query", roots(services, "Query"), QUERY)
    if query is None:
        return None
    return Schema(query=query, mutation=_merged("Mutation", roots(services, "Mutation"), MUTATION),
                  config=StrawberryConfig(scalar_map=SCALARS),
                  extensions=[*limits(), OneOperation, Validation, ProblemErrors])
