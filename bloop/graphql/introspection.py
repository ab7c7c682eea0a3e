"""The answers of introspection-only operations (each field at their root `__schema`, `__type` or
`__typename`), kept: they depend on the schema only, which is the same for every caller (fields
check the caller as they run, and introspection runs none), and the full introspection query
GraphiQL sends costs about 150 ms of the event loop to parse, validate and run. An answer is
kept only once the operation passed every check and ran without error, so the same document
(its tokens: comments, commas and spacing aside), operation name and variables get it again
without any of that work; any other document runs as before."""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from typing import Any

from graphql import DocumentNode, FieldNode, OperationType, get_operation_ast
from graphql.error import GraphQLSyntaxError
from graphql.language import Lexer, Source, TokenKind

from bloop.graphql.limits import MAX_CHARACTERS, MAX_NAME, MAX_TOKENS

INTROSPECTION_FIELDS = frozenset({"__schema", "__type", "__typename"})
COSTLY = re.compile(r"__(schema|type)\b")
"""What a document worth keeping asks for (`__typename`, which clients put in every selection, is
cheap to answer: a document of it alone is run again)."""
KEPT = 32
"""Answers kept (the least recently used goes first): GraphiQL and clients send a few texts."""
KEPT_BYTES = 4_000_000
"""Their JSON and their keys at most, in all (about 8 times that in memory): the full
introspection's is 190 KB, a deep one within the limits about 1 MB."""

Key = tuple[str, str | None, str]


def key_of(query: str | None, operation_name: str | None,
           variables: dict[str, Any] | None) -> Key | None:
    """What an answer is kept under; None for a document that cannot be a costly introspection
    (it names neither `__schema` nor `__type`), or that parsing refuses."""
    if not query or len(query) > MAX_CHARACTERS or COSTLY.search(query) is None:
        return None
    try:
        given = json.dumps(variables or {}, sort_keys=True)
        tokens = _tokens(query)
    except (TypeError, ValueError, GraphQLSyntaxError):
        return None
    return (tokens, operation_name, given) if tokens is not None else None


def _tokens(query: str) -> str | None:
    """The tokens of `query` (comments and commas left out), each its kind and its value (None
    past the limits: parsing refuses it); about 1.5 ms for the full introspection query, where
    parsing it takes 2.3 and printing the parsed document 1.4 more."""
    lexer, found = Lexer(Source(query)), list[tuple[str, str | None]]()
    while (token := lexer.advance()).kind != TokenKind.EOF:
        if len(found) >= MAX_TOKENS or (token.kind == TokenKind.NAME
                                         and len(token.value or "") > MAX_NAME):
            return None
        found.append((token.kind.value, token.value))
    return json.dumps(found, separators=(",", ":"))


def introspection_only(document: DocumentNode, operation_name: str | None) -> bool:
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation != OperationType.QUERY:
        return False
    selections = operation.selection_set.selections
    return all(isinstance(s, FieldNode) and s.name.value in INTROSPECTION_FIELDS
               for s in selections)


class Introspections:
    def __init__(self, size: int = KEPT, budget: int = KEPT_BYTES) -> None:
        self.size, self.budget, self.used = size, budget, 0
        self.kept: OrderedDict[Key, tuple[dict[str, Any], int]] = OrderedDict()

    def get(self, key: Key) -> dict[str, Any] | None:
        found = self.kept.get(key)
        if found is None:
            return None
        self.kept.move_to_end(key)
        return found[0]

    def keep(self, key: Key, data: dict[str, Any]) -> None:
        size = len(json.dumps(data)) + sum(len(part or "") for part in key)
        if size > self.budget or key in self.kept:
            return
        self.kept[key] = (data, size)
        self.used += size
        while len(self.kept) > self.size or self.used > self.budget:
            self.used -= self.kept.popitem(last=False)[1][1]
