"""Every `pattern` in the OpenAPI document means the same in each regex dialect that reads it:
ECMA-262 (JSON Schema's), Python's and pydantic's Rust engine disagree on `\\s`, `\\w`, `\\d`
and `\\b` (Unicode or not, U+001C-U+001F, U+0085, U+FEFF), so a pattern spells its classes out.
Before, the email pattern's `\\s` let the document accept an address the server refused. And a
map whose keys have a pattern refuses other keys, and a string the server strips and needs
non-empty has a pattern that refuses blanks, as the server does."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path
from typing import Annotated, Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel, StringConstraints, TypeAdapter

import bloop
from bloop.platform.kit.text import NON_BLANK, Documented
from tests.unit.test_problem_docs import whole_app

SHORTHAND = re.compile(r"(?<!\\)(?:\\\\)*\\[sSwWdDbB]")


def patterns(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [p for k, v in node.items()
                for p in ([v] if k == "pattern" and isinstance(v, str) else patterns(v))]
    if isinstance(node, list):
        return [p for v in node for p in patterns(v)]
    return []


def test_no_documented_pattern_uses_a_class_whose_meaning_depends_on_the_dialect() -> None:
    found = patterns(whole_app(Path("unused")).openapi())
    assert len(found) >= 10
    assert [p for p in found if SHORTHAND.search(p)] == []


@pytest.mark.parametrize(("pattern", "shorthand"), [
    (r"^\s$", True), (r"\\\d", True), (r"^[\\s]$", False), (r"\x20", False)])
def test_the_check_sees_an_escaped_backslash(pattern: str, shorthand: bool) -> None:
    assert bool(SHORTHAND.search(pattern)) == shorthand


def with_pattern_keys(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        here = [node] if "patternProperties" in node else []
        return here + [s for v in node.values() for s in with_pattern_keys(v)]
    if isinstance(node, list):
        return [s for v in node for s in with_pattern_keys(v)]
    return []


def test_a_map_with_a_key_pattern_documents_that_other_keys_are_refused() -> None:
    doc = whole_app(Path("unused")).openapi()
    found = with_pattern_keys(doc)
    assert found
    assert all(s.get("additionalProperties") is False for s in found)
    submission = {"$ref": "#/components/schemas/AttemptSubmission",
                  "components": doc["components"]}
    assert Draft202012Validator(submission).is_valid({"answers": {"q1": "a"}})
    assert not Draft202012Validator(submission).is_valid({"answers": {"": "a"}})


def test_the_non_blank_pattern_keeps_exactly_what_the_strip_keeps() -> None:
    stripped = TypeAdapter(Annotated[str, StringConstraints(strip_whitespace=True)])
    for code in range(0x10000):
        if 0xD800 <= code <= 0xDFFF:
            continue
        kept = stripped.validate_python(chr(code)) != ""
        assert bool(re.search(NON_BLANK, chr(code))) == kept, hex(code)


def every_model() -> list[type[BaseModel]]:
    for found in pkgutil.walk_packages(bloop.__path__, "bloop."):
        importlib.import_module(found.name)
    seen: list[type[BaseModel]] = []
    todo: list[type[BaseModel]] = [BaseModel]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in seen:
                seen.append(sub)
                todo.append(sub)
    return [m for m in seen if m.__module__.startswith("bloop.")]


FIELDS = {"model-field", "dataclass-field", "typed-dict-field", "arguments-parameter"}


def _pattern(node: dict[str, Any]) -> object:
    """The node's documented pattern; `NON_BLANK` for client text that may not be blank (whose
    pattern, in a request, also refuses control characters)."""
    metadata = node.get("metadata", {})
    for found in metadata.get("pydantic_js_annotation_functions", []):
        marker = getattr(found, "__self__", None)
        if isinstance(marker, Documented) and not marker.blank:
            return NON_BLANK
    extra = metadata.get("pydantic_js_extra")
    return extra.get("pattern") if isinstance(extra, dict) else None


def unmarked_blank_strings(node: Any, field_pattern: object = None,
                           mark: str = NON_BLANK) -> list[dict[str, Any]]:
    """The stripped strings of at least one character in a core schema whose JSON Schema has
    not the `mark` pattern (on the string, or on the field it is the type of)."""
    if isinstance(node, list):
        return [s for v in node for s in unmarked_blank_strings(v, field_pattern, mark)]
    if not isinstance(node, dict):
        return []
    kind = node.get("type")
    if isinstance(kind, str) and kind in FIELDS:
        field_pattern = _pattern(node)
    elif kind == "function-after" and _pattern(node) is not None:
        field_pattern = _pattern(node)  # the client-text check wraps its string
    if (kind == "str" and node.get("strip_whitespace")
            and node.get("min_length", 0) == 1
            and mark not in (_pattern(node), field_pattern)):
        return [node]
    return [s for v in node.values() for s in unmarked_blank_strings(v, field_pattern, mark)]


def test_a_string_that_may_not_be_blank_says_so_in_its_schema() -> None:
    """Before, a title of spaces fit the document (minLength 1) and was refused."""
    models = every_model()
    assert len(models) > 100
    assert sum(len(unmarked_blank_strings(m.__pydantic_core_schema__, mark="(any)"))
               for m in models) > 50
    assert [(m.__name__, s) for m in models
            for s in unmarked_blank_strings(m.__pydantic_core_schema__)] == []
