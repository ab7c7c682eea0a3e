"""The OpenAPI document tells every error an operation can answer as the problem+json the
handlers send, and the errors the app sends fit what it tells."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from jsonschema import Draft202012Validator

from bloop.platform.app import create_app
from bloop.platform.demo import data
from bloop.platform.kit.auth.deps import NEVER_LIMITED
from bloop.platform.kit.errors import PROBLEM_JSON, StoreUnavailable, install_error_handlers
from bloop.platform.kit.problem_docs import PROBLEM, VALIDATION_PROBLEM, document_problems
from bloop.platform.kit.settings import RuntimeSettings, Settings
from tests.support import check_fits, login

METHODS = {"get", "put", "post", "patch", "delete", "head"}


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, ops in doc["paths"].items()
            for method, op in ops.items() if method in METHODS]


def problem_ref(response: dict[str, Any]) -> str:
    assert list(response["content"]) == [PROBLEM_JSON], response
    ref: str = response["content"][PROBLEM_JSON]["schema"]["$ref"]
    return ref.rsplit("/", 1)[1]


def whole_app(data_dir: Path) -> FastAPI:
    return create_app(Settings(runtime=RuntimeSettings(data_dir=data_dir)))


def test_the_problem_schemas_are_json_schemas() -> None:
    Draft202012Validator.check_schema(PROBLEM)
    Draft202012Validator.check_schema(VALIDATION_PROBLEM)


def test_every_operation_documents_its_errors_as_problems() -> None:
    doc = whole_app(Path("unused")).openapi()
    ops = operations(doc)
    assert len(ops) > 80
    for method, path, op in ops:
        where = f"{method} {path}"
        responses = op["responses"]
        assert problem_ref(responses["default"]) == "Problem", where
        if "422" in responses:
            assert problem_ref(responses["422"]) == "ValidationProblem", where
        if "security" in op:
            assert problem_ref(responses["401"]) == "Problem", where
            assert problem_ref(responses["403"]) == "Problem", where
        if "{" in path:
            assert "404" in responses, where
        if "requestBody" in op:
            assert problem_ref(responses["408"]) == "Problem", where
            assert problem_ref(responses["413"]) == "Problem", where
        if path.startswith("/v1/"):
            assert problem_ref(responses["503"]) == "Problem", where
            assert "Retry-After" in responses["503"]["headers"], where
        if path in NEVER_LIMITED:
            assert "429" not in responses, where
        else:  # a rate limit per caller, or per address without a credential
            assert problem_ref(responses["429"]) == "Problem", where
            assert "Retry-After" in responses["429"]["headers"], where
    text = json.dumps(doc)
    assert "HTTPValidationError" not in text  # FastAPI's 422 shape, which no handler sends
    assert sum(1 for _, _, op in ops if "422" in op["responses"]) > 50
    assert doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"].keys() == {
        "text/plain; version=1.0.0; charset=utf-8"}


def test_documenting_twice_changes_nothing() -> None:
    app = whole_app(Path("unused"))
    first = json.dumps(app.openapi(), sort_keys=True)
    assert json.dumps(app.openapi(), sort_keys=True) == first


@pytest.fixture(scope="module")
async def client(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[
        tuple[dict[str, Any], httpx.AsyncClient]]:
    app = whole_app(tmp_path_factory.mktemp("problems"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bloop.test") as c:
            yield app.openapi(), c


async def test_the_errors_the_app_sends_fit_the_document(
        client: tuple[dict[str, Any], httpx.AsyncClient]) -> None:
    doc, c = client
    ada, grace = data.PEOPLE[0], data.PEOPLE[1]
    educator = await login(c, data.TENANT_ID, ada.email, ada.password)
    learner = await login(c, data.TENANT_ID, grace.email, grace.password)
    courses, course = "/v1/tenants/{tenant}/courses", "/v1/tenants/{tenant}/courses/{course}"
    cases: list[tuple[str, str, str, dict[str, Any], int]] = [
        ("get", courses, "/v1/tenants/demo/courses", {}, 401),
        ("post", courses, "/v1/tenants/demo/courses", {"headers": learner, "json": {}}, 403),
        ("post", courses, "/v1/tenants/demo/courses",
         {"headers": educator, "json": {"title": ""}}, 422),
        ("get", courses, "/v1/tenants/demo/courses?after=not-a-cursor", {"headers": learner}, 422),
        ("get", course, "/v1/tenants/demo/courses/no-such-course", {"headers": learner}, 404),
        ("post", "/v1/auth/token", "/v1/auth/token", {"data": {"grant_type": "password"}}, 400),
        ("post", courses, "/v1/tenants/demo/courses",
         {"headers": educator, "content": b" " * (2 << 20)}, 413),
    ]
    for method, path, url, kwargs, status in cases:
        r = await c.request(method.upper(), url, **kwargs)
        assert r.status_code == status, (url, r.text)
        check_fits(doc, method, path, r)


async def test_no_content_answers_carry_no_content_type(
        client: tuple[dict[str, Any], httpx.AsyncClient]) -> None:
    _, c = client
    ada, grace = data.PEOPLE[0], data.PEOPLE[1]
    educator = await login(c, data.TENANT_ID, ada.email, ada.password)
    learner = await login(c, data.TENANT_ID, grace.email, grace.password)
    draft = await c.post("/v1/tenants/demo/courses", headers=educator,
                         json={"title": "Soon gone"})
    enrolled = await c.post("/v1/tenants/demo/learning/me/enrolments", headers=learner,
                            json={"course_id": data.COURSE_ID})
    assert draft.status_code == 201, draft.text
    assert enrolled.status_code in (200, 201), enrolled.text
    answers = [
        await c.delete(f"/v1/tenants/demo/courses/{draft.json()['id']}", headers=educator),
        await c.delete(f"/v1/tenants/demo/learning/me/enrolments?course_id={data.COURSE_ID}",
                       headers=learner),
        await c.post("/v1/tenants/demo/auth/logout",
                     headers=await login(c, data.TENANT_ID, grace.email, grace.password)),
    ]
    for r in answers:
        assert r.status_code == 204, (r.request.url, r.text)
        assert "content-type" not in r.headers, r.request.url
        assert r.content == b""


async def test_a_store_down_problem_fits_the_document() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/v1/things/{thing}")
    async def thing(thing: str) -> dict[str, str]:
        raise StoreUnavailable("mongodb")

    document_problems(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bloop.test") as c:
        r = await c.get("/v1/things/t1")
    assert r.status_code == 503
    assert r.headers["retry-after"] == "5"
    check_fits(app.openapi(), "get", "/v1/things/{thing}", r)


@pytest.mark.parametrize(("url", "allowed"), [
    ("/v1/tenants/demo/courses", "GET, POST"),
    ("/v1/tenants/demo/courses/thinking-in-python", "DELETE, GET, PATCH"),
    ("/v1/tenants/demo/media/m1/content", "GET, HEAD"),
    ("/v1/tenants/demo/invitations/accept", "POST"),
    ("/v1/tenants/demo/media/usage", "GET"),
])
async def test_a_405_names_every_method_the_path_serves(
        client: tuple[dict[str, Any], httpx.AsyncClient], url: str, allowed: str) -> None:
    _, c = client
    r = await c.request("PUT", url)
    assert r.status_code == 405, r.text
    assert r.headers["allow"] == allowed
    assert r.json()["code"] == "method_not_allowed"


@pytest.mark.parametrize(("url", "allowed"), [
    ("/v1/tenants/demo/invitations/accept", "POST"),
    ("/v1/tenants/demo/media/usage", "GET"),
])
async def test_a_fixed_path_refuses_the_methods_of_the_id_route_beside_it(
        client: tuple[dict[str, Any], httpx.AsyncClient], url: str, allowed: str) -> None:
    """DELETE is served at `/invitations/{invitation_id}` and `/media/{media}`, whose id
    is not "accept" or "usage"."""
    _, c = client
    ada = data.PEOPLE[0]
    signed_in = await login(c, data.TENANT_ID, ada.email, ada.password)
    r = await c.delete(url, headers=signed_in)
    assert r.status_code == 405, r.text
    assert r.headers["allow"] == allowed
    assert r.json()["code"] == "method_not_allowed"
    beside = await c.delete(url.rsplit("/", 1)[0] + "/m1")
    assert beside.status_code == 401, beside.text  # an id still reaches its route
    template = url.replace("/demo/", "/{tenant}/")
    counted = (await c.get("/metrics")).text
    assert f'method="DELETE",route="{template}",status="405"' in counted


@pytest.mark.parametrize(("kwargs", "status"), [
    ({"content": b"{ __typename }", "headers": {"content-type": "text/plain"}}, 400),
    ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400),
    ({"json": {"variables": {}}}, 400),
])
async def test_a_request_that_is_no_graphql_request_gets_a_problem(
        client: tuple[dict[str, Any], httpx.AsyncClient], kwargs: dict[str, Any],
        status: int) -> None:
    doc, c = client
    grace = data.PEOPLE[1]
    signed_in = await login(c, data.TENANT_ID, grace.email, grace.password)
    headers = {**signed_in, **kwargs.pop("headers", {})}
    r = await c.post("/graphql", headers=headers, **kwargs)
    assert r.status_code == status, r.text
    assert r.json()["code"] == "bad_request"
    check_fits(doc, "post", "/graphql", r)


def test_each_documented_example_fits_its_schema() -> None:
    doc = whole_app(Path("unused")).openapi()
    seen = 0
    for method, path, op in operations(doc):
        for status, response in op["responses"].items():
            content = response.get("content", {}).get(PROBLEM_JSON)
            if content is None:
                continue
            schema = {**content["schema"], "components": doc["components"]}
            example = content["example"]
            assert not list(Draft202012Validator(schema).iter_errors(example)), (method, path)
            assert status == "default" or example["status"] == int(status), (method, path)
            seen += 1
    assert seen > 300
