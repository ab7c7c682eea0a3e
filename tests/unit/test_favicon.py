"""No page of the app has the browser ask for a /favicon.ico that is not there: each HTML page
names Bloop's icon inline, and `/favicon.ico` answers it to anyone for the rest (a JSON answer
opened in the browser)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bloop.platform.app import create_app
from bloop.platform.kit.favicon import DATA_URL
from bloop.platform.kit.settings import RuntimeSettings, Settings


@pytest.fixture
async def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                 ) -> AsyncIterator[httpx.AsyncClient]:
    for var in ("BLOOP_STORE", "BLOOP_MONGO_ADAPTER", "BLOOP_KAFKA_ADAPTER", "BLOOP_REDIS_ADAPTER"):
        monkeypatch.delenv(var, raising=False)
    app = create_app(Settings(runtime=RuntimeSettings(data_dir=tmp_path)),
                     services=["identity", "content"], seed=True)
    transport = httpx.ASGITransport(app=app)
    async with (app.router.lifespan_context(app),
                httpx.AsyncClient(transport=transport, base_url="http://bloop.test") as c):
        yield c


@pytest.mark.parametrize("path", ["/", "/graphql", "/docs", "/redoc"])
async def test_each_page_names_its_icon_inline(client: httpx.AsyncClient, path: str) -> None:
    page = await client.get(path, headers={"accept": "text/html"})
    assert page.status_code == 200
    icons = re.findall(r'<link rel="(?:shortcut )?icon" href="([^"]+)">', page.text)
    assert icons == [DATA_URL]


async def test_the_favicon_is_served_to_anyone(client: httpx.AsyncClient) -> None:
    icon = await client.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon.headers["content-type"] == "image/svg+xml"
    assert icon.text.startswith("<svg ")
    assert "max-age" in icon.headers["cache-control"]
    assert DATA_URL.startswith("data:image/svg+xml,%3Csvg%20")
