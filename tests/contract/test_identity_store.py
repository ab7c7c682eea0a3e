"""The identity store contract, run against the embedded (SQLite) adapter and a real
MongoDB-wire server (FerretDB v1 from infra/, or MongoDB). Each real case uses a database of its
own, dropped afterwards."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from pydantic import ValidationError
from pymongo import AsyncMongoClient

from bloop.platform.identity.events import (
    TenantCreated,
    UserDeleted,
    UserRegistered,
    UserTimeZoneChanged,
)
from bloop.platform.identity.keys import new_key
from bloop.platform.identity.model import (
    ApiKey,
    Invitation,
    NewTenant,
    NewUser,
    ProfileEdit,
    RefreshToken,
    Tenant,
    TenantSettings,
    TenantSettingsEdit,
    User,
    now,
)
from bloop.platform.identity.oidc.model import OidcLink
from bloop.platform.identity.oidc.ports import OidcProviderStore
from bloop.platform.identity.ports import (
    Announcement,
    ApiKeyStore,
    Duplicate,
    HoldsRole,
    IdentityRepository,
    LastHolder,
    Missing,
    ProfileSetLater,
    SigningKeyStore,
    Unannounced,
    ZoneSetLater,
)
from bloop.platform.identity.service import IdentityService
from bloop.platform.identity.stores.embedded import (
    EmbeddedApiKeys,
    EmbeddedIdentityStore,
    EmbeddedSigningKeys,
)
from bloop.platform.identity.stores.mongo import MongoApiKeys, MongoIdentityStore, MongoSigningKeys
from bloop.platform.identity.stores.oidc_embedded import EmbeddedOidcProviders
from bloop.platform.identity.stores.oidc_mongo import MongoOidcProviders
from bloop.platform.kit import stores
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.types import registry, type_of
from bloop.platform.kit.pagination import BadCursor
from bloop.platform.kit.personal_data import ERASED_USER
from bloop.platform.kit.read_back import STORED
from bloop.platform.kit.settings import MongoSettings
from bloop.platform.kit.sqlite import SqliteDB
from tests.support import FirstWriteLast, paged, require_server


def real_mongo() -> AsyncMongoClient[dict[str, Any]]:
    """A client of the MongoDB-wire server of the settings (FerretDB from infra/ or MongoDB).
    Without one the test fails under CI and is reported as not run (xfail) elsewhere."""
    server = require_server("mongo")
    return stores.mongo_client(MongoSettings(url=server.url, timeout_ms=2000))


@pytest.fixture(params=["embedded", pytest.param("real", marks=pytest.mark.real)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[IdentityRepository]:
    if request.param == "embedded":
        db = SqliteDB(tmp_path / "identity.sqlite3")
        embedded = EmbeddedIdentityStore(db, registry)
        await embedded.setup()
        yield embedded
        await db.close()
        return
    client = real_mongo()
    name = f"identity_test_{uuid.uuid4().hex[:12]}"
    mongo = MongoIdentityStore(client, registry, database=name)
    try:
        await mongo.setup()
        yield mongo
    finally:
        await client.drop_database(name)
        await client.close()


def tenant(tid: str = "acme") -> Tenant:
    return Tenant.create(NewTenant(id=tid, name=f"{tid} school"))


def user(tid: str, email: str, name: str = "Someone") -> User:
    return User.register(tid, NewUser(email=email, display_name=name, roles=["educator"]))


def created(t: Tenant) -> Envelope:
    return type_of(TenantCreated).envelope(
        TenantCreated(tenant_id=t.id, name=t.name, created_at=t.created_at),
        tenant=t.id, subject=t.id)


def registered(u: User) -> Envelope:
    return type_of(UserRegistered).envelope(
        UserRegistered(user_id=u.id, display_name=u.display_name, roles=u.roles,
                       registered_at=u.created_at), tenant=u.tenant, subject=u.id)


async def pending_types(store: IdentityRepository) -> list[str]:
    return [json.loads(p.message.value)["type"] for p in await store.outbox.pending(100)]


async def test_a_tenant_round_trips_with_its_event(store: IdentityRepository) -> None:
    t = tenant()
    await store.add_tenant(t, [created(t)])
    assert await store.get_tenant("acme") == t
    assert await store.get_tenant("other") is None
    [p] = await store.outbox.pending(10)
    assert p.message.topic == "user.events"
    assert p.message.key == b"acme"
    assert await store.outbox.count_pending() == 1


async def test_tenants_list_by_id_a_page_at_a_time(store: IdentityRepository) -> None:
    for tid in ("gamma", "alpha", "beta", "delta"):
        t = tenant(tid)
        await store.add_tenant(t, [created(t)])
    first = await store.list_tenants(limit=3)
    assert [t.id for t in first] == ["alpha", "beta", "delta"]
    assert first[0] == tenant("alpha").model_copy(update={"created_at": first[0].created_at})
    assert [t.id for t in await store.list_tenants(after="delta", limit=3)] == ["gamma"]
    assert await store.list_tenants(after="gamma") == []


async def test_a_duplicate_tenant_is_refused_and_stores_nothing(store: IdentityRepository) -> None:
    t = tenant()
    await store.add_tenant(t, [created(t)])
    again = Tenant.create(NewTenant(id="acme", name="Impostor"))
    with pytest.raises(Duplicate):
        await store.add_tenant(again, [created(again)])
    assert (await store.get_tenant("acme")) == t
    assert await pending_types(store) == ["bloop.identity.tenant.created.v1"]


async def test_users_round_trip_by_id_and_email(store: IdentityRepository) -> None:
    await store.add_tenant(tenant(), [])
    ada = user("acme", "ada@acme.dev", "Ada")
    await store.add_user(ada, [registered(ada)])
    assert await store.get_user("acme", ada.id) == ada
    assert await store.get_user_by_email("acme", "ada@acme.dev") == ada
    assert await pending_types(store) == ["bloop.identity.user.registered.v1"]


async def test_an_unverified_email_stays_unverified_through_reads_and_edits(
        store: IdentityRepository) -> None:
    """A self sign-up's account keeps `email_verified` false in every read and edit; a record
    stored before the field reads as verified."""
    await store.add_tenant(tenant(), [])
    zoe = User.register("acme", NewUser(email="zoe@acme.dev", display_name="Zoe"),
                        email_verified=False)
    await store.add_user(zoe, [], "hash")
    await store.replace_user(zoe.with_profile(ProfileEdit(bio="Hi.")), [], fields=["bio"])
    login = await store.get_login("acme", "zoe@acme.dev")
    assert login is not None
    found = [await store.get_user("acme", zoe.id), await store.get_user_by_email(
        "acme", "zoe@acme.dev"), login[0], *await store.list_users("acme")]
    assert [(u.bio, u.email_verified) for u in found if u is not None] == [("Hi.", False)] * 4
    old = zoe.model_dump(mode="json", exclude={"email_verified"})
    assert User.model_validate(old, context=STORED).email_verified is True


async def test_an_email_is_unique_within_a_tenant(store: IdentityRepository) -> None:
    first = user("acme", "ada@acme.dev")
    await store.add_user(first, [registered(first)])
    second = user("acme", "ADA@acme.dev")  # normalised to the same email
    with pytest.raises(Duplicate):
        await store.add_user(second, [registered(second)])
    assert await store.get_user("acme", second.id) is None
    assert len(await store.outbox.pending(10)) == 1
    elsewhere = user("beta", "ada@acme.dev")
    await store.add_user(elsewhere, [])
    assert await store.get_user_by_email("beta", "ada@acme.dev") == elsewhere


async def test_no_read_crosses_tenants(store: IdentityRepository) -> None:
    ada = user("acme", "ada@acme.dev")
    await store.add_user(ada, [])
    assert await store.get_user("beta", ada.id) is None
    assert await store.get_user_by_email("beta", "ada@acme.dev") is None
    assert await store.list_users("beta") == []


async def test_users_list_by_email_after_a_cursor(store: IdentityRepository) -> None:
    for email in ("carol@acme.dev", "alice@acme.dev", "bob@acme.dev", "dan@acme.dev"):
        await store.add_user(user("acme", email), [])
    await store.add_user(user("beta", "aaron@beta.dev"), [])
    page = await store.list_users("acme", limit=2)
    assert [u.email for u in page] == ["alice@acme.dev", "bob@acme.dev"]
    page = await store.list_users("acme", after="bob@acme.dev", limit=5)
    assert [u.email for u in page] == ["carol@acme.dev", "dan@acme.dev"]


async def test_sent_events_leave_the_outbox(store: IdentityRepository) -> None:
    t = tenant()
    await store.add_tenant(t, [created(t)])
    ada = user("acme", "ada@acme.dev")
    await store.add_user(ada, [registered(ada)])
    pending = await store.outbox.pending(10)
    assert len(pending) == 2
    await store.outbox.mark_sent(pending)
    assert await store.outbox.pending(10) == []
    assert await store.outbox.count_pending() == 0
    assert await store.get_user("acme", ada.id) == ada  # the outbox never leaks into reads


@pytest.fixture(params=["embedded", pytest.param("real", marks=pytest.mark.real)])
async def key_store(request: pytest.FixtureRequest,
                    tmp_path: Path) -> AsyncIterator[SigningKeyStore]:
    if request.param == "embedded":
        db = SqliteDB(tmp_path / "identity.sqlite3")
        embedded = EmbeddedSigningKeys(db)
        await embedded.setup()
        yield embedded
        await db.close()
        return
    client = real_mongo()
    name = f"identity_test_{uuid.uuid4().hex[:12]}"
    mongo = MongoSigningKeys(client, database=name)
    try:
        await mongo.setup()
        yield mongo
    finally:
        await client.drop_database(name)
        await client.close()


async def test_tenant_settings_are_replaced(store: IdentityRepository) -> None:
    t = tenant()
    await store.add_tenant(t, [])
    changed = t.with_settings(TenantSettingsEdit(allowed_signup_domains=["acme.dev"]))
    await store.replace_tenant(changed)
    assert await store.get_tenant("acme") == changed
    with pytest.raises(Missing):
        await store.replace_tenant(tenant("ghost"))


async def test_a_settings_edit_writes_the_settings_it_names(store: IdentityRepository) -> None:
    t = tenant()
    await store.add_tenant(t, [])
    domains = TenantSettingsEdit(allowed_signup_domains=["acme.dev"])
    await store.replace_tenant(t.with_settings(domains), settings=["allowed_signup_domains"])
    assert await store.get_tenant("acme") == t.with_settings(domains)
    with pytest.raises(Missing):
        await store.replace_tenant(tenant("ghost"), settings=["allowed_signup_domains"])


async def test_password_hashes_stay_out_of_user_reads(store: IdentityRepository) -> None:
    ada = user("acme", "ada@acme.dev")
    await store.add_user(ada, [], "$argon2id$first")
    assert await store.get_login("acme", "ada@acme.dev") == (ada, "$argon2id$first")
    assert await store.get_login("beta", "ada@acme.dev") is None
    await store.set_password_hash("acme", ada.id, "$argon2id$second")
    assert await store.get_login("acme", "ada@acme.dev") == (ada, "$argon2id$second")
    assert await store.get_user("acme", ada.id) == ada
    with pytest.raises(Missing):
        await store.set_password_hash("beta", ada.id, "$argon2id$stolen")
    assert (await store.get_login("acme", "ada@acme.dev")) == (ada, "$argon2id$second")
    bob = user("acme", "bob@acme.dev")
    await store.add_user(bob, [])
    assert await store.get_login("acme", "bob@acme.dev") == (bob, None)


async def test_writes_told_to_leave_a_role_alone_refuse_a_user_holding_it(
        store: IdentityRepository) -> None:
    root = user("acme", "root@acme.dev").with_roles(["platform_admin"])
    await store.add_user(root, [], "$argon2id$root")
    lee = user("acme", "lee@acme.dev")
    await store.add_user(lee, [], "$argon2id$lee")
    with pytest.raises(HoldsRole):
        await store.replace_user(root.with_roles(["learner"]), [], fields=["roles"],
                                 unless_role="platform_admin")
    with pytest.raises(HoldsRole):
        await store.set_password_hash("acme", root.id, "$argon2id$x", unless_role="platform_admin")
    with pytest.raises(HoldsRole):
        await store.delete_user("acme", root.id, [], unless_role="platform_admin")
    assert await store.get_login("acme", "root@acme.dev") == (root, "$argon2id$root")
    await store.replace_user(lee.with_roles(["educator"]), [], fields=["roles"],
                             unless_role="platform_admin")
    assert await store.set_password_hash("acme", lee.id, "$argon2id$new",
                                         unless_role="platform_admin")
    await store.delete_user("acme", lee.id, [], unless_role="platform_admin")
    assert await store.get_user("acme", lee.id) is None
    with pytest.raises(Missing):
        await store.delete_user("acme", lee.id, [], unless_role="platform_admin")


async def test_writes_keeping_a_role_refuse_to_take_it_from_its_last_holder(
        store: IdentityRepository) -> None:
    ada = user("acme", "ada@acme.dev").with_roles(["tenant_admin"])
    await store.add_user(ada, [])
    await store.add_user(user("beta", "bo@beta.dev").with_roles(["tenant_admin"]), [])
    await store.add_user(user("acme", "lee@acme.dev"), [])
    with pytest.raises(LastHolder):
        await store.replace_user(ada.with_roles(["learner"]), [], fields=["roles"],
                                 keeping="tenant_admin")
    with pytest.raises(LastHolder):
        await store.delete_user("acme", ada.id, [], keeping="tenant_admin")
    assert await store.get_user("acme", ada.id) == ada
    bo = user("acme", "bo@acme.dev").with_roles(["educator", "tenant_admin"])
    await store.add_user(bo, [])
    await store.replace_user(ada.with_roles(["learner"]), [], fields=["roles"],
                             keeping="tenant_admin")
    with pytest.raises(LastHolder):
        await store.delete_user("acme", bo.id, [], keeping="tenant_admin")
    await store.delete_user("acme", ada.id, [], keeping="tenant_admin")  # bo still is one


async def test_two_last_holders_taking_the_role_from_each_other_at_once_keep_one(
        store: IdentityRepository) -> None:
    """Each found the other still an admin before either wrote: the tenant was left with
    none (MongoDB and FerretDB, every time)."""
    for round_ in range(4):
        tenant = f"t{uuid.uuid4().hex[:8]}"
        ada, bo = (user(tenant, f"{n}@acme.dev").with_roles(["tenant_admin"])
                   for n in ("ada", "bo"))
        for admin in (ada, bo):
            await store.add_user(admin, [])
        writes: list[Awaitable[object]]
        if round_ % 2:
            writes = [store.delete_user(tenant, u.id, [], keeping="tenant_admin")
                      for u in (ada, bo)]
        else:
            writes = [store.replace_user(u.with_roles(["learner"]), [], fields=["roles"],
                                         keeping="tenant_admin") for u in (ada, bo)]
        done = await asyncio.gather(*writes, return_exceptions=True)
        assert sorted(type(d).__name__ if isinstance(d, BaseException) else "written"
                      for d in done) == ["LastHolder", "written"], done
        left = [u for u in (ada, bo) if (found := await store.get_user(tenant, u.id))
                is not None and "tenant_admin" in found.roles]
        assert len(left) == 1


async def test_a_password_hash_replaces_only_the_one_it_was_read_as(
        store: IdentityRepository) -> None:
    """What a rehash at sign-in and a person's own change rely on: a hash written since they
    read theirs is never overwritten."""
    ada = user("acme", "ada@acme.dev")
    await store.add_user(ada, [], "$argon2id$first")
    assert await store.set_password_hash("acme", ada.id, "$argon2id$second",
                                         replacing="$argon2id$first")
    assert not await store.set_password_hash("acme", ada.id, "$argon2id$stale",
                                             replacing="$argon2id$first")
    assert await store.get_login("acme", "ada@acme.dev") == (ada, "$argon2id$second")
    with pytest.raises(Missing):
        await store.set_password_hash("acme", "nobody", "$argon2id$x", replacing="$argon2id$first")


async def test_user_changes_are_stored_with_their_events(store: IdentityRepository) -> None:
    ada = user("acme", "ada@acme.dev")
    await store.add_user(ada, [])
    edited = ada.with_profile(ProfileEdit(bio="Loops.", time_zone="Europe/Paris")).with_roles(
        ["learner", "tenant_admin"])
    await store.replace_user(edited, [registered(edited)])
    assert await store.get_user("acme", ada.id) == edited
    assert await pending_types(store) == ["bloop.identity.user.registered.v1"]
    with pytest.raises(Missing):
        await store.replace_user(edited.model_copy(update={"tenant": "beta"}), [])
    assert await store.list_users("beta") == []


def zone_told(u: User) -> Envelope:
    return type_of(UserTimeZoneChanged).envelope(
        UserTimeZoneChanged(user_id=u.id, time_zone=u.time_zone, changed_at=u.created_at),
        tenant=u.tenant, subject=u.id)


def users_of(found: list[Unannounced]) -> list[User]:
    return [r.user for r in found]


def announcing(found: list[Unannounced], zone_at: datetime | None = None) -> list[Announcement]:
    return [Announcement(r, zone_told(r.user), zone_at) for r in found]


async def test_zones_set_before_they_were_announced_are_announced_once(
        store: IdentityRepository) -> None:
    """A zone set before identity announced zones is listed until an announcement of it is
    stored, once however many processes store one at once; a zone announced as it was set,
    UTC, and an erased user's are never listed."""
    people = {name: user(tid, f"{name}@{tid}.dev") for name, tid in
              [("ada", "acme"), ("bo", "acme"), ("cy", "acme"), ("di", "acme"), ("ed", "acme"),
               ("fay", "acme"), ("gus", "beta")]}
    for u in people.values():
        await store.add_user(u, [])
    zoned = {name: u.model_copy(update={"time_zone": "Asia/Tokyo"})
             for name, u in people.items() if name != "bo"}  # bo: UTC
    for name, u in zoned.items():
        await store.replace_user(u, [zone_told(u)] if name == "cy" else [], fields=["time_zone"],
                                 announces_zone=name == "cy")  # cy's edit was announced
    await store.delete_user("acme", people["di"].id, [])
    waiting = sorted((zoned[n] for n in ("ada", "ed", "fay")), key=lambda u: u.id)
    found = await store.unannounced_time_zones("acme")
    assert users_of(found) == waiting
    assert {(r.announced, r.set_at) for r in found} == {(None, None)}
    assert users_of(await store.unannounced_time_zones("acme", limit=2)) == waiting[:2]
    assert users_of(await store.unannounced_time_zones("acme", after=waiting[1].id)) == waiting[2:]
    assert users_of(await store.unannounced_time_zones("beta")) == [zoned["gus"]]
    # fay's zone changed since it was read, by a version that announced none: left for later
    fay = zoned["fay"].model_copy(update={"time_zone": "Europe/Oslo"})
    await store.replace_user(fay, [], fields=["time_zone"])
    told = announcing(found)
    stored = await asyncio.gather(*(store.announce_time_zones("acme", told) for _ in range(3)))
    assert sum(stored) == 2
    [again] = await store.unannounced_time_zones("acme")
    assert (again.user, again.announced) == (fay, None)
    assert await store.announce_time_zones("acme", announcing([again])) == 1
    assert await store.unannounced_time_zones("acme") == []
    assert (await pending_types(store)).count("bloop.identity.user.time_zone_changed.v1") == 4
    assert await store.get_user("acme", fay.id) == fay
    assert await store.announce_time_zones("beta", told) == 0  # another tenant's users
    assert users_of(await store.unannounced_time_zones("beta")) == [zoned["gus"]]


