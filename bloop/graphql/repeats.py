"""How much a GraphQL document repeats itself, measured before graphql-core validates it: its
check that fields of one name can be merged compares every two selections that answer under
one name at one place of the result (a field selected twice there, directly or through
fragments, or below a field that is itself repeated) and every two fragments spread at one
place, so a few kilobytes repeating one field hold the event loop for seconds.

The document is walked with its fragments expanded, place by place (the selections of all the
fields answering under one name below one place are merged, as that check merges them), and the
walk stops once it has met `most` selections: its work is bounded by that, however the document
nests its fragments."""

from __future__ import annotations

from dataclasses import dataclass

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)


@dataclass(frozen=True)
class Place:
    """Where in the result: the names from the top, each below the one before."""

    names: tuple[str, ...]

    def __str__(self) -> str:
        return f"in `{'.'.join(self.names)}`" if self.names else "at the top of the query"


@dataclass(frozen=True)
class Repeats:
    selections: int
    """Fields, fragment spreads and inline fragments met, fragments expanded; past `most`, the
    walk stopped and this is `most + 1`."""
    pairs: int
    """Pairs of selections of one name at one place, and of fragments spread at one place."""
    name: str = ""
    times: int = 0
    place: Place = Place(())
    """The selection repeated the most (`...` for fragments), how often, and where."""


@dataclass
class _Merged:
    sets: list[SelectionSetNode]
    parent: int
    name: str


def repeats(document: DocumentNode, most: int) -> Repeats:
    fragments = {d.name.value: d for d in document.definitions
                 if isinstance(d, FragmentDefinitionNode)}
    walk = _Walk(fragments, most)
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            walk.root(definition.selection_set)
    for name, fragment in fragments.items():
        if name not in walk.expanded:  # one no operation spreads is still validated
            walk.root(fragment.selection_set)
    return walk.result()


class _Walk:
    def __init__(self, fragments: dict[str, FragmentDefinitionNode], most: int) -> None:
        self.fragments = fragments
        self.most = most
        self.expanded: set[str] = set()
        self.places: list[_Merged] = []
        self.selections = 0
        self.pairs = 0
        self.worst: tuple[int, str, int, int] = (0, "", 0, 0)
        """Pairs, name, times and the index of its place."""

    def root(self, selections: SelectionSetNode) -> None:
        index = len(self.places)
        self.places.append(_Merged([selections], -1, ""))
        while index < len(self.places) and self.selections <= self.most:
            below = self._place(index)
            self.places.extend(_Merged(sets, index, name) for name, sets in below.items())
            index += 1

    def _place(self, index: int) -> dict[str, list[SelectionSetNode]]:
        """The selection sets below each name in this place, its repeats counted."""
        times: dict[str, int] = {}
        below: dict[str, list[SelectionSetNode]] = {}
        spreads = 0
        pending = list(self.places[index].sets)
        while pending and self.selections <= self.most:
            for node in pending.pop().selections:
                self.selections += 1
                if isinstance(node, FieldNode):
                    name = (node.alias or node.name).value
                    times[name] = times.get(name, 0) + 1
                    if node.selection_set is not None:
                        below.setdefault(name, []).append(node.selection_set)
                elif isinstance(node, InlineFragmentNode):
                    pending.append(node.selection_set)
                elif isinstance(node, FragmentSpreadNode):
                    spreads += 1
                    fragment = self.fragments.get(node.name.value)
                    if fragment is not None:
                        self.expanded.add(node.name.value)
                        pending.append(fragment.selection_set)
        times["..."] = spreads
        for name, count in times.items():
            pairs = count * (count - 1) // 2
            self.pairs += pairs
            if pairs > self.worst[0]:
                self.worst = (pairs, name, count, index)
        return below

    def result(self) -> Repeats:
        _, name, times, index = self.worst
        names: list[str] = []
        while self.places and self.places[index].parent >= 0:
            names.append(self.places[index].name)
            index = self.places[index].parent
        return Repeats(min(self.selections, self.most + 1), self.pairs, name, times,
                       Place(tuple(reversed(names))))
