"""API keys for third-party apps, through the real app: created by a tenant admin and shown once,
listed without secrets, revoked at once, and checked by the same `require()` as access tokens
(tenant, roles, scopes), with a rate limit of their own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from bloop.platform.app import create_app
from bloop.platform.identity.service import ApiKeyService
from bloop.platform.identity.stores.embedded import EmbeddedApiKeys
from bloop.platform.kit.auth import ApiKeyCredential, parse_api_key
from bloop.platform.kit.auth.revocations import StoredRevocations
from bloop.platform.kit.settings import AuthSettings, RuntimeSettings, Settings
from tests.support import PASSWORD, api_client, eventually, member

KEYS = "/v1/tenants/acme/api-keys"
TENANT = "/v1/tenants/acme"
USERS = "/v1/tenants/acme/users"


@pytest.fixture
async def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FastAPI]:
    for var in ("BLOOP_STORE", "BLOOP_MONGO_ADAPTER", "BLOOP_KAFKA_ADAPTER", "BLOOP_REDIS_ADAPTER"):
        monkeypatch.delenv(var, raising=False)
    settings = Settings(runtime=RuntimeSettings(data_dir=tmp_path, seed_demo=False),
                        auth=AuthSettings(rate_limit=200, api_key_rate_limit=6))
    application = create_app(settings, services=["identity"])
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(app) as c:
        yield c


@pytest.fixture
async def admin(app: FastAPI, client: httpx.AsyncClient) -> dict[str, str]:
    return await member(app, client, "acme", ["tenant_admin"])


async def new_key(client: httpx.AsyncClient, admin: dict[str, str], tenant: str = "acme",
                  **body: Any) -> dict[str, Any]:
    r = await client.post(f"/v1/tenants/{tenant}/api-keys", headers=admin,
                          json={"name": "gradebook sync", "scopes": ["identity:read"], **body})
    assert r.status_code == 201, r.text
    issued: dict[str, Any] = r.json()
    return issued


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_the_secret_is_shown_once_and_never_listed(
        client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    r = await client.post(KEYS, headers=admin,
                          json={"name": "  gradebook sync ", "scopes": ["profile", "identity:read"]})
    assert r.status_code == 201, r.text
    assert r.headers["cache-control"] == "no-store"
    issued = r.json()
    credential = parse_api_key(issued["key"])
    assert credential is not None
    assert issued["key"].startswith(issued["prefix"] + "_")
    assert issued["prefix"] == f"bloop_acme.{issued['id']}"
    assert (issued["name"], issued["scopes"], issued["roles"]) == (
        "gradebook sync", ["identity:read", "profile"], [])
    assert "secret_hash" not in issued

    listed = await client.get(KEYS, headers=admin)
    assert listed.status_code == 200
    [shown] = listed.json()["items"]
    assert listed.json()["next"] is None
    assert shown["id"] == issued["id"]
    assert shown["revoked_at"] is None
    assert "key" not in shown
    assert "secret_hash" not in shown
    assert credential.secret not in listed.text

    # the key works as a bearer token and in X-API-Key, on routes that were never changed
    assert (await client.get(TENANT, headers=bearer(issued["key"]))).status_code == 200
    r = await client.get(TENANT, headers={"X-API-Key": issued["key"]})
    assert r.status_code == 200, r.text
    assert r.json()["id"] == "acme"


async def test_a_key_is_no_person_on_the_me_routes(
        client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    """With the `profile` scope it got 404 `no user 'apikey:acme.…'` there."""
    key = bearer((await new_key(client, admin, scopes=["profile", "identity:read"]))["key"])
    me = f"{TENANT}/me"
    for method, url, body in (("GET", me, None), ("PATCH", me, {"bio": "a key"}),
                              ("DELETE", me, None), ("GET", f"{me}/export", None),
                              ("PUT", f"{me}/password", {"current_password": PASSWORD,
                                                         "new_password": PASSWORD + "!"})):
        r = await client.request(method, url, headers=key, json=body)
        assert (r.status_code, r.headers["content-type"], r.json()["code"]) == (
            403, "application/problem+json", "not_a_person"), (method, url, r.text)
        assert "person" in r.json()["detail"]
    assert (await client.get(me, headers=admin)).status_code == 200


async def test_a_key_cannot_sign_out_and_nothing_is_written_for_it(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A key's logout answered 204 and the key kept working: it wrote revocation marks for a
    session and a token id a key does not have."""
    key = bearer((await new_key(client, admin))["key"])
    auth = app.state.identity.state["auth"]
    written: list[object] = []

    async def record(*args: object) -> None:
        written.append(args)

    monkeypatch.setattr(auth.repo, "revoke_refresh_family", record)
    monkeypatch.setattr(auth.verifier, "revoke", record)
    r = await client.post(f"{TENANT}/auth/logout", headers=key)
    assert (r.status_code, r.json().get("code")) == (403, "not_a_person"), r.text
    assert "DELETE /v1/tenants/{tenant}/api-keys/{id}" in r.json()["detail"]
    assert written == []
    assert (await client.get(TENANT, headers=key)).status_code == 200


