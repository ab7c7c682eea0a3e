"""What one GraphQL document may ask for, checked before anything runs (graphql-core executes on
the event loop, so one costly query would hold every other request): at most `MAX_CHARACTERS`
characters (checked before it is read), `MAX_TOKENS` tokens and names of at most `MAX_NAME`
characters (checked as it is parsed); then, before graphql-core validates it, at most
`MAX_SELECTIONS` selections and `MAX_REPEATS` pairs of repeats (see `repeats`); and, once it is
valid and its variables are known, the operation to run, its fragments expanded, at most
`MAX_ALIASES` aliases, `MAX_WRITES` mutations and an estimated cost of at most `MAX_COST`. Each
refusal carries its own `code`.

The cost counts each field the operation selects, times the items of the lists around it: a
page size given as `first` or `limit` (a variable's value when it is one, the argument's
default when the query leaves it out; at most `LARGEST_PAGE`), else the items `LIST_ITEMS` has
for a list of a lesson's content, and `OTHER_LIST_ITEMS` for any other list. An item of a union
or an interface is of one type, so it costs what the fragments for its costliest type select.
Fragments are measured once each, so a document reusing a fragment many times costs its measure
many times, not the work of expanding it again."""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLList,
    GraphQLNonNull,
    GraphQLOutputType,
    GraphQLSchema,
    InlineFragmentNode,
    NamedTypeNode,
    NameNode,
    NoFragmentCyclesRule,
    OperationType,
    SelectionSetNode,
    Source,
    SourceLocation,
    get_named_type,
    get_operation_ast,
    is_abstract_type,
    validate,
)
from graphql.error import GraphQLError, GraphQLSyntaxError
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values
from graphql.language.parser import Parser, nested_too_deeply_error
from graphql.type.definition import GraphQLInterfaceType, GraphQLObjectType
from graphql.type.introspection import SchemaMetaFieldDef, TypeMetaFieldDef
from strawberry.extensions import SchemaExtension
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

from bloop.graphql.context import Context
from bloop.graphql.errors import refusal
from bloop.graphql.fields import MAX_PAGE
from bloop.graphql.repeats import repeats

MAX_CHARACTERS = 65_536
"""Characters one document may have, comments and strings included: the tokens are counted, not
their size, so a 1 MB name or string cost 0.4 s to read, and 1 MB of unknown names seconds of
graphql-core's "Did you mean" suggestions. The full introspection query GraphiQL sends has about
1,700, a course page with every block and question type about 1,300."""
MAX_TOKENS = 5_000
MAX_NAME = 256
"""Characters of one name (a field's, an argument's, a type's, a variable's ...): graphql-core
compares an unknown one with every name it could have meant, and its error quotes it."""
MAX_ERRORS = 20
"""Errors graphql-core's validation reports before it stops (its own default is 100): it scans
the text from the start to the line break after each error's places, so 100 errors of two
places each in 64 KiB of one line took 350 ms."""
MAX_ALIASES = 100
MAX_WRITES = 20
"""Mutation fields one operation may run (each alias one, fragments expanded): a request counts
once against its caller's rate limit, where each write on the HTTP API counts one."""
MAX_COST = 100_000
MAX_SELECTIONS = 1_000
"""Fields, fragment spreads and inline fragments, fragments expanded: the full introspection
query makes about 240, a course page with every block and question type about 120."""
MAX_REPEATS = 1_000
"""Pairs of selections of one name in one place, and of fragments spread in one place, which
graphql-core compares (its work grows with their square): at most about 15 ms of its
validation, where that course page makes about 100."""
MAX_LESSONS = 1_500
"""Lessons one request may list (by the courses' lesson counts, as their lessons are asked
for, before they are read), about 0.2 s of the event loop without their blocks (measured: 33
lists of 595 lessons, 19,635 under the 20,000 allowed before, held it 1.7 s); past it, the
fields listing more fail with `query_too_large`."""
MAX_BLOCKS = 3_000
"""Blocks one request may make, a quiz's questions and choices each counting one more (a quiz
of 100 questions of 30 choices is as much work as 3,000 blocks): about 0.17 s of the event
loop and 1 MB of answer, about 90 lessons of 7 blocks and a quiz of 5 questions of 4 choices
(measured: 4,760 blocks, a quarter of them such quizzes, held it 1.5-1.8 s). A course's
`lessons` counts what its lessons' `blocks` and `mediaLinks` will read before any is made, and
past it fails whole with `query_too_large`; a lesson asked for alone, as its `blocks` are."""
CHOICES = 4
LIST_ITEMS = {
    ("Lesson", "blocks"): 8,
    ("QuizBlock", "questions"): 5,
    ("SingleChoiceQuestion", "options"): CHOICES,
    ("MultipleChoiceQuestion", "options"): CHOICES,
    ("OrderingQuestion", "items"): CHOICES,
    ("MatchingQuestion", "left"): CHOICES,
    ("MatchingQuestion", "right"): CHOICES,
}
"""The items of the lists of a lesson's content as authors write them: 8 blocks, a quiz of 5
questions (as the AI makes them unless asked otherwise), a question of 4 choices. Not their
maxima (200 blocks, 100 questions, 30 choices), whose product no estimate could allow: what a
request reads is held at run time to `MAX_LESSONS` lessons and `MAX_BLOCKS` blocks."""
OTHER_LIST_ITEMS = 10
PAGE_ARGUMENTS = frozenset({"first", "limit"})
LARGEST_PAGE = MAX_PAGE


