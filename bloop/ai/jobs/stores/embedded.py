"""The embedded AI stores: jobs, deleted lessons' tombstones and tenant settings in SQLite with
the outbox in the same database (each change and its events in one transaction), and job outputs
as files on disk."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import sqlite3
from collections.abc import AsyncIterator, Collection
from datetime import UTC, datetime
from pathlib import Path

from bloop.ai.jobs.model import Job, JobKind, JobStatus, TenantAiConfig
from bloop.ai.jobs.ports import JobLimit, Spend, StoredFile, TooManyJobs
from bloop.ai.jobs.stores.common import (
    chunks_of,
    config_doc,
    index_fields,
    job_key,
    outputs_since,
)
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.outbox.sqlite import SqliteOutbox
from bloop.platform.kit.events.types import EventRegistry
from bloop.platform.kit.pagination import Slice, key_of
from bloop.platform.kit.read_back import STORED
from bloop.platform.kit.sqlite import SqliteDB, at_once

SCHEMA = """
CREATE TABLE IF NOT EXISTS ai_jobs (
  tenant TEXT NOT NULL, id TEXT NOT NULL, idempotency_key TEXT NOT NULL, status TEXT NOT NULL,
  lesson_id TEXT NOT NULL, rev INTEGER NOT NULL, final INTEGER NOT NULL, lease_until REAL,
  created REAL NOT NULL, updated REAL NOT NULL, usd REAL NOT NULL, doc TEXT NOT NULL,
  PRIMARY KEY (tenant, id));
CREATE UNIQUE INDEX IF NOT EXISTS ai_jobs_key ON ai_jobs (tenant, idempotency_key);
CREATE INDEX IF NOT EXISTS ai_jobs_created ON ai_jobs (tenant, created);
CREATE INDEX IF NOT EXISTS ai_jobs_requester
  ON ai_jobs (tenant, json_extract(doc, '$.requested_by'), created, id);
