"""The Idempotency-Key store's contract over SQLite and Redis: a key is taken once, holds its
request's fingerprint and then its response, is freed only by the request that holds it,
expires, and is dropped with every other key of its tenant (an erasure there)."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bloop.platform.kit import stores
from bloop.platform.kit.idempotency import (
    Entry,
    IdempotencyStore,
    RedisIdempotency,
    SqliteIdempotency,
)
from bloop.platform.kit.settings import RedisSettings
from bloop.platform.kit.sqlite import SqliteDB
from tests.support import require_server


@pytest.fixture(params=["sqlite", "redis"])
async def keys(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[IdempotencyStore]:
    if request.param == "sqlite":
        db = SqliteDB(tmp_path / "idempotency.sqlite3")
        yield SqliteIdempotency(db)
        await db.close()
        return
    require_server("redis")
    client = stores.redis_client(RedisSettings())
    yield RedisIdempotency(client, prefix=f"test:idempotency:{uuid.uuid4().hex[:8]}")
    await client.aclose()


def fp(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def test_a_key_is_taken_once_then_answers_its_response(keys: IdempotencyStore) -> None:
    assert await keys.claim("acme", "k", fp("a"), 60) is None
    assert await keys.claim("acme", "k", fp("b"), 60) == Entry(fp("a"), None)
    await keys.finish("acme", "k", fp("a"), b"201\n{}", 60)
    assert await keys.claim("acme", "k", fp("a"), 60) == Entry(fp("a"), b"201\n{}")
    assert await keys.claim("acme", "other", fp("a"), 60) is None


async def test_only_an_unanswered_key_is_freed(keys: IdempotencyStore) -> None:
    assert await keys.claim("acme", "k", fp("a"), 60) is None
    await keys.release("acme", "k", fp("b"))  # not the request that holds it
    assert await keys.claim("acme", "k", fp("a"), 60) == Entry(fp("a"), None)
    await keys.release("acme", "k", fp("a"))
    assert await keys.claim("acme", "k", fp("b"), 60) is None
    await keys.finish("acme", "k", fp("b"), b"", 60)
    await keys.release("acme", "k", fp("b"))
    assert await keys.claim("acme", "k", fp("b"), 60) == Entry(fp("b"), b"")


async def test_a_key_is_freed_by_its_request_not_by_a_retry_of_it(
        keys: IdempotencyStore) -> None:
    """A request whose claim timed out frees the key, later too (the store may run the claim
    late): only while its own claim holds it, not its retry's, of the same fingerprint."""
    assert await keys.claim("acme", "k", fp("a"), 60, token="retry") is None
    await keys.release("acme", "k", fp("a"), token="first")
    await keys.finish("acme", "k", fp("a"), b"late", 60, token="first")
    assert await keys.claim("acme", "k", fp("a"), 60, token="first") == Entry(fp("a"), None)
    await keys.finish("acme", "k", fp("a"), b"201\n{}", 60, token="retry")
    assert await keys.claim("acme", "k", fp("a"), 60) == Entry(fp("a"), b"201\n{}")
    assert await keys.claim("acme", "other", fp("a"), 60, token="first") is None
    await keys.release("acme", "other", fp("a"), token="first")
    assert await keys.claim("acme", "other", fp("a"), 60) is None


def test_a_claim_without_a_token_reads_as_before() -> None:
    """What a process of the earlier version stores and reads: `P` and the fingerprint, which
    a token after it leaves as it was."""
    assert Entry.decode(b"P" + fp("a").encode()) == Entry(fp("a"), None)
    with_token = Entry(fp("a"), None, "t0k").encode()
    assert with_token == b"P" + fp("a").encode() + b"t0k"
    assert Entry.decode(with_token).token == "t0k"
    assert with_token[1:65].decode() == fp("a")  # the earlier version's own decoding


