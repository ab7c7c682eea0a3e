"""The published lessons' cache shows its hits and misses in `/metrics`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import embedded_app, member

BASE = "/v1/tenants/acme"


async def test_reads_of_a_published_lesson_count_as_cache_hits_and_misses(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, /metrics said nothing of the cache."""
    async with embedded_app(tmp_path, monkeypatch, ["identity", "content"]) as (app, client):
        educator = await member(app, client, "acme", ["educator"])
        learner = await member(app, client, "acme", ["learner"])
        assert (await client.post(f"{BASE}/courses", json={"id": "py", "title": "Python"},
                                  headers=educator)).status_code == 201
        r = await client.post(f"{BASE}/courses/py/lessons", headers=educator, json={
            "title": "Loops", "blocks": [{"type": "markdown", "markdown": "Loops repeat."}]})
        assert r.status_code == 201, r.text
        assert (await client.post(f"{BASE}/courses/py/publish", headers=educator)
                ).status_code == 200
        url = f"{BASE}/lessons/{r.json()['id']}"
        for _ in range(3):
            assert (await client.get(url, headers=learner)).status_code == 200
        text = (await client.get("/metrics")).text.splitlines()
    assert 'bloop_cache_lookups_total{cache="lessons",result="miss"} 1.0' in text
    assert 'bloop_cache_lookups_total{cache="lessons",result="hit"} 2.0' in text
