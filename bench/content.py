"""Published-lesson reads and search, each as a ratio of a baseline measured in the same run.

One app runs identity and content on the real servers (MongoDB-wire at BLOOP_MONGO_URL, Redis
at BLOOP_REDIS_URL; events stay on the embedded bus, per-caller rate limits are raised out of
the way). A learner signed in through the real token route reads one published lesson through
`GET /v1/tenants/{t}/lessons/{id}`: auth (JWT; the revocation check against the process's
mirror of Redis's marks; the rate-limit count, in process while the caller is far from its
limit and added to Redis every `rate_sync_s`), then the lesson's JSON
- cached: from Redis (cache-aside, the normal path once a lesson has been read), and
- uncached: from MongoDB (the content service's cache swapped for one that never hits, so every
  request reads the lesson's current publication from the store).
The baseline is a bare route of the same app returning the same JSON bytes, no auth. The same
concurrent load drives all three in-process through httpx's ASGITransport (the uncached load
sends a fifth as many requests per round, being slower); rounds alternate and medians are
reported, in a process run as `bloop serve` runs (on uvloop, the loop it gets from uvicorn, with
the garbage collector tuned by `tune_for_serving`). Targets: cached >= 50% of bare, uncached
>= 20% of bare. For context, the MongoDB server's own `find_one` rate at the same
concurrency is printed: an uncached read makes one (the lesson's document, which keeps its
current publication).

Search: 10,000 synthetic lessons (100 courses, 3 languages, 3 levels, 12 tags, text from a
2,000-word vocabulary) in the app's tantivy index; queries of one word, two words, a phrase,
and a word with a filter, one at a time, through `SearchService.search` and through the search
route. Their p95 is printed as a ratio of the p95 of a MongoDB `find_one` by `_id` round trip.

The bench's tenant and its data are removed from the servers at the end.

    python bench/content.py [--requests 3000] [--concurrency 32] [--rounds 5] [--queries 400]
                            [--profile cached|uncached]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import uvloop
from fastapi import FastAPI, Response
from pydantic import SecretStr

from bloop.platform.app import create_app
from bloop.platform.content.model import MarkdownBlock, NewCourse, NewLesson
from bloop.platform.content.search.model import Filters, SearchDoc
from bloop.platform.content.search.service import SearchService
from bloop.platform.content.service import ContentService
from bloop.platform.identity.model import NewTenant, NewUser
from bloop.platform.identity.service import AuthService, IdentityService
from bloop.platform.kit import stores
from bloop.platform.kit.cache import Cache
from bloop.platform.kit.gc_tuning import tune_for_serving
from bloop.platform.kit.settings import (
    AuthSettings,
    KafkaSettings,
    MongoSettings,
    RedisSettings,
    RuntimeSettings,
    Settings,
)

TARGETS = {"cached": 0.50, "uncached": 0.20}
RUN = uuid.uuid4().hex[:8]
TENANT = f"bench-{RUN}"
LESSONS = 10_000
COURSES = 100
LANGUAGES = ("en", "fr", "de")
LEVELS = ("beginner", "intermediate", "advanced")
TAGS = tuple(f"tag{i}" for i in range(12))


class NoCache:
    """A cache that never holds anything: every published-lesson read goes to the store."""

    async def get(self, key: str) -> bytes | None:
        return None

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return [None] * len(keys)

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        return None

    async def set_many(self, items: Mapping[str, bytes], ttl_s: float | None = None) -> None:
        return None

    async def set_if(self, key: str, value: bytes, ttl_s: float | None = None, *, guard: str,
                     seen: bytes | None) -> bool:
        return False

    async def delete(self, *keys: str) -> int:
        return 0

    async def delete_prefix(self, prefix: str) -> int:
        return 0

    async def incr(self, key: str, by: int = 1, ttl_s: float | None = None) -> int:
        return by

    async def decr(self, key: str, by: int = 1) -> int:
        return 0

    async def incr_and_get_many(self, counter: str, keys: Sequence[str], by: int = 1,
                                ttl_s: float | None = None) -> tuple[int, list[bytes | None]]:
        return by, [None] * len(keys)

    async def ping(self) -> None:
        return None


def build(data_dir: Path, body: list[bytes]) -> FastAPI:
    """The app on the real MongoDB and Redis, with a bare route answering `body[0]`."""
    unlimited = 1_000_000_000
    app = create_app(Settings(runtime=RuntimeSettings(data_dir=data_dir, seed_demo=False),
                              mongo=MongoSettings(adapter="real"),
                              redis=RedisSettings(adapter="real"),
                              kafka=KafkaSettings(adapter="embedded"),
                              auth=AuthSettings(rate_limit=unlimited,
                                                api_key_rate_limit=unlimited)),
                     services=["identity", "content"])

    @app.get("/bench/{tenant}/bare/{lesson}")
    async def bare(tenant: str, lesson: str) -> Response:
        return Response(body[0], media_type="application/json")

    return app


def lesson_blocks(rng: random.Random, words: Sequence[str], paragraphs: int) -> list[MarkdownBlock]:
    return [MarkdownBlock(markdown="## " + " ".join(rng.choices(words, k=4)).title() + "\n\n"
                          + " ".join(rng.choices(words, k=rng.randint(40, 90))) + ".")
            for _ in range(paragraphs)]


async def learner_token(app: FastAPI) -> dict[str, str]:
    identity: IdentityService = app.state.identity.state["service"]
    auth: AuthService = app.state.identity.state["auth"]
    await identity.create_tenant(NewTenant(id=TENANT, name="Bench school"))
    password = "quiet meadow lantern sings"
    user = await identity.register_user(TENANT, NewUser(
        email="reader@bench.test", display_name="Reader", roles=["learner"],
        password=SecretStr(password)))
    grant = await auth.login(TENANT, user.email, password, "content:read", "127.0.0.1")
    return {"Authorization": f"Bearer {grant.access_token}"}


async def published_lesson(content: ContentService, rng: random.Random,
                           words: Sequence[str]) -> str:
    """One published course of six lessons of a few paragraphs each; returns a lesson's id."""
    await content.create_course(TENANT, NewCourse(id="read", title="Reading", language="en",
                                                  level="beginner", tags=["bench"]))
    ids = [(await content.add_lesson(TENANT, "read", NewLesson(
        title=f"Lesson {i}", estimated_minutes=10,
        blocks=lesson_blocks(rng, words, 6)))).id for i in range(6)]
    await content.publish(TENANT, "read")
    return ids[2]