async def test_a_zone_changed_by_a_version_that_did_not_announce_it_is_listed_again(
        store: IdentityRepository) -> None:
    """A version before zones were announced writes a zone over the one announced (no event,
    no time): learning never heard of it. It is listed with the zone announced and when that
    was set until its announcement is stored (with a later time, once however many processes
    store it); one set back to the zone announced is not, nor UTC over none announced."""
    ada, bo, cy, di = people = [user("acme", f"{n}@acme.dev") for n in ("ada", "bo", "cy", "di")]
    for u in people:
        await store.add_user(u, [])
    at = datetime.now(UTC)
    for u, zone in ((ada, "Europe/Paris"), (bo, "Asia/Tokyo"), (cy, "Europe/Oslo")):
        zoned = u.with_profile(ProfileEdit(time_zone=zone))
        await store.replace_user(zoned, [zone_told(zoned)], fields=["time_zone"],
                                 announces_zone=True, zone_at=at)
    assert await store.unannounced_time_zones("acme") == []
    for u, zone in ((ada, "Asia/Tokyo"), (bo, "UTC"), (cy, "Europe/Rome"), (cy, "Europe/Oslo"),
                    (di, "UTC")):  # as the earlier version writes it
        await store.replace_user(u.with_profile(ProfileEdit(time_zone=zone)), [],
                                 fields=["time_zone"])
    found = await store.unannounced_time_zones("acme")
    assert sorted((r.user.id, r.user.time_zone, r.announced, r.set_at) for r in found) == sorted(
        [(ada.id, "Asia/Tokyo", "Europe/Paris", at), (bo.id, "UTC", "Asia/Tokyo", at)])
    later = at + timedelta(seconds=1)
    told = announcing(found, later)
    stored = await asyncio.gather(*(store.announce_time_zones("acme", told) for _ in range(3)))
    assert sum(stored) == 2
    assert await store.unannounced_time_zones("acme") == []
    assert (await pending_types(store)).count("bloop.identity.user.time_zone_changed.v1") == 5
    assert (await store.get_user("acme", bo.id)).time_zone == "UTC"  # type: ignore[union-attr]
    # stored as set at `later`: an edit stamped before it is refused
    with pytest.raises(ZoneSetLater):
        await store.replace_user(ada.with_profile(ProfileEdit(time_zone="Europe/Paris")), [],
                                 fields=["time_zone"], zone_at=at + timedelta(microseconds=1))


