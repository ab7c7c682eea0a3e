"""The signing-key ring: rotation, publication until the last token expires, verification;
access tokens between hosts whose clocks differ by up to `clock_leeway_s`: taken that long
before they were issued and after they expired, and refused as long as a revocation must."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
from pymongo.errors import ServerSelectionTimeoutError

from bloop.platform.identity.keys import KeyRing
from bloop.platform.identity.model import SigningKey
from bloop.platform.identity.stores.embedded import EmbeddedSigningKeys
from bloop.platform.kit.auth import Principal, TokenVerifier, Unauthenticated
from bloop.platform.kit.cache import MemoryCache
from bloop.platform.kit.settings import AuthSettings
from bloop.platform.kit.sqlite import SqliteDB


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EmbeddedSigningKeys]:
    db = SqliteDB(tmp_path / "keys.sqlite3")
    keys = EmbeddedSigningKeys(db)
    await keys.setup()
    yield keys
    await db.close()


def principal(expires_at: float, session_id: str = "s1") -> Principal:
    return Principal(user_id="u1", tenant="acme", roles=frozenset({"learner"}),
                     scopes=frozenset({"profile"}), token_id=uuid.uuid4().hex,
                     session_id=session_id, expires_at=int(expires_at))


@pytest.mark.parametrize("algorithm", ["EdDSA", "ES256"])
async def test_keys_rotate_and_stay_published_while_their_tokens_live(
        store: EmbeddedSigningKeys, algorithm: str) -> None:
    settings = AuthSettings(algorithm=algorithm, key_rotation_s=3600, access_ttl_s=600)
    clock = Clock()
    ring = KeyRing(store, settings, refresh_s=0, clock=clock)
    first, _ = await ring.signing_key()
    assert (await ring.jwks())["keys"][0]["kid"] == first.kid
    token = await ring.mint(principal(clock.now + 600))

    clock.now += 3600
    second, _ = await ring.signing_key()
    assert second.kid != first.kid
    assert {k["kid"] for k in (await ring.jwks())["keys"]} == {first.kid, second.kid}
    assert await ring.public_key(first.kid) is not None

    clock.now += 700  # every token the first key signed has expired
    assert [k["kid"] for k in (await ring.jwks())["keys"]] == [second.kid]
    assert await ring.public_key(first.kid) is None
    assert token

    clock.now += 3600 * 3
    await ring.signing_key()
    assert len(await store.signing_keys()) <= 2  # retired keys are deleted


async def test_two_rings_share_the_store(store: EmbeddedSigningKeys) -> None:
    settings = AuthSettings()
    one, other = KeyRing(store, settings), KeyRing(store, settings)
    key, _ = await one.signing_key()
    assert (await other.signing_key())[0].kid == key.kid
    cache = MemoryCache()
    verifier = TokenVerifier(settings, cache)
    verifier.use_keys(other)
    token = await one.mint(principal(time.time() + 60))
    assert (await verifier.verify(token)).user_id == "u1"
    await verifier.revoke(await verifier.verify(token))
    with pytest.raises(Unauthenticated, match="revoked"):
        await verifier.verify(token)


class FailingKeys:
    """A key store that, once `down`, answers every read with an error after `wait_s`."""

    def __init__(self, inner: EmbeddedSigningKeys, wait_s: float) -> None:
        self.inner, self.wait_s = inner, wait_s
        self.down = False
        self.reads = 0

    async def setup(self) -> None:
        await self.inner.setup()

    async def add_signing_key(self, key: SigningKey) -> None:
        await self.inner.add_signing_key(key)

    async def signing_keys(self) -> list[SigningKey]:
        self.reads += 1
        if self.down:
            await asyncio.sleep(self.wait_s)
            raise ServerSelectionTimeoutError("no server answered")
        return await self.inner.signing_keys()

    async def delete_signing_keys(self, created_before: datetime) -> int:
        return await self.inner.delete_signing_keys(created_before)

    async def secret(self, name: str, candidate: bytes) -> bytes:
        return await self.inner.secret(name, candidate)


async def test_tokens_go_on_verifying_with_the_keys_held_while_the_store_cannot_be_read(
        store: EmbeddedSigningKeys, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = AuthSettings()
    keys = FailingKeys(store, wait_s=0.5)
    clock = Clock()
    clock.now = time.time() - 300  # the tokens it signs are never dated after now
    ring = KeyRing(keys, settings, refresh_s=60, retry_s=5, clock=clock, monotonic=clock)
    verifier = TokenVerifier(settings, MemoryCache())
    verifier.use_keys(ring)
    assert (await verifier.verify(await ring.mint(principal(time.time() + 600)))).user_id == "u1"
    reads = keys.reads

    keys.down = True
    for step in range(12):  # two minutes past the due re-read, a request every 10 s
        clock.now += 10
        started = time.monotonic()
        token = await ring.mint(principal(time.time() + 600))
        assert (await verifier.verify(token)).user_id == "u1"
        assert time.monotonic() - started < 0.2, step  # no request waits for the store
        await asyncio.sleep(0.6 if step % 3 == 0 else 0)  # some re-reads end before the next
    assert (await ring.jwks())["keys"]
    # Due from 60 s on; tried again 5 s after each failure, one read at a time.
    assert 1 <= keys.reads - reads <= 6
    failures = [r for r in caplog.records if r.name == "bloop.identity.keys"]
    assert failures
    assert failures[0].levelname == "WARNING"
    assert failures[0].__dict__["held"] == 1

    reads = keys.reads
    clock.now += 1
    for _ in range(20):
        await verifier.verify(await ring.mint(principal(time.time() + 600)))
    assert keys.reads - reads <= 1  # at most once per retry interval

    other_db = SqliteDB(tmp_path / "other.sqlite3")
    other_store = EmbeddedSigningKeys(other_db)
    await other_store.setup()
    stranger = await KeyRing(other_store, settings).mint(principal(time.time() + 600))
    with pytest.raises(ServerSelectionTimeoutError):  # a key not held yet needs the store
        await verifier.verify(stranger)
    await other_db.close()

    keys.down = False
    clock.now += 5
    await verifier.verify(await ring.mint(principal(time.time() + 600)))
    await asyncio.sleep(0.1)
    reads = keys.reads
    clock.now += 30
    await verifier.verify(await ring.mint(principal(time.time() + 600)))
    assert keys.reads == reads  # read again, not due before refresh_s


async def test_a_wall_clock_set_back_does_not_hold_off_reading_new_keys(
        store: EmbeddedSigningKeys) -> None:
    """Replica A re-read the ring while its wall clock ran an hour fast; NTP set it right; B
    rotated the key. A learns B's key when a token names it, and on its due re-read."""
    settings = AuthSettings(key_rotation_s=3600)
    real = time.time() - 3600 * 2  # the tokens signed are never dated after now
    wall_a, wall_b, ticks = Clock(), Clock(), Clock()
    wall_a.now = wall_b.now = real
    keys = FailingKeys(store, wait_s=0)
    a = KeyRing(keys, settings, clock=wall_a, monotonic=ticks)
    b = KeyRing(store, settings, clock=wall_b)
    first, _ = await b.signing_key()
    assert await a.public_key(first.kid) is not None

    ticks.now += 3590
    wall_a.now, wall_b.now = real + 3590 + 3600, real + 3590  # A an hour fast ...
    await a.public_key(first.kid)  # ... when its due re-read runs
    await asyncio.sleep(0.05)
    ticks.now += 11
    wall_a.now = wall_b.now = real + 3601  # ... then set right; B's key is due to rotate
    verifier = TokenVerifier(settings, MemoryCache())
    verifier.use_keys(a)
    token = await b.mint(principal(time.time() + 600))
    second, _ = await b.signing_key()
    assert second.kid != first.kid
    assert (await verifier.verify(token)).user_id == "u1"

    reads = keys.reads
    ticks.now += 60
    await a.public_key(second.kid)
    await asyncio.sleep(0.05)
    assert keys.reads == reads + 1  # re-read every refresh_s, whatever the wall clock says


