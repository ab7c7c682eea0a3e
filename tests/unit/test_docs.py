"""The documentation pages load everything from the app itself (no CDN), and Swagger UI's
Authorize dialog signs in to the demo tenant when the demo is seeded."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from bloop.platform.app import create_app
from bloop.platform.kit.favicon import DATA_URL as ICON
from bloop.platform.kit.settings import RuntimeSettings, Settings


async def client_of(app: FastAPI, root_path: str = "") -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, root_path=root_path)
    async with (app.router.lifespan_context(app),
                httpx.AsyncClient(transport=transport, base_url="http://bloop.test") as c):
        yield c


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(runtime=RuntimeSettings(data_dir=tmp_path)), services=["identity"],
                     seed=True)
    async for c in client_of(app):
        yield c


def assets(page: str) -> list[str]:
    found = re.findall(r'(?:src|href)=["\']([^"\']+)["\']', page)
    return [u for u in found if not u.startswith("data:")]


@pytest.mark.parametrize(("path", "kinds"), [
    ("/docs", {"javascript", "css"}),
    ("/redoc", {"javascript"}),
])
async def test_a_docs_page_loads_only_from_the_app(client: httpx.AsyncClient, path: str,
                                                   kinds: set[str]) -> None:
    page = await client.get(path)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    urls = assets(page.text)
    assert urls
    assert all(u.startswith("/docs/assets/") for u in urls), urls
    assert "://" not in page.text.replace("window.location.origin", "")
    seen = set()
    for url in urls:
        r = await client.get(url)
        assert r.status_code == 200, url
        assert len(r.content) > 1000, url
        seen.add(r.headers["content-type"].split(";")[0].split("/")[1])
    assert seen == kinds
    assert '<html lang="en">' in page.text
    assert f'<link rel="shortcut icon" href="{ICON}">' in page.text


async def test_redoc_loads_nothing_from_elsewhere(client: httpx.AsyncClient) -> None:
    """Its script would show a logo from cdn.redoc.ly (with no option to leave it out)."""
    script = await client.get("/docs/assets/redoc.standalone.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert b"cdn.redoc.ly" not in script.content
    again = await client.get("/docs/assets/redoc.standalone.js",
                             headers={"if-none-match": script.headers["etag"]})
    assert again.status_code == 304


async def test_swagger_ui_signs_in_to_the_demo_tenant(client: httpx.AsyncClient) -> None:
    page = (await client.get("/docs")).text
    assert re.search(r'ui\.initOAuth\(\{\s*"additionalQueryStringParams":\s*\{\s*"tenant":\s*"demo"',
                     page), page
    assert (await client.get("/docs/oauth2-redirect")).status_code == 200


async def test_without_the_demo_swagger_ui_names_no_tenant(tmp_path: Path) -> None:
    app = create_app(Settings(runtime=RuntimeSettings(data_dir=tmp_path)), seed=False)
    async for c in client_of(app):
        page = (await c.get("/docs")).text
        assert "initOAuth" not in page
        assert "/docs/assets/swagger-ui-bundle.js" in page


async def test_the_schema_and_assets_are_counted_under_their_routes(
        client: httpx.AsyncClient) -> None:
    for path in ("/openapi.json", "/docs/assets/swagger-ui.css", "/no/such/page"):
        await client.get(path)
    counted = (await client.get("/metrics")).text
    for route, status in (("/openapi.json", 200), ("/docs/assets", 200), ("unmatched", 404)):
        assert f'route="{route}",status="{status}"' in counted, route


async def test_behind_a_root_path_the_schema_and_assets_are_counted_under_their_routes(
        tmp_path: Path) -> None:
    """Served under `/api` (`uvicorn --root-path /api`, or mounted in another app), as every
    FastAPI route is."""
    app = create_app(Settings(runtime=RuntimeSettings(data_dir=tmp_path)), services=["identity"],
                     seed=False)
    async for c in client_of(app, root_path="/api"):
        for path in ("/openapi.json", "/docs", "/docs/assets/swagger-ui.css", "/no/such/page"):
            await c.get("/api" + path)
        await c.head("/api/openapi.json")
        counted = (await c.get("/api/metrics")).text
    for method, route, status in (("GET", "/openapi.json", 200), ("HEAD", "/openapi.json", 200),
                                  ("GET", "/docs", 200), ("GET", "/docs/assets", 200),
                                  ("GET", "unmatched", 404)):
        assert f'method="{method}",route="{route}",status="{status}"' in counted, (method, route)


async def test_the_schema_is_built_once_and_sent_as_built(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every request re-ran the document's wrappers over the whole document and serialised it
    again (60-100 ms on the event loop each, for anyone: the route needs no credential)."""
    from fastapi.responses import JSONResponse

    from bloop.platform.kit import union_tags

    runs: list[int] = []
    wrapped = union_tags.require_union_tags

    def counted(doc: dict[str, object]) -> None:
        runs.append(1)
        wrapped(doc)

    monkeypatch.setattr(union_tags, "require_union_tags", counted)
    app = create_app(Settings(runtime=RuntimeSettings(data_dir=tmp_path)), services=["identity"],
                     seed=False)
    async for c in client_of(app):
        first, second = await c.get("/openapi.json"), await c.get("/openapi.json")
    assert len(runs) == 1
    assert first.content == second.content == JSONResponse(app.openapi()).body
    assert len(runs) == 1
    assert first.headers["etag"] == second.headers["etag"]
    assert first.headers["cache-control"] == "no-cache"


async def test_the_schema_answers_304_to_its_etag(client: httpx.AsyncClient) -> None:
    etag = (await client.get("/openapi.json")).headers["etag"]
    for asked in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = await client.get("/openapi.json", headers={"If-None-Match": asked})
        assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
    changed = await client.get("/openapi.json", headers={"If-None-Match": '"other"'})
    assert changed.status_code == 200
    assert changed.json()["openapi"]


async def test_behind_a_root_path_the_schema_names_it_as_its_server(tmp_path: Path) -> None:
    app = create_app(Settings(runtime=RuntimeSettings(data_dir=tmp_path)), services=["identity"],
                     seed=False)
    async for c in client_of(app, root_path="/api"):
        under = await c.get("/api/openapi.json")
    async for c in client_of(app):
        bare = await c.get("/openapi.json")
    assert under.json()["servers"] == [{"url": "/api"}]
    assert "servers" not in bare.json()
    assert under.headers["etag"] != bare.headers["etag"]
