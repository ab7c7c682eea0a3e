"""The signing-key ring: rotation, publication until the last token expires, verification."""

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
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EmbeddedSigningKeys]:
    db = SqliteDB(tmp_path / "keys.sqlite3")
    keys = EmbeddedSigningKeys(db)
    await keys.setup()
    yield keys
    await db.close()


def principal(expires_at: float) -> Principal:
    return Principal(user_id="u1", tenant="acme", roles=frozenset({"learner"}),
                     scopes=frozenset({"profile"}), token_id=uuid.uuid4().hex,
                     session_id="s1", expires_at=int(expires_at))


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
