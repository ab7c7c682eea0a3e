"""Without Redis, the sign-in counts and the published lessons' copies were one in-process cache
bounded by entries: reading many lessons pushed the counts out, which unlocked an account."""

from __future__ import annotations

from pathlib import Path

import pytest

from bloop.platform.app import create_app
from bloop.platform.content.service import ContentService
from bloop.platform.kit.settings import AuthSettings, RuntimeSettings, Settings
from tests.support import api_client, member

TOKEN = "/v1/auth/token"


async def test_the_sign_in_counts_outlive_a_flood_of_cached_lessons(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("BLOOP_STORE", "BLOOP_MONGO_ADAPTER", "BLOOP_NEO4J_ADAPTER", "BLOOP_KAFKA_ADAPTER",
                "BLOOP_REDIS_ADAPTER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BLOOP_SEARCH_DIRECTORY", str(tmp_path / "search"))
    settings = Settings(runtime=RuntimeSettings(data_dir=tmp_path, seed_demo=False),
                        auth=AuthSettings(account_max_failures=3))
    app = create_app(settings, services=["identity", "content"])
    async with app.router.lifespan_context(app), api_client(app) as client:
        await member(app, client, "acme", ["learner"], email="lee@acme.dev")
        form = {"grant_type": "password", "tenant": "acme", "username": "lee@acme.dev",
                "password": "guessing wrongly!"}
        for _ in range(3):
            assert (await client.post(TOKEN, data=form)).status_code == 400
        content = app.state.content.state["service"]
        assert isinstance(content, ContentService)
        for i in range(10_001):
            await content.cache.set(f"lesson:acme:{i}", bytes(8192), ttl_s=600)
        r = await client.post(TOKEN, data=form | {"password": "right or wrong, still locked"})
        assert (r.status_code, r.json()["code"]) == (429, "account_locked")
