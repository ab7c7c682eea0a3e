"""The embedded quiz attempt store: SQLite (content's database), with its own outbox table. An
attempt takes its number and is written with its event in one transaction."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from bloop.platform.content.attempts.model import Attempt
from bloop.platform.content.attempts.ports import Numbered
from bloop.platform.kit.events.outbox.sqlite import SqliteOutbox
from bloop.platform.kit.events.types import EventRegistry
from bloop.platform.kit.pagination import Slice, key_of
from bloop.platform.kit.read_back import STORED
from bloop.platform.kit.sqlite import SqliteDB

SCHEMA = """
CREATE TABLE IF NOT EXISTS quiz_attempts (
  tenant TEXT NOT NULL, id TEXT NOT NULL, learner TEXT NOT NULL, lesson_id TEXT NOT NULL,
  quiz_id TEXT NOT NULL, number INTEGER NOT NULL, sort_key TEXT NOT NULL, doc TEXT NOT NULL,
  PRIMARY KEY (tenant, id), UNIQUE (tenant, lesson_id, quiz_id, learner, number));
CREATE INDEX IF NOT EXISTS quiz_attempts_learner ON quiz_attempts (tenant, learner, sort_key);
CREATE INDEX IF NOT EXISTS quiz_attempts_lesson ON quiz_attempts (tenant, lesson_id, sort_key);
"""
NUMBERING = """
SELECT max(number), (
  SELECT json_extract(doc, '$.graded_at') FROM quiz_attempts
  WHERE tenant = :tenant AND lesson_id = :lesson_id AND quiz_id = :quiz_id AND learner = :learner
    AND EXISTS (SELECT 1 FROM json_each(doc, '$.questions')
                WHERE json_extract(value, '$.outcome') <> 'unanswered')
  ORDER BY number DESC LIMIT 1)
FROM quiz_attempts
WHERE tenant = :tenant AND lesson_id = :lesson_id AND quiz_id = :quiz_id AND learner = :learner
"""
"""The learner's latest number at a quiz, and when their latest attempt at it that answered a
question (`Attempt.answered`) was graded: both on the unique index."""


class EmbeddedAttemptStore:
    def __init__(self, db: SqliteDB, registry: EventRegistry) -> None:
        self.db = db
        self._outbox = SqliteOutbox(db, registry, name="quiz_attempt_outbox")

    @property
    def outbox(self) -> SqliteOutbox:
        return self._outbox

    async def setup(self) -> None:
        await self.db.run(lambda c: c.executescript(SCHEMA))
        await self._outbox.setup()

    async def add(self, tenant: str, learner: str, lesson_id: str, quiz_id: str,
                  make: Numbered) -> Attempt:
        def write(c: sqlite3.Connection) -> Attempt:
            last, previous = c.execute(NUMBERING, {
                "tenant": tenant, "lesson_id": lesson_id, "quiz_id": quiz_id,
                "learner": learner}).fetchone()
            attempt, events = make(int(last or 0) + 1,
                                   None if previous is None else datetime.fromisoformat(previous))
            c.execute("INSERT INTO quiz_attempts (tenant, id, learner, lesson_id, quiz_id, number,"
                      " sort_key, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                      (attempt.tenant, attempt.id, attempt.learner, attempt.lesson_id,
                       attempt.quiz_id, attempt.number, attempt.sort_key,
                       attempt.model_dump_json()))
            self._outbox.add(c, *events)
            return attempt

        return await self.db.transaction(write)

    async def _select(self, where: dict[str, str | None], after: str | None,
                      limit: int | None) -> Slice[Attempt]:
        clauses = [f"{column} = ?" for column, value in where.items() if value is not None]
        params: list[object] = [value for value in where.values() if value is not None]
        if after:
            clauses.append("sort_key < ?")
            params.append(key_of(after, str)[0])
        sql = f"SELECT doc FROM quiz_attempts WHERE {' AND '.join(clauses)} ORDER BY sort_key DESC"  # noqa: S608
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit + 1)
        rows = await self.db.run(lambda c: c.execute(sql, params).fetchall())
        found = [Attempt.model_validate_json(r["doc"], context=STORED) for r in rows]
        return Slice(found) if limit is None else Slice.of(found, limit, lambda a: (a.sort_key,))

    async def of_learner(self, tenant: str, learner: str, *, lesson_id: str | None = None,
                         quiz_id: str | None = None, after: str | None = None,
                         limit: int | None = 100) -> Slice[Attempt]:
        return await self._select({"tenant": tenant, "learner": learner, "lesson_id": lesson_id,
                                   "quiz_id": quiz_id}, after, limit)

    async def of_lesson(self, tenant: str, lesson_id: str, *, quiz_id: str | None = None,
                        learner: str | None = None, after: str | None = None,
                        limit: int = 100) -> Slice[Attempt]:
        return await self._select({"tenant": tenant, "lesson_id": lesson_id, "quiz_id": quiz_id,
                                   "learner": learner}, after, limit)

    async def erase_learner(self, tenant: str, learner: str) -> int:
        cur = await self.db.transaction(lambda c: c.execute(
            "DELETE FROM quiz_attempts WHERE tenant = ? AND learner = ?", (tenant, learner)))
        if cur.rowcount:
            await self.db.empty_wal()
        return int(cur.rowcount)