async def test_keys_expire(keys: IdempotencyStore) -> None:
    assert await keys.claim("acme", "taken", fp("a"), 0.2) is None
    assert await keys.claim("acme", "kept", fp("a"), 60) is None
    await keys.finish("acme", "kept", fp("a"), b"x", 0.2)
    await asyncio.sleep(0.4)
    assert await keys.claim("acme", "taken", fp("b"), 60) is None
    assert await keys.claim("acme", "kept", fp("b"), 60) is None


async def test_a_key_neither_answered_nor_freed_within_its_lock_lapses(
        keys: IdempotencyStore) -> None:
    """Its process died, maybe after the route wrote: held, lapsed, for keep_s more (it expired,
    and the request sent again ran again); a freed one is free, an answer is still kept."""
    assert await keys.claim("acme", "died", fp("a"), 0.2, 60) is None
    assert await keys.claim("acme", "slow", fp("a"), 0.2, 60) is None
    assert await keys.claim("acme", "freed", fp("a"), 0.2, 60) is None
    assert await keys.claim("acme", "died", fp("a"), 60) == Entry(fp("a"), None)
    await asyncio.sleep(0.4)
    lapsed = Entry(fp("a"), None, lapsed=True)
    assert await keys.claim("acme", "died", fp("a"), 60) == lapsed
    assert await keys.claim("acme", "died", fp("b"), 60) == lapsed
    await keys.finish("acme", "slow", fp("a"), b"201\n{}", 60)
    assert await keys.claim("acme", "slow", fp("a"), 60) == Entry(fp("a"), b"201\n{}")
    await keys.release("acme", "freed", fp("a"))
    assert await keys.claim("acme", "freed", fp("a"), 60) is None


async def test_of_requests_at_once_one_takes_the_key(keys: IdempotencyStore) -> None:
    held = await asyncio.gather(*(keys.claim("acme", "k", fp(str(i)), 60) for i in range(20)))
    assert sum(h is None for h in held) == 1
    winner = next(fp(str(i)) for i, h in enumerate(held) if h is None)
    assert {h.fingerprint for h in held if h is not None} == {winner}
    await keys.ping()


async def test_a_tenants_keys_are_dropped_together(keys: IdempotencyStore) -> None:
    # A key names its tenant (a hash of it, the caller and the client's key): unique alone.
    for tenant in ("acme", "acme-2", "beta"):
        assert await keys.claim(tenant, f"{tenant}:answered", fp("a"), 60) is None
        await keys.finish(tenant, f"{tenant}:answered", fp("a"), b"201\n{}", 60)
        assert await keys.claim(tenant, f"{tenant}:running", fp("a"), 60) is None
    await keys.drop_tenant("acme")
    assert await keys.claim("acme", "acme:answered", fp("b"), 60) is None
    await keys.finish("acme", "acme:running", fp("a"), b"late", 60)  # its request ends after
    assert await keys.claim("acme", "acme:running", fp("b"), 60) is None
    for tenant in ("acme-2", "beta"):
        assert await keys.claim(tenant, f"{tenant}:answered", fp("b"), 60) == Entry(
            fp("a"), b"201\n{}")
        assert await keys.claim(tenant, f"{tenant}:running", fp("b"), 60) == Entry(
            fp("a"), None)
    await keys.drop_tenant("ghost")


OLD_TABLE = ("CREATE TABLE idempotency_keys (key TEXT PRIMARY KEY, entry BLOB NOT NULL,"
             " expires REAL NOT NULL) WITHOUT ROWID")
PENDING = Entry(fp("a"), None).encode()  # as the earlier version took a key
OLD_WRITE = "INSERT OR REPLACE INTO idempotency_keys (key, entry, expires) VALUES (?, ?, ?)"