async def flagged_announced_before(store: IdentityRepository, u: User) -> None:
    """Marks the user's zone announced as the version before announced zones were kept did."""
    if isinstance(store, EmbeddedIdentityStore):
        def write(c: sqlite3.Connection) -> None:
            c.execute("ALTER TABLE users ADD COLUMN zone_announced INTEGER")
            c.execute("UPDATE users SET announced_zone = NULL")
            c.execute("UPDATE users SET zone_announced = 1 WHERE id = ?", (u.id,))

        await store.db.run(write)
    else:
        assert isinstance(store, MongoIdentityStore)
        await store.users.update_many({}, {"$unset": {"_announced_zone": ""}})
        await store.users.update_one({"id": u.id}, {"$set": {"_zone_announced": True}})


async def test_zones_flagged_announced_are_announced_again(store: IdentityRepository) -> None:
    """The version that flagged zones announced ran beside learning members of an earlier one,
    which passed announcements by: the flag does not say learning heard of the zone."""
    ada, bo = (user("acme", f"{n}@acme.dev") for n in ("ada", "bo"))
    at = datetime.now(UTC)
    for u in (ada, bo):
        await store.add_user(u, [])
        await store.replace_user(u.with_profile(ProfileEdit(time_zone="Asia/Tokyo")), [],
                                 fields=["time_zone"], announces_zone=True, zone_at=at)
    await flagged_announced_before(store, ada)
    await store.setup()
    await store.setup()
    found = await store.unannounced_time_zones("acme")
    assert sorted((r.user.id, r.user.time_zone, r.announced, r.set_at) for r in found) == sorted(
        [(ada.id, "Asia/Tokyo", None, at), (bo.id, "Asia/Tokyo", None, at)])
    assert await store.announce_time_zones("acme", announcing(found, at)) == 2
    assert await store.unannounced_time_zones("acme") == []
    if isinstance(store, EmbeddedIdentityStore):
        # that version, still running beside this one in a rolling upgrade, writes its flag
        # with each zone edit (it was a 500 once this one had dropped the column)
        await store.db.run(lambda c: c.execute(
            "UPDATE users SET zone_announced = 1 WHERE id = ?", (bo.id,)))