async def test_a_token_from_an_issuer_ahead_is_taken_within_the_leeway(
        store: EmbeddedSigningKeys) -> None:
    settings = AuthSettings()
    assert settings.clock_leeway_s == 30
    verifier = TokenVerifier(settings, MemoryCache())
    for ahead, taken in ((20, True), (45, False)):
        ring = KeyRing(store, settings, clock=Clock(time.time() + ahead))
        verifier.use_keys(ring)
        token = await ring.mint(principal(time.time() + ahead + 900))
        if taken:
            assert (await verifier.verify(token)).user_id == "u1"
        else:
            with pytest.raises(Unauthenticated) as refused:
                await verifier.verify(token)
            assert refused.value.code == "token_not_yet_valid"


async def test_the_leeway_holds_past_expiry_too(store: EmbeddedSigningKeys) -> None:
    ring = KeyRing(store, AuthSettings(), clock=lambda: time.time() - 900)
    token = await ring.mint(principal(time.time() - 20))
    verifier = TokenVerifier(AuthSettings(), MemoryCache())
    verifier.use_keys(ring)
    assert (await verifier.verify(token)).user_id == "u1"
    assert (await verifier.verify(token)).user_id == "u1"  # remembered
    strict = TokenVerifier(AuthSettings(clock_leeway_s=10), MemoryCache())
    strict.use_keys(ring)
    with pytest.raises(Unauthenticated) as refused:
        await strict.verify(token)
    assert refused.value.code == "token_expired"


async def test_a_revoked_token_is_refused_while_a_host_behind_would_still_take_it(
        store: EmbeddedSigningKeys, monkeypatch: pytest.MonkeyPatch) -> None:
    """A token revoked now, checked on a host whose clock is the leeway behind this one, just
    before that host takes it as expired: its mark, and its session's, are still there."""
    settings = AuthSettings()
    leeway = settings.clock_leeway_s
    ring = KeyRing(store, settings)
    marks = Clock(0.0)
    verifier = TokenVerifier(settings, MemoryCache(clock=marks))
    verifier.use_keys(ring)
    now = time.time()
    revoked = principal(now + settings.access_ttl_s)
    same_session = principal(now + settings.access_ttl_s)
    tokens = [await ring.mint(p) for p in (revoked, same_session)]
    for token in tokens:
        assert (await verifier.verify(token)).user_id == "u1"
    await verifier.revoke(revoked)

    elapsed = settings.access_ttl_s + 2 * leeway - 1
    marks.now += elapsed
    monkeypatch.setattr(time, "time", lambda: now + elapsed - leeway)
    for token in tokens:
        with pytest.raises(Unauthenticated) as refused:
            await verifier.verify(token)
        assert refused.value.code == "token_revoked"