def vocabulary(rng: random.Random, size: int = 2000) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    found: set[str] = set()
    while len(found) < size:
        found.add("".join(rng.choices(letters, k=rng.randint(3, 9))))
    return sorted(found)


def search_docs(rng: random.Random, words: Sequence[str]) -> list[SearchDoc]:
    """10,000 lesson documents as the index holds them (what `lesson_doc` builds)."""
    docs: list[SearchDoc] = []
    for n in range(LESSONS):
        course = n % COURSES
        docs.append(SearchDoc(
            tenant=TENANT, kind="lesson", id=f"l{n}", course_id=f"c{course}",
            title=" ".join(rng.choices(words, k=rng.randint(2, 5))).title(),
            body=" ".join(rng.choices(words, k=rng.randint(150, 400))),
            tags=rng.sample(TAGS, k=2), language=LANGUAGES[course % 3],
            level=LEVELS[(course // 3) % 3], course_version=1, lesson_version=1))
    return docs


def queries(rng: random.Random, words: Sequence[str], n: int) -> list[tuple[str, Filters]]:
    made: list[tuple[str, Filters]] = []
    for i in range(n):
        a, b = rng.sample(list(words), 2)
        made.append([(a, Filters()), (f"{a} {b}", Filters()), (f'"{a} {b}"', Filters()),
                     (a, Filters(language="fr", tag=rng.choice(TAGS)))][i % 4])
    return made


async def drive(client: httpx.AsyncClient, url: str, headers: dict[str, str], requests: int,
                concurrency: int, expected: bytes) -> float:
    """Requests per second for `requests` GETs of `url` from `concurrency` callers."""
    left = requests

    async def caller() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            r = await client.get(url, headers=headers)
            if r.status_code != 200 or r.content != expected:
                raise SystemExit(f"{url}: {r.status_code} {r.text[:300]}")

    start = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return requests / (time.perf_counter() - start)


async def latencies_ms(call: Callable[[], Awaitable[object]], count: int) -> list[float]:
    times: list[float] = []
    for _ in range(count):
        start = time.perf_counter()
        await call()
        times.append((time.perf_counter() - start) * 1000)
    return times


def p(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rates(values: list[float]) -> str:
    return (f"{statistics.median(values):,.0f} req/s "
            f"(rounds: {', '.join(f'{v:,.0f}' for v in values)})")


async def mongo_round_trips(count: int, concurrency: int) -> tuple[list[float], float]:
    """`find_one` by `_id` on a one-document collection of a database of the bench's own: the
    latencies of `count` in a row, and how many per second `concurrency` callers get."""
    client: Any = stores.mongo_client(MongoSettings())
    db = client[f"bench_content_{RUN}"]
    try:
        await db.ping.insert_one({"_id": "one", "value": 1})
        await latencies_ms(lambda: db.ping.find_one({"_id": "one"}), 50)
        latencies = await latencies_ms(lambda: db.ping.find_one({"_id": "one"}), count)
        left = count * 2

        async def caller() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await db.ping.find_one({"_id": "one"})

        start = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        return latencies, count * 2 / (time.perf_counter() - start)
    finally:
        await client.drop_database(db.name)
        await client.close()


async def clean_up(app: FastAPI) -> None:
    """Removes the bench tenant's documents from every collection of identity and content."""
    client: Any = app.state.platform.require_mongo()
    for name in ("identity", "content"):
        db = client[name]
        for collection in await db.list_collection_names():
            await db[collection].delete_many(
                {"$or": [{"tenant": TENANT}, {"_id": TENANT}, {"tenant_id": TENANT}]})


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--profile", choices=["cached", "uncached"],
                        help="profile one extra round of that load and print the top functions")
    args = parser.parse_args()
    rng = random.Random(7)
    words = vocabulary(rng)
    body = [b""]
    with tempfile.TemporaryDirectory() as tmp:
        app = build(Path(tmp), body)
        tune_for_serving()
        async with app.router.lifespan_context(app):
            try:
                await run(app, args, rng, words, body)
            finally:
                await clean_up(app)


async def run(app: FastAPI, args: argparse.Namespace, rng: random.Random,
              words: list[str], body: list[bytes]) -> None:
    content: ContentService = app.state.content.state["service"]
    search: SearchService = app.state.content.state["search"]
    token = await learner_token(app)
    lesson_id = await published_lesson(content, rng, words)
    cache: Cache = content.cache
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bloop.test") as c:
        lesson_url = f"/v1/tenants/{TENANT}/lessons/{lesson_id}"
        first = await c.get(lesson_url, headers=token)
        assert first.status_code == 200, first.text
        body[0] = first.content
        loads: dict[str, tuple[str, dict[str, str], Cache]] = {
            # sent the token it ignores, as the lesson's: not counted by the anonymous limit
            "bare": (f"/bench/{TENANT}/bare/{lesson_id}", token, cache),
            "cached": (lesson_url, token, cache),
            "uncached": (lesson_url, token, NoCache())}
        measured: dict[str, list[float]] = {name: [] for name in loads}
        for rnd in range(args.rounds + 1):  # the first round warms every path up
            for name, (url, headers, used) in loads.items():
                content.cache = used
                count = args.requests // (5 if name == "uncached" else 1) if rnd else 300
                rate = await drive(c, url, headers, count, args.concurrency, body[0])
                if rnd:
                    measured[name].append(rate)
        if args.profile:
            url, headers, content.cache = loads[args.profile]
            profiler = cProfile.Profile()
            profiler.enable()
            await drive(c, url, headers, args.requests, args.concurrency, body[0])
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(35)
        content.cache = cache
        await content.forget(TENANT, [lesson_id])

        docs = search_docs(rng, words)
        start = time.perf_counter()
        for i in range(0, len(docs), 1000):
            await search.index.write(docs[i:i + 1000])
        index_s = time.perf_counter() - start
        asked = queries(rng, words, args.queries)
        hits: list[int] = []

        def service_query(i: int) -> Callable[[], Awaitable[object]]:
            async def one() -> None:
                q, filters = asked[i % len(asked)]
                found = await search.search(TENANT, q, filters, limit=10)
                hits.append(found.total)
            return one

        def route_query(i: int) -> Callable[[], Awaitable[object]]:
            async def one() -> None:
                q, filters = asked[i % len(asked)]
                params = {"q": q, **filters.model_dump(exclude_none=True)}
                r = await c.get(f"/v1/tenants/{TENANT}/search", params=params, headers=token)
                if r.status_code != 200:
                    raise SystemExit(f"search: {r.status_code} {r.text[:300]}")
            return one

        counter = iter(range(10**9))
        await latencies_ms(lambda: service_query(next(counter))(), 50)
        service_ms = await latencies_ms(lambda: service_query(next(counter))(), args.queries)
        route_ms = await latencies_ms(lambda: route_query(next(counter))(), args.queries)
        mongo_ms, mongo_rate = await mongo_round_trips(args.queries, args.concurrency)

    bare = statistics.median(measured["bare"])
    print(f"lesson JSON: {len(body[0]):,} bytes; requests per round: {args.requests}, "
          f"concurrency: {args.concurrency}, rounds: {args.rounds}")
    print(f"bare endpoint (same bytes):        {rates(measured['bare'])}")
    print(f"GET lesson, cached (Redis):        {rates(measured['cached'])}")
    print(f"GET lesson, uncached (MongoDB):    {rates(measured['uncached'])}")
    for name, target in TARGETS.items():
        rate = statistics.median(measured[name])
        added_us = (1 / rate - 1 / bare) * 1e6
        print(f"ratio {name}/bare: {rate / bare:.2f} (target >= {target:.2f}) "
              f"{'PASS' if rate / bare >= target else 'BELOW TARGET'}; "
              f"{added_us:,.0f} us added per request")
    print(f"context: MongoDB find_one by _id alone, {args.concurrency} callers: "
          f"{mongo_rate:,.0f} req/s; an uncached read makes 1 round trip (the lesson's "
          f"document, with its current publication), so at most about that here")
    total = len(docs)
    print(f"search: {total:,} lessons indexed in {index_s:.1f} s; {args.queries} queries "
          f"(one word, two words, a phrase, a word with language+tag filters), "
          f"median {statistics.median(hits):,.0f} matches")
    mongo_p95 = p(mongo_ms, 0.95)
    print(f"MongoDB find_one round trip:       p50 {p(mongo_ms, 0.5):.2f} ms, "
          f"p95 {mongo_p95:.2f} ms")
    for name, ms in (("SearchService.search", service_ms), ("GET /search (route)", route_ms)):
        print(f"{name + ':':34} p50 {p(ms, 0.5):.2f} ms, p95 {p(ms, 0.95):.2f} ms; "
              f"p95 ratio to find_one p95: {p(ms, 0.95) / mongo_p95:.1f}x")


if __name__ == "__main__":
    uvloop.run(main())
