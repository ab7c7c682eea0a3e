"""A web app on an allowed origin calls the API from a browser: its preflight is answered, and
the answers carry the headers it may read. Other origins get no CORS headers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bloop.platform.app import create_app
from bloop.platform.demo import data
from bloop.platform.kit.settings import HttpSettings, RuntimeSettings, Settings
from tests.support import api_client, login

APP = "https://app.example"
COURSES = "/v1/tenants/demo/courses"


@pytest.fixture
async def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                 ) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv("BLOOP_HTTP_CORS_ORIGINS", "https://App.example/, http://localhost:5173")
    settings = Settings(runtime=RuntimeSettings(data_dir=tmp_path), http=HttpSettings())
    app = create_app(settings, services=["identity", "content"], seed=True)
    async with app.router.lifespan_context(app), api_client(app) as c:
        yield c


def preflight(method: str, headers: str, origin: str = APP) -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers}


async def test_an_allowed_origin_may_send_a_signed_in_edit(client: httpx.AsyncClient) -> None:
    r = await client.options(f"{COURSES}/thinking-in-python",
                             headers=preflight("PATCH", "authorization, content-type, if-match"))
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == APP
    assert "PATCH" in r.headers["access-control-allow-methods"]
    assert {"authorization", "content-type", "if-match"} <= {
        h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")}
    assert "access-control-allow-credentials" not in r.headers


async def test_answers_to_an_allowed_origin_expose_what_a_client_reads(
        client: httpx.AsyncClient) -> None:
    ada = data.PEOPLE[0]
    token = await login(client, data.TENANT_ID, ada.email, ada.password)
    r = await client.get(COURSES, headers={**token, "Origin": "http://localhost:5173"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "http://localhost:5173"
    exposed = {h.strip().lower() for h in r.headers["access-control-expose-headers"].split(",")}
    assert {"etag", "x-request-id", "retry-after", "location"} <= exposed
    refused = await client.get(COURSES, headers={"Origin": APP})  # an error is readable too
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == APP


async def test_another_origin_gets_no_cors_headers(client: httpx.AsyncClient) -> None:
    r = await client.options(COURSES, headers=preflight("POST", "authorization",
                                                        origin="https://evil.example"))
    assert r.status_code == 400
    assert "access-control-allow-origin" not in r.headers
    r = await client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers


async def test_without_the_setting_no_origin_is_allowed(tmp_path: Path) -> None:
    app = create_app(Settings(runtime=RuntimeSettings(data_dir=tmp_path)),
                     services=["identity", "content"], seed=True)
    async with app.router.lifespan_context(app), api_client(app) as c:
        r = await c.options(COURSES, headers=preflight("GET", "authorization"))
        assert r.status_code == 405
        assert "access-control-allow-origin" not in r.headers
