"""What `require()` asks of the cache per authenticated call, with an access token or an API
key. A caller near its limit is counted in the cache on every call; one well under it is
counted in process after its first call. Revocation marks are read from the cache in process
(the in-process adapter) and from the process's mirror with Redis, so on Redis a known caller
well under its limit costs no round trip at all. A cache that is down still gives 503."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI
from redis.asyncio import Redis

from bloop.platform.identity.keys import KeyRing
from bloop.platform.identity.model import ApiKey
from bloop.platform.identity.service import ApiKeyService, IdentityService, token_hash
from bloop.platform.identity.stores.embedded import (
    EmbeddedApiKeys,
    EmbeddedIdentityStore,
    EmbeddedSigningKeys,
)
from bloop.platform.kit import stores
from bloop.platform.kit.auth import ApiKeyCredential, Auth, Principal, require
from bloop.platform.kit.auth.revocations import MirroredRevocations, Revocations
from bloop.platform.kit.cache import Cache, MemoryCache, RedisCache
from bloop.platform.kit.errors import install_error_handlers
from bloop.platform.kit.events.types import registry
from bloop.platform.kit.settings import AuthSettings, RedisSettings
from bloop.platform.kit.sqlite import SqliteDB
from tests.support import eventually, require_server


class CountingCache:
    """A MemoryCache that records each call, i.e. each round trip a server cache would make."""

    def __init__(self) -> None:
        self.inner = MemoryCache()
        self.calls: list[str] = []

    async def get(self, key: str) -> bytes | None:
        self.calls.append("get")
        return await self.inner.get(key)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        self.calls.append("get_many")
        return await self.inner.get_many(keys)

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        self.calls.append("set")
        await self.inner.set(key, value, ttl_s)

    async def set_many(self, items: Mapping[str, bytes], ttl_s: float | None = None) -> None:
        self.calls.append("set_many")
        await self.inner.set_many(items, ttl_s)

    async def set_if(self, key: str, value: bytes, ttl_s: float | None = None, *, guard: str,
                     seen: bytes | None) -> bool:
        self.calls.append("set_if")
        return await self.inner.set_if(key, value, ttl_s, guard=guard, seen=seen)

    async def delete(self, *keys: str) -> int:
        self.calls.append("delete")
        return await self.inner.delete(*keys)

    async def delete_prefix(self, prefix: str) -> int:
        self.calls.append("delete_prefix")
        return await self.inner.delete_prefix(prefix)

    async def incr(self, key: str, by: int = 1, ttl_s: float | None = None) -> int:
        self.calls.append("incr")
        return await self.inner.incr(key, by, ttl_s)

    async def decr(self, key: str, by: int = 1) -> int:
        self.calls.append("decr")
        return await self.inner.decr(key, by)

    async def incr_and_get_many(self, counter: str, keys: Sequence[str], by: int = 1,
                                ttl_s: float | None = None) -> tuple[int, list[bytes | None]]:
        self.calls.append("incr_and_get_many")
        return await self.inner.incr_and_get_many(counter, keys, by, ttl_s)

    async def ping(self) -> None:
        self.calls.append("ping")


class Platform:
    def __init__(self, auth: Auth) -> None:
        self.auth = auth


@pytest.fixture
async def ring(tmp_path: Path) -> AsyncIterator[KeyRing]:
    db = SqliteDB(tmp_path / "keys.sqlite3")
    store = EmbeddedSigningKeys(db)
    await store.setup()
    yield KeyRing(store, AuthSettings())
    await db.close()


def app_with(cache: Cache, ring: KeyRing, rate_limit: int = 100, key_rate_limit: int = 100,
             revocations: Revocations | None = None) -> tuple[FastAPI, Auth]:
    auth = Auth(AuthSettings(rate_limit=rate_limit, api_key_rate_limit=key_rate_limit), cache,
                revocations)
    auth.verifier.use_keys(ring)
    app = FastAPI()
    app.state.platform = Platform(auth)
    install_error_handlers(app)

    @app.get("/v1/tenants/{tenant}/thing")
    async def thing(tenant: str,
                    _: Annotated[Principal, Depends(require(scopes=["content:read"]))]
                    ) -> dict[str, str]:
        return {"tenant": tenant}

    return app, auth


async def api_keys(tmp_path: Path, cache: Cache) -> tuple[ApiKeyService, SqliteDB]:
    """Identity's API-key source on embedded stores, sharing `cache` with the app."""
    db = SqliteDB(tmp_path / "api-keys.sqlite3")
    store = EmbeddedApiKeys(db)
    await store.setup()
    identity = IdentityService(EmbeddedIdentityStore(db, registry))
    return ApiKeyService(identity, store, cache, AuthSettings()), db


