"""Sign-in, refresh, sign-out and the attacks on them, through the real app: each attack gets a
clear 4xx and changes nothing."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import httpx
import jwt
import pytest
import redis.exceptions
from cryptography.hazmat.primitives.asymmetric import ed25519
from fastapi import FastAPI

from bloop.platform.app import create_app
from bloop.platform.identity.model import RefreshToken, User
from bloop.platform.identity.service import AuthService, TokenGrant, token_hash
from bloop.platform.kit.auth import Principal, Scope
from bloop.platform.kit.cache import MemoryCache
from bloop.platform.kit.errors import StoreUnavailable, is_store_down
from bloop.platform.kit.settings import AuthSettings, RuntimeSettings, Settings
from tests.support import PASSWORD, api_client, login, member

TOKEN = "/v1/auth/token"
ME = "/v1/tenants/acme/me"


def refused(app: FastAPI, limit: str, route: str) -> float | None:
    """The 429s `/metrics` counts for `limit` on `route` (a template)."""
    return app.state.platform.metrics.registry.get_sample_value(  # type: ignore[no-any-return]
        "bloop_rate_limited_total", {"limit": limit, "route": route})


@contextlib.asynccontextmanager
async def identity_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                       auth: AuthSettings) -> AsyncIterator[FastAPI]:
    for var in ("BLOOP_STORE", "BLOOP_MONGO_ADAPTER", "BLOOP_KAFKA_ADAPTER", "BLOOP_REDIS_ADAPTER"):
        monkeypatch.delenv(var, raising=False)
    settings = Settings(runtime=RuntimeSettings(data_dir=tmp_path, seed_demo=False), auth=auth)
    application = create_app(settings, services=["identity"])
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FastAPI]:
    async with identity_app(tmp_path, monkeypatch, AuthSettings(
            account_max_failures=3, ip_max_failures=8, account_max_failures_anywhere=6,
            rate_limit=40)) as application:
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(app) as c:
        yield c


def password_form(email: str, password: str = PASSWORD, tenant: str = "acme") -> dict[str, str]:
    return {"grant_type": "password", "tenant": tenant, "username": email, "password": password}


def refresh_form(token: str, tenant: str = "acme") -> dict[str, str]:
    return {"grant_type": "refresh_token", "tenant": tenant, "refresh_token": token}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def auth_service(app: FastAPI) -> AuthService:
    service: AuthService = app.state.identity.state["auth"]
    return service


async def test_sign_in_is_an_oauth2_password_grant(app: FastAPI, client: httpx.AsyncClient) -> None:
    await member(app, client, "acme", ["educator"], email="ada@acme.dev")
    r = await client.post(TOKEN, data=password_form("ADA@Acme.DEV"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    assert r.headers["cache-control"] == "no-store"
    header = jwt.get_unverified_header(body["access_token"])
    assert (header["alg"], header["typ"]) == ("EdDSA", "at+jwt")
    keys = (await client.get("/.well-known/jwks.json")).json()["keys"]
    assert header["kid"] in {k["kid"] for k in keys}
    assert all("d" not in k for k in keys)
    me = (await client.get(ME, headers=bearer(body["access_token"]))).json()
    assert me["email"] == "ada@acme.dev"

    narrow = await client.post(TOKEN, data={**password_form("ada@acme.dev"), "scope": "profile"})
    assert narrow.json()["scope"] == "profile"
    r = await client.get("/v1/tenants/acme", headers=bearer(narrow.json()["access_token"]))
    assert r.status_code == 403
    assert r.json()["code"] == "insufficient_scope"
    bad_scope = await client.post(TOKEN, data={**password_form("ada@acme.dev"), "scope": "root"})
    assert bad_scope.status_code == 400


async def test_bad_sign_ins_are_refused_alike(app: FastAPI, client: httpx.AsyncClient) -> None:
    await member(app, client, "acme", ["learner"], email="lee@acme.dev")
    wrong = await client.post(TOKEN, data=password_form("lee@acme.dev", "not the password!"))
    unknown = await client.post(TOKEN, data=password_form("nobody@acme.dev"))
    other_tenant = await client.post(TOKEN, data=password_form("lee@acme.dev", tenant="beta"))
    for r in (wrong, unknown, other_tenant):
        assert r.status_code == 400
        assert r.json()["detail"] == "wrong email or password"
        assert r.json()["error"] == "invalid_grant"
    for form in ({"grant_type": "password", "tenant": "acme"},
                 {**password_form("lee@acme.dev"), "grant_type": "client_credentials"},
                 {**password_form("lee@acme.dev"), "admin": "1"},
                 {**password_form("lee@acme.dev"), "tenant": "../etc"},
                 {**password_form("not-an-email"), "grant_type": "password"},
                 {"grant_type": "refresh_token", "tenant": "acme"}):
        r = await client.post(TOKEN, data=form)
        assert r.status_code in (400, 422), (form, r.text)
    r = await client.post(TOKEN, json=password_form("lee@acme.dev"))
    assert r.status_code == 422


async def test_the_tenant_may_come_in_the_query_string(app: FastAPI, client: httpx.AsyncClient) -> None:
    """Where Swagger UI's Authorize dialog puts it (it has no field for a tenant)."""
    await member(app, client, "acme", ["learner"], email="lee@acme.dev")
    form = {k: v for k, v in password_form("lee@acme.dev").items() if k != "tenant"}
    r = await client.post(TOKEN, params={"tenant": "acme"}, data={**form, "scope": ""})
    assert r.status_code == 200, r.text
    me = await client.get(ME, headers=bearer(r.json()["access_token"]))
    assert me.json()["email"] == "lee@acme.dev"
    both = await client.post(TOKEN, params={"tenant": "acme"}, data=password_form("lee@acme.dev"))
    assert both.status_code == 200
    neither = await client.post(TOKEN, data=form)
    differ = await client.post(TOKEN, params={"tenant": "beta"}, data=password_form("lee@acme.dev"))
    for r in (neither, differ):
        assert r.status_code == 400
        assert (r.json()["code"], r.json()["error"]) == ("invalid_request", "invalid_request")
    assert "tenant" in neither.json()["detail"]
    bad = await client.post(TOKEN, params={"tenant": "../etc"}, data=form)
    assert bad.status_code == 422


async def test_repeated_failures_lock_the_account_with_a_clear_message(
        app: FastAPI, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "bloop.security")
    await member(app, client, "acme", ["learner"], email="lee@acme.dev")
    await member(app, client, "acme", ["learner"], email="kim@acme.dev")
    for _ in range(3):
        r = await client.post(TOKEN, data=password_form("lee@acme.dev", "guessing wrongly!"))
        assert r.status_code == 400
    locked = await client.post(TOKEN, data=password_form("lee@acme.dev"))
    assert locked.status_code == 429
    assert locked.json()["code"] == "account_locked"
    assert "locked for 15 minutes" in locked.json()["detail"]
    assert int(locked.headers["retry-after"]) > 0
    seen = [r for r in caplog.records if r.name == "bloop.security"]
    assert [r.getMessage() for r in seen] == ["sign-in refused: wrong password"] * 3 + [
        "sign-in refused: account locked"]
    assert seen[-1].levelname == "WARNING"
    assert len({r.__dict__["account"] for r in seen}) == 1
    assert "lee@" not in caplog.text
    assert (await client.post(TOKEN, data=password_form("kim@acme.dev"))).status_code == 200
    # the address keeps counting across accounts: brute force is cut off too
    for n in range(5):
        r = await client.post(TOKEN, data=password_form(f"guess{n}@acme.dev", "guessing wrongly!"))
    r = await client.post(TOKEN, data=password_form("kim@acme.dev"))
    assert r.status_code == 429
    assert r.json()["code"] == "too_many_attempts"


