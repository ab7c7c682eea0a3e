"""identity's use cases against the embedded store on a temporary path."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bloop.platform.identity.model import NewTenant, NewUser, ProfileEdit, RefreshToken
from bloop.platform.identity.service import IdentityService
from bloop.platform.identity.stores.embedded import EmbeddedIdentityStore
from bloop.platform.identity.stores.mongo import MongoIdentityStore
from bloop.platform.kit import stores
from bloop.platform.kit.auth import TokenVerifier
from bloop.platform.kit.auth.tokens import revoked_session_key
from bloop.platform.kit.cache import MemoryCache
from bloop.platform.kit.errors import Conflict, NotFound
from bloop.platform.kit.events.types import registry
from bloop.platform.kit.settings import AuthSettings, MongoSettings
from bloop.platform.kit.sqlite import SqliteDB
from tests.support import FirstWriteLast, require_server


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[IdentityService]:
    db = SqliteDB(tmp_path / "identity.sqlite3")
    store = EmbeddedIdentityStore(db, registry)
    await store.setup()
    woken: list[int] = []
    svc = IdentityService(store, on_write=lambda: woken.append(1))
    svc.woken = woken  # type: ignore[attr-defined]
    yield svc
    await db.close()


async def events(service: IdentityService) -> list[dict[str, object]]:
    pending = await service.repo.outbox.pending(100)
    assert all(p.message.topic == "user.events" for p in pending)
    return [json.loads(p.message.value) for p in pending]


async def test_creating_a_tenant_stores_it_and_its_event(service: IdentityService) -> None:
    tenant = await service.create_tenant(NewTenant(id="acme", name="Acme School"))
    assert await service.tenant("acme") == tenant
    [event] = await events(service)
    assert event["type"] == "bloop.identity.tenant.created.v1"
    assert event["tenant"] == event["subject"] == "acme"
    assert event["data"] == {"tenant_id": "acme", "name": "Acme School",
                             "created_at": event["data"]["created_at"]}  # type: ignore[index]
    assert service.woken == [1]  # type: ignore[attr-defined]


async def test_a_tenant_id_is_taken_once(service: IdentityService) -> None:
    await service.create_tenant(NewTenant(id="acme", name="Acme"))
    with pytest.raises(Conflict) as err:
        await service.create_tenant(NewTenant(id="acme", name="Other"))
    assert err.value.status == 409
    assert err.value.code == "tenant_exists"
    assert (await service.tenant("acme")).name == "Acme"
    assert len(await events(service)) == 1


async def test_unknown_tenants_are_not_found(service: IdentityService) -> None:
    with pytest.raises(NotFound):
        await service.tenant("nowhere")
    with pytest.raises(NotFound):
        await service.register_user("nowhere", NewUser(email="a@b.dev", display_name="A"))
    with pytest.raises(NotFound):
        await service.users("nowhere")
    assert await events(service) == []


async def test_registering_a_user_emits_user_registered(service: IdentityService) -> None:
    await service.create_tenant(NewTenant(id="acme", name="Acme"))
    user = await service.register_user("acme", NewUser(
        email="Ada@Acme.dev", display_name="Ada", roles=["educator"]))
    assert user.email == "ada@acme.dev"
    assert await service.user("acme", user.id) == user
    event = (await events(service))[-1]
    assert event["type"] == "bloop.identity.user.registered.v1"
    assert event["subject"] == user.id
    assert event["tenant"] == "acme"
    data = event["data"]
    assert isinstance(data, dict)
    assert data["roles"] == ["educator"]
    assert data["display_name"] == "Ada"
    assert "email" not in data


async def test_an_email_is_taken_once_per_tenant_whatever_its_case(
        service: IdentityService) -> None:
    for t in ("acme", "beta"):
        await service.create_tenant(NewTenant(id=t, name=t))
    await service.register_user("acme", NewUser(email="ada@acme.dev", display_name="Ada"))
    before = len(await events(service))
    with pytest.raises(Conflict) as err:
        await service.register_user("acme", NewUser(email="ADA@acme.DEV", display_name="Ada 2"))
    assert err.value.code == "email_taken"
    assert len(await events(service)) == before  # the refused write stored no event
    # the same email in another tenant is another person
    await service.register_user("beta", NewUser(email="ada@acme.dev", display_name="Ada"))


async def test_users_are_only_reachable_through_their_tenant(service: IdentityService) -> None:
    for t in ("acme", "beta"):
        await service.create_tenant(NewTenant(id=t, name=t))
    ada = await service.register_user("acme", NewUser(email="ada@acme.dev", display_name="Ada"))
    with pytest.raises(NotFound):
        await service.user("beta", ada.id)
    assert (await service.users("beta")).items == []


async def test_users_are_listed_by_email_in_pages(service: IdentityService) -> None:
    await service.create_tenant(NewTenant(id="acme", name="Acme"))
    for name in ("carol", "alice", "bob"):
        await service.register_user("acme", NewUser(email=f"{name}@acme.dev", display_name=name))
    first = await service.users("acme", limit=2)
    assert [u.display_name for u in first.items] == ["alice", "bob"]
    assert first.next == "bob@acme.dev"
    rest = await service.users("acme", after=first.next, limit=2)
    assert ([u.display_name for u in rest.items], rest.next) == (["carol"], None)
    # a page that holds the last user says so, however full it is
    whole = await service.users("acme", limit=3)
    assert (len(whole.items), whole.next) == (3, None)


async def test_the_demo_seed_gives_older_demo_people_their_passwords(
        service: IdentityService) -> None:
    from bloop.platform.demo import data
    from bloop.platform.identity.wiring import seed_demo

    await service.create_tenant(NewTenant(id=data.TENANT_ID, name=data.TENANT_NAME))
    ada = data.PEOPLE[0]
    await service.register_user(data.TENANT_ID, NewUser(email=ada.email, display_name="Ada"))
    await seed_demo(service)
    found = await service.repo.get_login(data.TENANT_ID, ada.email)
    assert found is not None
    assert await service.hasher.verify(found[1], ada.password)
    assert len((await service.users(data.TENANT_ID)).items) == 1


async def test_a_retried_sign_out_refuses_again_every_token_a_host_may_still_take(
        service: IdentityService) -> None:
    """Ending a person's sessions again (a retry after a failure part-way) refuses the access
    tokens of sessions already ended whose tokens a host may still take: expired a moment ago,
    but within the clock leeway of a host behind this one."""
    settings = AuthSettings()
    cache = MemoryCache()
    service.settings, service.verifier = settings, TokenVerifier(settings, cache)
    now = time.time()
    for family, age in (("recent", settings.access_ttl_s + settings.clock_leeway_s),
                        ("old", settings.access_ttl_s + 3 * settings.clock_leeway_s)):
        at = datetime.fromtimestamp(now - age, UTC)
        await service.repo.add_refresh_token(RefreshToken(
            token_hash=family, tenant="acme", user_id="u1", family=family, scopes=[],
            created_at=at, expires_at=at + timedelta(days=1), revoked=True))
    await service.end_sessions("acme", "u1")
    assert await cache.get(revoked_session_key("recent")) is not None
    assert await cache.get(revoked_session_key("old")) is None


async def test_concurrent_time_zone_edits_leave_learning_the_zone_identity_keeps(
        service: IdentityService) -> None:
    """Learning keeps the zone of the `time_zone_changed` with the latest `changed_at`. Three
    edits at once, the first stamped committing last, left identity with its zone and learning
    with another's; a zone set again was not announced, so nothing repaired it."""
    await service.create_tenant(NewTenant(id="acme", name="Acme"))
    ada = await service.register_user("acme", NewUser(email="ada@acme.dev", display_name="Ada"))
    racing = IdentityService(FirstWriteLast(service.repo))
    zones = ["Europe/Paris", "Asia/Tokyo", "America/New_York"]
    await asyncio.gather(*(racing.update_profile("acme", ada.id, ProfileEdit(time_zone=z))
                           for z in zones))

    def learnings_zone(sent: list[dict[str, Any]]) -> str:
        changes = [e["data"] for e in sent
                   if e["type"] == "bloop.identity.user.time_zone_changed.v1"]
        return str(max(changes, key=lambda d: datetime.fromisoformat(d["changed_at"]))[
            "time_zone"])

    stored = (await service.user("acme", ada.id)).time_zone
    assert stored == learnings_zone(await events(service))
    again = await service.update_profile("acme", ada.id, ProfileEdit(time_zone=stored))
    assert again.time_zone == stored
    sent = await events(service)
    assert sum(e["type"] == "bloop.identity.user.time_zone_changed.v1" for e in sent) == 4
    assert learnings_zone(sent) == stored


