"""identity's routes: status codes and problem+json bodies, through the real app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bloop.platform.app import create_app
from bloop.platform.kit.settings import RuntimeSettings, Settings


@pytest.fixture
async def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    for var in ("BLOOP_STORE", "BLOOP_MONGO_ADAPTER", "BLOOP_KAFKA_ADAPTER", "BLOOP_REDIS_ADAPTER"):
        monkeypatch.delenv(var, raising=False)
    settings = Settings(runtime=RuntimeSettings(data_dir=tmp_path, seed_demo=False))
    app = create_app(settings, services=["identity"])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bloop.test") as c:
            yield c


async def test_tenants_and_users_round_trip(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/tenants", json={"id": "acme", "name": "Acme School"})
    assert r.status_code == 201, r.text
    assert (await client.get("/v1/tenants/acme")).json()["name"] == "Acme School"

    r = await client.post("/v1/tenants/acme/users", json={
        "email": "Ada@Acme.dev", "display_name": "Ada", "roles": ["educator"]})
    assert r.status_code == 201, r.text
    ada = r.json()
    assert ada["email"] == "ada@acme.dev"
    assert (await client.get(f"/v1/tenants/acme/users/{ada['id']}")).json() == ada
    assert (await client.get("/v1/tenants/acme/users")).json() == {"items": [ada], "next": None}
    for email in ("b@acme.dev", "c@acme.dev"):
        await client.post("/v1/tenants/acme/users", json={"email": email, "display_name": "X"})
    first = (await client.get("/v1/tenants/acme/users?limit=2")).json()
    assert [u["email"] for u in first["items"]] == ["ada@acme.dev", "b@acme.dev"]
    rest = (await client.get(f"/v1/tenants/acme/users?limit=2&after={first['next']}")).json()
    assert [u["email"] for u in rest["items"]] == ["c@acme.dev"]
    assert rest["next"] is None


async def test_errors_are_problems(client: httpx.AsyncClient) -> None:
    await client.post("/v1/tenants", json={"id": "acme", "name": "Acme"})
    r = await client.post("/v1/tenants", json={"id": "acme", "name": "Acme"})
    assert r.status_code == 409
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "tenant_exists"

    await client.post("/v1/tenants/acme/users", json={"email": "a@acme.dev", "display_name": "A"})
    r = await client.post("/v1/tenants/acme/users", json={"email": "A@ACME.dev", "display_name": "B"})
    assert r.status_code == 409
    assert r.json()["code"] == "email_taken"

    r = await client.post("/v1/tenants/acme/users",
                          json={"email": "b@acme.dev", "display_name": "B", "is_admin": True})
    assert r.status_code == 422
    assert r.json()["code"] == "validation_failed"

    r = await client.post("/v1/tenants/acme/users",
                          json={"email": "c@acme.dev", "display_name": "C", "roles": ["root"]})
    assert r.status_code == 422

    assert (await client.get("/v1/tenants/nowhere")).status_code == 404
    assert (await client.get("/v1/tenants/acme/users/nobody")).status_code == 404
    assert (await client.get("/v1/tenants/Not_A_Slug")).status_code == 422
