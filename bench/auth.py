"""Authenticated requests per second against the same endpoint without auth, in the same run.

One app (identity on its embedded stores, per-caller rate limits raised out of the way) serves
two routes that return the same JSON: one guarded by the real `require(scopes=["content:read"])`
(JWT signature and claims, the revocation check in the cache, the tenant check, the rate-limit
count and its headers), one bare. The same concurrent load drives both in-process through httpx's
ASGITransport; it also drives the guarded route with an API key instead of a token. Rounds
alternate bare, token and key; medians are reported. Target: token >= 70% of bare.

Each caller sends one token for its life, as a client does, so after its first request the
verifier finds the token among those it has checked (it still checks expiry, the signing key and
revocation every time); what the first request costs is measured on its own and printed.

The client shares the process, so part of each request's time is httpx's and the ratio alone
flatters auth; the added time per request (1/rate(auth) - 1/rate(bare)) is printed too, and does
not depend on the client.

With `--redis` the cache is the real Redis (`BLOOP_REDIS_URL`): revocation marks are checked in
the process's mirror of them and calls counted in process (the caller is far from its limit),
added to Redis every `rate_sync_s`; without, the cache is in process.

Both run as `bloop serve` runs: on uvloop, the event loop it gets from uvicorn, with the garbage
collector tuned by `tune_for_serving`.

    python bench/auth.py [--requests 4000] [--concurrency 32] [--rounds 5] [--redis] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Annotated

import httpx
import uvloop
from fastapi import Depends, FastAPI
from pydantic import SecretStr

from bloop.platform.app import create_app
from bloop.platform.identity.model import NewApiKey, NewTenant, NewUser
from bloop.platform.identity.service import ApiKeyService, AuthService, IdentityService
from bloop.platform.kit.auth import Principal, require
from bloop.platform.kit.gc_tuning import tune_for_serving
from bloop.platform.kit.settings import AuthSettings, RedisSettings, RuntimeSettings, Settings

TARGET = 0.70
TENANT = "bench"
PAYLOAD = {"id": "lesson-1", "title": "Loops", "minutes": 12}
Reader = Annotated[Principal, Depends(require(scopes=["content:read"]))]


def build(data_dir: Path, redis: bool) -> FastAPI:
    for var in ("BLOOP_STORE", "BLOOP_MONGO_ADAPTER", "BLOOP_REDIS_ADAPTER", "BLOOP_KAFKA_ADAPTER"):
        os.environ.pop(var, None)
    unlimited = 1_000_000_000
    app = create_app(Settings(runtime=RuntimeSettings(data_dir=data_dir, seed_demo=False),
                              auth=AuthSettings(rate_limit=unlimited,
                                                api_key_rate_limit=unlimited),
                              redis=RedisSettings(adapter="real" if redis else None)),
                     services=["identity"])

    @app.get("/bench/{tenant}/bare")
    async def bare(tenant: str) -> dict[str, object]:
        return PAYLOAD

    @app.get("/bench/{tenant}/guarded")
    async def guarded(tenant: str, _: Reader) -> dict[str, object]:
        return PAYLOAD

    return app


async def credentials(app: FastAPI) -> tuple[dict[str, str], dict[str, str]]:
    """A signed-in reader's `Authorization` header (through the real token route) and an API
    key's."""
    identity: IdentityService = app.state.identity.state["service"]
    auth: AuthService = app.state.identity.state["auth"]
    keys: ApiKeyService = app.state.identity.state["api_keys"]
    await identity.create_tenant(NewTenant(id=TENANT, name="Bench school"))
    password = "quiet meadow lantern sings"
    user = await identity.register_user(TENANT, NewUser(
        email="reader@bench.test", display_name="Reader", roles=["learner"],
        password=SecretStr(password)))
    grant = await auth.login(TENANT, user.email, password, "content:read", "127.0.0.1")
    admin = Principal(user_id="bench-admin", tenant=TENANT, roles=frozenset({"tenant_admin"}),
                      scopes=frozenset({"content:read"}), token_id=uuid.uuid4().hex,
                      session_id=uuid.uuid4().hex, expires_at=2**31 - 1)
    _, key = await keys.create(TENANT, NewApiKey(name="bench", scopes=["content:read"]), admin)
    return {"Authorization": f"Bearer {grant.access_token}"}, {"X-API-Key": key}