CREATE INDEX IF NOT EXISTS ai_jobs_open ON ai_jobs (final, lease_until, updated);
CREATE TABLE IF NOT EXISTS ai_config (tenant TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ai_deleted_lessons (
  tenant TEXT NOT NULL, lesson_id TEXT NOT NULL, at REAL NOT NULL,
  PRIMARY KEY (tenant, lesson_id));
CREATE INDEX IF NOT EXISTS ai_deleted_lessons_at ON ai_deleted_lessons (at);
"""
# The jobs whose output files are kept, by when they ended (the retention sweep's read).
OUTPUTS = """
CREATE INDEX IF NOT EXISTS ai_jobs_outputs ON ai_jobs (outputs_since)
  WHERE outputs_since IS NOT NULL;
CREATE INDEX IF NOT EXISTS ai_jobs_lesson ON ai_jobs (tenant, lesson_id, created);
"""

COLUMNS = ("tenant", "id", "idempotency_key", "status", "lesson_id", "rev", "final",
           "lease_until", "created", "updated", "usd", "outputs_since")


def _migrate(c: sqlite3.Connection) -> None:
    c.executescript(SCHEMA)
    at_once(c, _add_outputs_since)
    c.executescript(OUTPUTS)


def _add_outputs_since(c: sqlite3.Connection) -> None:
    """The column the retention sweep reads, filled for the jobs stored before it."""
    if "outputs_since" in {r["name"] for r in c.execute("PRAGMA table_info(ai_jobs)")}:
        return
    c.execute("ALTER TABLE ai_jobs ADD COLUMN outputs_since REAL")
    rows = c.execute("SELECT doc FROM ai_jobs WHERE final = 1"
                     " AND json_extract(doc, '$.result.kind') = 'media'").fetchall()
    jobs = [Job.model_validate_json(r["doc"], context=STORED) for r in rows]
    c.executemany("UPDATE ai_jobs SET outputs_since = ? WHERE tenant = ? AND id = ?",
                  [(outputs_since(j), j.tenant, j.id) for j in jobs])


def _row(job: Job) -> dict[str, object]:
    return index_fields(job) | {"doc": job.model_dump_json()}


class EmbeddedJobStore:
    def __init__(self, db: SqliteDB, registry: EventRegistry) -> None:
        self.db = db
        self._outbox = SqliteOutbox(db, registry, name="ai_outbox")

    @property
    def outbox(self) -> SqliteOutbox:
        return self._outbox

    async def setup(self) -> None:
        await self.db.run(_migrate)
        await self._outbox.setup()

    async def create(self, job: Job, events: list[Envelope], *,
                     limit: JobLimit | None = None) -> tuple[Job, bool]:
        def write(c: sqlite3.Connection) -> tuple[Job, bool]:
            found = c.execute("SELECT doc FROM ai_jobs WHERE tenant = ? AND idempotency_key = ?",
                              (job.tenant, job.idempotency_key)).fetchone()
            if found is not None:
                return Job.model_validate_json(found["doc"], context=STORED), False
            if limit is not None and c.execute(
                    "SELECT count(*) FROM ai_jobs WHERE tenant = ? AND created >= ?",
                    (job.tenant, limit.since.timestamp())).fetchone()[0] >= limit.jobs:
                raise TooManyJobs(job.tenant)
            names = (*COLUMNS, "doc")
            c.execute(f"INSERT INTO ai_jobs ({', '.join(names)}) VALUES "  # noqa: S608
                      f"({', '.join(':' + n for n in names)})", _row(job))
            self._outbox.add(c, *events)
            return job, True

        return await self.db.transaction(write)

    async def get(self, tenant: str, job_id: str) -> Job | None:
        row = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM ai_jobs WHERE tenant = ? AND id = ?", (tenant, job_id)).fetchone())
        return None if row is None else Job.model_validate_json(row["doc"], context=STORED)

    async def find_by_key(self, tenant: str, idempotency_key: str) -> Job | None:
        row = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM ai_jobs WHERE tenant = ? AND idempotency_key = ?",
            (tenant, idempotency_key)).fetchone())
        return None if row is None else Job.model_validate_json(row["doc"], context=STORED)

    async def list_jobs(self, tenant: str, *, lesson_id: str | None = None,
                        status: JobStatus | None = None, kind: JobKind | None = None,
                        after: str | None = None, limit: int = 50) -> Slice[Job]:
        where: list[str] = ["tenant = ?"]
        args: list[object] = [tenant]
        if lesson_id is not None:
            where.append("lesson_id = ?")
            args.append(lesson_id)
        if status is not None:
            where.append("status = ?")
            args.append(status)
        if kind is not None:
            where.append("json_extract(doc, '$.kind') = ?")
            args.append(kind)
        if after:
            created, job_id = key_of(after, float, str)
            where.append("(created < ? OR (created = ? AND id > ?))")
            args += [created, created, job_id]
        sql = (f"SELECT doc FROM ai_jobs WHERE {' AND '.join(where)}"  # noqa: S608
               " ORDER BY created DESC, id LIMIT ?")
        rows = await self.db.run(lambda c: c.execute(sql, (*args, limit + 1)).fetchall())
        jobs = [Job.model_validate_json(r["doc"], context=STORED) for r in rows]
        return Slice.of(jobs, limit, job_key)

    async def by_requester(self, tenant: str, user_id: str) -> list[Job]:
        rows = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM ai_jobs WHERE tenant = ? AND json_extract(doc, '$.requested_by') = ?"
            " ORDER BY created, id", (tenant, user_id)).fetchall())
        return [Job.model_validate_json(r["doc"], context=STORED) for r in rows]

    async def replace(self, job: Job, expected_rev: int, events: list[Envelope]) -> bool:
        def write(c: sqlite3.Connection) -> bool:
            sets = ", ".join(f"{n} = :{n}" for n in (*COLUMNS[2:], "doc"))
            cur = c.execute(f"UPDATE ai_jobs SET {sets} WHERE tenant = :tenant AND id = :id"  # noqa: S608
                            " AND rev = :expected", _row(job) | {"expected": expected_rev})
            if cur.rowcount == 0:
                return False
            self._outbox.add(c, *events)
            return True

        return await self.db.transaction(write)

    async def after_erasure(self) -> None:
        await self.db.empty_wal()

    async def spend(self, tenant: str, since: datetime) -> Spend:
        row = await self.db.run(lambda c: c.execute(
            "SELECT count(*) AS n, coalesce(sum(usd), 0) AS usd FROM ai_jobs"
            " WHERE tenant = ? AND created >= ?", (tenant, since.timestamp())).fetchone())
        return Spend(jobs=int(row["n"]), usd=float(row["usd"]))

    async def unfinished(self) -> dict[tuple[str, str], int]:
        rows = await self.db.run(lambda c: c.execute(
            "SELECT json_extract(doc, '$.kind') AS kind, status, count(*) AS n FROM ai_jobs"
            " WHERE final = 0 GROUP BY kind, status").fetchall())
        return {(r["kind"], r["status"]): int(r["n"]) for r in rows}

    async def stale(self, at: datetime, *, touched_before: datetime | None = None,
                    skip_tenants: Collection[str] = (), limit: int = 100
                    ) -> list[tuple[str, str]]:
        t, touched = at.timestamp(), (touched_before or at).timestamp()
        skipped = list(skip_tenants)
        sql = ("SELECT tenant, id FROM ai_jobs WHERE final = 0 AND ("  # noqa: S608
               " (lease_until IS NOT NULL AND lease_until <= ?) OR"
               " (lease_until IS NULL AND updated < ?))"
               f" AND tenant NOT IN ({', '.join('?' * len(skipped))})"
               " ORDER BY coalesce(lease_until, updated + ?), tenant, id LIMIT ?")
        rows = await self.db.run(lambda c: c.execute(
            sql, (t, touched, *skipped, t - touched, limit)).fetchall())
        return [(r["tenant"], r["id"]) for r in rows]

    async def outputs_due(self, before: datetime, *, limit: int = 100) -> list[tuple[str, str]]:
        rows = await self.db.run(lambda c: c.execute(
            "SELECT tenant, id FROM ai_jobs WHERE outputs_since IS NOT NULL"
            " AND outputs_since < ? ORDER BY outputs_since, tenant, id LIMIT ?",
            (before.timestamp(), limit)).fetchall())
        return [(r["tenant"], r["id"]) for r in rows]

    async def lesson_deleted(self, tenant: str, lesson_id: str, at: datetime) -> None:
        await self.db.transaction(lambda c: c.execute(
            "INSERT INTO ai_deleted_lessons (tenant, lesson_id, at) VALUES (?, ?, ?)"
            " ON CONFLICT (tenant, lesson_id) DO NOTHING", (tenant, lesson_id, at.timestamp())))

    async def deleted_at(self, tenant: str, lesson_id: str) -> datetime | None:
        row = await self.db.run(lambda c: c.execute(
            "SELECT at FROM ai_deleted_lessons WHERE tenant = ? AND lesson_id = ?",
            (tenant, lesson_id)).fetchone())
        return None if row is None else datetime.fromtimestamp(row["at"], UTC)

    async def forget_deleted_lessons(self, before: datetime) -> int:
        return await self.db.transaction(lambda c: int(c.execute(
            "DELETE FROM ai_deleted_lessons WHERE at < ?", (before.timestamp(),)).rowcount))

    async def get_config(self, tenant: str) -> TenantAiConfig | None:
        row = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM ai_config WHERE tenant = ?", (tenant,)).fetchone())
        return None if row is None else TenantAiConfig.model_validate_json(row["doc"],
                                                                            context=STORED)

    async def put_config(self, tenant: str, config: TenantAiConfig, *,
                         keep_api_key: bool = False) -> None:
        doc = config_doc(config)

        def write(c: sqlite3.Connection) -> None:
            if keep_api_key:
                row = c.execute("SELECT doc FROM ai_config WHERE tenant = ?", (tenant,)).fetchone()
                doc["api_key"] = None if row is None else json.loads(row["doc"]).get("api_key")
            c.execute("INSERT INTO ai_config (tenant, doc) VALUES (?, ?)"
                      " ON CONFLICT (tenant) DO UPDATE SET doc = excluded.doc",
                      (tenant, json.dumps(doc)))

        await self.db.transaction(write)


def _safe(part: str) -> str:
    return hashlib.sha256(part.encode()).hexdigest()[:32]


class FileMediaStore:
    """Job outputs as files under `root/<tenant hash>/<file id>`, with a JSON sidecar."""

    def __init__(self, root: Path) -> None:
        self.root = root

    async def setup(self) -> None:
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)

    def _path(self, tenant: str, file_id: str) -> Path | None:
        if not file_id.isalnum() or len(file_id) > 64:
            return None
        return self.root / _safe(tenant) / file_id

    async def put(self, tenant: str, job_id: str, name: str, content_type: str,
                  path: Path) -> StoredFile:
        file_id = hashlib.sha256(f"{tenant}/{job_id}/{name}".encode()).hexdigest()[:32]
        target = self._path(tenant, file_id)
        assert target is not None

        def copy() -> int:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(".part")
            shutil.copyfile(path, partial)
            partial.replace(target)
            stored = StoredFile(file_id, name, content_type, target.stat().st_size)
            target.with_suffix(".json").write_text(json.dumps(
                {"name": name, "content_type": content_type, "job_id": job_id,
                 "length": stored.length}))
            return stored.length

        length = await asyncio.to_thread(copy)
        return StoredFile(file_id, name, content_type, length)

    async def info(self, tenant: str, file_id: str) -> StoredFile | None:
        target = self._path(tenant, file_id)
        if target is None:
            return None

        def read() -> StoredFile | None:
            sidecar = target.with_suffix(".json")
            if not sidecar.exists() or not target.exists():
                return None
            meta = json.loads(sidecar.read_text())
            return StoredFile(file_id, meta["name"], meta["content_type"], int(meta["length"]))

        return await asyncio.to_thread(read)

    async def delete(self, tenant: str, file_id: str) -> None:
        target = self._path(tenant, file_id)
        if target is None:
            return

        def remove() -> None:
            target.with_suffix(".json").unlink(missing_ok=True)
            target.unlink(missing_ok=True)

        await asyncio.to_thread(remove)

    async def read(self, tenant: str, file_id: str, start: int = 0, end: int | None = None, *,
                   chunk: int = 256 * 1024) -> AsyncIterator[bytes]:
        target = self._path(tenant, file_id)
        if target is None:
            return
        try:
            f = target.open("rb")
        except FileNotFoundError:
            return
        with f:  # closed synchronously, even when a disconnect cancels the read
            f.seek(start)
            async for data in chunks_of(lambda n: asyncio.to_thread(f.read, n), start, end,
                                        chunk):
                yield data