@dataclass(frozen=True)
class Measure:
    cost: int = 0
    aliases: int = 0

    def __add__(self, other: Measure) -> Measure:
        return Measure(self.cost + other.cost, self.aliases + other.aliases)

    def times(self, items: int) -> Measure:
        """Inside a list of `items`: each item costs again; the aliases are written once."""
        return Measure(self.cost * items, self.aliases)


def _page_size(node: FieldNode, definition: Any, variables: VariableValues) -> int | None:
    """The page `node` asks for: its `first` or `limit` (a variable's value), else that
    argument's default."""
    if not PAGE_ARGUMENTS.intersection(definition.args):
        return None
    try:
        given = get_argument_values(definition, node, variables)
    except GraphQLError:  # the field fails with this error, as it runs: count it whole
        return LARGEST_PAGE
    for name in PAGE_ARGUMENTS.intersection(given):
        size = given[name]
        if isinstance(size, int):
            return max(0, min(size, LARGEST_PAGE))
    return None


def _is_list(kind: GraphQLOutputType) -> bool:
    return isinstance(kind.of_type if isinstance(kind, GraphQLNonNull) else kind, GraphQLList)


class CostLimit(SchemaExtension):
    """Refuses a valid operation past `MAX_ALIASES` aliases, `MAX_WRITES` mutations or `MAX_COST`
    before it runs."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is not None and context.result is None:
            refused = _costly(context.schema._schema, context.graphql_document,
                              context.operation_name, context.variables)
            if refused is not None:
                context.result = ExecutionResult(data=None, errors=[refused])
        yield


def _costly(schema: GraphQLSchema, document: DocumentNode, name: str | None,
            given: dict[str, Any] | None) -> GraphQLError | None:
    operation = get_operation_ast(document, name)
    if operation is None:  # none, or no name to choose one by: graphql says so as it runs
        return None
    root = (schema.query_type if operation.operation == OperationType.QUERY
            else schema.mutation_type)
    variables = get_variable_values(schema, operation.variable_definitions or (), given or {})
    if root is None or isinstance(variables, list):  # graphql refuses them as it runs
        return None
    if operation.operation == OperationType.MUTATION:
        fragments = {d.name.value: d for d in document.definitions
                     if isinstance(d, FragmentDefinitionNode)}
        if (writes := _fields(operation.selection_set, fragments)) > MAX_WRITES:
            return refusal(f"the operation runs {writes} mutations; the limit is {MAX_WRITES}: "
                           "send the others in another request", "too_many_writes",
                           MAX_WRITES, operation)
    measure = QueryCost(schema, document, variables).selections(operation.selection_set, root,
                                                                paged=False)
    if measure.aliases > MAX_ALIASES:
        return refusal(f"the query uses {measure.aliases} aliases (with its fragments "
                       f"expanded); the limit is {MAX_ALIASES}", "too_many_aliases",
                       MAX_ALIASES, operation)
    if measure.cost > MAX_COST:
        return refusal(f"the query may select about {measure.cost} values; the limit is "
                       f"{MAX_COST}: ask for fewer fields, smaller pages or fewer aliases",
                       "query_too_costly", MAX_COST, operation)
    return None


def _fields(selections: SelectionSetNode,
            fragments: dict[str, FragmentDefinitionNode]) -> int:
    """The fields of `selections` at its own level, its fragments expanded (validation has
    refused fragments that spread themselves)."""
    found = 0
    for node in selections.selections:
        if isinstance(node, FieldNode):
            found += 1
        elif isinstance(node, InlineFragmentNode):
            found += _fields(node.selection_set, fragments)
        elif isinstance(node, FragmentSpreadNode) and node.name.value in fragments:
            found += _fields(fragments[node.name.value].selection_set, fragments)
    return found


class QueryCost:
    """Measures the selections of one operation of `document`, its `variables` given."""

    def __init__(self, schema: GraphQLSchema, document: DocumentNode,
                 variables: VariableValues) -> None:
        self.schema = schema
        self.variables = variables
        self.fragments = {d.name.value: d for d in document.definitions
                          if isinstance(d, FragmentDefinitionNode)}
        self.measured: dict[tuple[str, bool], Measure] = {}

    def selections(self, selections: SelectionSetNode | None, parent: Any,
                   paged: bool) -> Measure:
        fields = Measure()
        fragments: list[tuple[Any, Measure]] = []
        for node in selections.selections if selections is not None else ():
            if isinstance(node, FieldNode):
                fields += self._field(node, parent, paged)
            elif isinstance(node, InlineFragmentNode):
                condition = self._type(node.type_condition) or parent
                fragments.append((condition, self.selections(node.selection_set, condition,
                                                             paged)))
            elif isinstance(node, FragmentSpreadNode):
                fragment = self.fragments.get(node.name.value)
                condition = self._type(fragment.type_condition) if fragment else None
                fragments.append((condition, self._fragment(node.name.value, paged)))
        return fields + self._costliest(parent, fragments)

    def _costliest(self, parent: Any, fragments: list[tuple[Any, Measure]]) -> Measure:
        """What `fragments` cost an item of `parent`: an item is of one type, which the
        fragments on other types cost nothing, so of its costliest type (a union's or an
        interface's member)."""
        schema = self.schema
        aliases = sum(measure.aliases for _, measure in fragments)
        if is_abstract_type(parent):
            kinds = schema.get_possible_types(parent)
        elif isinstance(parent, GraphQLObjectType):
            kinds = [parent]
        else:  # no such type: another rule refuses it
            return Measure(sum(measure.cost for _, measure in fragments), aliases)
        return Measure(max((sum(measure.cost for condition, measure in fragments
                                if _applies(schema, condition, kind)) for kind in kinds),
                           default=0), aliases)

    def _type(self, name: NamedTypeNode | None) -> Any:
        return self.schema.get_type(name.name.value) if name is not None else None

    def _fragment(self, name: str, paged: bool) -> Measure:
        """The fragment's measure where it is spread: on a page (`paged`), its lists are the
        page's, as an inline fragment's there are."""
        key = (name, paged)
        if key not in self.measured:
            self.measured[key] = Measure()  # a cycle (refused by another rule) counts nothing
            fragment = self.fragments.get(name)
            if fragment is not None:
                self.measured[key] = self.selections(
                    fragment.selection_set, self._type(fragment.type_condition), paged=paged)
        return self.measured[key]

    def _field(self, node: FieldNode, parent: Any, paged: bool) -> Measure:
        name = node.name.value
        alias = Measure(aliases=1 if node.alias else 0)
        if name == "__typename":
            return alias
        definition = _definition(parent, name)
        if definition is None:
            return alias + Measure(cost=1)  # no such field: another rule refuses it
        page = _page_size(node, definition, self.variables)
        if page is not None:
            items = page
        elif _is_list(definition.type):
            # a page's list: its size is the page's
            items = 1 if paged else LIST_ITEMS.get((parent.name, name), OTHER_LIST_ITEMS)
        else:
            items = 1
        inner = self.selections(node.selection_set, get_named_type(definition.type),
                                 paged=page is not None)
        return alias + Measure(cost=1) + inner.times(items)


def _applies(schema: GraphQLSchema, condition: Any, kind: GraphQLObjectType) -> bool:
    """Whether a fragment on `condition` selects anything of an item of type `kind`."""
    return (condition is None or condition is kind  # no such type: another rule refuses it
            or (is_abstract_type(condition) and schema.is_sub_type(condition, kind)))


def _definition(parent: Any, name: str) -> Any:
    if name == "__schema":
        return SchemaMetaFieldDef
    if name == "__type":
        return TypeMetaFieldDef
    if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
        return parent.fields.get(name)
    return None


class TokenLimit(SchemaExtension):
    """Parses the document (see `parsed`)."""

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is None and context.query:
            context.graphql_document = parsed(context.query)
        if isinstance(context.context, Context):
            context.context.document = context.graphql_document
        yield


class _Source(Source):
    """Finds a position's line by bisection: graphql-core scans the text up to the next line
    break for each error's location, and 100 errors in 64 KiB of one line took 170 ms."""

    @cached_property
    def _breaks(self) -> list[re.Match[str]]:
        return list(re.finditer(r"\r\n|[\n\r]", self.body))

    @cached_property
    def _starts(self) -> list[int]:
        return [found.start() for found in self._breaks]

    def get_location(self, position: int) -> SourceLocation:
        line = bisect_left(self._starts, position)  # the breaks before it
        start = self._breaks[line - 1].end() if line else 0
        return SourceLocation(line + 1, position + 1 - start)


class _Parser(Parser):
    def parse_name(self) -> NameNode:
        name = super().parse_name()
        if len(name.value) > MAX_NAME:
            raise refusal(f"the query has a name of {len(name.value)} characters (beginning "
                          f"{name.value[:20]}...); the limit is {MAX_NAME}", "query_too_long",
                          MAX_NAME, name)
        return name


def parsed(query: str) -> DocumentNode:
    """`query` parsed; refused (`query_too_long`) past `MAX_CHARACTERS` characters (before it is
    read), `MAX_TOKENS` tokens or a name of `MAX_NAME` characters."""
    if len(query) > MAX_CHARACTERS:
        raise refusal(f"the query has {len(query)} characters; the limit is {MAX_CHARACTERS}: "
                      "shorten it, with fragments or variables", "query_too_long",
                      MAX_CHARACTERS)
    parser = _Parser(_Source(query), max_tokens=MAX_TOKENS)
    try:
        return parser.parse_document()
    except RecursionError:
        raise nested_too_deeply_error(parser) from None
    except GraphQLSyntaxError as error:
        if error.description.startswith(f"Document contains more than {MAX_TOKENS} "):
            raise refusal(f"the query has more than {MAX_TOKENS} tokens (names, values "
                          "and punctuation), the most a query may have: shorten it, with "
                          "fragments or variables", "query_too_long", MAX_TOKENS) from None
        raise


class RepeatLimit(SchemaExtension):
    """Refuses a document past `MAX_SELECTIONS` or `MAX_REPEATS` before it is validated."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is not None:
            refused = _repeated(context.schema._schema, context.graphql_document)
            if refused:
                context.pre_execution_errors = refused
        yield


class Validation(SchemaExtension):
    """Validates the document as strawberry would, but stops at `MAX_ERRORS` errors (after the
    other extensions' own checks, which strawberry's validation waits for too)."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if (context.graphql_document is not None and context.validation_rules
                and context.pre_execution_errors is None):
            context.pre_execution_errors = validate(
                context.schema._schema, context.graphql_document,
                (*context.validation_rules, MaybeNullValidationRule, OneOfInputValidationRule),
                max_errors=MAX_ERRORS)
        yield


