"""Discriminated unions in the OpenAPI document.

pydantic leaves a tag that has a default (`type: Literal["quiz"] = "quiz"`) out of its model's
`required`, yet a union cannot tell its members apart without the tag, so the server refuses an
object that omits it. The document says so: each member of a discriminated union requires its
tag (answers always carry it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI


def _discriminators(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        found = node.get("discriminator")
        if isinstance(found, dict):
            yield found
        for value in node.values():
            yield from _discriminators(value)
    elif isinstance(node, list):
        for value in node:
            yield from _discriminators(value)


def require_union_tags(doc: dict[str, Any]) -> None:
    schemas: dict[str, Any] = doc.get("components", {}).get("schemas", {})
    for discriminator in list(_discriminators(doc)):
        tag = discriminator["propertyName"]
        for ref in discriminator.get("mapping", {}).values():
            member = schemas.get(ref.rsplit("/", 1)[-1])
            if member is None or tag not in member.get("properties", {}):
                continue
            required: list[str] = member.setdefault("required", [])
            if tag not in required:
                required.insert(0, tag)


def document_union_tags(app: FastAPI) -> None:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        doc = build()
        require_union_tags(doc)
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
