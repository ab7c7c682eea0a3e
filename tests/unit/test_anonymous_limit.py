"""Requests without a credential are limited per client address (`BLOOP_AUTH_ANONYMOUS_RATE_LIMIT`):
they were not limited at all, so one client could keep the public pages and the 401s of every
guarded route busy as fast as it liked."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import RouteContext, iter_route_contexts
from starlette.routing import Match
from starlette.types import Scope

from bloop.platform.app import create_app
from bloop.platform.kit import middleware
from bloop.platform.kit.settings import AuthSettings, RuntimeSettings, Settings
from tests.support import answers_documented, member

LIMIT = 5
JWKS = "/.well-known/jwks.json"
ME = "/v1/tenants/acme/me"


@pytest.fixture
async def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FastAPI]:
    for var in ("BLOOP_STORE", "BLOOP_MONGO_ADAPTER", "BLOOP_KAFKA_ADAPTER", "BLOOP_REDIS_ADAPTER"):
        monkeypatch.delenv(var, raising=False)
    settings = Settings(runtime=RuntimeSettings(data_dir=tmp_path, seed_demo=False),
                        auth=AuthSettings(anonymous_rate_limit=LIMIT))
    application = create_app(settings, services=["identity"])
    async with application.router.lifespan_context(application):
        yield application


def from_address(app: FastAPI, host: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(host, 4321)),
                             base_url="http://bloop.test",
                             event_hooks={"response": [answers_documented(app)]})


def refused(app: FastAPI, route: str) -> float | None:
    return app.state.platform.metrics.registry.get_sample_value(  # type: ignore[no-any-return]
        "bloop_rate_limited_total", {"limit": "anonymous", "route": route})


def is_limited(r: httpx.Response) -> bool:
    if r.status_code != 429:
        return False
    assert r.json()["code"] == "rate_limited"
    assert int(r.headers["retry-after"]) >= 1
    assert r.headers["ratelimit-policy"] == f"{LIMIT};w=60"
    return True


async def test_one_address_without_a_credential_is_limited(app: FastAPI) -> None:
    async with from_address(app, "192.0.2.7") as one, from_address(app, "192.0.2.8") as other:
        signed_in = await member(app, one, "acme", ["learner"])  # a sign-in is not counted
        for _ in range(LIMIT):
            assert (await one.get(JWKS)).status_code == 200
        assert is_limited(await one.get(JWKS))
        assert is_limited(await one.get("/openapi.json"))
        assert is_limited(await one.get(ME))  # its 401, too
        # a credential a public route does not look at does not get past the limit
        assert is_limited(await one.get(JWKS, headers={"Authorization": "Bearer made-up"}))
        assert (await other.get(JWKS)).status_code == 200
        for _ in range(3 * LIMIT):
            assert (await one.get("/healthz")).status_code == 200
            assert (await one.get(ME, headers=signed_in)).status_code == 200
        assert refused(app, JWKS) == 2
        assert refused(app, "/v1/tenants/{tenant}/me") == 1


async def test_a_refused_credential_counts_against_its_address(app: FastAPI) -> None:
    async with from_address(app, "192.0.2.9") as one:
        for _ in range(LIMIT):
            r = await one.get(ME, headers={"Authorization": "Bearer not.a.token"})
            assert r.status_code == 401
        assert is_limited(await one.get(ME, headers={"X-API-Key": "bloop_x_y"}))
        assert is_limited(await one.get(JWKS))


async def test_under_a_root_path_the_same_paths_are_counted_and_left_alone(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app, client=("192.0.2.10", 4321), root_path="/api")
    async with httpx.AsyncClient(transport=transport, base_url="http://bloop.test") as one:
        for _ in range(LIMIT):
            assert (await one.get(f"/api{JWKS}")).status_code == 200
        assert is_limited(await one.get(f"/api{JWKS}", headers={"Authorization": "Bearer x"}))
        assert (await one.get("/api/healthz")).status_code == 200


async def test_refusals_before_routing_are_counted_under_their_route(app: FastAPI) -> None:
    """A 429 of this limit and a 413 of a body declared too large are answered before routing
    finds the route: they were counted under `route="unmatched"`, as `plain_route` looked only
    at routes not included from a router."""
    async with (from_address(app, "192.0.2.11") as one, from_address(app, "192.0.2.12") as other,
                from_address(app, "192.0.2.13") as scraper):
        for _ in range(LIMIT):
            assert (await one.get(ME)).status_code == 401
        assert is_limited(await one.get(ME))
        r = await other.post("/v1/tenants/acme/signup", content=b"{" + b" " * 1_100_000 + b"}",
                             headers={"content-type": "application/json"})
        assert r.status_code == 413
        counted = (await scraper.get("/metrics")).text
    assert 'route="/v1/tenants/{tenant}/me",status="401"' in counted
    assert 'route="/v1/tenants/{tenant}/me",status="429"' in counted
    assert 'route="/v1/tenants/{tenant}/signup",status="413"' in counted
    assert 'route="unmatched"' not in counted


async def test_a_flood_is_turned_away_without_scanning_the_routes(
        app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every 404 scanned all the routes again after the router had, and every 429 twice (its
    count and its access line) route by route: ~700 us a refusal, where ~100 us were meant. A
    404 is counted `unmatched` at once; an early refusal looks its route up once, in one match
    of a pattern of all the routes' paths, without asking any route that cannot match."""
    lookups: list[str] = []
    looked_up = middleware.route_template

    def counted(scope: Scope, root_path: str | None = None) -> str:
        lookups.append(scope["path"])
        return looked_up(scope, root_path)

    monkeypatch.setattr(middleware, "route_template", counted)
    transport = httpx.ASGITransport(app=app, client=("192.0.2.14", 4321))
    async with httpx.AsyncClient(transport=transport, base_url="http://bloop.test") as one:
        for i in range(LIMIT):
            assert (await one.get(f"/v1/tenants/acme/nope{i}")).status_code == 404
        assert lookups == []
        assert looked_up({"app": app, "path": "/v1/tenants/acme/me"}) == "/v1/tenants/{tenant}/me"

        def asked(route: RouteContext, name: str) -> None:
            raise AssertionError(f"a route was asked for its {name}")

        monkeypatch.setattr(RouteContext, "__getattr__", asked)
        assert is_limited(await one.get("/v1/tenants/acme/nope"))
        assert lookups == ["/v1/tenants/acme/nope"]
    assert refused(app, "unmatched") == 1


