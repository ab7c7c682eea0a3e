"""The errors every route can answer, in the app's OpenAPI document: RFC 9457 problem+json, as
`errors.install_error_handlers` writes them, so a client generated from the document knows their
shape. FastAPI documents only a 422 of its own shape, which the handlers never send."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from fastapi import FastAPI

from bloop.platform.kit.errors import PROBLEM_JSON, problem_body, status_code_name

PROBLEM: dict[str, Any] = {
    "title": "Problem",
    "description": "An RFC 9457 problem. `code` is stable and machine-readable; some problems "
                   "carry more members (`errors` on a 422, `store` on a 503, `request_id` on a "
                   "500: the X-Request-ID its log lines carry).",
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "instance": {"type": "string"},
        "request_id": {"type": "string"},
    },
}
VALIDATION_PROBLEM: dict[str, Any] = {
    "title": "ValidationProblem",
    "description": "A request that does not fit the operation. With `code` validation_failed "
                   "(its fields or body do not fit their schema), `errors` lists each field "
                   "that does not and `detail` tells the first; other codes (a cursor that is "
                   "no cursor, an upload that is no archive, ...) are rules past the schema.",
    "allOf": [
        {"$ref": "#/components/schemas/Problem"},
        {"type": "object", "properties": {
            "status": {"const": 422},
            "errors": {"type": "array", "items": {
                "type": "object", "required": ["loc", "msg", "type"], "properties": {
                    "loc": {"type": "array", "items": {"type": "string"}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                }}},
        },
         "if": {"properties": {"code": {"const": "validation_failed"}}},
         "then": {"required": ["errors"]}},
    ],
}
FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")
_AT = "/v1/tenants/demo/courses/intro"
# Statuses named on an operation when they apply to it, each with an example; any other error
# is its `default`.
UNAUTHENTICATED = ("no valid credential", problem_body(
    401, "unauthenticated", "sign in first: this route needs an `Authorization: Bearer` access "
    "token", instance=_AT))
FORBIDDEN = ("the credential's tenant, roles or scopes do not allow this", problem_body(
    403, "wrong_tenant", "the token belongs to another tenant", instance=_AT))
NOT_FOUND = ("no such resource (or one the caller may not see)", problem_body(
    404, "not_found", "no course 'intro' in tenant 'demo'", instance=_AT))
INVALID = ("the request does not fit the operation", problem_body(
    422, "validation_failed", "body.title: String should have at least 1 character",
    instance=_AT, extra={"errors": [{"loc": ["body", "title"], "type": "string_too_short",
                                     "msg": "String should have at least 1 character"}]}))
STORE_DOWN = ("a store this operation needs is unavailable; try again after `Retry-After` "
              "seconds", problem_body(503, "store_unavailable", "the mongodb store is "
                                      "unavailable, try again shortly", instance=_AT,
                                      extra={"store": "mongodb"}))
TOO_LARGE = ("the request body is larger than the server takes", problem_body(
    413, "payload_too_large", "the request body is larger than 1048576 bytes", instance=_AT))
BODY_STALLED = ("the request body stopped arriving", problem_body(
    408, "request_timeout", "no part of the request body arrived for 30 s", instance=_AT))
OTHER = ("any other error", problem_body(
    409, "stale_version", "the course 'intro' changed since that version; read it again and "
    "retry", instance=_AT, extra={"current_version": 4}))
RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
RATE_LIMITED = ("more requests than the caller's rate limit lets through (per person, per API "
                "key, or per client address without a credential); try again after "
                "`Retry-After` seconds", problem_body(
                    429, "rate_limited", "more than 600 requests in 60 s; slow down",
                    instance=_AT))


def _response(documented: tuple[str, dict[str, Any]], schema: str = "Problem",
              headers: dict[str, Any] | None = None) -> dict[str, Any]:
    description, example = documented
    response: dict[str, Any] = {"description": description, "content": {PROBLEM_JSON: {
        "schema": {"$ref": f"#/components/schemas/{schema}"}, "example": example}}}
    if headers:
        response["headers"] = headers
    return response


def documented_problem(description: str, status: int, code: str, detail: str, *,
                       instance: str = _AT) -> dict[str, Any]:
    """An error response a route names itself (FastAPI's `responses`), with an example of it."""
    return _response((description, problem_body(status, code, detail, instance=instance)))


def add_problem(responses: dict[str, Any], documented: tuple[str, dict[str, Any]],
                headers: dict[str, Any] | None = None) -> None:
    """Names one more problem in an operation's `responses`: its status's response when there is
    none, else one more reason in that one's description (whose example stays)."""
    description, example = documented
    status = str(example["status"])
    found = responses.get(status)
    if found is None:
        responses[status] = _response(documented, "ValidationProblem" if status == "422"
                                      else "Problem", headers)
    elif description not in found.get("description", ""):
        found["description"] = f"{found.get('description', '')}; or {description}"
        if headers:
            found["headers"] = {**found.get("headers", {}), **headers}


def _document(operation: dict[str, Any], path: str, limited: bool) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for status, response in responses.items():  # an error a route names: still a problem
        if status[0] in "45" and "content" not in response:
            example = problem_body(int(status), status_code_name(int(status)),
                                   response.get("description", ""), instance=path)
            responses[status] = _response((response.get("description", ""), example))
    if "422" in responses:
        responses["422"] = _response(INVALID, "ValidationProblem")
    if "security" in operation:
        responses.setdefault("401", _response(UNAUTHENTICATED))
        responses.setdefault("403", _response(FORBIDDEN))
    if "{" in path:
        responses.setdefault("404", _response(NOT_FOUND))
    if "requestBody" in operation:
        responses.setdefault("408", _response(BODY_STALLED))
        responses.setdefault("413", _response(TOO_LARGE))
    if limited:
        add_problem(responses, RATE_LIMITED, headers=RETRY_AFTER)
    if path.startswith("/v1/"):
        responses.setdefault("503", _response(STORE_DOWN, headers=RETRY_AFTER))
    responses.setdefault("default", _response(OTHER))


def document_problems(app: FastAPI, never_limited: Collection[str] = ()) -> None:
    """Call after every route is included and after `document_security`, whose marks this reads.
    `never_limited`: the paths no rate limit answers 429 (every other one may)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        if "Problem" in schema.get("components", {}).get("schemas", {}):
            return schema  # documented on an earlier call: FastAPI keeps the document
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                _document(operation, path, path not in never_limited)
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas["Problem"], schemas["ValidationProblem"] = PROBLEM, VALIDATION_PROBLEM
        for name in FASTAPI_VALIDATION:  # dropped once nothing refers to them
            body = schemas.pop(name, None)
            if body is not None and f'"#/components/schemas/{name}"' in json.dumps(schema):
                schemas[name] = body
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