async def test_the_security_log_names_an_account_by_a_keyed_digest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """It was the SHA-256 of the tenant and email: anyone with a list of candidate emails
    could tell the account. Keyed with the deployment's secret, it is the same after a restart
    and differs in another deployment."""
    caplog.set_level(logging.INFO, "bloop.security")

    async def logged(data_dir: Path) -> str:
        caplog.clear()
        async with identity_app(data_dir, monkeypatch, AuthSettings()) as app, \
                api_client(app) as client:
            r = await client.post(TOKEN, data=password_form("lee@acme.dev", "guessing wrongly!"))
            assert r.status_code == 400
        [record] = [r for r in caplog.records if r.name == "bloop.security"]
        account: str = record.__dict__["account"]
        return account

    first = await logged(tmp_path / "one")
    assert re.fullmatch(r"[0-9a-f]{16}", first)
    assert first != hashlib.sha256(b"acme\0lee@acme.dev").hexdigest()[:16]
    assert await logged(tmp_path / "one") == first
    assert await logged(tmp_path / "two") != first


def from_address(app: FastAPI, host: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(host, 4321)),
                             base_url="http://bloop.test")


async def test_one_address_guessing_cannot_lock_the_owner_out(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    """Six requests every 15 minutes from anywhere kept any account locked for everyone.
    Guesses spread over many addresses still lock it, at the higher limit."""
    await member(app, client, "acme", ["learner"], email="lee@acme.dev")
    guessers = [from_address(app, f"10.0.0.{n}") for n in range(1, 4)]
    async with guessers[0] as one, guessers[1] as two, guessers[2] as three, \
            from_address(app, "192.0.2.7") as owner:
        for _ in range(3):
            r = await one.post(TOKEN, data=password_form("lee@acme.dev", "guessing wrongly!"))
            assert r.json()["code"] == "invalid_credentials"
        r = await one.post(TOKEN, data=password_form("lee@acme.dev"))
        assert (r.status_code, r.json()["code"]) == (429, "account_locked")
        assert (await owner.post(TOKEN, data=password_form("lee@acme.dev"))).status_code == 200
        for guesser in (two, three):  # 6 failures from all addresses: locked for everyone
            for _ in range(3):  # but where the owner signed in
                await guesser.post(TOKEN, data=password_form("lee@acme.dev", "guessing wrongly!"))
        r = await one.post(TOKEN, data=password_form("lee@acme.dev"))
        assert (r.status_code, r.json()["code"]) == (429, "account_locked")
        assert (await owner.post(TOKEN, data=password_form("lee@acme.dev"))).status_code == 200
    # `one`'s fourth and fifth tries, the last three guesses
    assert refused(app, "account_locked", TOKEN) == 5


async def test_guesses_from_many_addresses_do_not_lock_the_owner_out_where_they_signed_in(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    """Three wrong passwords from each of a few addresses locked the account for everyone, its
    owner too, again every 15 minutes. An address the account signed in from is now let
    through that lock (not through its own); anywhere else it holds."""
    await member(app, client, "acme", ["learner"], email="lee@acme.dev")
    await member(app, client, "acme", ["learner"], email="kim@acme.dev")
    async with contextlib.AsyncExitStack() as stack:
        home, kims, fresh = [await stack.enter_async_context(from_address(app, host))
                             for host in ("192.0.2.7", "192.0.2.50", "192.0.2.99")]
        grant = (await home.post(TOKEN, data=password_form("lee@acme.dev"))).json()
        assert await signs_in(kims, "kim@acme.dev", PASSWORD)
        for n in range(4):
            guesser = await stack.enter_async_context(from_address(app, f"10.0.0.{n}"))
            for _ in range(3):
                await guesser.post(TOKEN, data=password_form("lee@acme.dev", "guessing wrongly!"))
        for elsewhere in (fresh, kims):  # another account's address is not this one's
            r = await elsewhere.post(TOKEN, data=password_form("lee@acme.dev"))
            assert (r.status_code, r.json()["code"]) == (429, "account_locked")
            assert r.headers["retry-after"] == "900"
        assert await signs_in(home, "lee@acme.dev", PASSWORD)
        r = await home.put(ME + "/password", headers=bearer(grant["access_token"]), json={
            "current_password": PASSWORD, "new_password": NEW})
        assert r.status_code == 204, r.text
        for _ in range(3):  # the address's own lock holds for the owner's address too
            r = await home.post(TOKEN, data=password_form("lee@acme.dev", "guessing wrongly!"))
            assert r.json()["code"] == "invalid_credentials"
        r = await home.post(TOKEN, data=password_form("lee@acme.dev", NEW))
        assert (r.status_code, r.json()["code"]) == (429, "account_locked")
    cache = auth_service(app).cache
    assert isinstance(cache, MemoryCache)
    marks = {k: v for k, v in cache._data.items() if k.startswith("auth:known:")}
    assert len(marks) == 4  # each at 127.0.0.1 (`member`), lee at home, kim at hers
    assert not any("@" in k or "192.0.2" in k for k in marks)
    month = cache.clock() + 30 * 86_400
    assert all(month - 60 < expires <= month for _, expires in marks.values()
               if expires is not None)


async def test_guesses_from_many_addresses_at_once_are_counted_before_they_are_checked(
        app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Guesses sent at once from many addresses were all checked (the count from all addresses
    was read before each check and added to after it); the account-wide lock of six now lets
    six through. A right password, and a check that could not be made, take back their count."""
    await member(app, client, "acme", ["learner"], email="lee@acme.dev")
    hasher = auth_service(app).identity.hasher
    checking = hasher.verify

    async def down(hashed: str | None, password: str) -> bool:
        raise StoreUnavailable("sqlite", "the disk went away")

    async with contextlib.AsyncExitStack() as stack:
        owners = [await stack.enter_async_context(from_address(app, f"192.0.2.{n}"))
                  for n in range(1, 11)]
        guessers = [await stack.enter_async_context(from_address(app, f"10.0.0.{n}"))
                    for n in range(1, 21)]
        monkeypatch.setattr(hasher, "verify", down)
        for guesser in guessers[:10]:
            r = await guesser.post(TOKEN, data=password_form("lee@acme.dev"))
            assert r.status_code == 503, r.text
        monkeypatch.setattr(hasher, "verify", checking)
        for owner in owners:
            assert await signs_in(owner, "lee@acme.dev", PASSWORD)
        answers = await asyncio.gather(*(
            guesser.post(TOKEN, data=password_form("lee@acme.dev", f"guess number {n} wrong!"))
            for n, guesser in enumerate(guessers)))
    codes = sorted(r.json()["code"] for r in answers)
    assert codes == ["account_locked"] * 14 + ["invalid_credentials"] * 6


@pytest.mark.parametrize("check", ["right", "fails"])
async def test_a_count_that_expired_during_its_check_is_not_taken_below_nothing(
        app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch,
        check: str) -> None:
    """An attempt's count is taken back once its password is right or could not be checked;
    when the count expired meanwhile, it came back as -1: one more guess for 15 minutes."""
    await member(app, client, "acme", ["learner"], email="lee@acme.dev")
    cache = auth_service(app).cache
    assert isinstance(cache, MemoryCache)
    hasher = auth_service(app).identity.hasher
    checking = hasher.verify

    async def expiring(hashed: str | None, password: str) -> bool:
        await cache.delete_prefix("auth:fail:")  # the lockout's 15 minutes ran out
        if check == "fails":
            raise StoreUnavailable("sqlite", "the disk went away")
        return await checking(hashed, password)

    monkeypatch.setattr(hasher, "verify", expiring)
    async with contextlib.AsyncExitStack() as stack:
        home, fresh = [await stack.enter_async_context(from_address(app, host))
                       for host in ("192.0.2.7", "192.0.2.99")]
        r = await home.post(TOKEN, data=password_form("lee@acme.dev"))
        assert r.status_code == (200 if check == "right" else 503), r.text
        monkeypatch.setattr(hasher, "verify", checking)
        assert {k: v for k, (v, _) in cache._data.items() if k.startswith("auth:fail:")} == {}
        for _ in range(3):  # the address's lock comes at its third wrong password still
            r = await home.post(TOKEN, data=password_form("lee@acme.dev", "guessing wrongly!"))
            assert r.json()["code"] == "invalid_credentials"
        r = await home.post(TOKEN, data=password_form("lee@acme.dev"))
        assert (r.status_code, r.json()["code"]) == (429, "account_locked")
        guesser = await stack.enter_async_context(from_address(app, "10.0.0.1"))
        for _ in range(3):  # and the account's, for everyone else, at the sixth
            await guesser.post(TOKEN, data=password_form("lee@acme.dev", "guessing wrongly!"))
        r = await fresh.post(TOKEN, data=password_form("lee@acme.dev"))
        assert (r.status_code, r.json()["code"]) == (429, "account_locked")


async def test_a_right_password_stands_when_its_address_cannot_be_remembered(
        app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Marking the address an account signed in from is for later sign-ins (see
    `test_guesses_from_many_addresses_do_not_lock_the_owner_out_where_they_signed_in`): a cache
    down at that moment turned the right password into an error."""
    await member(app, client, "acme", ["learner"], email="lee@acme.dev")
    cache = auth_service(app).cache
    keeping = cache.set

    async def down_for_marks(key: str, value: bytes, ttl_s: float | None = None) -> None:
        if key.startswith("auth:known:"):
            raise redis.exceptions.ConnectionError("Redis closed the connection: EOF")
        await keeping(key, value, ttl_s)

    monkeypatch.setattr(cache, "set", down_for_marks)
    caplog.set_level(logging.WARNING, "bloop.identity")
    async with from_address(app, "192.0.2.7") as home:
        r = await home.post(TOKEN, data=password_form("lee@acme.dev"))
        assert r.status_code == 200, r.text
        grant = r.json()
        assert (await home.get(ME, headers=bearer(grant["access_token"]))).status_code == 200
    [warned] = [r for r in caplog.records if r.name == "bloop.identity"]
    assert "not remembered" in warned.getMessage()
    assert "lee@acme.dev" not in str(warned.__dict__)



@pytest.mark.parametrize("failure", [
    redis.exceptions.ResponseError("OOM command not allowed when used memory > 'maxmemory'."),
    redis.exceptions.RedisError("a reply that could not be read"),
    RuntimeError("a bug, not an outage")])
async def test_a_right_password_stands_whatever_the_cache_fails_with_as_it_is_remembered(
        app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture, failure: Exception) -> None:
    """Only an outage was tolerated: a Redis out of memory (`ResponseError`), or any other
    error of the cache, turned the right password into a 500. The checks before the password
    still fail closed."""
    await member(app, client, "acme", ["learner"], email="lee@acme.dev")
    cache = auth_service(app).cache
    keeping = cache.set

    async def failing_marks(key: str, value: bytes, ttl_s: float | None = None) -> None:
        if key.startswith("auth:known:"):
            raise failure
        await keeping(key, value, ttl_s)

    monkeypatch.setattr(cache, "set", failing_marks)
    caplog.set_level(logging.WARNING, "bloop.identity")
    r = await client.post(TOKEN, data=password_form("lee@acme.dev"))
    assert r.status_code == 200, r.text
    [warned] = [r for r in caplog.records if r.name == "bloop.identity"]
    assert "not remembered" in warned.getMessage()
    # An outage (Redis out of memory is one) is logged without a traceback, anything else with.
    assert (warned.exc_info is None) == is_store_down(failure)

    async def failing_counts(key: str, by: int = 1, ttl_s: float | None = None) -> int:
        raise failure

    monkeypatch.setattr(cache, "incr", failing_counts)
    r = await client.post(TOKEN, data=password_form("lee@acme.dev"))
    assert r.status_code >= 500, r.text


async def test_token_requests_from_one_address_are_limited_right_or_wrong(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only wrong passwords were counted, so one address signing in with its own right
    password, or refreshing, as fast as it liked kept the server hashing (~0.1 s of CPU a
    sign-in). Every token request now counts; a refused refresh spends nothing."""
    async with identity_app(tmp_path, monkeypatch, AuthSettings(token_rate_limit=4)) as app, \
            api_client(app) as client, from_address(app, "192.0.2.7") as elsewhere:
        await member(app, client, "acme", ["learner"], email="lee@acme.dev")
        grant = (await client.post(TOKEN, data=password_form("lee@acme.dev"))).json()
        grant = (await client.post(TOKEN, data=refresh_form(grant["refresh_token"]))).json()
        assert (await client.post(TOKEN, data=password_form("lee@acme.dev", "a wrong one!"))
                ).json()["code"] == "invalid_credentials"
        for form in (password_form("lee@acme.dev"), refresh_form(grant["refresh_token"])):
            r = await client.post(TOKEN, data=form)
            assert (r.status_code, r.json()["code"]) == (429, "rate_limited")
            assert r.headers["ratelimit-policy"] == "4;w=60"
            assert int(r.headers["retry-after"]) >= 1
        assert (await elsewhere.post(TOKEN, data=refresh_form(grant["refresh_token"]))
                ).status_code == 200
        assert refused(app, "token_requests", TOKEN) == 2


async def test_sign_ups_from_one_address_count_in_its_token_budget(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sign-up had no limit: one address made accounts as fast as it liked, each an
    unauthenticated password hash. Sign-ups now count with the address's token requests."""
    async with identity_app(tmp_path, monkeypatch, AuthSettings(token_rate_limit=3)) as app, \
            api_client(app) as client, from_address(app, "192.0.2.7") as elsewhere:
        admin = await member(app, client, "acme", ["tenant_admin"])
        r = await client.patch("/v1/tenants/acme/settings", headers=admin,
                               json={"allowed_signup_domains": ["acme.dev"]})
        assert r.status_code == 200, r.text

        def body(name: str) -> dict[str, str]:
            return {"email": f"{name}@acme.dev", "display_name": name, "password": PASSWORD}

        # the member's sign-in spent one of the three
        for name in ("ann", "bob"):
            assert (await client.post("/v1/tenants/acme/signup", json=body(name))
                    ).status_code == 201
        r = await client.post("/v1/tenants/acme/signup", json=body("cat"))
        assert (r.status_code, r.json()["code"]) == (429, "rate_limited")
        assert (await client.post(TOKEN, data=password_form("ann@acme.dev"))).status_code == 429
        assert (await elsewhere.post("/v1/tenants/acme/signup", json=body("cat"))
                ).status_code == 201


async def test_tokens_refused_stay_refused_after_a_restart(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the embedded stores the marks lived in the process's memory: after a restart, the
    access token of a person deleted (or signed out) minutes before worked again, and what it
    wrote for an erased id was never erased."""
    async with identity_app(tmp_path, monkeypatch, AuthSettings()) as app, \
            api_client(app) as client:
        gone = await member(app, client, "acme", ["learner"])
        out = await member(app, client, "acme", ["learner"])
        kept = await member(app, client, "acme", ["learner"])
        assert (await client.delete(ME, headers=gone)).status_code == 204
        assert (await client.post("/v1/tenants/acme/auth/logout", headers=out)).status_code == 204
    async with identity_app(tmp_path, monkeypatch, AuthSettings()) as app, \
            api_client(app) as client:
        for headers in (gone, out):
            r = await client.get(ME, headers=headers)
            assert (r.status_code, r.json()["code"]) == (401, "token_revoked"), r.text
        assert (await client.get(ME, headers=kept)).status_code == 200


async def test_a_sign_in_forgets_expired_refresh_tokens_once_an_hour(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    await member(app, client, "acme", ["learner"], email="lee@acme.dev")
    auth = auth_service(app)
    grant = (await client.post(TOKEN, data=password_form("lee@acme.dev"))).json()
    live = await auth.repo.get_refresh_token("acme", token_hash(grant["refresh_token"]))
    assert live is not None
    expired = live.model_copy(update={"token_hash": "expired", "expires_at": live.created_at})
    await auth.repo.add_refresh_token(expired)
    assert (await client.post(TOKEN, data=password_form("lee@acme.dev"))).status_code == 200
    assert await auth.repo.get_refresh_token("acme", "expired") is not None  # within the hour
    auth._pruned_at -= 3601
    assert (await client.post(TOKEN, data=refresh_form(grant["refresh_token"]))).status_code == 200
    assert await auth.repo.get_refresh_token("acme", "expired") is None


async def test_guesses_sent_at_once_are_counted_before_they_are_checked(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    """Eight wrong passwords at once against a limit of three: three are checked, five are
    refused unchecked, and the account is locked to the right password too."""
    await member(app, client, "acme", ["learner"], email="lee@acme.dev")
    answers = await asyncio.gather(*(
        client.post(TOKEN, data=password_form("lee@acme.dev", f"guess number {n} wrong!"))
        for n in range(8)))
    codes = sorted(r.json()["code"] for r in answers)
    assert codes == ["account_locked"] * 5 + ["invalid_credentials"] * 3
    assert (await client.post(TOKEN, data=password_form("lee@acme.dev"))).status_code == 429


async def test_an_unknown_email_costs_a_password_check_too(
        app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """So an answer's time does not tell which emails have accounts."""
    hasher = auth_service(app).identity.hasher
    checking = hasher.verify
    checked: list[str | None] = []

    async def verify(hashed: str | None, password: str) -> bool:
        checked.append(hashed)
        return await checking(hashed, password)

    monkeypatch.setattr(hasher, "verify", verify)
    r = await client.post(TOKEN, data=password_form("nobody@acme.dev", "any password at all"))
    assert r.json()["code"] == "invalid_credentials"
    assert checked == [None]


async def test_refresh_rotates_and_a_reused_token_ends_the_session(
        app: FastAPI, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    await member(app, client, "acme", ["learner"], email="lee@acme.dev")
    first = (await client.post(TOKEN, data=password_form("lee@acme.dev"))).json()
    second = await client.post(TOKEN, data=refresh_form(first["refresh_token"]))
    assert second.status_code == 200
    second_body = second.json()
    assert second_body["refresh_token"] != first["refresh_token"]
    assert (await client.get(ME, headers=bearer(second_body["access_token"]))).status_code == 200

    grace = auth_service(app).settings.refresh_reuse_grace_s
    monkeypatch.setattr(auth_service(app), "clock", lambda: time.time() + grace + 1)
    stolen = await client.post(TOKEN, data=refresh_form(first["refresh_token"]))
    assert stolen.status_code == 400
    assert stolen.json()["code"] == "refresh_token_reused"
    reused = [r for r in caplog.records if r.name == "bloop.security"]
    assert [(r.levelname, r.getMessage()) for r in reused] == [
        ("WARNING", "refresh token reused: session signed out")]
    assert (await client.post(TOKEN, data=refresh_form(second_body["refresh_token"]))
            ).status_code == 400
    r = await client.get(ME, headers=bearer(second_body["access_token"]))
    assert r.status_code == 401
    assert r.json()["code"] == "token_revoked"

    other = (await client.post(TOKEN, data=password_form("lee@acme.dev"))).json()
    assert (await client.get(ME, headers=bearer(other["access_token"]))).status_code == 200
    assert (await client.post(TOKEN, data=refresh_form(other["refresh_token"], "beta"))
            ).status_code == 400
    assert (await client.post(TOKEN, data=refresh_form("made-up-token"))).status_code == 400
    again = await client.post(TOKEN, data=refresh_form(other["refresh_token"]))
    assert again.status_code == 200


async def test_refreshes_at_once_or_a_retry_within_the_grace_keep_the_session(
        app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two tabs refreshing one token at once: one got 200 and the other 400
    `refresh_token_reused`, which signed the session out, so the 200's tokens were dead on
    arrival. Within the grace each gets a pair; past it, the token's reuse ends the session,
    every pair handed out included."""
    await member(app, client, "acme", ["learner"], email="lee@acme.dev")
    first = (await client.post(TOKEN, data=password_form("lee@acme.dev"))).json()
    tabs = await asyncio.gather(*(client.post(TOKEN, data=refresh_form(first["refresh_token"]))
                                  for _ in range(2)))
    assert [r.status_code for r in tabs] == [200, 200], [r.text for r in tabs]
    retry = await client.post(TOKEN, data=refresh_form(first["refresh_token"]))  # answer lost
    assert retry.status_code == 200, retry.text
    pairs = [r.json() for r in (*tabs, retry)]
    assert len({p["refresh_token"] for p in pairs}) == 3
    for pair in pairs:
        assert (await client.get(ME, headers=bearer(pair["access_token"]))).status_code == 200
    rotated = await client.post(TOKEN, data=refresh_form(pairs[0]["refresh_token"]))
    assert rotated.status_code == 200, rotated.text

    grace = auth_service(app).settings.refresh_reuse_grace_s
    monkeypatch.setattr(auth_service(app), "clock", lambda: time.time() + grace + 1)
    stolen = await client.post(TOKEN, data=refresh_form(first["refresh_token"]))
    assert (stolen.status_code, stolen.json()["code"]) == (400, "refresh_token_reused")
    for pair in (*pairs[1:], rotated.json()):
        assert (await client.post(TOKEN, data=refresh_form(pair["refresh_token"]))
                ).status_code == 400
        assert (await client.get(ME, headers=bearer(pair["access_token"]))).status_code == 401


async def test_a_replay_before_the_first_use_is_grace_only_within_the_clock_leeway(
        app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """A replica whose clock is behind the one that spent the token sees a quick retry before
    the first use: within the clock leeway, that is grace. A clock set back an hour does not
    make a stolen token's replay a retry."""
    await member(app, client, "acme", ["learner"], email="lee@acme.dev")
    first = (await client.post(TOKEN, data=password_form("lee@acme.dev"))).json()
    spent = await client.post(TOKEN, data=refresh_form(first["refresh_token"]))
    assert spent.status_code == 200, spent.text
    service = auth_service(app)
    leeway = service.settings.clock_leeway_s
    monkeypatch.setattr(service, "clock", lambda: time.time() - leeway + 1)
    retry = await client.post(TOKEN, data=refresh_form(first["refresh_token"]))
    assert retry.status_code == 200, retry.text

    monkeypatch.setattr(service, "clock", lambda: time.time() - 3600)
    stolen = await client.post(TOKEN, data=refresh_form(first["refresh_token"]))
    assert (stolen.status_code, stolen.json()["code"]) == (400, "refresh_token_reused")
    for pair in (spent.json(), retry.json()):
        assert (await client.get(ME, headers=bearer(pair["access_token"]))).status_code == 401


async def test_a_refresh_token_expires_on_the_services_clock(
        app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its expiry is set from the service's clock and was checked against the host's."""
    await member(app, client, "acme", ["learner"], email="lee@acme.dev")
    first = (await client.post(TOKEN, data=password_form("lee@acme.dev"))).json()
    service = auth_service(app)
    ttl = service.settings.refresh_ttl_s
    monkeypatch.setattr(service, "clock", lambda: time.time() + ttl - 60)
    kept = await client.post(TOKEN, data=refresh_form(first["refresh_token"]))
    assert kept.status_code == 200, kept.text
    monkeypatch.setattr(service, "clock", lambda: time.time() + 2 * ttl)
    late = await client.post(TOKEN, data=refresh_form(kept.json()["refresh_token"]))
    assert (late.status_code, late.json()["code"]) == (400, "invalid_grant"), late.text
    assert "expired" in late.json()["detail"]


async def test_a_refresh_that_fails_part_way_leaves_the_token_for_the_retry(
        app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store fails while the new pair is saved: the client is not signed out, and the
    same refresh token works once the store answers again."""
    await member(app, client, "acme", ["learner"], email="lee@acme.dev")
    first = (await client.post(TOKEN, data=password_form("lee@acme.dev"))).json()
    repo = auth_service(app).repo
    saving = repo.add_refresh_token

    async def down(token: RefreshToken) -> None:
        raise StoreUnavailable("sqlite", "the disk went away")

    monkeypatch.setattr(repo, "add_refresh_token", down)
    failed = await client.post(TOKEN, data=refresh_form(first["refresh_token"]))
    assert failed.status_code == 503, failed.text
    monkeypatch.setattr(repo, "add_refresh_token", saving)
    retried = await client.post(TOKEN, data=refresh_form(first["refresh_token"]))
    assert retried.status_code == 200, retried.text
    assert (await client.get(ME, headers=bearer(retried.json()["access_token"]))).status_code == 200


async def test_a_session_signed_out_during_a_refresh_keeps_no_successor(
        app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    await member(app, client, "acme", ["learner"], email="lee@acme.dev")
    grant = (await client.post(TOKEN, data=password_form("lee@acme.dev"))).json()
    repo = auth_service(app).repo
    spending = repo.use_refresh_token
    stored: list[RefreshToken] = []
    saving = repo.add_refresh_token

    async def save(token: RefreshToken) -> None:
        stored.append(token)
        await saving(token)

    async def signed_out_first(tenant: str, hashed: str, at: datetime) -> RefreshToken | None:
        await client.post("/v1/tenants/acme/auth/logout", headers=bearer(grant["access_token"]))
        return await spending(tenant, hashed, at)

    monkeypatch.setattr(repo, "add_refresh_token", save)
    monkeypatch.setattr(repo, "use_refresh_token", signed_out_first)
    r = await client.post(TOKEN, data=refresh_form(grant["refresh_token"]))
    assert r.status_code == 400, r.text
    [successor] = stored
    kept = await repo.get_refresh_token("acme", successor.token_hash)
    assert kept is not None
    assert kept.revoked


async def test_a_refresh_may_narrow_the_scopes_never_widen_them(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    await member(app, client, "acme", ["learner"], email="lee@acme.dev")
    narrow = (await client.post(TOKEN, data={**password_form("lee@acme.dev"),
                                             "scope": "profile content:read"})).json()
    assert set(narrow["scope"].split()) == {"profile", "content:read"}
    wider = await client.post(TOKEN, data={**refresh_form(narrow["refresh_token"]),
                                           "scope": "profile content:read learning:write"})
    assert wider.status_code == 400, wider.text
    assert (wider.json()["code"], wider.json()["error"]) == ("invalid_scope", "invalid_grant")
    # The refused refresh spent nothing: the same token still narrows.
    narrower = await client.post(TOKEN, data={**refresh_form(narrow["refresh_token"]),
                                              "scope": "profile"})
    assert narrower.status_code == 200, narrower.text
    claims = jwt.decode(narrower.json()["access_token"], options={"verify_signature": False})
    assert claims["scope"] == "profile"


async def test_an_expired_refresh_token_is_refused(app: FastAPI, client: httpx.AsyncClient) -> None:
    """Refused as soon as it expires, not only once the hourly sweep has removed it."""
    await member(app, client, "acme", ["learner"], email="lee@acme.dev")
    auth = auth_service(app)
    grant = (await client.post(TOKEN, data=password_form("lee@acme.dev"))).json()
    live = await auth.repo.get_refresh_token("acme", token_hash(grant["refresh_token"]))
    assert live is not None
    await auth.repo.add_refresh_token(live.model_copy(update={
        "token_hash": token_hash("an expired refresh token"), "expires_at": live.created_at}))
    r = await client.post(TOKEN, data=refresh_form("an expired refresh token"))
    assert r.status_code == 400, r.text
    assert (r.json()["code"], r.json()["error"]) == ("invalid_grant", "invalid_grant")
    assert "expired" in r.json()["detail"]


async def test_a_refresh_for_a_deleted_account_is_refused(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    lee = await member(app, client, "acme", ["learner"], email="lee@acme.dev")
    grant = (await client.post(TOKEN, data=password_form("lee@acme.dev"))).json()
    assert (await client.delete(ME, headers=lee)).status_code == 204
    r = await client.post(TOKEN, data=refresh_form(grant["refresh_token"]))
    assert r.status_code == 400, r.text
    assert r.json()["code"] in ("invalid_grant", "refresh_token_reused")


async def test_logout_revokes_at_once(app: FastAPI, client: httpx.AsyncClient) -> None:
    await member(app, client, "acme", ["learner"], email="lee@acme.dev")
    grant = (await client.post(TOKEN, data=password_form("lee@acme.dev"))).json()
    kept = await login(client, "acme", "lee@acme.dev")
    access = bearer(grant["access_token"])
    r = await client.post("/v1/tenants/acme/auth/logout", headers=access)
    assert r.status_code == 204
    r = await client.get(ME, headers=access)
    assert r.status_code == 401
    assert r.json()["code"] == "token_revoked"
    assert (await client.post(TOKEN, data=refresh_form(grant["refresh_token"]))).status_code == 400
    assert (await client.get(ME, headers=kept)).status_code == 200  # other sessions go on


async def test_a_logout_that_fails_part_way_can_be_retried(
        app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    await member(app, client, "acme", ["learner"], email="lee@acme.dev")
    grant = (await client.post(TOKEN, data=password_form("lee@acme.dev"))).json()
    repo = auth_service(app).repo
    revoking = repo.revoke_refresh_family

    async def down(tenant: str, family: str) -> int:
        raise StoreUnavailable("sqlite", "the disk went away")

    logout = "/v1/tenants/acme/auth/logout"
    monkeypatch.setattr(repo, "revoke_refresh_family", down)
    assert (await client.post(logout, headers=bearer(grant["access_token"]))).status_code == 503
    monkeypatch.setattr(repo, "revoke_refresh_family", revoking)
    out = await client.post(logout, headers=bearer(grant["access_token"]))
    assert out.status_code == 204
    assert "content-type" not in out.headers
    assert out.content == b""
    assert (await client.get(ME, headers=bearer(grant["access_token"]))).status_code == 401
    assert (await client.post(TOKEN, data=refresh_form(grant["refresh_token"]))).status_code == 400


async def test_forged_and_stale_tokens_are_refused(app: FastAPI, client: httpx.AsyncClient) -> None:
    await member(app, client, "acme", ["tenant_admin"], email="ann@acme.dev")
    good = (await client.post(TOKEN, data=password_form("ann@acme.dev"))).json()["access_token"]
    header = jwt.get_unverified_header(good)
    claims = jwt.decode(good, options={"verify_signature": False})
    kid = header["kid"]

    intruder = ed25519.Ed25519PrivateKey.generate()
    forged = jwt.encode(claims | {"roles": ["platform_admin"]}, intruder, algorithm="EdDSA",
                        headers={"kid": kid, "typ": "at+jwt"})
    unsigned = jwt.encode(claims, "", algorithm="none", headers={"kid": kid, "typ": "at+jwt"})
    hmac = jwt.encode(claims, "a-guessed-shared-secret-of-32-bytes!", algorithm="HS256",
                      headers={"kid": kid, "typ": "at+jwt"})
    head, payload, signature = good.split(".")
    tampered_claims = jwt.encode(claims | {"tid": "beta"}, intruder, algorithm="EdDSA",
                                 headers={"kid": kid, "typ": "at+jwt"}).split(".")[1]
    spliced = ".".join([head, tampered_claims, signature])

    keys = auth_service(app).keys
    now = int(time.time())

    def nested(depth: int) -> str:
        return base64.urlsafe_b64encode(b"[" * depth).decode().rstrip("=")

    async def minted(**changes: object) -> str:
        principal = Principal(user_id=claims["sub"], tenant="acme",
                              roles=frozenset({"tenant_admin"}), scopes=frozenset({"profile"}),
                              token_id=uuid.uuid4().hex, session_id=uuid.uuid4().hex,
                              expires_at=now + 600)
        token = await keys.mint(principal)
        if not changes:
            return token
        signing, private = await keys.signing_key()
        body = jwt.decode(token, options={"verify_signature": False}) | changes
        return jwt.encode(body, private, algorithm="EdDSA",
                          headers={"kid": signing.kid, "typ": "at+jwt"})

    cases = {
        "wrong signature": forged,
        "alg none": unsigned,
        "alg HS256": hmac,
        "spliced claims": spliced,
        "expired": await minted(exp=now - 60, iat=now - 1000),
        "wrong audience": await minted(aud="someone-else"),
        "wrong issuer": await minted(iss="https://evil.example"),
        "not an access token": jwt.encode(claims, intruder, algorithm="EdDSA",
                                          headers={"kid": kid}),
        "unknown key": jwt.encode(claims, intruder, algorithm="EdDSA",
                                  headers={"kid": "nope", "typ": "at+jwt"}),
        "garbage": "not.a.jwt",
        # a header of `[[[…` deeper than Python's JSON parser recurses: was a 500
        "header nested too deeply": f"{nested(1100)}.e30.x",
        "header nested, short": f"{nested(300)}.e30.x",
        "empty roles claim": await minted(roles="tenant_admin"),
    }
    for name, token in cases.items():
        r = await client.get(ME, headers=bearer(token))
        assert r.status_code == 401, (name, r.text)
        if name.startswith("header nested"):
            assert r.json()["code"] == "invalid_token", r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.headers["www-authenticate"].startswith("Bearer"), name
    assert (await client.get(ME, headers=bearer(await minted()))).status_code == 200
    r = await client.get(ME, headers={"Authorization": f"Basic {good}"})
    assert r.status_code == 401
    r = await client.get("/v1/tenants/beta/me", headers=bearer(good))
    assert r.status_code == 403
    assert r.json()["code"] == "wrong_tenant"
    assert payload


async def test_a_caller_past_the_rate_limit_waits(app: FastAPI, client: httpx.AsyncClient) -> None:
    me = await member(app, client, "acme", ["learner"])
    first = await client.get(ME, headers=me)
    assert first.headers["ratelimit-limit"] == "40"
    assert int(first.headers["ratelimit-remaining"]) == 39
    assert first.headers["ratelimit-policy"] == "40;w=60"
    statuses = [(await client.get(ME, headers=me)).status_code for _ in range(45)]
    assert statuses.count(200) in (39, 40)  # 40 when the run straddles two windows
    limited = await client.get(ME, headers=me)
    assert limited.status_code == 429
    assert limited.json()["code"] == "rate_limited"
    assert int(limited.headers["retry-after"]) >= 1
    other = await member(app, client, "acme", ["learner"])
    assert (await client.get(ME, headers=other)).status_code == 200
    assert refused(app, "requests", "/v1/tenants/{tenant}/me") == statuses.count(429) + 1


async def sessions(client: httpx.AsyncClient, email: str, password: str = PASSWORD,
                   count: int = 2) -> list[dict[str, str]]:
    grants = []
    for _ in range(count):
        r = await client.post(TOKEN, data=password_form(email, password))
        assert r.status_code == 200, r.text
        grants.append(r.json())
    return grants


async def signs_in(client: httpx.AsyncClient, email: str, password: str) -> bool:
    return (await client.post(TOKEN, data=password_form(email, password))).status_code == 200


NEW = "a brand new passphrase for ada"


async def test_a_person_changes_their_password_and_their_other_sessions_end(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    await member(app, client, "acme", ["learner"], email="ada@acme.dev")
    this, other = await sessions(client, "ada@acme.dev")
    url, me = ME + "/password", bearer(this["access_token"])

    refused = [
        ({"current_password": "not it at all", "new_password": NEW}, 403, "wrong_password"),
        ({"current_password": PASSWORD, "new_password": "short"}, 422, "weak_password"),
        ({"current_password": PASSWORD}, 422, "validation_failed"),
    ]
    for body, status, code in refused:
        r = await client.put(url, json=body, headers=me)
        assert (r.status_code, r.json()["code"]) == (status, code), r.text
    assert await signs_in(client, "ada@acme.dev", PASSWORD)
    assert (await client.put(url, json={"current_password": PASSWORD, "new_password": NEW})
            ).status_code == 401

    r = await client.put(url, json={"current_password": PASSWORD, "new_password": NEW},
                         headers=me)
    assert r.status_code == 204, r.text
    assert not await signs_in(client, "ada@acme.dev", PASSWORD)
    assert await signs_in(client, "ada@acme.dev", NEW)
    # this session goes on; the other one is over, its access and its refresh token alike
    assert (await client.get(ME, headers=me)).status_code == 200
    assert (await client.post(TOKEN, data=refresh_form(this["refresh_token"]))).status_code == 200
    assert (await client.get(ME, headers=bearer(other["access_token"]))).status_code == 401
    r = await client.post(TOKEN, data=refresh_form(other["refresh_token"]))
    assert r.status_code == 400


async def test_a_retried_password_change_succeeds_and_locks_nobody_out(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    """Each retry of a change whose answer was lost was 403 wrong_password, counted as a failed
    sign-in, until the account was locked against the new password."""
    await member(app, client, "acme", ["learner"], email="ada@acme.dev")
    (this,) = await sessions(client, "ada@acme.dev", count=1)
    url, me = ME + "/password", bearer(this["access_token"])
    change = {"current_password": PASSWORD, "new_password": NEW}
    assert (await client.put(url, json=change, headers=me)).status_code == 204
    (later,) = await sessions(client, "ada@acme.dev", NEW, count=1)
    for _ in range(6):
        r = await client.put(url, json=change, headers=me)
        assert r.status_code == 204, r.text
    assert await signs_in(client, "ada@acme.dev", NEW)
    # a retry signs nobody out again
    assert (await client.get(ME, headers=bearer(later["access_token"]))).status_code == 200
    # only this session's change, given in full, is a retry: guesses still count
    other = bearer(later["access_token"])
    assert (await client.put(url, json=change, headers=other)).status_code == 403
    guess = {"current_password": PASSWORD, "new_password": "a wrong guess of the new one"}
    assert (await client.put(url, json=guess, headers=me)).status_code == 403
    r = await client.put(url, json={**change, "current_password": "not the old one at all"},
                         headers=me)
    assert r.status_code == 403
    assert (await client.put(url, json=change, headers=me)).status_code == 429


async def test_guessing_the_current_password_is_throttled_like_sign_in(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    me = await member(app, client, "acme", ["learner"], email="ada@acme.dev")
    codes = []
    for _ in range(4):
        r = await client.put(ME + "/password", headers=me, json={
            "current_password": "a wrong guess here", "new_password": NEW})
        codes.append(r.status_code)
    assert codes == [403, 403, 403, 429]
    r = await client.put(ME + "/password", headers=me, json={
        "current_password": PASSWORD, "new_password": NEW})
    assert r.status_code == 429
    assert not await signs_in(client, "ada@acme.dev", NEW)


async def test_an_admin_resets_a_forgotten_password(app: FastAPI, client: httpx.AsyncClient) -> None:
    await member(app, client, "acme", ["learner"], email="grace@acme.dev")
    learner = (await client.get(ME, headers=await login(client, "acme", "grace@acme.dev"))).json()
    grace = await sessions(client, "grace@acme.dev")
    url = f"/v1/tenants/acme/users/{learner['id']}/password"
    body = {"new_password": "a fresh start for grace"}

    educator = await member(app, client, "acme", ["educator"])
    assert (await client.put(url, json=body, headers=educator)).status_code == 403
    outsider = await member(app, client, "beta", ["tenant_admin"])
    assert (await client.put(url, json=body, headers=outsider)).status_code == 403
    admin = await member(app, client, "acme", ["tenant_admin"])
    r = await client.put(url, json={"new_password": "grace"}, headers=admin)
    assert (r.status_code, r.json()["code"]) == (422, "weak_password")
    missing = "/v1/tenants/acme/users/" + uuid.uuid4().hex + "/password"
    assert (await client.put(missing, json=body, headers=admin)).status_code == 404
    assert await signs_in(client, "grace@acme.dev", PASSWORD)

    assert (await client.put(url, json=body, headers=admin)).status_code == 204
    assert await signs_in(client, "grace@acme.dev", "a fresh start for grace")
    assert not await signs_in(client, "grace@acme.dev", PASSWORD)
    for grant in grace:
        assert (await client.get(ME, headers=bearer(grant["access_token"]))).status_code == 401


async def test_only_a_platform_admin_resets_a_platform_admins_password(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    await member(app, client, "acme", ["platform_admin"], email="root@acme.dev")
    root = (await client.get(ME, headers=await login(client, "acme", "root@acme.dev"))).json()
    admin = await member(app, client, "acme", ["tenant_admin"])
    r = await client.put(f"/v1/tenants/acme/users/{root['id']}/password",
                         json={"new_password": "a takeover attempt here"}, headers=admin)
    assert (r.status_code, r.json()["code"]) == (403, "missing_role")
    assert await signs_in(client, "root@acme.dev", PASSWORD)


async def test_a_change_racing_an_admin_reset_is_refused_not_lost(
        app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The admin's reset lands while the person's change checks the current password: the
    change answers 409 and the admin's password stands."""
    me = await member(app, client, "acme", ["learner"], email="ada@acme.dev")
    ada = (await client.get(ME, headers=me)).json()
    auth = auth_service(app)
    hasher = auth.identity.hasher
    checking = hasher.verify
    admin_password = "the admin chose this one"

    async def verify_while_reset(hashed: str | None, password: str) -> bool:
        right = await checking(hashed, password)
        await auth.repo.set_password_hash("acme", ada["id"], await hasher.hash(admin_password))
        return right

    monkeypatch.setattr(hasher, "verify", verify_while_reset)
    r = await client.put(ME + "/password", headers=me,
                         json={"current_password": PASSWORD, "new_password": NEW})
    assert (r.status_code, r.json()["code"]) == (409, "password_changed"), r.text
    monkeypatch.setattr(hasher, "verify", checking)
    assert await signs_in(client, "ada@acme.dev", admin_password)
    assert not await signs_in(client, "ada@acme.dev", NEW)


async def test_a_change_racing_its_own_retry_succeeds_twice(
        app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The retry's write lands while this change checks the current password: the password is
    the one asked for, so 204, not 409 "changed by someone else"."""
    me = await member(app, client, "acme", ["learner"], email="ada@acme.dev")
    ada = (await client.get(ME, headers=me)).json()
    auth = auth_service(app)
    hasher = auth.identity.hasher
    checking = hasher.verify

    async def verify_while_retry_lands(hashed: str | None, password: str) -> bool:
        right = await checking(hashed, password)
        monkeypatch.setattr(hasher, "verify", checking)
        await auth.repo.set_password_hash("acme", ada["id"], await hasher.hash(NEW))
        return right

    monkeypatch.setattr(hasher, "verify", verify_while_retry_lands)
    r = await client.put(ME + "/password", headers=me,
                         json={"current_password": PASSWORD, "new_password": NEW})
    assert r.status_code == 204, r.text
    assert await signs_in(client, "ada@acme.dev", NEW)


async def test_a_sign_in_racing_a_password_change_keeps_no_session(
        app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The old password was checked, then the change signed every session out before this
    sign-in's session was stored: the sign-in is refused and its session ends."""
    await member(app, client, "acme", ["learner"], email="ada@acme.dev")
    me = await login(client, "acme", "ada@acme.dev")
    auth = auth_service(app)
    granting = auth._grant
    granted: list[str] = []

    async def grant_after_a_change(user: User, family: str, scopes: list[Scope]) -> TokenGrant:
        r = await client.put(ME + "/password", headers=me,
                             json={"current_password": PASSWORD, "new_password": NEW})
        assert r.status_code == 204, r.text
        grant = await granting(user, family, scopes)
        granted.append(grant.refresh_token)
        return grant

    monkeypatch.setattr(auth, "_grant", grant_after_a_change)
    r = await client.post(TOKEN, data=password_form("ada@acme.dev"))
    assert r.status_code == 400, r.text
    monkeypatch.setattr(auth, "_grant", granting)
    [late] = granted
    assert (await client.post(TOKEN, data=refresh_form(late))).status_code == 400
    assert await signs_in(client, "ada@acme.dev", NEW)


@pytest.mark.parametrize("grant", ["password", "refresh"])
async def test_a_sign_in_racing_a_demotion_keeps_no_session(
        app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch,
        grant: str) -> None:
    """The roles were read, then an admin took one away and signed the user's sessions out
    before this sign-in's session was stored: it was kept, with a token of the old roles
    (a demoted admin could give the role back to themselves)."""
    ada = await member(app, client, "acme", ["tenant_admin", "educator"], email="ada@acme.dev")
    ada_id = (await client.get(ME, headers=ada)).json()["id"]
    admin = await member(app, client, "acme", ["tenant_admin"])
    session = (await client.post(TOKEN, data=password_form("ada@acme.dev"))).json()
    auth = auth_service(app)
    granting, storing = auth._grant, auth.repo.add_refresh_token
    stored: list[RefreshToken] = []

    async def grant_after_a_demotion(user: User, family: str, scopes: list[Scope]
                                     ) -> TokenGrant:
        r = await client.put(f"/v1/tenants/acme/users/{ada_id}/roles", headers=admin,
                             json={"roles": ["educator"]})
        assert r.status_code == 200, r.text
        return await granting(user, family, scopes)

    async def store(token: RefreshToken) -> None:
        stored.append(token)
        await storing(token)

    monkeypatch.setattr(auth, "_grant", grant_after_a_demotion)
    monkeypatch.setattr(auth.repo, "add_refresh_token", store)
    form = (password_form("ada@acme.dev") if grant == "password"
            else refresh_form(session["refresh_token"]))
    r = await client.post(TOKEN, data=form)
    assert (r.status_code, r.json()["error"]) == (400, "invalid_grant"), r.text
    monkeypatch.setattr(auth, "_grant", granting)
    [late] = stored
    kept = await auth.repo.get_refresh_token("acme", late.token_hash)
    assert kept is not None
    assert kept.revoked
    again = (await client.post(TOKEN, data=password_form("ada@acme.dev"))).json()
    me = (await client.get(ME, headers=bearer(again["access_token"]))).json()
    assert me["roles"] == ["educator"]


async def test_a_retried_reset_signs_out_what_the_failed_one_did_not(
        app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reset revoked the refresh tokens, then failed before marking the access tokens:
    the admin's retry marks them, though their refresh tokens are already revoked."""
    await member(app, client, "acme", ["learner"], email="grace@acme.dev")
    grace = (await client.get(ME, headers=await login(client, "acme", "grace@acme.dev"))).json()
    [session] = await sessions(client, "grace@acme.dev", count=1)
    admin = await member(app, client, "acme", ["tenant_admin"])
    verifier = auth_service(app).verifier
    revoking = verifier.revoke_session

    async def down(session_id: str) -> None:
        raise StoreUnavailable("redis", "gone for a moment")

    url = f"/v1/tenants/acme/users/{grace['id']}/password"
    body = {"new_password": "a fresh start for grace"}
    monkeypatch.setattr(verifier, "revoke_session", down)
    assert (await client.put(url, json=body, headers=admin)).status_code == 503
    assert (await client.get(ME, headers=bearer(session["access_token"]))).status_code == 200
    monkeypatch.setattr(verifier, "revoke_session", revoking)
    assert (await client.put(url, json=body, headers=admin)).status_code == 204
    assert (await client.get(ME, headers=bearer(session["access_token"]))).status_code == 401


async def test_a_rehash_by_another_sign_in_is_not_taken_for_a_password_change(
        app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hashes are renewed at sign-in when the hashing settings changed: sign-ins at once, and a
    change of password meanwhile, see a new hash of the same password and go on."""
    me = await member(app, client, "acme", ["learner"], email="ada@acme.dev")
    ada = (await client.get(ME, headers=me)).json()
    auth = auth_service(app)
    hasher = auth.identity.hasher
    monkeypatch.setattr(hasher, "needs_rehash", lambda hashed: True)
    answers = await asyncio.gather(*(client.post(TOKEN, data=password_form("ada@acme.dev"))
                                     for _ in range(3)))
    assert [r.status_code for r in answers] == [200] * 3, [r.text for r in answers]

    checking = hasher.verify

    rehashed: list[str] = []

    async def verify_while_rehashed(hashed: str | None, password: str) -> bool:
        right = await checking(hashed, password)
        if not rehashed:  # a sign-in renews the hash while the change checks the password
            rehashed.append(await hasher.hash(PASSWORD))
            await auth.repo.set_password_hash("acme", ada["id"], rehashed[0])
        return right

    monkeypatch.setattr(hasher, "verify", verify_while_rehashed)
    r = await client.put(ME + "/password", headers=me,
                         json={"current_password": PASSWORD, "new_password": NEW})
    assert r.status_code == 204, r.text
    monkeypatch.setattr(hasher, "verify", checking)
    assert await signs_in(client, "ada@acme.dev", NEW)
