"""The verifier remembers tokens it has checked, and still refuses each one the moment it
expires, is revoked, or its signing key is no longer published."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bloop.platform.identity.keys import KeyRing
from bloop.platform.identity.stores.embedded import EmbeddedSigningKeys
from bloop.platform.kit.auth import Principal, TokenVerifier, Unauthenticated
from bloop.platform.kit.cache import MemoryCache
from bloop.platform.kit.settings import AuthSettings
from bloop.platform.kit.sqlite import SqliteDB


@pytest.fixture
async def ring(tmp_path: Path) -> AsyncIterator[KeyRing]:
    db = SqliteDB(tmp_path / "keys.sqlite3")
    store = EmbeddedSigningKeys(db)
    await store.setup()
    yield KeyRing(store, AuthSettings())
    await db.close()


def principal(expires_at: float) -> Principal:
    return Principal(user_id="u1", tenant="acme", roles=frozenset({"learner"}),
                     scopes=frozenset({"profile"}), token_id=uuid.uuid4().hex,
                     session_id=uuid.uuid4().hex, expires_at=int(expires_at))


class Withdrawn:
    """A key source that has stopped publishing every key."""

    async def public_key(self, kid: str) -> Any | None:
        return None


async def test_a_remembered_token_is_refused_once_expired(
        ring: KeyRing, monkeypatch: pytest.MonkeyPatch) -> None:
    verifier = TokenVerifier(AuthSettings(), MemoryCache())
    verifier.use_keys(ring)
    token = await ring.mint(principal(time.time() + 60))
    assert (await verifier.verify(token)).user_id == "u1"
    assert (await verifier.verify(token)).user_id == "u1"  # remembered
    later = time.time() + 60 + AuthSettings().clock_leeway_s + 1
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(Unauthenticated, match="expired"):
        await verifier.verify(token)


async def test_a_remembered_token_is_refused_once_revoked_or_its_key_withdrawn(
        ring: KeyRing) -> None:
    verifier = TokenVerifier(AuthSettings(), MemoryCache())
    verifier.use_keys(ring)
    revoked = await ring.mint(principal(time.time() + 60))
    withdrawn = await ring.mint(principal(time.time() + 60))
    await verifier.verify(revoked)
    await verifier.revoke(await verifier.verify(revoked))
    with pytest.raises(Unauthenticated, match="revoked"):
        await verifier.verify(revoked)
    await verifier.verify(withdrawn)
    verifier.use_keys(Withdrawn())
    with pytest.raises(Unauthenticated, match="signing key is unknown"):
        await verifier.verify(withdrawn)


async def test_only_verified_tokens_are_remembered_and_the_memo_is_bounded(
        ring: KeyRing) -> None:
    verifier = TokenVerifier(AuthSettings(), MemoryCache())
    verifier.use_keys(ring)
    verifier.VERIFIED_KEPT = 3
    good = await ring.mint(principal(time.time() + 60))
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    for token in (forged, "not.a.jwt", "x" * 5000):
        with pytest.raises(Unauthenticated):
            await verifier.verify(token)
    tokens = [await ring.mint(principal(time.time() + 60)) for _ in range(5)]
    for token in tokens:
        await verifier.verify(token)
    assert len(verifier._verified) == 3
    assert set(verifier._verified) == set(tokens[2:])
    assert forged not in verifier._verified


async def test_the_memo_survives_the_key_ring_reloading(
        ring: KeyRing, monkeypatch: pytest.MonkeyPatch) -> None:
    ring.refresh_s = 0  # every lookup re-reads the store
    verifier = TokenVerifier(AuthSettings(), MemoryCache())
    verifier.use_keys(ring)
    token = await ring.mint(principal(time.time() + 60))
    await verifier.verify(token)
    kid = next(iter(verifier._verified.values()))[1]
    key = await ring.public_key(kid)
    assert await ring.public_key(kid) is key

    async def no_second_check(token: str) -> Any:
        raise AssertionError("the signature was checked again")

    monkeypatch.setattr(verifier, "_check", no_second_check)
    assert (await verifier.verify(token)).user_id == "u1"
