"""Every route of the whole app refuses an anonymous caller (401), a caller of another tenant
(403) and a caller without the role or scope it needs (403), except the public routes listed in
`kit.auth.PUBLIC_ROUTES`."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import RouteContext, iter_route_contexts

from bloop.graphql.ide import PageRoute
from bloop.platform.app import create_app
from bloop.platform.identity.service import AuthService
from bloop.platform.kit.auth import PUBLIC_ROUTES, ROLES, SCOPES, Principal, Requirement
from bloop.platform.kit.auth.deps import requirements
from bloop.platform.kit.settings import RuntimeSettings, Settings
from tests.support import check_fits

# Routes any signed-in member of the tenant may call whatever their roles and scopes.
MEMBER_ROUTES = {("POST", "/v1/tenants/{tenant}/auth/logout")}
# Any signed-in caller reaches these; each GraphQL field then applies its HTTP twin's tenant, role
# and scope rule (tests/unit/test_graphql.py), since a query names its tenant in its arguments.
FIELD_GUARDED = {"/graphql"}
# Any signed-in caller of any tenant reaches these; they tell the caller about their own
# credential only.
SELF_ROUTES = {("GET", "/v1/auth/principal")}


def build(data_dir: Path) -> FastAPI:
    return create_app(Settings(runtime=RuntimeSettings(data_dir=data_dir, seed_demo=False)))


def http_routes(app: FastAPI) -> list[RouteContext]:
    """The GraphiQL page shares GET /graphql with the API but takes only a browser's request for
    the page (tests/unit/test_graphiql.py); the walk checks the API's route."""
    return [r for r in iter_route_contexts(app.routes)
            if r.methods and r.path and not isinstance(r.original_route, PageRoute)]


def routes(app: FastAPI) -> list[tuple[str, str]]:
    return sorted((method, str(route.path)) for route in http_routes(app)
                  for method in route.methods or () if method != "HEAD")


def requirement_of(app: FastAPI, method: str, path: str) -> Requirement | None:
    for route in http_routes(app):
        if route.path == path and method in (route.methods or ()):
            dependant = getattr(route, "dependant", None)
            found = list(requirements(dependant)) if dependant is not None else []
            assert len(found) <= 1, f"{method} {path} has several requirements: {found}"
            return found[0] if found else None
    raise AssertionError(f"no route {method} {path}")


ALL_ROUTES = routes(build(Path("unused")))
GUARDED = [pytest.param(m, p, id=f"{m} {p}") for m, p in ALL_ROUTES if (m, p) not in PUBLIC_ROUTES]


def test_the_walk_sees_every_service() -> None:
    paths = {p for _, p in ALL_ROUTES}
    assert {"/v1/tenants/{tenant}/courses", "/v1/tenants/{tenant}/users", "/healthz"} <= paths
    assert len(GUARDED) >= 20


def test_the_openapi_document_names_the_credentials_of_guarded_routes_only() -> None:
    app = build(Path("unused"))
    schema = app.openapi()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["OAuth2PasswordBearer"]["flows"]["password"]["tokenUrl"] == "/v1/auth/token"
    assert schemes["APIKeyHeader"] == {**schemes["APIKeyHeader"], "in": "header",
                                       "name": "X-API-Key", "type": "apiKey"}
    for method, path in ALL_ROUTES:
        operation = schema["paths"].get(path, {}).get(method.lower())
        if operation is None:
            continue  # not in the document (the GraphQL route, HEAD twins)
        guarded = requirement_of(app, method, path) is not None
        expected: list[dict[str, list[str]]] | None = (
            [{"OAuth2PasswordBearer": []}, {"APIKeyHeader": []}] if guarded else None)
        assert operation.get("security") == expected, f"{method} {path}"


def test_the_public_list_names_real_routes_only() -> None:
    assert set(ALL_ROUTES) >= PUBLIC_ROUTES
    app = build(Path("unused"))
    for method, path in PUBLIC_ROUTES:
        assert requirement_of(app, method, path) is None, f"{method} {path} is public"


@pytest.fixture(scope="module")
async def running(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FastAPI]:
    app = build(tmp_path_factory.mktemp("access"))
    async with app.router.lifespan_context(app):
        yield app


async def token(app: FastAPI, tenant: str, roles: Iterable[str],
                scopes: Iterable[str] = SCOPES) -> dict[str, str]:
    auth: AuthService = app.state.identity.state["auth"]
    principal = Principal(user_id=str(uuid.uuid4()), tenant=tenant, roles=frozenset(roles),
                          scopes=frozenset(scopes), token_id=uuid.uuid4().hex,
                          session_id=uuid.uuid4().hex, expires_at=2**31 - 1)
    return {"Authorization": f"Bearer {await auth.keys.mint(principal)}"}


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", path.replace("{tenant}", "acme"))


def lacking(requirement: Requirement | None, method: str,
            path: str) -> tuple[list[str], list[str]] | None:
    """Roles and scopes of a member of the right tenant that fall short of `requirement`."""
    everyone: list[str] = [r for r in ROLES if r != "platform_admin"]
    if requirement is not None and requirement.roles:
        return [r for r in everyone if r not in requirement.roles], list(SCOPES)
    if requirement is not None and requirement.scopes:
        return everyone, [s for s in SCOPES if s not in requirement.scopes]
    assert (method, path) in MEMBER_ROUTES, f"{method} {path} needs no role nor scope"
    return None


@pytest.mark.parametrize(("method", "path"), GUARDED)
async def test_a_guarded_route_refuses_strangers(running: FastAPI, method: str, path: str) -> None:
    requirement = requirement_of(running, method, path)
    url = concrete(path) + ("?query={__typename}" if path in FIELD_GUARDED else "")
    body: dict[str, Any] = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
    doc = running.openapi()
    documented = method.lower() in doc["paths"].get(path, {})
    transport = httpx.ASGITransport(app=running)
    async with httpx.AsyncClient(transport=transport, base_url="http://bloop.test") as client:
        anonymous = await client.request(method, url, **body)
        assert anonymous.status_code == 401, anonymous.text
        assert anonymous.headers["www-authenticate"] == "Bearer"
        if documented:
            check_fits(doc, method.lower(), path, anonymous)
        if path in FIELD_GUARDED:
            assert requirement is not None
            return

        stranger = await token(running, "beta", [r for r in ROLES if r != "platform_admin"])
        r = await client.request(method, url, headers=stranger, **body)
        if (method, path) in SELF_ROUTES:
            assert r.status_code == 200, r.text
            assert r.json()["tenant"] == "beta"
            return
        assert r.status_code == 403, r.text
        if documented:
            check_fits(doc, method.lower(), path, r)

        short = lacking(requirement, method, path)
        if short is not None:
            roles, scopes = short
            r = await client.request(method, url, headers=await token(running, "acme", roles,
                                                                      scopes), **body)
            assert r.status_code == 403, r.text
            assert r.json()["code"] in ("missing_role", "insufficient_scope")


@pytest.mark.parametrize(("method", "path"), GUARDED)
async def test_a_platform_admin_passes_every_guard(running: FastAPI, method: str, path: str) -> None:
    """A platform admin of another tenant holds every role in every tenant."""
    if path in FIELD_GUARDED or (method, path) in SELF_ROUTES:
        return
    url = concrete(path)
    body: dict[str, Any] = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
    admin = await token(running, "ops", ["platform_admin"])
    transport = httpx.ASGITransport(app=running)
    async with httpx.AsyncClient(transport=transport, base_url="http://bloop.test") as client:
        r = await client.request(method, url, headers=admin, **body)
    assert r.status_code not in (401, 403), r.text