async def test_a_revoked_key_is_refused_at_once(
        client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    issued = await new_key(client, admin)
    kept = await new_key(client, admin, name="kept")
    assert (await client.get(TENANT, headers=bearer(issued["key"]))).status_code == 200
    r = await client.delete(f"{KEYS}/{issued['id']}", headers=admin)
    assert r.status_code == 204
    r = await client.get(TENANT, headers=bearer(issued["key"]))
    assert r.status_code == 401
    assert r.json()["code"] == "token_revoked"
    assert (await client.get(TENANT, headers=bearer(kept["key"]))).status_code == 200
    listed = {k["id"]: k for k in (await client.get(KEYS, headers=admin)).json()["items"]}
    assert listed[issued["id"]]["revoked_at"] is not None
    assert listed[kept["id"]]["revoked_at"] is None
    # revoking again changes nothing; an unknown key is a 404
    assert (await client.delete(f"{KEYS}/{issued['id']}", headers=admin)).status_code == 204
    r = await client.delete(f"{KEYS}/0123456789ab", headers=admin)
    assert r.status_code == 404
    assert (await client.delete(f"{KEYS}/not-an-id", headers=admin)).status_code == 422


async def test_another_process_refuses_a_revoked_key_it_still_remembers(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    """Two processes share the stores and the revocation marks; each keeps its own copy of key
    records, and of the marks, read again every `reload_s`."""
    here: ApiKeyService = app.state.identity.state["api_keys"]
    platform = app.state.platform
    marks = StoredRevocations(platform.cache, platform.sqlite("auth"), reload_s=0.05)
    await marks.start()
    there = ApiKeyService(here.identity, EmbeddedApiKeys(platform.sqlite("identity")),
                          platform.cache, AuthSettings(api_key_cache_s=3600), revocations=marks)
    issued = await new_key(client, admin)
    credential = parse_api_key(issued["key"])
    assert credential is not None
    assert (await there.authenticate(credential)).kind == "api_key"
    assert not await there.revoked(credential)
    assert (await client.delete(f"{KEYS}/{issued['id']}", headers=admin)).status_code == 204
    # its copy of the record still says live; the stored mark refuses the key
    assert (await there.authenticate(credential)).kind == "api_key"
    await eventually(lambda: there.revoked(credential), timeout_s=2,
                     what="the other process to read the mark")
    await marks.close()


async def test_a_key_of_another_tenant_is_refused(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    beta_admin = await member(app, client, "beta", ["tenant_admin"])
    beta = await new_key(client, beta_admin, tenant="beta")
    assert (await client.get("/v1/tenants/beta", headers=bearer(beta["key"]))).status_code == 200
    r = await client.get(TENANT, headers=bearer(beta["key"]))
    assert r.status_code == 403
    assert r.json()["code"] == "wrong_tenant"
    # a beta key renamed into acme is a key acme does not have
    credential = parse_api_key(beta["key"])
    assert credential is not None
    moved = ApiKeyCredential("acme", credential.key_id, credential.secret)
    r = await client.get(TENANT, headers=bearer(str(moved)))
    assert r.status_code == 401


async def test_a_key_needs_the_scopes_and_roles_of_the_route(
        client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    content_only = await new_key(client, admin, scopes=["content:read"])
    r = await client.get(TENANT, headers=bearer(content_only["key"]))
    assert r.status_code == 403
    assert r.json()["code"] == "insufficient_scope"
    # no role by default: routes that need one are closed to the key
    plain = await new_key(client, admin)
    r = await client.get(USERS, headers=bearer(plain["key"]))
    assert r.status_code == 403
    assert r.json()["code"] == "missing_role"
    educator = await new_key(client, admin, roles=["educator"])
    assert (await client.get(USERS, headers=bearer(educator["key"]))).status_code == 200
    # keys never manage keys, nor people
    full = await new_key(client, admin, scopes=["identity:read", "identity:write"],
                         roles=["educator", "teaching_assistant"])
    for method, url, body in (("GET", KEYS, None),
                              ("POST", KEYS, {"name": "x", "scopes": ["profile"]}),
                              ("POST", USERS, {"email": "e@acme.test", "display_name": "E"})):
        r = await client.request(method, url, headers=bearer(full["key"]), json=body)
        assert r.status_code == 403, (method, url, r.text)
        assert r.json()["code"] == "missing_role"


async def test_malformed_and_unknown_keys_are_unauthenticated(
        client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    issued = await new_key(client, admin)
    credential = parse_api_key(issued["key"])
    assert credential is not None
    wrong_secret = str(ApiKeyCredential("acme", credential.key_id, "0" * 64))
    unknown = str(ApiKeyCredential.new("acme"))
    for key in ("bloop_", "bloop_acme_123", "bloop_acme.0123456789ab_short", issued["key"] + "0",
                wrong_secret, unknown, "bloop_ACME." + issued["key"][11:]):
        for headers in (bearer(key), {"X-API-Key": key}):
            r = await client.get(TENANT, headers=headers)
            assert r.status_code == 401, (key, r.text)
            assert r.json()["code"] == "invalid_token", key
            assert r.headers["www-authenticate"].startswith("Bearer")
    both = {**admin, "X-API-Key": issued["key"]}
    assert (await client.get(TENANT, headers=both)).status_code == 401


async def test_each_key_has_its_own_rate_limit(
        client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    issued = await new_key(client, admin)
    other = await new_key(client, admin, name="other app")
    first = await client.get(TENANT, headers=bearer(issued["key"]))
    assert first.headers["ratelimit-limit"] == "6"
    assert int(first.headers["ratelimit-remaining"]) == 5
    assert first.headers["ratelimit-policy"] == "6;w=60"
    statuses = [(await client.get(TENANT, headers=bearer(issued["key"]))).status_code
                for _ in range(8)]
    assert statuses.count(200) in (5, 6)  # 6 when the run straddles two windows
    limited = await client.get(TENANT, headers={"X-API-Key": issued["key"]})
    assert limited.status_code == 429
    assert limited.json()["code"] == "rate_limited"
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.headers["ratelimit-remaining"] == "0"
    assert (await client.get(TENANT, headers=bearer(other["key"]))).status_code == 200
    user = await client.get(TENANT, headers=admin)  # people keep their own, larger limit
    assert user.status_code == 200
    assert user.headers["ratelimit-limit"] == "200"


async def test_bad_key_requests_are_refused_and_store_nothing(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    for body in ({"name": "x", "scopes": []},
                 {"name": "x", "scopes": ["root"]},
                 {"name": "", "scopes": ["profile"]},
                 {"scopes": ["profile"]},
                 {"name": "x", "scopes": ["profile"], "roles": ["tenant_admin"]},
                 {"name": "x", "scopes": ["profile"], "roles": ["platform_admin"]},
                 {"name": "x", "scopes": ["profile"], "expires": "never"}):
        r = await client.post(KEYS, headers=admin, json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    learner = await member(app, client, "acme", ["learner"])
    r = await client.post(KEYS, headers=learner, json={"name": "x", "scopes": ["profile"]})
    assert r.status_code == 403
    assert (await client.get(KEYS, headers=admin)).json() == {"items": [], "next": None}
    r = await client.post("/v1/tenants/ghost/api-keys", headers=admin,
                          json={"name": "x", "scopes": ["profile"]})
    assert r.status_code == 403  # another tenant's admin route


async def test_a_key_holds_no_scope_its_creator_lacks(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    await member(app, client, "acme", ["tenant_admin"], email="root@acme.test")
    r = await client.post("/v1/auth/token", data={
        "grant_type": "password", "tenant": "acme", "username": "root@acme.test",
        "password": PASSWORD, "scope": "identity:read identity:write"})
    narrow = {"Authorization": f"Bearer {r.json()['access_token']}"}
    r = await client.post(KEYS, headers=narrow, json={"name": "x", "scopes": ["content:write"]})
    assert r.status_code == 403
    assert r.json()["code"] == "insufficient_scope"
    assert (await client.get(KEYS, headers=narrow)).json()["items"] == []
    r = await client.post(KEYS, headers=narrow, json={"name": "x", "scopes": ["identity:read"]})
    assert r.status_code == 201


async def test_a_tenant_has_a_bounded_number_of_live_keys(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    service: ApiKeyService = app.state.identity.state["api_keys"]
    service.settings = service.settings.model_copy(update={"max_api_keys": 2})
    first = await new_key(client, admin)
    await new_key(client, admin)
    r = await client.post(KEYS, headers=admin, json={"name": "x", "scopes": ["profile"]})
    assert r.status_code == 409
    assert r.json()["code"] == "too_many_api_keys"
    await client.delete(f"{KEYS}/{first['id']}", headers=admin)
    await new_key(client, admin)
    # Keys asked for at once are counted against each other, not against what was there.
    service.settings = service.settings.model_copy(update={"max_api_keys": 4})
    answers = await asyncio.gather(*(client.post(KEYS, headers=admin, json={
        "name": f"app {n}", "scopes": ["profile"]}) for n in range(5)))
    assert sorted(r.status_code for r in answers) == [201, 201, 409, 409, 409]
    live = (await client.get(KEYS, headers=admin, params={"state": "live"})).json()["items"]
    assert len(live) == 4


async def test_every_key_is_listed_a_page_at_a_time_live_or_revoked(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    """However many keys were revoked, the list pages through all of them, newest first, and
    `state` picks the live or the revoked ones; a creator's export holds all their keys."""
    service: ApiKeyService = app.state.identity.state["api_keys"]
    service.settings = service.settings.model_copy(update={"max_api_keys": 2})
    old = await new_key(client, admin)
    revoked = []
    for _ in range(5):
        revoked.append(await new_key(client, admin))
        assert (await client.delete(f"{KEYS}/{revoked[-1]['id']}", headers=admin)).status_code == 204
    newest_first = [k["id"] for k in reversed(revoked)] + [old["id"]]

    async def pages(query: str) -> list[list[str]]:
        found, after = [], ""
        while True:
            r = await client.get(f"{KEYS}?limit=2&{query}{after}", headers=admin)
            assert r.status_code == 200, r.text
            found.append([k["id"] for k in r.json()["items"]])
            if r.json()["next"] is None:
                return found
            after = f"&after={r.json()['next']}"

    assert await pages("") == [newest_first[:2], newest_first[2:4], newest_first[4:]]
    assert await pages("state=live") == [[old["id"]]]
    assert await pages("state=revoked") == [newest_first[:2], newest_first[2:4], newest_first[4:5]]
    for query in ("after=nope", "state=dead", "limit=0", "limit=201"):
        r = await client.get(f"{KEYS}?{query}", headers=admin)
        assert r.status_code == 422, (query, r.text)
    export = (await client.get("/v1/tenants/acme/me/export", headers=admin)).json()
    created = export["services"]["identity"]["api_keys_created"]
    assert {k["id"] for k in created} == {old["id"], *(k["id"] for k in revoked)}
