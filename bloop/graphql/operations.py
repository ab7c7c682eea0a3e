"""A document of several operations runs the one its request names as `operationName`; without
one it is refused (GraphQL asks for an error there; strawberry would run the first)."""

from __future__ import annotations

from collections.abc import Iterator

from graphql import OperationDefinitionNode
from strawberry.extensions import SchemaExtension

from bloop.graphql.context import Context
from bloop.graphql.fields import invalid


class OneOperation(SchemaExtension):
    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if (document is not None and context.pre_execution_errors is None
                and isinstance(context.context, Context) and context.context.operation_name is None):
            operations = sum(isinstance(d, OperationDefinitionNode) for d in document.definitions)
            if operations > 1:
                context.pre_execution_errors = [invalid(
                    f"the document holds {operations} operations: name the one to run as "
                    "`operationName`")]
        yield