def _repeated(schema: GraphQLSchema, document: DocumentNode) -> list[GraphQLError]:
    measured = repeats(document, MAX_SELECTIONS)
    if measured.selections > MAX_SELECTIONS:
        # a fragment spreading itself expands without end: graphql's own error says so
        return validate(schema, document, [NoFragmentCyclesRule]) or [refusal(
            f"the query has more than {MAX_SELECTIONS} selections (fields, fragment spreads and "
            f"inline fragments) once its fragments are expanded; the limit is {MAX_SELECTIONS}: "
            "ask for less, or split it", "too_many_selections", MAX_SELECTIONS)]
    if measured.pairs > MAX_REPEATS:
        if measured.name == "...":
            what, kind = f"{measured.times} fragments are spread", "fragments spread"
            advice = "spread fewer fragments in one place"
        else:
            what = f"`{measured.name}` is selected {measured.times} times"
            kind = "selections of one name"
            advice = "select each field once in one place"
        return [refusal(
            f"the query repeats itself too much: {what} {measured.place} (through fragments too, "
            f"and again for each repeat of a field around it), and every two {kind} in one place "
            f"are compared: {measured.pairs} pairs in all, the limit is "
            f"{MAX_REPEATS}: {advice}", "query_too_repetitive", MAX_REPEATS)]
    return []


def limits() -> list[Callable[[], SchemaExtension]]:
    """The schema extensions that keep documents within these limits (made for each request:
    an extension holds the request it works on)."""
    return [TokenLimit, RepeatLimit, CostLimit]