async def key_of(keys: ApiKeyService, tenant: str = "acme") -> ApiKeyCredential:
    credential = ApiKeyCredential.new(tenant)
    await keys.store.add_api_key(ApiKey(
        id=credential.key_id, tenant=tenant, name="sync", scopes=["content:read"], roles=[],
        secret_hash=token_hash(credential.secret), created_by="u-admin",
        created_at=datetime.now(UTC)))
    return credential


def reader(tenant: str = "acme") -> Principal:
    return Principal(user_id=f"u-{uuid.uuid4().hex[:8]}", tenant=tenant,
                     roles=frozenset({"learner"}), scopes=frozenset({"content:read"}),
                     token_id=uuid.uuid4().hex, session_id=uuid.uuid4().hex,
                     expires_at=int(time.time()) + 600)


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bloop")


async def test_a_call_near_the_limit_is_counted_in_the_cache(ring: KeyRing) -> None:
    cache = CountingCache()
    app, auth = app_with(cache, ring, rate_limit=2)
    caller = reader()
    bearer = {"Authorization": f"Bearer {await ring.mint(caller)}"}
    async with client(app) as c:
        first = await c.get("/v1/tenants/acme/thing", headers=bearer)
        assert first.status_code == 200
        assert cache.calls == ["incr_and_get_many", "get_many"]
        assert first.headers["RateLimit-Remaining"] == "1"
        assert first.headers["RateLimit-Policy"] == "2;w=60"
        cache.calls.clear()
        assert (await c.get("/v1/tenants/acme/thing", headers=bearer)).status_code == 200
        assert cache.calls == ["incr_and_get_many", "get_many"]
        refused = await c.get("/v1/tenants/acme/thing", headers=bearer)
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.headers["RateLimit-Remaining"] == "0"

        await auth.verifier.revoke(caller)
        revoked = await c.get("/v1/tenants/acme/thing", headers=bearer)
        assert revoked.status_code == 401
        assert revoked.json()["code"] == "token_revoked"


async def test_a_revoked_session_is_refused_at_once_and_before_the_tenant_check(
        ring: KeyRing) -> None:
    app, auth = app_with(CountingCache(), ring)
    caller = reader()
    bearer = {"Authorization": f"Bearer {await ring.mint(caller)}"}
    async with client(app) as c:
        assert (await c.get("/v1/tenants/acme/thing", headers=bearer)).status_code == 200
        other = await c.get("/v1/tenants/other/thing", headers=bearer)
        assert other.status_code == 403
        assert other.json()["code"] == "wrong_tenant"
        await auth.verifier.revoke_session(caller.session_id)
        for tenant in ("acme", "other"):
            refused = await c.get(f"/v1/tenants/{tenant}/thing", headers=bearer)
            assert refused.status_code == 401
            assert refused.json()["code"] == "token_revoked"


@pytest.mark.parametrize("mirrored", [False, True])
async def test_a_cache_that_is_down_gives_503(ring: KeyRing, mirrored: bool) -> None:
    down = Redis(host="127.0.0.1", port=9, socket_connect_timeout=0.2)
    cache = RedisCache(down)
    app, auth = app_with(cache, ring, rate_limit=1000,
                         revocations=MirroredRevocations(cache) if mirrored else None)
    await auth.start()
    bearer = {"Authorization": f"Bearer {await ring.mint(reader())}"}
    try:
        async with client(app) as c:
            refused = await c.get("/v1/tenants/acme/thing", headers=bearer)
    finally:
        await auth.close()
        await down.aclose()
    assert refused.status_code == 503
    assert refused.json()["code"] == "store_unavailable"
    assert refused.json()["store"] == "redis"


async def test_a_caller_well_under_its_limit_is_counted_in_process(ring: KeyRing) -> None:
    cache = CountingCache()
    app, auth = app_with(cache, ring, rate_limit=1000)
    bearer = {"Authorization": f"Bearer {await ring.mint(reader())}"}
    async with client(app) as c:
        assert (await c.get("/v1/tenants/acme/thing", headers=bearer)).status_code == 200
        assert cache.calls == ["incr_and_get_many", "get_many"]
        cache.calls.clear()
        for n in range(10):
            r = await c.get("/v1/tenants/acme/thing", headers=bearer)
            assert r.headers["RateLimit-Remaining"] == str(1000 - 2 - n)
        assert cache.calls == ["get_many"] * 10  # the marks, read from the in-process cache
    await auth.close()  # adds the calls counted in process
    assert "incr_and_get_many" in cache.calls


