"""content's GraphQL fields: its reads (`reads`) and writes (`writes`)."""

from bloop.platform.content.graphql.reads import Query
from bloop.platform.content.graphql.writes import Mutation

__all__ = ["Mutation", "Query"]
