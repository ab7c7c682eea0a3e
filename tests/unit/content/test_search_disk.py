"""A disk that refuses the search index's files (full, over quota, failing, read-only): tantivy
says so with a ValueError, which the index raises as the OSError it wraps, so the consumer waits
for the disk (as for a full SQLite file) and searches answer 503, not 500.

The messages are tantivy-py 0.27's own, recorded on a full and a read-only tmpfs."""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import tantivy

from bloop.platform.content.events import CoursePublished
from bloop.platform.content.search.consumers import subscriptions
from bloop.platform.content.search.index import TantivyIndex, disk_refusal
from bloop.platform.content.search.model import SearchDoc
from bloop.platform.content.search.service import SearchService
from bloop.platform.kit.errors import is_store_down
from bloop.platform.kit.events.bus.processor import EventProcessor
from bloop.platform.kit.events.dedupe import SqliteProcessedEvents
from bloop.platform.kit.events.types import registry, type_of
from bloop.platform.kit.metrics import Metrics
from bloop.platform.kit.sqlite import SqliteDB
from tests.support import embedded_app, member
from tests.unit.content.test_search import Catalogue, titles

FULL_OPEN = ("Failed to open file for write: 'IoError { io_error: Custom { kind: StorageFull, "
             "error: PathError { path: \"/data/search/tenants/acme/.tmpwH4BFi\", err: Os { "
             "code: 28, kind: StorageFull, message: \"No space left on device\" } } }, "
             "filepath: \"299535c2ffa64c71979f33c4bcfd24e9.fieldnorm\" }'")
FULL_COMMIT = "Internal error: 'No space left on device (os error 28)'"
FULL_IO = "An IO error occurred: 'No space left on device (os error 28)'"
READ_ONLY = ("Failed to acquire Lockfile: IoError(Os { code: 30, kind: ReadOnlyFilesystem, "
             "message: \"Read-only file system\" }). Some(\"Failed to acquire index lock.\")")
KILLED = ("An error occurred in a thread: 'An index writer was killed.. A worker thread "
          "encountered an error (io::Error most likely) or panicked.'")


class RefusingWriter:
    """A writer on a full disk: adding a large batch kills its thread (the document store
    could not be written) and the commit then names the io error, as tantivy's does."""

    def __init__(self, at_add: str | None, at_commit: str) -> None:
        self.at_add, self.at_commit = at_add, at_commit
        self.rolled_back = False

    def delete_documents_by_term(self, field: str, value: str) -> int:
        return 0

    def add_document(self, doc: tantivy.Document) -> int:
        if self.at_add is not None:
            raise ValueError(self.at_add)
        return 0

    def commit(self) -> int:
        raise ValueError(self.at_commit)

    def rollback(self) -> None:
        self.rolled_back = True

    def wait_merging_threads(self) -> None:
        pass


class Refusing:
    """A tenant's index whose next `refusals` writers refuse to write."""

    def __init__(self, index: tantivy.Index, refusals: int, at_add: str | None,
                 at_commit: str) -> None:
        self.index, self.refusals = index, refusals
        self.at_add, self.at_commit = at_add, at_commit
        self.writers: list[RefusingWriter] = []

    def writer(self, **kwargs: Any) -> Any:
        if self.refusals <= 0:
            return self.index.writer(**kwargs)
        self.refusals -= 1
        self.writers.append(RefusingWriter(self.at_add, self.at_commit))
        return self.writers[-1]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.index, name)


def refusing(monkeypatch: pytest.MonkeyPatch, index: TantivyIndex, refusals: int,
             at_add: str | None, at_commit: str) -> list[Refusing]:
    made: list[Refusing] = []
    real = TantivyIndex._tenant

    def tenant(self: TantivyIndex, name: str, *, create: bool = False) -> Any:
        found = real(self, name, create=create)
        if found is None or self is not index:
            return found
        if not made:
            made.append(Refusing(found, refusals, at_add, at_commit))
        made[0].index = found
        return made[0]

    monkeypatch.setattr(TantivyIndex, "_tenant", tenant)
    return made