def test_an_early_refusal_finds_the_route_routing_would(app: FastAPI) -> None:
    """The one pattern of every route's path names the same route the scan of them all does."""
    def scanned(scope: Scope) -> str:
        bare = {**scope, "type": "http", "headers": [], "query_string": b""}
        for route in iter_route_contexts(app.router.routes):
            if route.matches(bare)[0] is Match.FULL:
                return str(route.path)
        return "unmatched"

    paths = [re.sub(r"\{[^}]+\}", "x1", str(r.path)) for r in iter_route_contexts(app.router.routes)]
    for path in [*paths, "/v1/tenants/acme/nope", "/", "/nope", "/openapi.json/x"]:
        for method in ("GET", "POST", "DELETE"):
            for root in ("", "/api"):
                scope = {"app": app, "path": root + path, "root_path": root, "method": method,
                         "headers": [(b"accept", b"text/html")]}
                assert middleware.route_template(scope) == scanned(scope), (method, root, path)


async def test_graphiqls_page_past_the_limit_is_answered_429(app: FastAPI) -> None:
    """Its route reads the request's headers to match: looking the refusal's route up with a
    scope without them raised KeyError instead of answering 429."""
    async with from_address(app, "192.0.2.15") as one:
        page = {"accept": "text/html"}
        for _ in range(LIMIT):
            assert (await one.get("/graphql", headers=page)).status_code == 200
        assert is_limited(await one.get("/graphql", headers=page))
    assert refused(app, "/graphql") == 1