async def test_writes_of_other_fields_from_the_same_read_both_stay(
        store: IdentityRepository) -> None:
    """A profile edit read before a role change does not put the old roles back."""
    ada = user("acme", "ada@acme.dev")
    await store.add_user(ada, [], "$argon2id$x")
    demoted = ada.with_roles(["learner"])
    await store.replace_user(demoted, [], fields=["roles"])
    late = ProfileEdit(bio="Loops.", avatar_url="https://img.acme.dev/a.png")
    await store.replace_user(ada.with_profile(late), [], fields=late.changes().keys())
    both = demoted.with_profile(late)
    assert await store.get_user("acme", ada.id) == both
    assert await store.get_login("acme", "ada@acme.dev") == (both, "$argon2id$x")
    cleared = ProfileEdit(avatar_url=None)
    await store.replace_user(both.with_profile(cleared), [], fields=cleared.changes().keys())
    assert await store.get_user("acme", ada.id) == both.model_copy(update={"avatar_url": None})
    with pytest.raises(Missing):
        await store.replace_user(both.model_copy(update={"id": "ghost"}), [], fields=["bio"])

async def test_time_zones_are_stored_in_the_order_of_when_they_were_set(
        store: IdentityRepository) -> None:
    """Learning keeps the zone of the latest `time_zone_changed` it hears of; identity keeps
    the one written last: a zone set earlier than the stored one is refused, its event too,
    so both end with the same zone."""
    ada = user("acme", "ada@acme.dev")
    await store.add_user(ada, [])
    at = now()
    paris, tokyo = (ada.with_profile(ProfileEdit(time_zone=z)) for z in ("Europe/Paris",
                                                                          "Asia/Tokyo"))
    await store.replace_user(paris, [registered(paris)], fields=["time_zone"],
                             zone_at=at + timedelta(microseconds=2))
    for earlier in (at, at + timedelta(microseconds=2)):  # to the microsecond
        with pytest.raises(ZoneSetLater) as refused:
            await store.replace_user(tokyo, [registered(tokyo)], fields=["time_zone"],
                                     zone_at=earlier)
        assert refused.value.at == at + timedelta(microseconds=2)
    assert (await store.get_user("acme", ada.id)) == paris
    assert len(await pending_types(store)) == 1
    await store.replace_user(tokyo, [registered(tokyo)], fields=["time_zone"],
                             zone_at=at + timedelta(microseconds=3))
    assert (await store.get_user("acme", ada.id)) == tokyo
    assert len(await pending_types(store)) == 2
    # other writes leave the time alone; a user that is not there is still Missing
    await store.replace_user(paris, [], fields=["time_zone"])
    with pytest.raises(ZoneSetLater):
        await store.replace_user(tokyo, [], fields=["time_zone"], zone_at=at)
    with pytest.raises(Missing):
        await store.replace_user(tokyo.model_copy(update={"id": "ghost"}), [],
                                 fields=["time_zone"], zone_at=at)


async def test_names_and_avatars_are_written_over_the_ones_read_in_the_order_they_were_set(
        store: IdentityRepository) -> None:
    """A `user.profile_changed` carries the name and avatar the write stores: a write over a
    name or avatar other than the ones read, or stored as set later, is refused, its event
    too."""
    ada = user("acme", "ada@acme.dev", "Ada")
    await store.add_user(ada, [])
    at = now()
    named = ProfileEdit(display_name="Ada L.")
    pictured = ProfileEdit(avatar_url="https://img.acme.dev/a.png")
    await store.replace_user(ada.with_profile(named), [registered(ada)], fields=["display_name"],
                             profile_read=ada, profile_at=at + timedelta(microseconds=2))
    stored = ada.with_profile(named)
    for read, earlier in ((ada, at + timedelta(microseconds=3)),  # read before the name
                          (stored, at + timedelta(microseconds=2))):  # to the microsecond
        with pytest.raises(ProfileSetLater) as refused:
            await store.replace_user(read.with_profile(pictured), [registered(ada)],
                                     fields=["avatar_url"], profile_read=read,
                                     profile_at=earlier)
        assert refused.value.at == at + timedelta(microseconds=2)
    with pytest.raises(ProfileSetLater):  # an edit whose name is the one read, written over
        await store.replace_user(ada, [], fields=["display_name"], profile_read=ada)
    assert await store.get_user("acme", ada.id) == stored
    assert len(await pending_types(store)) == 1
    await store.replace_user(stored.with_profile(pictured), [registered(ada)],
                             fields=["avatar_url"], profile_read=stored,
                             profile_at=at + timedelta(microseconds=3))
    stored = stored.with_profile(pictured)
    assert await store.get_user("acme", ada.id) == stored
    assert len(await pending_types(store)) == 2
    # the same name and avatar again, with no time, write over nothing else; other writes and
    # the zone's time leave the profile's alone
    await store.replace_user(stored, [], fields=["display_name"], profile_read=stored)
    zoned = stored.with_profile(ProfileEdit(time_zone="Asia/Tokyo"))
    await store.replace_user(zoned, [], fields=["time_zone"], profile_read=stored,
                             zone_at=at + timedelta(days=1))
    with pytest.raises(ProfileSetLater) as refused:
        await store.replace_user(zoned, [], fields=["display_name"], profile_read=zoned,
                                 profile_at=at + timedelta(microseconds=3))
    assert refused.value.at == at + timedelta(microseconds=3)
    with pytest.raises(Missing):
        await store.replace_user(zoned.model_copy(update={"id": "ghost"}), [],
                                 fields=["display_name"], profile_read=zoned, profile_at=at)
    fresh = user("acme", "bo@acme.dev", "Bo")  # never edited: no time stored
    await store.add_user(fresh, [])
    with pytest.raises(ProfileSetLater) as refused:
        await store.replace_user(fresh, [], fields=["display_name"], profile_read=ada)
    assert refused.value.at is None


def profiles_told(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["data"] for e in events if e["type"] == "bloop.identity.user.profile_changed.v1"]