async def test_on_redis_a_known_caller_well_under_its_limit_costs_no_round_trip(
        ring: KeyRing) -> None:
    require_server("redis")
    ns = f"test:{uuid.uuid4().hex[:8]}"
    here, there = (RedisCache(stores.redis_client(RedisSettings()), namespace=ns)
                   for _ in range(2))
    mirrors = MirroredRevocations(here), MirroredRevocations(there)
    app, auth = app_with(here, ring, rate_limit=1000, revocations=mirrors[0])
    _, elsewhere = app_with(there, ring, revocations=mirrors[1])
    await auth.start()
    await elsewhere.start()
    caller = reader()
    bearer = {"Authorization": f"Bearer {await ring.mint(caller)}"}
    try:
        for mirror in mirrors:
            await asyncio.wait_for(mirror.in_step_event.wait(), 5)
        async with client(app) as c:
            assert (await c.get("/v1/tenants/acme/thing", headers=bearer)).status_code == 200
            before = await commands_processed(here.redis)
            for _ in range(20):
                assert (await c.get("/v1/tenants/acme/thing", headers=bearer)).status_code == 200
            assert await commands_processed(here.redis) - before == 1  # this INFO
            # logged out in another process: refused here as soon as Redis delivers the news
            await elsewhere.verifier.revoke(caller)
            await eventually(lambda: refused(c, bearer), timeout_s=2, interval_s=0.001,
                             what="the revocation to reach this process")
    finally:
        for a in (auth, elsewhere):
            await a.close()
        await here.delete_prefix("")
        for cache in (here, there):
            await cache.redis.aclose()


async def refused(c: httpx.AsyncClient, headers: dict[str, str]) -> bool:
    r = await c.get("/v1/tenants/acme/thing", headers=headers)
    return r.status_code == 401 and r.json()["code"] == "token_revoked"


async def commands_processed(redis: Redis) -> int:
    return int((await redis.info("stats"))["total_commands_processed"])


async def test_an_api_key_call_near_its_limit_is_counted_in_the_cache(
        ring: KeyRing, tmp_path: Path) -> None:
    cache = CountingCache()
    app, auth = app_with(cache, ring, key_rate_limit=2)
    keys, db = await api_keys(tmp_path, cache)
    auth.use_api_keys(keys)
    try:
        credential = await key_of(keys)
        async with client(app) as c:
            for headers in ({"Authorization": f"Bearer {credential}"},
                            {"X-API-Key": str(credential)}):
                cache.calls.clear()
                r = await c.get("/v1/tenants/acme/thing", headers=headers)
                assert r.status_code == 200, r.text
                assert cache.calls == ["incr_and_get_many", "get_many"]
            assert r.headers["RateLimit-Remaining"] == "0"
            assert r.headers["RateLimit-Policy"] == "2;w=60"
            refused = await c.get("/v1/tenants/acme/thing", headers={"X-API-Key": str(credential)})
            assert refused.status_code == 429
            assert int(refused.headers["Retry-After"]) >= 1
            assert refused.json()["code"] == "rate_limited"
    finally:
        await db.close()


async def test_a_revoked_key_is_refused_at_once_by_a_process_that_remembers_it(
        ring: KeyRing, tmp_path: Path) -> None:
    cache = CountingCache()
    app, auth = app_with(cache, ring)
    keys, db = await api_keys(tmp_path, cache)
    auth.use_api_keys(keys)
    elsewhere = ApiKeyService(keys.identity, keys.store, cache, AuthSettings())
    try:
        credential = await key_of(keys)
        kept = await key_of(keys)
        headers = {"X-API-Key": str(credential)}
        async with client(app) as c:
            assert (await c.get("/v1/tenants/acme/thing", headers=headers)).status_code == 200
            other = await c.get("/v1/tenants/other/thing", headers=headers)
            assert other.status_code == 403
            assert other.json()["code"] == "wrong_tenant"
            # another process revokes it: this one's copy of the record still says live
            await elsewhere.revoke("acme", credential.key_id)
            assert (await keys.authenticate(credential)).kind == "api_key"
            for tenant in ("acme", "other"):
                cache.calls.clear()
                refused = await c.get(f"/v1/tenants/{tenant}/thing", headers=headers)
                assert refused.status_code == 401
                assert refused.json()["code"] == "token_revoked"
                assert "API key" in refused.json()["detail"]
                assert cache.calls == ["get_many"]  # counted in process; the mark is read
            live = await c.get("/v1/tenants/acme/thing", headers={"X-API-Key": str(kept)})
            assert live.status_code == 200
    finally:
        await db.close()


async def test_an_api_key_call_with_the_cache_down_gives_503(ring: KeyRing,
                                                             tmp_path: Path) -> None:
    down = Redis(host="127.0.0.1", port=9, socket_connect_timeout=0.2)
    app, auth = app_with(RedisCache(down), ring)
    keys, db = await api_keys(tmp_path, MemoryCache())
    auth.use_api_keys(keys)
    try:
        credential = await key_of(keys)
        async with client(app) as c:
            refused = await c.get("/v1/tenants/acme/thing", headers={"X-API-Key": str(credential)})
    finally:
        await down.aclose()
        await db.close()
    assert refused.status_code == 503
    assert refused.json()["code"] == "store_unavailable"
    assert refused.json()["store"] == "redis"