async def test_a_file_of_the_earlier_version_is_shared_with_it(tmp_path: Path) -> None:
    """The table gains a tenant, not a new shape: a process of the earlier version beside this
    one (a rolling upgrade, a rollback) keeps taking and answering keys in it (it failed every
    keyed POST), what either took the other replays, and an erasure drops what the earlier
    one took, its tenant unknown."""
    db = SqliteDB(tmp_path / "idempotency.sqlite3")
    await db.run(lambda c: c.execute(OLD_TABLE))
    before = Entry(fp("a"), b"201\n{}").encode()
    await db.transaction(lambda c: c.execute(OLD_WRITE, ("kept-before", before, 9e99)))
    keys = SqliteIdempotency(db)
    try:
        assert await keys.claim("acme", "kept-before", fp("b"), 60) == Entry(fp("a"), b"201\n{}")
        assert await keys.claim("acme", "new", fp("a"), 60) is None
        await keys.finish("acme", "new", fp("a"), b"200\n{}", 60)
        await db.transaction(lambda c: c.execute(OLD_WRITE, ("by-the-earlier", before, 9e99)))
        old_read = await db.run(lambda c: c.execute(
            "SELECT entry FROM idempotency_keys WHERE key = 'new'").fetchone()[0])
        assert Entry.decode(bytes(old_read)) == Entry(fp("a"), b"200\n{}")
        # one it took and left unanswered is in use until it expires, as it was
        await db.transaction(lambda c: c.execute(OLD_WRITE, ("running", PENDING, 9e99)))
        assert await keys.claim("acme", "running", fp("b"), 60) == Entry(fp("a"), None)
        await keys.finish("acme", "running", fp("a"), b"201\n{}", 60)
        assert await keys.claim("acme", "running", fp("a"), 60) == Entry(fp("a"), b"201\n{}")
        await keys.drop_tenant("beta")
        assert await keys.claim("acme", "by-the-earlier", fp("c"), 60) is None
        assert await keys.claim("acme", "new", fp("c"), 60) == Entry(fp("a"), b"200\n{}")
    finally:
        await db.close()


async def test_redis_names_keys_as_the_earlier_version_did(tmp_path: Path) -> None:
    """So a process of either version replays what the other kept (a key sent again across
    an upgrade ran again)."""
    require_server("redis")
    client = stores.redis_client(RedisSettings())
    prefix = f"test:idempotency:{uuid.uuid4().hex[:8]}"
    keys = RedisIdempotency(client, prefix=prefix)
    try:
        await client.set(f"{prefix}:kept-before", Entry(fp("a"), b"201\n{}").encode(), px=60_000)
        assert await keys.claim("acme", "kept-before", fp("b"), 60) == Entry(fp("a"), b"201\n{}")
        assert await keys.claim("acme", "new", fp("a"), 60) is None
        await keys.finish("acme", "new", fp("a"), b"200\n{}", 60)
        kept = await client.get(f"{prefix}:new")
        assert isinstance(kept, bytes)
        assert Entry.decode(kept) == Entry(fp("a"), b"200\n{}")
        await client.set(f"{prefix}:running", PENDING, px=60_000)
        assert await keys.claim("acme", "running", fp("b"), 60) == Entry(fp("a"), None)
        await keys.release("acme", "running", fp("a"))
        assert await keys.claim("acme", "running", fp("b"), 60) is None
    finally:
        await client.aclose()


async def test_what_an_erasure_drops_leaves_the_wal(tmp_path: Path) -> None:
    """As the other embedded stores' erasures do: the dropped answers stayed in the WAL file
    until a checkpoint fell due, weeks on a quiet store."""
    db = SqliteDB(tmp_path / "idempotency.sqlite3")
    keys = SqliteIdempotency(db)
    try:
        assert await keys.claim("acme", "made", fp("a"), 60) is None
        await keys.finish("acme", "made", fp("a"), b'201\n{"email": "walter@acme.test"}', 60)
        await keys.drop_tenant("acme")
        assert holding(tmp_path, b"walter@acme.test") == []
    finally:
        await db.close()


def holding(folder: Path, text: bytes) -> list[str]:
    return [path.name for path in folder.iterdir() if text in path.read_bytes()]
