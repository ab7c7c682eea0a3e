"""The merged GraphQL schema documents itself: GraphiQL's docs and introspection are all a
third-party client has to go on."""

from __future__ import annotations

import pytest
import strawberry
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLUnionType,
)

from bloop.graphql.fields import field
from bloop.graphql.schema import _merged, build_schema
from bloop.platform.services import select


def undocumented() -> list[str]:
    """What of the schema of every service has no description: types as `Type`, fields and
    enum values as `Type.name`."""
    schema = build_schema(select(None))
    assert schema is not None
    missing: list[str] = []
    for name, t in sorted(schema._schema.type_map.items()):
        if name.startswith("__") or not isinstance(t, GraphQLObjectType | GraphQLInputObjectType
                                                     | GraphQLInterfaceType | GraphQLUnionType
                                                     | GraphQLEnumType):
            continue
        if not t.description:
            missing.append(name)
        if isinstance(t, GraphQLEnumType):
            missing += [f"{name}.{v}" for v, value in t.values.items() if not value.description]
        elif not isinstance(t, GraphQLUnionType):
            missing += [f"{name}.{f}" for f, field in t.fields.items() if not field.description]
    return missing


def test_every_type_field_and_enum_value_has_a_description() -> None:
    assert undocumented() == []


def test_no_service_s_field_hides_another_s() -> None:
    """content's `editConcept` took the place of learning's, which only a schema of learning
    alone showed."""
    schema = build_schema(select(None))
    assert schema is not None
    mutations = schema._schema.mutation_type
    assert mutations is not None
    assert {"editConcept", "editLearningConcept", "createConcept", "addLearningConcept"} <= set(
        mutations.fields)
    assert "PATCH …/concepts/{concept}" in (mutations.fields["editConcept"].description or "")

    @strawberry.type
    class One:
        @field("one")
        def same(self) -> int:
            return 1

    @strawberry.type
    class Other:
        @field("other")
        def same(self) -> int:
            return 2

    with pytest.raises(TypeError, match=r"Query\.same is defined by both"):
        _merged("Query", [One, Other], "both")
