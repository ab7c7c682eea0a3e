"""The merged GraphQL schema documents itself: GraphiQL's docs and introspection are all a
third-party client has to go on."""

from __future__ import annotations

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLUnionType,
)

from bloop.graphql.schema import build_schema
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
