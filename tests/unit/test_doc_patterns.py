"""Every `pattern` in the OpenAPI document means the same in each regex dialect that reads it:
ECMA-262 (JSON Schema's), Python's and pydantic's Rust engine disagree on `\\s`, `\\w`, `\\d`
and `\\b` (Unicode or not, U+001C-U+001F, U+0085, U+FEFF), so a pattern spells its classes out.
Before, the email pattern's `\\s` let the document accept an address the server refused. And a
map whose keys have a pattern refuses other keys, as the server does."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

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