@pytest.mark.parametrize(("first", "second"), [
    (ProfileEdit(display_name="Ada L."), ProfileEdit(avatar_url="https://img.acme.dev/a.png")),
    (ProfileEdit(display_name="Cy"), ProfileEdit(display_name="Di")),
    (ProfileEdit(display_name="Ada"), ProfileEdit(display_name="Bea")),  # the name it read
    (ProfileEdit(avatar_url=None), ProfileEdit(display_name="Ed", avatar_url="https://e.dev/e")),
], ids=["name-avatar", "name-name", "same-name", "avatar-both"])
async def test_the_last_profile_changed_of_edits_at_once_carries_the_stored_profile(
        store: IdentityRepository, first: ProfileEdit, second: ProfileEdit) -> None:
    """Consumers keep the name and avatar of the `user.profile_changed` with the latest
    `changed_at`. An edit committing after another, read before it, told the name and avatar it
    read: its event (or the other's, stamped later) left them with ones identity no longer
    had; an edit setting the name it read told nothing, and put back the one it read."""
    service = IdentityService(store)
    await service.create_tenant(NewTenant(id="acme", name="Acme"))
    ada = await service.register_user("acme", NewUser(email="ada@acme.dev", display_name="Ada"))
    racing = FirstWriteLast(store)
    late = asyncio.create_task(IdentityService(racing).update_profile("acme", ada.id, first))
    await racing.waiting.wait()
    await IdentityService(racing).update_profile("acme", ada.id, second)
    await late

    stored = await service.user("acme", ada.id)
    assert stored == ada.with_profile(second).with_profile(first)
    told = profiles_told([json.loads(p.message.value) for p in await store.outbox.pending(100)])
    last = max(told, key=lambda d: datetime.fromisoformat(d["changed_at"]))
    assert told[-1] == last  # the outbox's order too
    assert (last["display_name"], last["avatar_url"]) == (stored.display_name, stored.avatar_url)


async def test_a_deleted_user_is_gone_and_its_email_free(store: IdentityRepository) -> None:
    ada = user("acme", "ada@acme.dev")
    await store.add_user(ada, [], "$argon2id$x")
    gone = type_of(UserDeleted).envelope(
        UserDeleted(user_id=ada.id, deleted_by="admin", deleted_at=now()),
        tenant="acme", subject=ada.id)
    with pytest.raises(Missing):
        await store.delete_user("beta", ada.id, [gone])
    await store.delete_user("acme", ada.id, [gone])
    assert await store.get_user("acme", ada.id) is None
    assert await store.get_login("acme", "ada@acme.dev") is None
    assert await store.list_users("acme") == []
    assert await pending_types(store) == ["bloop.identity.user.deleted.v1"]
    with pytest.raises(Missing):
        await store.delete_user("acme", ada.id, [gone])
    again = user("acme", "ada@acme.dev")
    await store.add_user(again, [])
    assert await store.get_user_by_email("acme", "ada@acme.dev") == again


async def test_an_account_takes_the_invitations_to_its_email_and_its_deletion_too(
        store: IdentityRepository) -> None:
    """Invitations to a person were neither exported nor erased: after their account was made
    (by an admin) and deleted, their email and roles stayed, listed as pending."""
    at = now()

    def invitation(token: str, email: str, tenant: str = "acme") -> Invitation:
        return Invitation(token_hash=token, tenant=tenant, email=email, roles=["educator"],
                          invited_by="admin", created_at=at, expires_at=at + timedelta(days=7))

    first, other, elsewhere = (invitation("h1", "pat@example.org"),
                               invitation("h2", "max@acme.dev"),
                               invitation("h3", "pat@example.org", "beta"))
    for i in (first, other, elsewhere):
        await store.add_invitation(i)
    assert await store.invitations_to("acme", "pat@example.org") == [first]
    pat = user("acme", "pat@example.org")
    await store.add_user(pat, [registered(pat)])
    assert await store.invitations_to("acme", "pat@example.org") == []
    assert (await store.pending_invitations("acme", at)).items == [other]
    assert await store.invitations_to("beta", "pat@example.org") == [elsewhere]

    late = invitation("h4", "pat@example.org")  # made as the account was
    await store.add_invitation(late)
    assert await store.invitations_to("acme", "pat@example.org") == [late]
    await store.delete_user("acme", pat.id, [])
    assert await store.get_invitation("acme", "h4") is None
    assert (await store.pending_invitations("acme", at)).items == [other]
    assert await store.invitations_to("beta", "pat@example.org") == [elsewhere]


async def test_expired_invitations_of_every_tenant_are_pruned(store: IdentityRepository) -> None:
    """Expired invitations went only when the same tenant invited someone again: a tenant that
    stopped inviting kept its invitees' emails for good."""
    at = now()

    def invitation(token: str, tenant: str, days: int) -> Invitation:
        made = at - timedelta(days=8)
        return Invitation(token_hash=token, tenant=tenant, email=f"{token}@acme.dev",
                          roles=["learner"], invited_by="admin", created_at=made,
                          expires_at=made + timedelta(days=days))

    old, older, live, used = (invitation("h1", "acme", 7), invitation("h2", "beta", 1),
                              invitation("h3", "acme", 30), invitation("h4", "acme", 7))
    for i in (old, older, live, used):
        await store.add_invitation(i)
    assert await store.delete_invitation("acme", "h4", used=True)
    assert await store.invitation_used("acme", "h4", used.created_at)
    assert await store.prune_expired_invitations(at) == 2
    assert await store.prune_expired_invitations(at) == 0
    assert [await store.get_invitation(i.tenant, i.token_hash) for i in (old, older, live)] == [
        None, None, live]
    assert not await store.invitation_used("acme", "h4", used.created_at)


async def test_invitations_are_found_by_tenant_and_hash(store: IdentityRepository) -> None:
    at = now()
    inv = Invitation(token_hash="h1", tenant="acme", email="tess@acme.dev", roles=["educator"],
                     invited_by="admin", created_at=at, expires_at=at + timedelta(days=7))
    await store.add_invitation(inv)
    assert await store.get_invitation("acme", "h1") == inv
    assert await store.get_invitation("beta", "h1") is None
    assert not await store.delete_invitation("beta", "h1")
    assert await store.get_invitation("acme", "h1") == inv
    other = inv.model_copy(update={"token_hash": "h2", "email": "max@acme.dev"})
    await store.add_invitation(other)
    await store.add_invitation(inv.model_copy(update={"tenant": "beta", "token_hash": "h3"}))
    assert (await store.pending_invitations("acme", at)).items == [inv, other]
    assert await store.delete_invitation("acme", "h1")
    assert not await store.delete_invitation("acme", "h1")  # of two deletes, one
    assert await store.get_invitation("acme", "h1") is None
    assert (await store.pending_invitations("acme", at)).items == [other]
    assert (await store.pending_invitations("gamma", at)).items == []


async def test_an_accepted_invitation_is_known_as_used_until_it_would_have_expired(
        store: IdentityRepository) -> None:
    at = now()
    inv = Invitation(token_hash="h1", tenant="acme", email="a@acme.dev", roles=["learner"],
                     invited_by="u", created_at=at, expires_at=at + timedelta(days=7))
    withdrawn = inv.model_copy(update={"token_hash": "h2", "email": "b@acme.dev"})
    for i in (inv, withdrawn):
        await store.add_invitation(i)
    assert not await store.invitation_used("acme", "h1", at)
    assert await store.delete_invitation("acme", "h1", used=True)
    assert not await store.delete_invitation("acme", "h1", used=True)
    assert await store.delete_invitation("acme", "h2")
    assert await store.invitation_used("acme", "h1", at)
    assert not await store.invitation_used("beta", "h1", at)
    assert not await store.invitation_used("acme", "h2", at)
    assert not await store.invitation_used("acme", "h1", inv.expires_at)
    await store.add_invitation(inv)  # put back: its account could not be made
    assert not await store.invitation_used("acme", "h1", at)
    assert await store.delete_invitation("acme", "h1", used=True)
    await store.prune_invitations("acme", "a@acme.dev", at)
    assert await store.invitation_used("acme", "h1", at)
    await store.prune_invitations("acme", "a@acme.dev", inv.expires_at)
    assert not await store.invitation_used("acme", "h1", at)


