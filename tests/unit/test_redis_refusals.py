"""A Redis that answers but cannot serve (out of memory under `noeviction`, MISCONF, a read-only
replica, loading, a busy script) is the `redis` store being down: 503 with Retry-After, logged
as an outage (a line every 30 s), and `/readyz` says so. It refused with an error reply that
fell to the 500 handler, a traceback a request, while `/readyz`'s PING stayed 200. A store
error raised in the request middleware (counting a request without a credential) was a 500 too.
An error reply that is a bug of ours (WRONGTYPE, a script's own error) stays a 500."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis.exceptions
from fastapi import FastAPI

from bloop.platform.app import create_app
from bloop.platform.kit import stores
from bloop.platform.kit.errors import down_store
from bloop.platform.kit.settings import AuthSettings, RuntimeSettings, Settings
from tests.support import answers_documented, embedded_stores, member

JWKS = "/.well-known/jwks.json"
ME = "/v1/tenants/acme/me"
# As Redis 7 answers a script's write over maxmemory, through the pipelined connection (whose
# replies are plain ResponseErrors), and a SET through redis-py (which cuts the code off).
OOM_SCRIPT = ("OOM command not allowed when used memory > 'maxmemory'. script: "
              "accd034a1415abaa58fc53a320517c3ac7cad15e, on @user_script:2.")
REFUSALS = [
    redis.exceptions.ResponseError(OOM_SCRIPT),
    redis.exceptions.OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
    redis.exceptions.ResponseError("MISCONF Redis is configured to save RDB snapshots, but it's "
                                   "currently unable to persist to disk."),
    redis.exceptions.ReadOnlyError("You can't write against a read only replica."),
    redis.exceptions.ResponseError("READONLY You can't write against a read only replica."),
    redis.exceptions.ResponseError("BUSY Redis is busy running a script."),
    redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory"),
    redis.exceptions.ResponseError("LOADING Redis is loading the dataset in memory"),
    redis.exceptions.TimeoutError("Redis did not answer in 1.0 s"),
    # Redis 6 wraps a refusal inside a script in its own ERR
    redis.exceptions.ResponseError(
        "ERR Error running script (call to f_accd034a1415abaa58fc53a320517c3ac7cad15e): "
        "@user_script:2: @user_script: 2: -OOM command not allowed when used memory > "
        "'maxmemory'."),
    redis.exceptions.ResponseError(
        "ERR Error running script (call to f_accd034a1415abaa58fc53a320517c3ac7cad15e): "
        "@user_script:2: @user_script: 2: -READONLY You can't write against a read only "
        "replica."),
    # ... as redis-py's own parser leaves it (scripts run through `register_script`): no ERR
    redis.exceptions.ResponseError(
        "Error running script (call to f_accd034a1415abaa58fc53a320517c3ac7cad15e): "
        "@user_script:2: @user_script: 2: -OOM command not allowed when used memory > "
        "'maxmemory'."),
]
BUGS = [
    redis.exceptions.ResponseError("WRONGTYPE Operation against a key holding the wrong kind "
                                   "of value"),
    redis.exceptions.ResponseError("ERR Error compiling script (new function): user_script:1: "
                                   "syntax error"),
    redis.exceptions.ResponseError("ERR wrong number of arguments for 'set' command"),
    redis.exceptions.ResponseError(
        "ERR Error running script (call to f_accd034a1415abaa58fc53a320517c3ac7cad15e): "
        "@user_script:2: @user_script: 2: -WRONGTYPE Operation against a key holding the "
        "wrong kind of value"),
    redis.exceptions.ResponseError(
        "Error running script (call to f_accd034a1415abaa58fc53a320517c3ac7cad15e): "
        "@user_script:2: @user_script: 2: -WRONGTYPE Operation against a key holding the "
        "wrong kind of value"),
]


@pytest.mark.parametrize("exc", REFUSALS, ids=repr)
def test_a_redis_that_cannot_serve_is_down(exc: Exception) -> None:
    assert down_store(exc) == "redis"


@pytest.mark.parametrize("exc", BUGS, ids=repr)
def test_an_error_reply_that_is_a_bug_is_not_an_outage(exc: Exception) -> None:
    assert down_store(exc) is None


@pytest.fixture
async def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FastAPI]:
    embedded_stores(monkeypatch)
    settings = Settings(runtime=RuntimeSettings(data_dir=tmp_path, seed_demo=False),
                        auth=AuthSettings(anonymous_rate_limit=1000))
    application = create_app(settings, services=["identity"])
    async with application.router.lifespan_context(application):
        yield application


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("192.0.2.7", 4321)),
                             base_url="http://bloop.test",
                             event_hooks={"response": [answers_documented(app)]})


def counting_fails(app: FastAPI, monkeypatch: pytest.MonkeyPatch, exc: Exception) -> None:
    """Every count of the shared cache (the rate limits, anonymous and per user) raises `exc`."""
    async def refused(*args: object, **kwargs: object) -> None:
        raise exc

    monkeypatch.setattr(app.state.platform.cache, "incr_and_get_many", refused)


def is_unavailable(r: httpx.Response) -> bool:
    return (r.status_code == 503 and r.json()["code"] == "store_unavailable"
            and r.json()["store"] == "redis" and int(r.headers["retry-after"]) >= 1)


async def test_redis_out_of_memory_is_503_with_one_log_line(
        app: FastAPI, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    async with client(app) as c:
        signed_in = await member(app, c, "acme", ["learner"])
        counting_fails(app, monkeypatch, redis.exceptions.ResponseError(OOM_SCRIPT))
        caplog.set_level(logging.INFO)
        for _ in range(3):
            assert is_unavailable(await c.get(JWKS))  # without a credential
            assert is_unavailable(await c.get(ME, headers=signed_in))
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in caplog.records if r.name == "bloop.errors"] == [
        "store unavailable"]
    assert app.state.store_outages.down() == {"redis"}


@pytest.mark.parametrize("exc", [redis.exceptions.ConnectionError("Connection refused"),
                                 redis.exceptions.TimeoutError("Timeout reading from socket")],
                         ids=repr)
async def test_redis_down_answers_a_request_without_a_credential_503(
        app: FastAPI, monkeypatch: pytest.MonkeyPatch, exc: Exception) -> None:
    counting_fails(app, monkeypatch, exc)
    async with client(app) as c:
        for path in (JWKS, ME, "/"):
            r = await c.get(path)
            assert is_unavailable(r), (path, r.status_code, r.text)
            assert r.headers["content-type"] == "application/problem+json"
    assert app.state.store_outages.down() == {"redis"}


async def test_a_redis_error_reply_that_is_a_bug_stays_a_500(
        app: FastAPI, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    counting_fails(app, monkeypatch, BUGS[0])
    async with client(app) as c:
        r = await c.get(JWKS)
    assert (r.status_code, r.json()["code"]) == (500, "internal_error")
    assert [r.exc_info[1] for r in caplog.records if r.exc_info] == [BUGS[0]]
    assert app.state.store_outages.down() == frozenset()


class RefusingWrites:
    """A Redis client over its memory: PING answers, a write is refused."""

    async def ping(self) -> bool:
        return True

    async def set(self, *args: object, **kwargs: object) -> None:
        raise redis.exceptions.OutOfMemoryError(
            "command not allowed when used memory > 'maxmemory'.")


async def test_readiness_finds_a_redis_that_refuses_writes() -> None:
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        await stores.ping_redis(RefusingWrites())  # type: ignore[arg-type]
