"""The import holds contract, run against the embedded (SQLite) adapter and a real MongoDB-wire
server (FerretDB v1 from infra/, or MongoDB), each real case in a database of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bloop.platform.content.model import now
from bloop.platform.content.uploads.holds import ImportHold, ImportHolds
from bloop.platform.content.uploads.stores.embedded import EmbeddedImportHolds
from bloop.platform.content.uploads.stores.mongo import MongoImportHolds
from bloop.platform.kit.sqlite import SqliteDB
from tests.support import scratch_mongo

T0 = now()


@pytest.fixture(params=["embedded", pytest.param("real", marks=pytest.mark.real)])
async def holds(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ImportHolds]:
    if request.param == "embedded":
        db = SqliteDB(tmp_path / "content.sqlite3")
        embedded = EmbeddedImportHolds(db)
        await embedded.setup()
        yield embedded
        await db.close()
        return
    async with scratch_mongo("holds_test") as (client, name):
        mongo = MongoImportHolds(client, database=name)
        await mongo.setup()
        yield mongo


def hold(import_id: str, expires_in_s: int, tenant: str = "acme") -> ImportHold:
    return ImportHold(tenant=tenant, id=import_id, course="py", lessons=["l1", "l2"],
                      media=["m1"], expires_at=T0 + timedelta(seconds=expires_in_s))


async def test_only_expired_holds_are_taken_each_once(holds: ImportHolds) -> None:
    await holds.add(hold("early", 10))
    await holds.add(hold("late", 100))
    await holds.add(hold("early", 10, tenant="beta"))
    assert await holds.take_expired(T0 + timedelta(seconds=5), T0 + timedelta(seconds=500)) == []
    taken = await holds.take_expired(T0 + timedelta(seconds=10), T0 + timedelta(seconds=500))
    assert sorted((h.tenant, h.id) for h in taken) == [("acme", "early"), ("beta", "early")]
    assert taken[0] == hold("early", 10, tenant=taken[0].tenant)
    assert await holds.take_expired(T0 + timedelta(seconds=50), T0 + timedelta(seconds=500)) == []
    # a sweep stopped midway: its holds are taken again once their new expiry passes
    again = await holds.take_expired(T0 + timedelta(seconds=500), T0 + timedelta(seconds=900))
    assert sorted((h.tenant, h.id) for h in again) == [
        ("acme", "early"), ("acme", "late"), ("beta", "early")]


async def test_a_taken_hold_is_not_released(holds: ImportHolds) -> None:
    await holds.add(hold("kept", 10))
    await holds.add(hold("swept", 10))
    assert await holds.release("acme", "kept")
    assert not await holds.release("acme", "kept")  # gone
    assert not await holds.release("beta", "swept")  # another tenant's
    taken = await holds.take_expired(T0 + timedelta(seconds=10), T0 + timedelta(seconds=500))
    assert [h.id for h in taken] == ["swept"]
    assert not await holds.release("acme", "swept")
    await holds.drop("acme", "swept")
    assert await holds.take_expired(T0 + timedelta(seconds=999), T0 + timedelta(seconds=2000)) == []


async def test_a_hold_dropped_before_it_expires_is_gone(holds: ImportHolds) -> None:
    """A failed import drops its hold at once (else it stayed a day, for a sweep to find)."""
    await holds.add(hold("failed", 100))
    await holds.add(hold("failed", 100, tenant="beta"))
    await holds.drop("acme", "failed")
    assert not await holds.release("acme", "failed")
    taken = await holds.take_expired(T0 + timedelta(seconds=999), T0 + timedelta(seconds=2000))
    assert [(h.tenant, h.id) for h in taken] == [("beta", "failed")]