async def first_verification_us(app: FastAPI, count: int = 1000) -> float:
    """What a token's first request costs in the verifier (signature and claims checked, then
    the revocation check); its later requests skip the signature and claims (the verifier's
    memo of checked tokens)."""
    auth: AuthService = app.state.identity.state["auth"]
    verifier = app.state.platform.auth.verifier
    tokens = [await auth.keys.mint(Principal(
        user_id=f"reader-{n}", tenant=TENANT, roles=frozenset({"learner"}),
        scopes=frozenset({"content:read"}), token_id=uuid.uuid4().hex,
        session_id=uuid.uuid4().hex, expires_at=int(time.time()) + 600)) for n in range(count)]
    start = time.perf_counter()
    for token in tokens:
        await verifier.verify(token)
    return (time.perf_counter() - start) / count * 1e6


async def drive(client: httpx.AsyncClient, url: str, headers: dict[str, str], requests: int,
                concurrency: int) -> float:
    """Requests per second for `requests` GETs of `url` from `concurrency` callers."""
    left = requests

    async def caller() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            r = await client.get(url, headers=headers)
            if r.status_code != 200:
                raise SystemExit(f"{url}: {r.status_code} {r.text}")

    start = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return requests / (time.perf_counter() - start)


def rates(values: list[float]) -> str:
    return (f"{statistics.median(values):,.0f} req/s "
            f"(rounds: {', '.join(f'{v:,.0f}' for v in values)})")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--redis", action="store_true",
                        help="keep the cache (revocation marks, rate-limit counters) in the Redis "
                             "at BLOOP_REDIS_URL instead of in process")
    parser.add_argument("--profile", action="store_true",
                        help="profile one extra token round and print the top functions")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        app = build(Path(tmp), args.redis)
        tune_for_serving()
        async with app.router.lifespan_context(app):
            token, key = await credentials(app)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bloop.test") as c:
                bare_url, guarded_url = f"/bench/{TENANT}/bare", f"/bench/{TENANT}/guarded"
                # bare is sent the token it ignores: a request with a credential is not counted
                # by the anonymous limit, so bare stays a route with nothing of auth's
                loads = {"bare": (bare_url, token), "token": (guarded_url, token),
                         "key": (guarded_url, key)}
                for url, headers in loads.values():  # warm up every path
                    await drive(c, url, headers, 300, args.concurrency)
                measured: dict[str, list[float]] = {name: [] for name in loads}
                for _ in range(args.rounds):
                    for name, (url, headers) in loads.items():
                        measured[name].append(await drive(c, url, headers, args.requests,
                                                          args.concurrency))
                first_us = statistics.median([await first_verification_us(app)
                                              for _ in range(3)])
                if args.profile:
                    profiler = cProfile.Profile()
                    profiler.enable()
                    await drive(c, guarded_url, token, args.requests, args.concurrency)
                    profiler.disable()
                    pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
    bare, jwt_rate, key_rate = (statistics.median(measured[n]) for n in ("bare", "token", "key"))
    print(f"requests per round: {args.requests}, concurrency: {args.concurrency}, "
          f"rounds: {args.rounds}, cache: {'redis' if args.redis else 'in-process'}")
    print(f"bare endpoint:             {rates(measured['bare'])}")
    print(f"require() with a JWT:      {rates(measured['token'])}")
    print(f"require() with an API key: {rates(measured['key'])}")
    for name, rate in (("JWT", jwt_rate), ("API key", key_rate)):
        added_us = (1 / rate - 1 / bare) * 1e6
        print(f"{name}: ratio {rate / bare:.2f} of bare, {added_us:,.0f} us added per request")
    print(f"a token's first verification (EdDSA signature, claims, revocation check): "
          f"{first_us:,.0f} us; its later requests skip the signature and claims")
    ratio = jwt_rate / bare
    print(f"ratio JWT/bare: {ratio:.2f} (target >= {TARGET:.2f}) "
          f"{'PASS' if ratio >= TARGET else 'BELOW TARGET'}")


if __name__ == "__main__":
    uvloop.run(main())
