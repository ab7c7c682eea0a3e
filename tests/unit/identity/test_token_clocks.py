"""Access tokens between hosts whose clocks differ by up to `clock_leeway_s`: taken that long
before they were issued and after they expired, and refused as long as a revocation must."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bloop.platform.identity.keys import KeyRing
from bloop.platform.identity.stores.embedded import EmbeddedSigningKeys
from bloop.platform.kit.auth import Principal, TokenVerifier, Unauthenticated
from bloop.platform.kit.cache import MemoryCache
from bloop.platform.kit.settings import AuthSettings
from bloop.platform.kit.sqlite import SqliteDB


class Clock:
    def __init__(self, now: float) -> None:
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
