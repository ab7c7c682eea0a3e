"""The media store contract, run against the embedded store (SQLite + files on disk) and GridFS
on a real MongoDB-wire server (FerretDB v1 from infra/, or MongoDB). Each real case uses a
database of its own, dropped afterwards. The last test runs the media service's quota over each
store, with uploads side by side."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from bson import Binary, ObjectId

from bloop.platform.content.media.model import MediaInfo, new_media_id
from bloop.platform.content.media.ports import MediaExists, MediaMissing, MediaStore, Swept
from bloop.platform.content.media.service import MediaService, QuotaExceeded, Stored
from bloop.platform.content.media.settings import MediaSettings
from bloop.platform.content.media.stores.files import FileMediaStore
from bloop.platform.content.media.stores.gridfs import CHUNK_BYTES, GridFsMediaStore
from bloop.platform.content.model import now
from bloop.platform.kit import stores
from bloop.platform.kit.errors import NotFound
from bloop.platform.kit.pagination import BadCursor, cursor
from bloop.platform.kit.settings import MongoSettings
from bloop.platform.kit.sqlite import SqliteDB
from tests.support import paged, require_server
from tests.unit.content import media_samples


@pytest.fixture(params=["embedded", pytest.param("real", marks=pytest.mark.real)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MediaStore]:
    if request.param == "embedded":
        db = SqliteDB(tmp_path / "content.sqlite3")
        files = FileMediaStore(db, tmp_path / "media")
        await files.setup()
        yield files
        await db.close()
        return
    server = require_server("mongo")
    client = stores.mongo_client(MongoSettings(url=server.url, timeout_ms=2000))
    name = f"media_test_{uuid.uuid4().hex[:12]}"
    gridfs = GridFsMediaStore(client, database=name)
    try:
        await gridfs.setup()
        yield gridfs
    finally:
        await client.drop_database(name)
        await client.close()


def sample(tmp_path: Path, data: bytes, tenant: str = "acme", minutes: int = 0,
           content_type: str = "video/mp4") -> tuple[MediaInfo, Path]:
    path = tmp_path / f"src-{uuid.uuid4().hex}"
    path.write_bytes(data)
    info = MediaInfo(id=new_media_id(), tenant=tenant, filename="clip.mp4",
                     content_type=content_type, kind="video", size=len(data),
                     sha256=hashlib.sha256(data).hexdigest(), created_by="u1",
                     created_at=now() + timedelta(minutes=minutes))
    return info, path


async def read_all(store: MediaStore, info: MediaInfo, start: int = 0,
                   end: int | None = None) -> bytes:
    chunks = [c async for c in store.read(info.tenant, info.id, start,
                                          info.size if end is None else end)]
    return b"".join(chunks)


async def test_put_get_and_read_ranges(store: MediaStore, tmp_path: Path) -> None:
    data = os.urandom(1_300_000)  # spans several GridFS chunks
    info, path = sample(tmp_path, data)
    await store.put(info, path)
    assert await store.get("acme", info.id) == info
    assert await read_all(store, info) == data
    assert await read_all(store, info, 0, 1) == data[:1]
    assert await read_all(store, info, 261_000, 1_100_000) == data[261_000:1_100_000]
    assert await read_all(store, info, len(data) - 7) == data[-7:]
    assert await store.find_by_checksum("acme", info.sha256) == info
    assert await store.find_by_checksum("acme", "0" * 64) is None


async def test_every_call_keeps_to_its_tenant(store: MediaStore, tmp_path: Path) -> None:
    info, path = sample(tmp_path, b"acme bytes" * 100)
    await store.put(info, path)
    assert await store.get("beta", info.id) is None
    assert await store.find_by_checksum("beta", info.sha256) is None
    assert (await store.list_media("beta")).items == []
    assert await store.usage("beta") == 0
    with pytest.raises(MediaMissing):
        await read_all(store, info.model_copy(update={"tenant": "beta"}))
    assert not await store.delete("beta", info.id)
    assert await store.get("acme", info.id) == info


async def test_list_newest_first_and_usage(store: MediaStore, tmp_path: Path) -> None:
    assert await store.usage("acme") == 0
    infos = []
    for n in range(3):
        info, path = sample(tmp_path, bytes([n]) * (1000 + n), minutes=n)
        await store.put(info, path)
        infos.append(info)
    listed = (await store.list_media("acme")).items
    assert [m.id for m in listed] == [m.id for m in reversed(infos)]
    assert [m.id for m in (await store.list_media("acme", limit=2)).items] == [infos[2].id, infos[1].id]
    assert await store.usage("acme") == 1000 + 1001 + 1002


async def test_the_largest_media_of_a_type_and_up_to_a_size(store: MediaStore,
                                                              tmp_path: Path) -> None:
    assert await store.largest("acme") == 0
    for size, content_type, tenant in ((1000, "video/mp4", "acme"), (3000, "video/mp4", "acme"),
                                       (2000, "audio/wav", "acme"), (9000, "video/mp4", "beta")):
        info, path = sample(tmp_path, os.urandom(size), tenant=tenant, content_type=content_type)
        await store.put(info, path)
    assert await store.largest("acme") == 3000
    assert await store.largest("acme", content_type="audio/wav") == 2000
    assert await store.largest("acme", content_type="image/png") == 0
    assert await store.largest("acme", at_most=2999) == 2000
    assert await store.largest("acme", content_type="video/mp4", at_most=2999) == 1000
    assert await store.largest("acme", at_most=999) == 0
    assert await store.largest("beta", content_type="audio/wav") == 0


async def test_a_person_s_uploads_are_listed_and_forgotten(store: MediaStore,
                                                           tmp_path: Path) -> None:
    infos = []
    for n, (tenant, by) in enumerate((("acme", "u1"), ("acme", "u2"), ("acme", "u1"),
                                      ("beta", "u1"))):
        info, path = sample(tmp_path, bytes([n]) * 1000, tenant=tenant, minutes=n)
        info = info.model_copy(update={"created_by": by})
        await store.put(info, path)
        infos.append(info)
    assert await store.uploaded_by("acme", "u1") == [infos[0], infos[2]]
    assert await store.forget_uploader("acme", "u1") == 2
    assert await store.forget_uploader("acme", "u1") == 0
    assert await store.uploaded_by("acme", "u1") == []
    assert (await store.get("acme", infos[0].id)) == infos[0].model_copy(
        update={"created_by": None})
    assert await store.uploaded_by("acme", "u2") == [infos[1]]
    assert await store.uploaded_by("beta", "u1") == [infos[3]]


async def test_list_a_page_at_a_time(store: MediaStore, tmp_path: Path) -> None:
    """Pages go on from their cursors, none twice or left out, also among media stored within
    one millisecond; another tenant's are not listed."""
    for n in range(7):
        info, path = sample(tmp_path, bytes([n]) * 100, minutes=n // 3)
        await store.put(info, path)
    other, path = sample(tmp_path, b"beta" * 10, tenant="beta")
    await store.put(other, path)
    whole = [m.id for m in (await store.list_media("acme")).items]
    assert len(whole) == 7
    for size in (1, 2, 7):
        listed = await paged(lambda after, n: store.list_media("acme", after=after, limit=n), size)
        assert [m.id for m in listed] == whole, size
    for wrong in (cursor("not", "this", "list"), cursor(10**15, "x")):
        with pytest.raises(BadCursor):
            await store.list_media("acme", after=wrong)


async def test_a_taken_id_is_refused_and_the_stored_file_kept(store: MediaStore,
                                                               tmp_path: Path) -> None:
    info, path = sample(tmp_path, b"first" * 1000)
    await store.put(info, path)
    _, other = sample(tmp_path, b"second" * 1000)
    with pytest.raises(MediaExists):
        await store.put(info, other)
    assert await read_all(store, info) == b"first" * 1000


async def test_delete_removes_record_and_bytes(store: MediaStore, tmp_path: Path) -> None:
    info, path = sample(tmp_path, b"x" * 5000)
    await store.put(info, path)
    assert await store.delete("acme", info.id)
    assert await store.get("acme", info.id) is None
    assert await store.usage("acme") == 0
    with pytest.raises(MediaMissing):
        await read_all(store, info)
    assert not await store.delete("acme", info.id)
    if isinstance(store, FileMediaStore):
        assert not any(p.is_file() for p in store.root.rglob("*"))
    if isinstance(store, GridFsMediaStore):
        assert await store.chunks.count_documents({}) == 0


async def test_a_claimed_file_stays_when_its_first_upload_takes_it_back(
        store: MediaStore, tmp_path: Path) -> None:
    """An upload deduplicated onto a file claims it; the undo of the upload that stored it
    (deleting unless claimed) then leaves it, and a plain delete still removes it."""
    info, path = sample(tmp_path, b"z" * 4000)
    await store.put(info, path)
    other, other_path = sample(tmp_path, b"w" * 4000)
    await store.put(other, other_path)
    assert await store.delete("acme", other.id, unless_claimed=True)  # unclaimed: it goes
    assert await store.claim("acme", info.id)
    assert not await store.claim("beta", info.id)
    assert not await store.delete("acme", info.id, unless_claimed=True)
    assert await store.get("acme", info.id) == info
    assert await read_all(store, info) == b"z" * 4000
    assert await store.delete("acme", info.id)
    assert not await store.claim("acme", info.id)  # gone: the deduplicating upload stores anew


async def test_a_failed_put_leaves_nothing(store: MediaStore, tmp_path: Path) -> None:
    info, path = sample(tmp_path, b"y" * 3000)
    path.unlink()
    with pytest.raises(OSError):
        await store.put(info, path)
    assert await store.get("acme", info.id) is None
    assert await store.usage("acme") == 0


async def test_uploads_side_by_side_never_leave_the_tenant_over_quota(store: MediaStore,
                                                                      tmp_path: Path) -> None:
    async def nothing_published(tenant: str) -> set[str]:
        return set()

    quota = 500_000
    media = MediaService(store, MediaSettings(tenant_quota_bytes=quota), tmp_path / "spool",
                         nothing_published)
    await media.setup()
    gate, all_waiting = asyncio.Event(), asyncio.Event()
    waiting = 0

    async def body(data: bytes) -> AsyncIterator[bytes]:
        nonlocal waiting
        yield data[:8192]
        waiting += 1
        if waiting == len(files):
            all_waiting.set()
        await gate.wait()
        yield data[8192:]

    # Each fits alone, any two do not; all three have seen the room before any stores.
    files = [media_samples.mp4(300_000 + n) for n in range(3)]
    uploads = [asyncio.create_task(media.upload("acme", body(f), filename=f"clip{n}.mp4"))
               for n, f in enumerate(files)]
    await asyncio.wait_for(all_waiting.wait(), 10)
    gate.set()
    results = await asyncio.gather(*uploads, return_exceptions=True)
    kept = [r.info for r in results if isinstance(r, Stored)]
    refused = [r for r in results if isinstance(r, QuotaExceeded)]
    assert len(kept) + len(refused) == len(files)
    assert len(kept) <= 1
    assert await store.usage("acme") == sum(m.size for m in kept) <= quota
    assert {m.id for m in (await store.list_media("acme")).items} == {m.id for m in kept}

    # Once the race is over, what fits is taken as before.
    for m in kept:
        await store.delete("acme", m.id)
    stored = await media.upload("acme", body(files[0]), filename="again.mp4")
    assert stored.created
    assert await store.usage("acme") == len(files[0])


async def test_an_upload_deduplicated_onto_a_file_keeps_it_from_the_first_ones_undo(
        store: MediaStore, tmp_path: Path) -> None:
    async def nothing_published(tenant: str) -> set[str]:
        return set()

    async def body(data: bytes) -> AsyncIterator[bytes]:
        yield data

    media = MediaService(store, MediaSettings(), tmp_path / "spool", nothing_published)
    await media.setup()
    data = media_samples.mp4(20_000)
    first = await media.upload("acme", body(data), filename="first.mp4")
    second = await media.upload("acme", body(data), filename="second.mp4")
    assert (first.created, second.created, second.info.id) == (True, False, first.info.id)
    with pytest.raises(NotFound):  # the first import failed and takes back what it stored
        await media.delete("acme", first.info.id, unless_claimed=True)
    assert await store.get("acme", first.info.id) == first.info


async def test_a_put_of_bytes_the_tenant_keeps_stores_nothing_and_takes_that_file(
        store: MediaStore, tmp_path: Path) -> None:
    """The same bytes of the same type are one file of a tenant: a put of them returns the file
    kept, claimed, so that the undo of the upload that stored it leaves it."""
    data = b"kept" * 2000
    first, path = sample(tmp_path, data)
    assert await store.put(first, path) == first
    again, again_path = sample(tmp_path, data, minutes=1)
    assert await store.put(again, again_path) == first
    assert await store.get("acme", again.id) is None
    assert [m.id for m in (await store.list_media("acme")).items] == [first.id]
    assert await store.usage("acme") == len(data)
    assert not await store.delete("acme", first.id, unless_claimed=True)
    # Another type, or another tenant, is a file of its own.
    for other, other_path in (sample(tmp_path, data, content_type="audio/wav"),
                              sample(tmp_path, data, tenant="beta")):
        assert await store.put(other, other_path) == other
    # Once the file is gone, the bytes are stored anew.
    assert await store.delete("acme", first.id)
    later, later_path = sample(tmp_path, data, minutes=2)
    assert await store.put(later, later_path) == later
    assert await read_all(store, later) == data


async def test_puts_of_the_same_bytes_side_by_side_keep_one_file(store: MediaStore,
                                                                 tmp_path: Path) -> None:
    data = os.urandom(300_000)
    puts = [sample(tmp_path, data, minutes=n) for n in range(8)]
    kept = await asyncio.gather(*(store.put(info, path) for info, path in puts))
    assert len({m.id for m in kept}) == 1
    assert kept[0].id in {info.id for info, _ in puts}
    assert [m.id for m in (await store.list_media("acme")).items] == [kept[0].id]
    assert await store.usage("acme") == len(data)
    assert await read_all(store, kept[0]) == data
    assert not await store.delete("acme", kept[0].id, unless_claimed=True)  # claimed
    if isinstance(store, FileMediaStore):
        assert [p.name for p in store.root.rglob("*") if p.is_file()] == [kept[0].id]
    if isinstance(store, GridFsMediaStore):
        assert await store.chunks.count_documents({}) == -(-len(data) // CHUNK_BYTES)


async def test_uploads_of_the_same_new_bytes_side_by_side_are_one_media(
        store: MediaStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every upload has found the bytes not yet kept before any stores them; there is room for
    them once. All are answered with the one file, and none is refused for the quota."""
    async def nothing_published(tenant: str) -> set[str]:
        return set()

    async def body(data: bytes) -> AsyncIterator[bytes]:
        yield data

    data = media_samples.mp4(200_000)
    media = MediaService(store, MediaSettings(tenant_quota_bytes=len(data) + 1000),
                         tmp_path / "spool", nothing_published)
    await media.setup()
    uploads, all_putting = 6, asyncio.Event()
    putting = 0
    put = store.put

    async def put_together(info: MediaInfo, source: Path) -> MediaInfo:
        nonlocal putting
        putting += 1
        if putting == uploads:
            all_putting.set()
        await asyncio.wait_for(all_putting.wait(), 10)
        return await put(info, source)

    monkeypatch.setattr(store, "put", put_together)
    results = await asyncio.gather(*(media.upload("acme", body(data), filename=f"c{n}.mp4")
                                     for n in range(uploads)))
    assert len({r.info.id for r in results}) == 1
    assert sorted(r.created for r in results) == [False] * (uploads - 1) + [True]
    assert [m.id for m in (await store.list_media("acme")).items] == [results[0].info.id]
    assert (await media.usage("acme")).used_bytes == len(data)
    assert not any(p.is_file() for p in (tmp_path / "spool").iterdir())


async def stored_before_one_file_a_bytes(store: MediaStore, info: MediaInfo, data: bytes) -> None:
    """`info` stored as before the same bytes were one file, beside media with its bytes."""
    if isinstance(store, FileMediaStore):
        target = store.root / info.tenant / info.id[:2] / info.id
        await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(target.write_bytes, data)
        await store.db.transaction(lambda c: c.execute(
            "INSERT INTO media (tenant, id, sha256, size, created_at, doc)"
            " VALUES (?, ?, ?, ?, ?, ?)", (info.tenant, info.id, info.sha256, info.size,
                                           info.created_at.isoformat(), info.model_dump_json())))
        await store.db.transaction(lambda c: c.execute("DROP TABLE media_bytes"))
    else:
        assert isinstance(store, GridFsMediaStore)
        await store.files.drop_index("bytes_unique")
        await store.files.update_many({}, {"$unset": {"bytes": ""}})
        await store.bucket.upload_from_stream_with_id(
            f"{info.tenant}/{info.id}", info.filename, data,
            metadata=info.model_dump(mode="json"))


async def test_media_stored_before_with_the_same_bytes_are_all_kept(store: MediaStore,
                                                                    tmp_path: Path) -> None:
    """A data set of media that share their bytes (stored before the same bytes were one file)
    starts, keeps each of them, and an upload of those bytes takes the oldest."""
    async def nothing_published(tenant: str) -> set[str]:
        return set()

    async def body(data: bytes) -> AsyncIterator[bytes]:
        yield data

    data = media_samples.mp4(30_000)
    first, path = sample(tmp_path, data)
    await store.put(first, path)
    second, _ = sample(tmp_path, data, minutes=1)
    await stored_before_one_file_a_bytes(store, second, data)
    media = MediaService(store, MediaSettings(), tmp_path / "spool", nothing_published)
    await media.setup()
    await media.setup()
    assert {m.id for m in (await store.list_media("acme")).items} == {first.id, second.id}
    again = await media.upload("acme", body(data), filename="again.mp4")
    assert (again.created, again.info.id) == (False, first.id)
    assert await store.usage("acme") == 2 * len(data)
    assert await store.delete("acme", first.id)
    again = await media.upload("acme", body(data), filename="again.mp4")
    assert (again.created, again.info.id) == (False, second.id)


async def test_bytes_held_by_a_file_being_deleted_are_stored_anew(store: MediaStore,
                                                                  tmp_path: Path) -> None:
    """On GridFS a file is marked before it is removed (and stays marked if its deleter stops
    there): it cannot be claimed, so it gives up its bytes to the next put of them."""
    if not isinstance(store, GridFsMediaStore):
        pytest.skip("the embedded store removes a record in one transaction, never marked")
    data = b"going" * 1000
    going, path = sample(tmp_path, data)
    await store.put(going, path)
    await store.files.update_one({"_id": f"acme/{going.id}"}, {"$set": {"_deleting": True}})
    fresh, fresh_path = sample(tmp_path, data, minutes=1)
    assert await store.put(fresh, fresh_path) == fresh
    assert await read_all(store, fresh) == data


async def leave_orphan(store: MediaStore, data: bytes, written_at: datetime,
                       tenant: str = "acme") -> str:
    """Bytes as a process killed before it wrote their record leaves them (a file moved into
    place; GridFS chunks without their files document), written at `written_at`; their id."""
    media_id = new_media_id()
    if isinstance(store, FileMediaStore):
        path = store.root / tenant / media_id[:2] / media_id
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (written_at.timestamp(), written_at.timestamp()))
        return media_id
    assert isinstance(store, GridFsMediaStore)
    stamp = ObjectId.from_datetime(written_at).binary[:4]
    await store.chunks.insert_many([
        {"_id": ObjectId(stamp + os.urandom(8)), "files_id": f"{tenant}/{media_id}", "n": n,
         "data": Binary(data[at:at + CHUNK_BYTES])}
        for n, at in enumerate(range(0, len(data), CHUNK_BYTES))])
    return media_id


async def lose_record(store: MediaStore, info: MediaInfo) -> None:
    """Removes a stored file's record only, as a process killed mid-delete leaves it."""
    if isinstance(store, FileMediaStore):
        await store.db.transaction(lambda c: c.execute(
            "DELETE FROM media WHERE tenant = ? AND id = ?", (info.tenant, info.id)))
        return
    assert isinstance(store, GridFsMediaStore)
    await store.files.delete_one({"_id": f"{info.tenant}/{info.id}"})


async def bytes_kept(store: MediaStore, tenant: str = "acme") -> set[str]:
    """The ids of the media whose bytes the store holds, recorded or not."""
    if isinstance(store, FileMediaStore):
        return {p.name for p in (store.root / tenant).rglob("*") if p.is_file()}
    assert isinstance(store, GridFsMediaStore)
    ids = await store.chunks.distinct("files_id")
    return {i.split("/", 1)[1] for i in ids if i.startswith(f"{tenant}/")}


async def test_bytes_no_record_names_are_swept_once_old(store: MediaStore,
                                                        tmp_path: Path) -> None:
    """Bytes without a record (a put or a delete killed part-way) go once last written before
    the cutoff, in every tenant; younger ones stay (a put may be about to record them), and so
    do recorded ones, however old."""
    kept, path = sample(tmp_path, b"kept" * 1000)
    await store.put(kept, path)
    unrecorded, path = sample(tmp_path, b"lost" * 1000, minutes=1)
    await store.put(unrecorded, path)
    await lose_record(store, unrecorded)
    cutoff = datetime.now(UTC) + timedelta(minutes=1)  # all stored so far is older
    killed = await leave_orphan(store, os.urandom(600_000), cutoff - timedelta(hours=2))
    young = await leave_orphan(store, b"young", cutoff + timedelta(minutes=1))
    await leave_orphan(store, b"other", cutoff - timedelta(hours=2), tenant="beta")
    assert await bytes_kept(store) == {kept.id, unrecorded.id, killed, young}

    assert await store.sweep_orphans(cutoff) == Swept(files=3, bytes=4000 + 600_000 + 5)
    assert await bytes_kept(store) == {kept.id, young}
    assert await bytes_kept(store, "beta") == set()
    assert await read_all(store, kept) == b"kept" * 1000
    assert await store.sweep_orphans(cutoff) == Swept()
    assert await store.sweep_orphans(cutoff + timedelta(hours=1)) == Swept(files=1, bytes=5)
    assert await read_all(store, kept) == b"kept" * 1000