@pytest.fixture(params=["embedded", pytest.param("real", marks=pytest.mark.real)])
async def on_either_store(request: pytest.FixtureRequest,
                          tmp_path: Path) -> AsyncIterator[IdentityService]:
    if request.param == "embedded":
        db = SqliteDB(tmp_path / "identity.sqlite3")
        embedded = EmbeddedIdentityStore(db, registry)
        await embedded.setup()
        yield IdentityService(embedded)
        await db.close()
        return
    server = require_server("mongo")
    client = stores.mongo_client(MongoSettings(url=server.url, timeout_ms=2000))
    name = f"identity_test_{uuid.uuid4().hex[:12]}"
    mongo = MongoIdentityStore(client, registry, database=name)
    try:
        await mongo.setup()
        yield IdentityService(mongo)
    finally:
        await client.drop_database(name)
        await client.close()


async def test_a_zone_an_earlier_version_changed_is_announced_at_the_next_start_as_changed_then(
        on_either_store: IdentityService) -> None:
    """A version before zones were announced (a replica during a rolling upgrade, or after a
    rollback) writes the zone alone: no event, no time. Learning kept the zone announced
    before it, for good. The next start announces it as changed then, after the one learning
    keeps; a zone never announced as changed when its user was made; each once."""
    service = on_either_store
    await service.create_tenant(NewTenant(id="acme", name="Acme"))
    ada, bo = [await service.register_user("acme", NewUser(email=f"{n}@acme.dev",
                                                            display_name=n)) for n in ("ada", "bo")]
    await service.update_profile("acme", ada.id, ProfileEdit(time_zone="Europe/Paris"))
    for who, zone in ((ada, "America/Lima"), (bo, "Asia/Tokyo")):  # as the earlier version did
        await service.repo.replace_user(who.with_profile(ProfileEdit(time_zone=zone)), [],
                                        fields=["time_zone"])
    before = datetime.now(UTC) - timedelta(milliseconds=1)  # (times are kept to the ms)
    assert await service.announce_time_zones() == 2
    assert await service.announce_time_zones() == 0
    zones = [e["data"] for e in await events(service)
             if e["type"] == "bloop.identity.user.time_zone_changed.v1"]
    told = {(d["user_id"], d["time_zone"]): datetime.fromisoformat(d["changed_at"])  # type: ignore[index]
            for d in zones}
    assert set(told) == {(ada.id, "Europe/Paris"), (ada.id, "America/Lima"), (bo.id, "Asia/Tokyo")}
    assert told[ada.id, "America/Lima"] >= before
    assert told[ada.id, "America/Lima"] > told[ada.id, "Europe/Paris"]
    assert told[bo.id, "Asia/Tokyo"] == bo.created_at
    # an edit after it is stored, and announced as later still
    await service.update_profile("acme", ada.id, ProfileEdit(time_zone="Europe/Oslo"))
    assert (await service.user("acme", ada.id)).time_zone == "Europe/Oslo"


async def test_a_zone_flagged_announced_is_announced_again_as_set_then(
        on_either_store: IdentityService) -> None:
    """The version that flagged zones announced ran beside learning members of an earlier one,
    which passed its announcements by: its flagged zones are announced again, as set just after
    the time they were (after the one learning may keep, before any later change)."""
    from tests.contract.test_identity_store import flagged_announced_before

    service = on_either_store
    await service.create_tenant(NewTenant(id="acme", name="Acme"))
    ada = await service.register_user("acme", NewUser(email="ada@acme.dev", display_name="Ada"))
    await service.update_profile("acme", ada.id, ProfileEdit(time_zone="Europe/Paris"))
    await flagged_announced_before(service.repo, ada)
    await service.repo.setup()
    assert await service.announce_time_zones() == 1
    assert await service.announce_time_zones() == 0
    told = [datetime.fromisoformat(e["data"]["changed_at"])  # type: ignore[index]
            for e in await events(service)
            if e["type"] == "bloop.identity.user.time_zone_changed.v1"]
    assert len(told) == 2
    assert told[1] - told[0] == timedelta(microseconds=1)