def doc(i: int) -> SearchDoc:
    return SearchDoc(tenant="acme", kind="lesson", id=f"l{i}", course_id="py", title="Loops",
                     body="for and while", tags=[], language="en", level="beginner",
                     course_version=1)


@pytest.fixture
async def index() -> AsyncIterator[TantivyIndex]:
    made = TantivyIndex()
    yield made
    await made.close()


@pytest.mark.parametrize(("at_add", "at_commit", "code"), [
    (None, FULL_OPEN, errno.ENOSPC), (None, FULL_COMMIT, errno.ENOSPC),
    (None, FULL_IO, errno.ENOSPC), (None, READ_ONLY, errno.EROFS),
    (KILLED, FULL_COMMIT, errno.ENOSPC)])
async def test_a_refused_write_is_the_disk_being_unavailable(
        index: TantivyIndex, monkeypatch: pytest.MonkeyPatch, at_add: str | None,
        at_commit: str, code: int) -> None:
    made = refusing(monkeypatch, index, 1, at_add, at_commit)
    with pytest.raises(OSError) as raised:
        await index.write([doc(1)])
    assert raised.value.errno == code
    assert isinstance(raised.value.__cause__, ValueError)
    assert is_store_down(raised.value)
    assert made[0].writers[0].rolled_back
    await index.write([doc(1)])  # the disk has room again
    assert await index.count("acme") == 1


@pytest.mark.parametrize("message", [
    "Schema error: 'field does not exist'", "An IO error occurred: 'gone (os error 2)'",
    "An index writer was killed.. A worker thread encountered an error or panicked."])
def test_other_errors_of_tantivy_are_no_disk_outage(message: str) -> None:
    assert disk_refusal(ValueError(message)) is None
    assert disk_refusal(OSError(errno.ENOSPC, "full")) is None  # the kit reads those itself


async def test_the_consumer_waits_for_the_disk_and_dead_letters_nothing(
        index: TantivyIndex, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """More refusals than the attempts an event has: before, the event was dead-lettered and
    the course stayed missing from search for good."""
    content = Catalogue()
    course = content.course_with("acme", "py", "Python", ("Loops", "for and while"))
    service = SearchService(index, content)
    made = refusing(monkeypatch, index, 3, KILLED, FULL_COMMIT)
    [sub] = subscriptions(service)
    db = SqliteDB(tmp_path / "processed.sqlite3")
    await SqliteProcessedEvents(db).setup()
    processor = EventProcessor(sub, registry, SqliteProcessedEvents(db), _no_publish, Metrics(),
                               max_attempts=3, backoff_s=0.01)
    at = course.published_at
    assert at is not None
    published = type_of(CoursePublished).envelope(CoursePublished(
        course_id="py", version=1, title=course.title, summary=course.summary, language="en",
        level="beginner", tags=[], lesson_ids=[], published_at=at), tenant="acme", subject="py")
    try:
        assert await processor._handle(published) is None
    finally:
        await db.close()
    assert made[0].refusals == 0
    assert titles(await service.search("acme", "Python")) == ["Python"]


async def _no_publish(*args: object, **kwargs: object) -> None:
    raise AssertionError("nothing is dead-lettered")


async def test_a_search_on_a_failing_disk_answers_503(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(*args: object) -> None:
        raise ValueError("An IO error occurred: 'Input/output error (os error 5)'")

    async with embedded_app(tmp_path, monkeypatch, ["identity", "content"]) as (app, c):
        headers = await member(app, c, "acme", ["learner"])
        monkeypatch.setattr(TantivyIndex, "_search", failing)
        r = await c.get("/v1/tenants/acme/search", params={"q": "loops"}, headers=headers)
    assert r.status_code == 503, r.text
    assert r.json()["store"] == "disk"
    assert "Retry-After" in r.headers
