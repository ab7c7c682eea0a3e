"""An erasure leaves nothing of what it erased in the embedded stores' WAL files. It stayed
there until a checkpoint fell due (2,000 rows or 500 commits: weeks on a quiet store)."""

from __future__ import annotations

from pathlib import Path

from bloop.ai.jobs.model import Job, JobParams, JobRequest
from bloop.ai.jobs.service import JobService
from bloop.ai.jobs.stores.embedded import EmbeddedJobStore
from bloop.platform.content.attempts.stores.embedded import EmbeddedAttemptStore
from bloop.platform.identity.model import NewUser, ProfileEdit, User
from bloop.platform.identity.stores.embedded import EmbeddedIdentityStore
from bloop.platform.kit.events.types import registry
from bloop.platform.kit.settings import AiSettings
from bloop.platform.kit.sqlite import SqliteDB
from bloop.platform.learning.stores.embedded import EmbeddedLearningStore
from tests.contract.test_quiz_attempt_store import add


def wal(db: SqliteDB) -> bytes:
    path = Path(f"{db.path}-wal")
    return path.read_bytes() if path.exists() else b""


async def test_a_deleted_users_email_and_bio_leave_the_identity_wal(tmp_path: Path) -> None:
    db = SqliteDB(tmp_path / "identity.sqlite3")
    store = EmbeddedIdentityStore(db, registry)
    try:
        await store.setup()
        pat = User.register("acme", NewUser(email="pat@example.org", display_name="Pat"))
        await store.add_user(pat, [], "$argon2id$x")
        edit = ProfileEdit(bio="Keeps okapis.")
        await store.replace_user(pat.with_profile(edit), [], fields=edit.changes().keys())
        assert b"pat@example.org" in wal(db)
        await store.delete_user("acme", pat.id, [])
        assert b"pat@example.org" not in wal(db)
        assert b"okapis" not in wal(db)
    finally:
        await db.close()


async def test_an_erased_learners_attempts_leave_the_content_wal(tmp_path: Path) -> None:
    db = SqliteDB(tmp_path / "content.sqlite3")
    store = EmbeddedAttemptStore(db, registry)
    try:
        await store.setup()
        await add(store, "okapi-learner", answers={"tf": False})
        await store.outbox.mark_sent(await store.outbox.pending(10))
        assert await store.erase_learner("acme", "okapi-learner") == 1
        assert wal(db) == b""
    finally:
        await db.close()


async def test_an_erased_learners_records_leave_the_learning_wal(tmp_path: Path) -> None:
    db = SqliteDB(tmp_path / "learning.sqlite3")
    store = EmbeddedLearningStore(db, registry)
    try:
        await store.setup()
        await store.save_scheduler_params("acme", "okapi-learner", [0.123456789] * 19)
        assert wal(db) != b""
        await store.erase_learner("acme", "okapi-learner")
        assert wal(db) == b""
    finally:
        await db.close()


async def test_a_deleted_requesters_note_leaves_the_ai_wal(tmp_path: Path) -> None:
    db = SqliteDB(tmp_path / "ai.sqlite3")
    store = EmbeddedJobStore(db, registry)
    try:
        await store.setup()
        asked = JobRequest(kind="summary", lesson_id="lesson-1",
                           params=JobParams(instructions="Ask about my dog Rexokapi."))
        await store.create(Job.create("acme", asked, None, "u1", "key-1", 3), [])
        assert b"Rexokapi" in wal(db)
        assert await JobService(store, AiSettings()).forget_requester("acme", "u1") == 1
        assert b"Rexokapi" not in wal(db)
    finally:
        await db.close()
