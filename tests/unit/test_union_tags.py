"""The OpenAPI document requires the tag of each discriminated union's members, as the server
does: before, a quiz question without `type` fit the document and was refused with a 422."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from bloop.platform.kit.union_tags import require_union_tags
from tests.unit.test_problem_docs import whole_app


def fits(doc: dict[str, Any], component: str, value: object) -> bool:
    schema = {"$ref": f"#/components/schemas/{component}", "components": doc["components"]}
    return Draft202012Validator(schema).is_valid(value)


def test_every_member_of_a_discriminated_union_requires_its_tag() -> None:
    doc = whole_app(Path("unused")).openapi()
    schemas = doc["components"]["schemas"]
    unions = 0
    for name, schema in schemas.items():
        for prop in schema.get("properties", {}).values():
            items = prop.get("items", prop)
            if "discriminator" not in items:
                continue
            unions += 1
            tag = items["discriminator"]["propertyName"]
            for ref in items["discriminator"]["mapping"].values():
                member = schemas[ref.rsplit("/", 1)[-1]]
                assert tag in member["required"], (name, ref)
    assert unions >= 5


def test_a_question_without_its_type_does_not_fit_the_document() -> None:
    doc = whole_app(Path("unused")).openapi()
    question = {"id": "q1", "prompt": "The capital of France?", "accepted": ["Paris"]}
    quiz = {"type": "quiz", "id": "check", "title": "Check", "questions": [question]}
    assert not fits(doc, "QuizBlock", quiz)
    assert fits(doc, "QuizBlock", quiz | {"questions": [question | {"type": "short_text"}]})


def test_tags_are_added_once_and_only_where_the_member_has_them() -> None:
    doc: dict[str, Any] = {"components": {"schemas": {
        "A": {"properties": {"kind": {"const": "a"}}, "required": ["x"]},
        "B": {"properties": {"other": {}}},
        "U": {"oneOf": [], "discriminator": {"propertyName": "kind", "mapping": {
            "a": "#/components/schemas/A", "b": "#/components/schemas/B",
            "c": "#/components/schemas/Missing"}}}}}}
    require_union_tags(doc)
    require_union_tags(doc)
    schemas = doc["components"]["schemas"]
    assert schemas["A"]["required"] == ["kind", "x"]
    assert "required" not in schemas["B"]