async def test_pending_invitations_come_newest_first_a_page_at_a_time(
        store: IdentityRepository) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    at = now()

    def invitation(n: int, email: str, created: datetime, days: int = 7) -> Invitation:
        return Invitation(token_hash=f"{n:02x}" * 32, tenant=tenant, email=email,
                          roles=["learner"], invited_by="admin", created_at=created,
                          expires_at=created + timedelta(days=days))

    made = [invitation(n, f"p{n}@acme.dev", at - timedelta(minutes=n // 2)) for n in range(9)]
    expired = invitation(30, "late@acme.dev", at - timedelta(days=8))
    for i in [*made, expired]:
        await store.add_invitation(i)
    newest_first = sorted(made, key=lambda i: (-i.created_at.timestamp(), i.token_hash))
    for size in (1, 2, 4):
        assert await paged(lambda after, n: store.pending_invitations(
            tenant, at, after=after, limit=n), size) == newest_first
    with pytest.raises(BadCursor):
        await store.pending_invitations(tenant, at, after="nonsense")

    found = await store.find_invitation(tenant, made[3].id)
    assert found == made[3]
    assert await store.find_invitation(tenant, expired.id) == expired
    assert await store.find_invitation("other", made[3].id) is None
    assert await store.find_invitation(tenant, "ff" * 10) is None

    again = invitation(40, "p3@acme.dev", at)
    await store.add_invitation(again)
    await store.prune_invitations(tenant, "p3@acme.dev", at)
    assert await store.get_invitation(tenant, made[3].token_hash) is None  # replaced
    assert await store.get_invitation(tenant, expired.token_hash) is None  # expired
    assert await store.get_invitation(tenant, again.token_hash) == again
    assert len((await store.pending_invitations(tenant, at, limit=50)).items) == 9


async def test_invitations_to_one_email_made_at_once_end_as_the_newest(
        store: IdentityRepository) -> None:
    """Each invitation is pruned after it is added; sent at once, the adds and prunes of
    several interleave, and each prune deleted every invitation but its own: none was left."""
    tenant = f"t{uuid.uuid4().hex[:8]}"
    at = now()

    def invitation(n: int, seconds: int) -> Invitation:
        return Invitation(token_hash=f"{n:02x}" * 32, tenant=tenant, email="same@acme.dev",
                          roles=["learner"], invited_by="admin",
                          created_at=at + timedelta(seconds=seconds),
                          expires_at=at + timedelta(days=7))

    older, newer, late_but_older = invitation(1, 1), invitation(2, 2), invitation(3, 0)
    await store.add_invitation(older)
    await store.add_invitation(newer)
    await store.prune_invitations(tenant, older.email, at)  # older's own prune
    await store.prune_invitations(tenant, newer.email, at)
    await store.add_invitation(late_but_older)
    await store.prune_invitations(tenant, late_but_older.email, at)
    assert (await store.pending_invitations(tenant, at)).items == [newer]


async def test_invitations_within_one_second_order_and_expire_by_time(
        store: IdentityRepository) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    second = now().replace(microsecond=0)

    def invitation(n: int, created_micro: int, expires: datetime) -> Invitation:
        return Invitation(token_hash=f"{n:02x}" * 32, tenant=tenant, email=f"p{n}@acme.dev",
                          roles=["learner"], invited_by="admin",
                          created_at=second + timedelta(microseconds=created_micro),
                          expires_at=expires)

    later = second + timedelta(days=7)
    whole, half, early = (invitation(0, 0, later), invitation(1, 500_000, later),
                          invitation(2, 1_000, later))
    lapsed = invitation(3, 0, second + timedelta(days=2))  # expires on a whole second
    for i in (whole, half, early, lapsed):
        await store.add_invitation(i)
    at = second + timedelta(days=2, milliseconds=250)
    assert (await store.pending_invitations(tenant, at)).items == [half, early, whole]
    await store.prune_invitations(tenant, "nobody@acme.dev", at)
    assert await store.get_invitation(tenant, lapsed.token_hash) is None
    assert await store.get_invitation(tenant, whole.token_hash) == whole


def refresh(token_hash: str, family: str, tid: str = "acme", user: str = "u1") -> RefreshToken:
    at = now()
    return RefreshToken(token_hash=token_hash, tenant=tid, user_id=user, family=family,
                        scopes=["profile"], created_at=at, expires_at=at + timedelta(days=1))


async def test_a_person_s_sign_ins_and_invitations_are_read_for_their_export(
        store: IdentityRepository) -> None:
    first, later = refresh("t1", "f1"), refresh("t2", "f2")
    later = later.model_copy(update={"created_at": first.created_at + timedelta(seconds=1)})
    for token in (later, first, refresh("t3", "f3", user="u2"), refresh("t4", "f4", tid="beta")):
        await store.add_refresh_token(token)
    assert await store.refresh_tokens_of("acme", "u1") == [first, later]
    at = now()
    sent = [Invitation(token_hash=f"h{n}", tenant="acme", email=f"p{n}@acme.dev",
                       roles=["learner"], invited_by="u1", created_at=at + timedelta(seconds=n),
                       expires_at=at + timedelta(days=7)) for n in range(2)]
    for inv in (*sent, sent[0].model_copy(update={"token_hash": "h9", "invited_by": "u2",
                                                  "email": "q@acme.dev"})):
        await store.add_invitation(inv)
    assert await store.invitations_by("acme", "u1") == sent[::-1]
    assert await store.invitations_by("beta", "u1") == []


async def test_expired_refresh_tokens_are_forgotten(store: IdentityRepository) -> None:
    """Each grant stores a token: without this the table only grew."""
    await store.add_refresh_token(refresh("old-acme", "f1"))
    await store.add_refresh_token(refresh("old-beta", "f2", tid="beta"))
    await store.add_refresh_token(refresh("live", "f3"))
    live = await store.get_refresh_token("acme", "live")
    assert live is not None
    assert await store.prune_refresh_tokens(live.expires_at - timedelta(hours=1)) == 0
    for token in ("old-acme", "old-beta"):  # made a day earlier: expired a day earlier
        tid = "beta" if token.endswith("beta") else "acme"
        found = await store.get_refresh_token(tid, token)
        assert found is not None
        await store.add_refresh_token(found.model_copy(update={
            "token_hash": f"{token}-2", "expires_at": found.expires_at - timedelta(days=2)}))
    assert await store.prune_refresh_tokens(now()) == 2
    assert await store.get_refresh_token("acme", "old-acme-2") is None
    assert await store.get_refresh_token("beta", "old-beta-2") is None
    assert await store.get_refresh_token("acme", "live") is not None


async def test_a_refresh_token_is_spent_once_and_families_revoke_together(
        store: IdentityRepository) -> None:
    await store.add_refresh_token(refresh("t1", "f1"))
    await store.add_refresh_token(refresh("t2", "f1"))
    await store.add_refresh_token(refresh("t3", "f2"))
    assert await store.use_refresh_token("beta", "t1", now()) is None
    looked = await store.get_refresh_token("acme", "t1")
    assert looked is not None
    assert (looked.family, looked.used, looked.revoked) == ("f1", False, False)
    assert await store.get_refresh_token("beta", "t1") is None
    first = await store.use_refresh_token("acme", "t1", now())
    assert first is not None
    assert (first.used, first.revoked) == (False, False)
    assert first.used_at is None
    second = await store.use_refresh_token("acme", "t1", now() + timedelta(seconds=5))
    assert second is not None
    assert second.used
    assert second.used_at is not None  # the first use's time, kept by later ones
    third = await store.use_refresh_token("acme", "t1", now() + timedelta(seconds=9))
    assert third is not None
    assert third.used_at == second.used_at
    spent = await store.get_refresh_token("acme", "t1")
    assert spent is not None
    assert spent.used
    assert await store.get_refresh_token("acme", "nope") is None
    assert await store.revoke_refresh_family("beta", "f1") == 0
    assert await store.revoke_refresh_family("acme", "f1") == 2
    t2 = await store.use_refresh_token("acme", "t2", now())
    assert t2 is not None
    assert t2.revoked
    t3 = await store.use_refresh_token("acme", "t3", now())
    assert t3 is not None
    assert not t3.revoked
    assert await store.use_refresh_token("acme", "nope", now()) is None


async def unrevoke(store: IdentityRepository, tenant: str, token_hash: str) -> None:
    if isinstance(store, EmbeddedIdentityStore):
        await store.db.transaction(lambda c: c.execute(
            "UPDATE refresh_tokens SET doc = json_set(doc, '$.revoked', json('false'))"
            " WHERE tenant = ? AND token_hash = ?", (tenant, token_hash)))
    else:
        assert isinstance(store, MongoIdentityStore)
        await store.refresh.update_one({"tenant": tenant, "token_hash": token_hash},
                                       {"$set": {"revoked": False}})


async def test_a_session_ended_stays_ended_for_a_refresh_that_raced_its_end(
        store: IdentityRepository) -> None:
    """A sign-out and a refresh at once: the refresh stored its successor after the
    revocation had read the session's tokens, or (FerretDB: an update is a read and a write)
    wrote its token's `used` over the revocation. Its spend then found nothing revoked, and
    the session lived on after the sign-out had answered."""
    tenant = f"t{uuid.uuid4().hex[:8]}"
    for name in ("a", "b"):
        await store.add_refresh_token(refresh(f"{name}1", f"f{name}", tenant))
    assert await store.revoke_refresh_family(tenant, "fa") == 1
    await store.add_refresh_token(refresh("a2", "fa", tenant))  # the successor, stored late
    assert await store.revoke_user_sessions(tenant, "u1", keep="fa") == ["fb"]
    await store.add_refresh_token(refresh("b2", "fb", tenant))
    for old, successor in (("a1", "a2"), ("b1", "b2")):
        await unrevoke(store, tenant, old)  # the lost update
        spent = await store.use_refresh_token(tenant, old, now())
        assert spent is not None
        assert spent.revoked, old
        fresh = await store.use_refresh_token(tenant, successor, now())
        assert fresh is not None
        assert fresh.revoked, successor
    await store.add_refresh_token(refresh("c1", "fc", tenant))
    c1 = await store.use_refresh_token(tenant, "c1", now())
    assert c1 is not None
    assert not c1.revoked
    # the end is forgotten only a day after the session's last token expired
    await store.prune_refresh_tokens(now() + timedelta(days=1, hours=12))
    await store.add_refresh_token(refresh("a3", "fa", tenant))
    a3 = await store.use_refresh_token(tenant, "a3", now())
    assert a3 is not None
    assert a3.revoked
    await store.prune_refresh_tokens(now() + timedelta(days=3))
    await store.add_refresh_token(refresh("a4", "fa", tenant))
    a4 = await store.use_refresh_token(tenant, "a4", now())
    assert a4 is not None
    assert not a4.revoked


async def test_signing_keys_round_trip_newest_first(key_store: SigningKeyStore) -> None:
    at = now()
    old = new_key("EdDSA", at - timedelta(hours=30))
    mid = new_key("ES256", at - timedelta(hours=5))
    new = new_key("EdDSA", at)
    for key in (mid, old, new):
        await key_store.add_signing_key(key)
    assert [k.kid for k in await key_store.signing_keys()] == [new.kid, mid.kid, old.kid]
    stored = (await key_store.signing_keys())[0]
    assert (stored.private_pem, stored.public_jwk, stored.algorithm) == (
        new.private_pem, new.public_jwk, "EdDSA")
    assert stored.created_at == new.created_at
    assert await key_store.delete_signing_keys(at - timedelta(hours=24)) == 1
    assert [k.kid for k in await key_store.signing_keys()] == [new.kid, mid.kid]


async def test_a_users_sessions_revoke_together_but_the_one_kept(store: IdentityRepository) -> None:
    for token, family, tid, user in [("a1", "fa", "acme", "u1"), ("a2", "fa", "acme", "u1"),
                                     ("b1", "fb", "acme", "u1"), ("c1", "fc", "acme", "u1"),
                                     ("d1", "fd", "acme", "u2"), ("e1", "fe", "beta", "u1")]:
        await store.add_refresh_token(refresh(token, family, tid, user))
    assert await store.revoke_user_sessions("acme", "u1", keep="fc") == ["fa", "fb"]
    assert await store.revoke_user_sessions("acme", "u1", keep="fc") == []
    revoked = {t: (await store.use_refresh_token(tid, t, now())) for t, tid in
               [("a1", "acme"), ("a2", "acme"), ("b1", "acme"), ("c1", "acme"), ("d1", "acme"),
                ("e1", "beta")]}
    assert {t: r.revoked for t, r in revoked.items() if r is not None} == {
        "a1": True, "a2": True, "b1": True, "c1": False, "d1": False, "e1": False}
    assert await store.revoke_user_sessions("acme", "u1") == ["fc"]



async def test_sessions_made_since_a_time_are_named_though_already_revoked(
        store: IdentityRepository) -> None:
    """A retried sign-out learns again which sessions may still hold live access tokens."""
    old = refresh("o1", "fo")
    old = old.model_copy(update={"created_at": old.created_at - timedelta(hours=2)})
    for token in (old, refresh("n1", "fn"), refresh("k1", "fk")):
        await store.add_refresh_token(token)
    since = now() - timedelta(minutes=15)
    assert await store.revoke_user_sessions("acme", "u1", keep="fk", since=since) == ["fn", "fo"]
    assert await store.revoke_user_sessions("acme", "u1", keep="fk", since=since) == ["fn"]
    assert await store.revoke_user_sessions("acme", "u1", keep="fk") == []


async def api_keys_beside(store: IdentityRepository) -> ApiKeyStore:
    """The API key store on the identity store's own database, as the wiring makes it."""
    keys: ApiKeyStore
    if isinstance(store, EmbeddedIdentityStore):
        keys = EmbeddedApiKeys(store.db)
    else:
        assert isinstance(store, MongoIdentityStore)
        keys = MongoApiKeys(store.users.database.client, database=store.users.database.name)
    await keys.setup()
    return keys


async def oidc_links_beside(store: IdentityRepository) -> OidcProviderStore:
    """The sign-in providers' store on the identity store's own database, as the wiring makes
    it."""
    links: OidcProviderStore
    if isinstance(store, EmbeddedIdentityStore):
        links = EmbeddedOidcProviders(store.db)
    else:
        assert isinstance(store, MongoIdentityStore)
        links = MongoOidcProviders(store.users.database.client,
                                   database=store.users.database.name)
    await links.setup()
    return links


async def test_a_deleted_users_sign_in_links_are_erased(store: IdentityRepository) -> None:
    """A provider's account linked to them could otherwise sign in to whoever gets their
    id, and the link names them."""
    links = await oidc_links_beside(store)
    ada, bo = user("acme", "ada@acme.dev"), user("acme", "bo@acme.dev")
    for person in (ada, bo):
        await store.add_user(person, [])

    def linked(tenant: str, subject: str, user_id: str) -> OidcLink:
        return OidcLink(tenant=tenant, provider="google", subject=subject, user_id=user_id,
                        email="ada@acme.dev", linked_at=now())

    for tenant, subject, user_id in (("acme", "s-ada", ada.id), ("acme", "s-bo", bo.id),
                                     ("beta", "s-ada", ada.id)):
        assert await links.add_link(linked(tenant, subject, user_id))
    await store.delete_user("acme", ada.id, [])
    assert await links.links_of("acme", ada.id) == []
    assert await links.get_link("acme", "google", "s-ada") is None
    assert [x.subject for x in await links.links_of("acme", bo.id)] == ["s-bo"]
    assert [x.subject for x in await links.links_of("beta", ada.id)] == ["s-ada"]


async def test_a_deleted_users_sessions_invitations_and_keys_no_longer_name_them(
        store: IdentityRepository) -> None:
    """The user's row went, and their refresh tokens, the invitations they sent and the API
    keys they made stayed, naming them (the tokens for 30 days)."""
    keys = await api_keys_beside(store)
    ada, bo = user("acme", "ada@acme.dev"), user("acme", "bo@acme.dev")
    for person in (ada, bo):
        await store.add_user(person, [])
    made = ApiKey(id="a00000000001", tenant="acme", name="sync", scopes=["content:read"],
                  roles=[], secret_hash="ab" * 32, created_by=ada.id, created_at=now())
    for k in (made, made.model_copy(update={"id": "a00000000002", "created_by": bo.id}),
              made.model_copy(update={"tenant": "beta"})):
        await keys.add_api_key(k)
    at = now()
    sent = Invitation(token_hash="h1", tenant="acme", email="new@acme.dev", roles=["learner"],
                      invited_by=ada.id, created_at=at, expires_at=at + timedelta(days=7))
    for inv in (sent, sent.model_copy(update={"token_hash": "h2", "invited_by": bo.id}),
                sent.model_copy(update={"tenant": "beta"})):
        await store.add_invitation(inv)
    old = refresh("t0", "f0", user=ada.id)
    old = old.model_copy(update={"created_at": old.created_at - timedelta(hours=2)})
    for token in (old, refresh("t1", "f1", user=ada.id), refresh("t2", "f2", user=bo.id),
                  refresh("t3", "f3", tid="beta", user=ada.id)):
        await store.add_refresh_token(token)
    assert await store.revoke_refresh_family("acme", "f0") == 1

    assert await store.delete_user("acme", ada.id, [],
                                   since=now() - timedelta(minutes=15)) == ["f1"]
    assert await store.refresh_tokens_of("acme", ada.id) == []
    assert await store.get_refresh_token("acme", "t1") is None
    assert await store.invitations_by("acme", ada.id) == []
    assert await keys.list_api_keys("acme", created_by=ada.id) == []
    assert await store.get_invitation("acme", "h1") == sent.model_copy(
        update={"invited_by": ERASED_USER})  # the tenant's: still pending
    assert await keys.get_api_key("acme", made.id) == made.model_copy(
        update={"created_by": ERASED_USER})  # and still live
    # another person's, and another tenant's, as they were
    assert [i.token_hash for i in await store.invitations_by("acme", bo.id)] == ["h2"]
    assert [k.id for k in await keys.list_api_keys("acme", created_by=bo.id)] == ["a00000000002"]
    assert await keys.list_api_keys("beta", created_by=ada.id) == [made.model_copy(
        update={"tenant": "beta"})]
    assert [i.token_hash for i in await store.invitations_by("beta", ada.id)] == ["h1"]
    assert [t.token_hash for t in await store.refresh_tokens_of("acme", bo.id)] == ["t2"]
    assert [t.token_hash for t in await store.refresh_tokens_of("beta", ada.id)] == ["t3"]


async def test_a_deleted_users_sessions_stay_ended_for_a_refresh_that_raced_it(
        store: IdentityRepository) -> None:
    """Their tokens are gone, but not the sessions' ends: a successor a refresh stored while
    the deletion ran is refused, after a sign-out of the same session too (which found no
    token left to date the end by) and until the session's last token would have expired."""
    ada = user("acme", "ada@acme.dev")
    await store.add_user(ada, [])
    await store.add_refresh_token(refresh("t1", "f1", user=ada.id))
    assert await store.delete_user("acme", ada.id, []) == ["f1"]
    assert await store.revoke_refresh_family("acme", "f1") == 0  # the sign-out after it
    await store.prune_refresh_tokens(now() + timedelta(hours=36))
    await store.add_refresh_token(refresh("t2", "f1", user=ada.id))  # stored late
    spent = await store.use_refresh_token("acme", "t2", now())
    assert spent is not None
    assert spent.revoked


async def test_a_secret_is_made_once_and_kept(key_store: SigningKeyStore) -> None:
    first = await key_store.secret("account-digest", b"\x01" * 32)
    assert first == b"\x01" * 32
    assert await key_store.secret("account-digest", b"\x02" * 32) == first
    assert await key_store.secret("other", b"\x03" * 32) == b"\x03" * 32
    kept = await asyncio.gather(*(key_store.secret("at-once", bytes([n]) * 32)
                                  for n in range(4)))
    assert len(set(kept)) == 1


async def test_records_written_under_an_older_rule_still_read(store: IdentityRepository) -> None:
    """A rule may tighten after records were stored under it: they read back as they were (an
    edit through the API checks them again), rather than breaking every list they are in."""
    odd = "ops\x7f@acme.dev"  # suppose a later rule refuses control characters
    settings = TenantSettings.model_construct(allowed_signup_domains=["intranet"])
    t = tenant().model_copy(update={"settings": settings})
    await store.add_tenant(t, [])
    u = user("acme", "ada@acme.dev").model_copy(update={"email": odd})
    await store.add_user(u, [])
    at = now()
    inv = Invitation(token_hash="h1", tenant="acme", email="tess@acme.dev", roles=["educator"],
                     invited_by="admin", created_at=at, expires_at=at + timedelta(days=7)
                     ).model_copy(update={"email": odd})
    await store.add_invitation(inv)
    with pytest.raises(ValidationError):
        TenantSettings(allowed_signup_domains=["intranet"])
    with patch("bloop.platform.identity.model._EMAIL", re.compile(r"^[!-~]+$")):
        with pytest.raises(ValidationError):
            NewUser(email=odd, display_name="Ops")
        assert (await store.get_tenant("acme")) == t
        assert await store.list_tenants() == [t]
        assert await store.get_user("acme", u.id) == u
        assert await store.get_user_by_email("acme", odd) == u
        assert await store.list_users("acme") == [u]
        assert await store.get_invitation("acme", "h1") == inv
        assert (await store.pending_invitations("acme", at)).items == [inv]



async def newer_fields(store: IdentityRepository, table: str, where: dict[str, str],
                       fields: dict[str, int]) -> None:
    """Adds to a stored record `fields` (dotted paths) this version does not know, as a newer
    version would."""
    if isinstance(store, EmbeddedIdentityStore):
        paths = ", ".join(f"'$.{path}', {value}" for path, value in fields.items())
        match = " AND ".join(f"{column} = ?" for column in where)
        await store.db.transaction(lambda c: c.execute(
            f"UPDATE {table} SET doc = json_set(doc, {paths}) WHERE {match}",
            tuple(where.values())))
        return
    assert isinstance(store, MongoIdentityStore)
    result = await store.users.database[table].update_one(where, {"$set": fields})
    assert result.modified_count == 1


async def test_records_a_newer_version_wrote_read_without_the_fields_it_added(
        store: IdentityRepository) -> None:
    """During a rolling update, or after a rollback, this version reads what a newer one
    wrote: the fields it does not know are left aside."""
    t = tenant()
    await store.add_tenant(t, [])
    u = user("acme", "ada@acme.dev")
    await store.add_user(u, [])
    token = refresh("t1", "f1", user=u.id)
    await store.add_refresh_token(token)
    await newer_fields(store, "tenants", {"id": "acme"}, {"from_next": 1, "settings.from_next": 2})
    await newer_fields(store, "users", {"tenant": "acme", "id": u.id}, {"from_next": 1})
    await newer_fields(store, "refresh_tokens", {"tenant": "acme", "token_hash": "t1"},
                       {"from_next": 1})
    assert await store.get_tenant("acme") == t
    assert await store.get_user("acme", u.id) == u
    assert await store.get_user_by_email("acme", "ada@acme.dev") == u
    assert await store.list_users("acme") == [u]
    assert await store.get_refresh_token("acme", "t1") == token
    assert await store.refresh_tokens_of("acme", u.id) == [token]
    used = await store.use_refresh_token("acme", "t1", now())
    assert used == token
