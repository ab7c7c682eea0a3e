"""How much a GraphQL document repeats itself, as measured before it is validated: selections of
one name in one place, merged below repeated fields and through fragments, and the walk's bound."""

from __future__ import annotations

from graphql import parse

from bloop.graphql.repeats import Place, Repeats, repeats

COURSE = 'course(tenant: "demo", id: "x")'


def measure(text: str, most: int = 1_000) -> Repeats:
    return repeats(parse(text), most)


def test_a_document_selecting_each_field_once_repeats_nothing() -> None:
    got = measure(f"{{ {COURSE} {{ id title lessons {{ id blocks {{ __typename }} }} }} }}")
    assert (got.selections, got.pairs) == (7, 0)


def test_every_two_selections_of_one_name_in_one_place_make_a_pair() -> None:
    got = measure(f"{{ {COURSE} {{ id id id title }} }}")
    assert (got.pairs, got.name, got.times, got.place) == (3, "id", 3, Place(("course",)))
    assert str(got.place) == "in `course`"
    assert str(measure("{ a: __typename a: __typename }").place) == "at the top of the query"


def test_the_selections_below_repeated_fields_are_merged_as_graphql_compares_them() -> None:
    """3 `lessons`, each with 3 `blocks`: the 9 `blocks` answer in one place, and so do the 9
    `__typename` below them."""
    three = " ".join(["blocks { __typename }"] * 3)
    got = measure(f"{{ {COURSE} {{ {' '.join([f'lessons {{ {three} }}'] * 3)} }} }}")
    assert got.pairs == 3 + 36 + 36
    assert (got.name, got.times, got.place) == ("blocks", 9, Place(("course", "lessons")))


def test_fragments_and_inline_fragments_add_their_selections_to_the_place_they_are_in() -> None:
    got = measure(f"{{ {COURSE} {{ id ...F ... on Course {{ id ... on Course {{ id }} }} }} }}"
                  " fragment F on Course { id ...G } fragment G on Course { id }")
    assert (got.name, got.times) == ("id", 5)
    assert got.pairs == 10 + 1  # and the two fragments spread there


def test_every_two_fragments_spread_in_one_place_make_a_pair() -> None:
    names = [f"F{i}" for i in range(4)]
    got = measure(f"{{ {COURSE} {{ {' '.join(f'...{n}' for n in names)} }} }} "
                  + " ".join(f"fragment {n} on Course {{ {n.lower()}: id }}" for n in names))
    assert (got.pairs, got.name, got.times) == (6, "...", 4)


def test_a_fragment_no_operation_spreads_is_measured_too() -> None:
    got = measure(f"{{ {COURSE} {{ id }} }} fragment F on Course {{ id id }}")
    assert (got.selections, got.pairs) == (4, 1)


def test_the_walk_stops_once_it_has_met_the_most_selections() -> None:
    """Ten fragments each spreading the next twice would expand to 2^10 copies of `id`; a
    fragment spreading itself would expand without end."""
    bomb = " ".join(f"fragment F{i} on Course {{ ...F{i + 1} ...F{i + 1} }}" for i in range(10))
    got = measure(f"{{ {COURSE} {{ ...F0 }} }} {bomb} fragment F10 on Course {{ id }}", most=100)
    assert got.selections == 101
    looping = "{ __schema { types { ...T } } } fragment T on __Type { name ofType { ...T } }"
    assert measure(looping, most=100).selections == 101
    assert measure(looping.replace("ofType { ...T }", "...U") + " fragment U on __Type { ...T }",
                   most=100).selections == 101
