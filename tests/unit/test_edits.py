"""Partial edits: the JSON Schema of an edit says what its validator checks, that some field is
given and not null (before, `{}` fit the document and got a 422)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from bloop.platform.content.model import ConceptEdit
from bloop.platform.kit.edits import Edit
from bloop.platform.learning.model import CardEdit


@pytest.mark.parametrize("model", [ConceptEdit, CardEdit])
@pytest.mark.parametrize("body_of", [
    lambda names: {},
    lambda names: {names[0]: None},
    lambda names: dict.fromkeys(names),
    lambda names: {names[0]: "new text"},
    lambda names: {names[0]: None, names[-1]: "new text"},
])
def test_the_schema_accepts_what_the_validator_accepts(
        model: type[Edit], body_of: Callable[[list[str]], dict[str, object]]) -> None:
    body = body_of(list(model.model_fields))
    try:
        model.model_validate(body)
        accepted = True
    except ValidationError:
        accepted = False
    assert Draft202012Validator(model.model_json_schema()).is_valid(body) == accepted, body
