"""The API key store contract, run against the embedded (SQLite) adapter and a real MongoDB-wire
server (FerretDB v1 from infra/, or MongoDB). Each real case uses a database of its own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bloop.platform.identity.model import ApiKey, now
from bloop.platform.identity.ports import ApiKeyStore, Duplicate, TooMany
from bloop.platform.identity.stores.embedded import EmbeddedApiKeys
from bloop.platform.identity.stores.mongo import MongoApiKeys
from bloop.platform.kit.pagination import BadCursor
from bloop.platform.kit.sqlite import SqliteDB
from tests.contract.test_identity_store import real_mongo


@pytest.fixture(params=["embedded", pytest.param("real", marks=pytest.mark.real)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ApiKeyStore]:
    if request.param == "embedded":
        db = SqliteDB(tmp_path / "identity.sqlite3")
        embedded = EmbeddedApiKeys(db)
        await embedded.setup()
        yield embedded
        await db.close()
        return
    client = real_mongo()
    name = f"identity_test_{uuid.uuid4().hex[:12]}"
    mongo = MongoApiKeys(client, database=name)
    try:
        await mongo.setup()
        yield mongo
    finally:
        await client.drop_database(name)
        await client.close()


def key(key_id: str, tenant: str = "acme", minutes_ago: int = 0) -> ApiKey:
    return ApiKey(id=key_id, tenant=tenant, name=f"app {key_id}", scopes=["content:read"],
                  roles=["educator"], secret_hash="ab" * 32, created_by="admin",
                  created_at=now() - timedelta(minutes=minutes_ago))


async def test_a_key_past_the_live_limit_is_not_kept(store: ApiKeyStore) -> None:
    await store.add_api_key(key("a00000000001"), max_live=2)
    await store.add_api_key(key("a00000000002"), max_live=2)
    await store.add_api_key(key("b00000000001", tenant="beta"), max_live=2)  # another tenant's own count
    with pytest.raises(TooMany):
        await store.add_api_key(key("a00000000003"), max_live=2)
    assert await store.get_api_key("acme", "a00000000003") is None
    await store.revoke_api_key("acme", "a00000000001", now())
    await store.add_api_key(key("a00000000003"), max_live=2)
    assert await store.count_live_api_keys("acme") == 2


async def test_a_key_round_trips_within_its_tenant(store: ApiKeyStore) -> None:
    k = key("0123456789ab")
    await store.add_api_key(k)
    assert await store.get_api_key("acme", k.id) == k
    assert await store.get_api_key("beta", k.id) is None
    assert await store.get_api_key("acme", "ffffffffffff") is None
    with pytest.raises(Duplicate):
        await store.add_api_key(k.model_copy(update={"name": "impostor"}))
    assert await store.get_api_key("acme", k.id) == k
    elsewhere = key(k.id, tenant="beta")  # ids are unique within a tenant only
    await store.add_api_key(elsewhere)
    assert await store.get_api_key("beta", k.id) == elsewhere


async def test_keys_list_newest_first_per_tenant(store: ApiKeyStore) -> None:
    old, mid, new = key("00000000000a", minutes_ago=30), key("00000000000b", minutes_ago=20), \
        key("00000000000c", minutes_ago=10)
    for k in (mid, new, old):
        await store.add_api_key(k)
    await store.add_api_key(key("00000000000d", tenant="beta"))
    assert [k.id for k in await store.list_api_keys("acme")] == [new.id, mid.id, old.id]
    assert [k.id for k in await store.list_api_keys("acme", limit=2)] == [new.id, mid.id]
    assert [k.id for k in await store.list_api_keys("beta")] == ["00000000000d"]
    assert await store.list_api_keys("gamma") == []
    assert await store.count_live_api_keys("acme") == 3


async def test_keys_list_by_state_and_creator(store: ApiKeyStore) -> None:
    keys = [key(f"00000000000{n}", minutes_ago=10 - n).model_copy(
        update={"created_by": "ada" if n % 2 else "admin"}) for n in range(6)]
    for k in keys:
        await store.add_api_key(k)
    for k in keys[1:4]:
        await store.revoke_api_key("acme", k.id, now())
    newest_first = [k.id for k in reversed(keys)]
    assert [k.id for k in await store.list_api_keys("acme", limit=None)] == newest_first
    assert [k.id for k in await store.list_api_keys("acme", revoked=True)] == [
        keys[3].id, keys[2].id, keys[1].id]
    assert [k.id for k in await store.list_api_keys("acme", revoked=False)] == [
        keys[5].id, keys[4].id, keys[0].id]
    assert [k.id for k in await store.list_api_keys("acme", revoked=True, limit=1)] == [keys[3].id]
    assert [k.id for k in await store.list_api_keys("acme", created_by="ada")] == [
        keys[5].id, keys[3].id, keys[1].id]
    assert [k.id for k in await store.list_api_keys("acme", created_by="ada", revoked=False)] == [
        keys[5].id]
    assert await store.list_api_keys("beta", created_by="ada") == []


async def test_keys_page_newest_first_from_a_cursor(store: ApiKeyStore) -> None:
    same = now() - timedelta(minutes=5)  # two keys made in the same instant page by id
    keys = [key(f"00000000000{n}", minutes_ago=10 - n) for n in range(5)] + [
        key("0000000000ab").model_copy(update={"created_at": same}),
        key("0000000000aa").model_copy(update={"created_at": same})]
    for k in keys:
        await store.add_api_key(k)
    await store.add_api_key(key("00000000000f", tenant="beta"))
    await store.revoke_api_key("acme", keys[1].id, now())
    await store.revoke_api_key("acme", keys[3].id, now())
    newest_first = ["0000000000aa", "0000000000ab", *(k.id for k in reversed(keys[:5]))]

    async def every_page(revoked: bool | None = None) -> list[list[str]]:
        pages, after = [], None
        while True:
            listed = await store.page_api_keys("acme", revoked=revoked, after=after, limit=2)
            pages.append([k.id for k in listed.items])
            if listed.next is None:
                return pages
            after = listed.next

    assert await every_page() == [newest_first[:2], newest_first[2:4], newest_first[4:6],
                                  newest_first[6:]]
    assert await every_page(revoked=True) == [[keys[3].id, keys[1].id]]
    assert await every_page(revoked=False) == [
        ["0000000000aa", "0000000000ab"], [keys[4].id, keys[2].id], [keys[0].id]]
    assert (await store.page_api_keys("gamma")).items == []
    with pytest.raises(BadCursor):
        await store.page_api_keys("acme", after="not-a-cursor")


async def test_revoking_keeps_the_first_time_and_stays_in_the_tenant(store: ApiKeyStore) -> None:
    k = key("0123456789ab")
    other = key("ba9876543210")
    await store.add_api_key(k)
    await store.add_api_key(other)
    assert await store.revoke_api_key("beta", k.id, now()) is None
    assert not (await store.get_api_key("acme", k.id) or k).revoked
    first = now()
    revoked = await store.revoke_api_key("acme", k.id, first)
    assert revoked is not None
    assert revoked.revoked_at == first
    assert revoked.model_copy(update={"revoked_at": None}) == k
    again = await store.revoke_api_key("acme", k.id, first + timedelta(minutes=5))
    assert again is not None
    assert again.revoked_at == first
    assert await store.get_api_key("acme", k.id) == revoked
    assert await store.get_api_key("acme", other.id) == other
    assert await store.count_live_api_keys("acme") == 1
    assert await store.revoke_api_key("acme", "ffffffffffff", now()) is None
    assert len(await store.list_api_keys("acme")) == 2


async def test_keys_made_within_one_second_list_in_time_order(store: ApiKeyStore) -> None:
    second = now().replace(microsecond=0) - timedelta(minutes=1)
    offsets = [0, 500_000, 5_000, 999_000]  # a whole second's key among fractions of it
    for n, micro in enumerate(offsets):
        await store.add_api_key(key(f"00000000000{n}").model_copy(
            update={"created_at": second + timedelta(microseconds=micro)}))
    newest_first = [f"00000000000{n}" for n in sorted(range(4), key=lambda n: -offsets[n])]
    assert [k.id for k in await store.list_api_keys("acme")] == newest_first
    assert [k.id for k in (await store.page_api_keys("acme", limit=10)).items] == newest_first
