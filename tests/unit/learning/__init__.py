"""Learning's unit tests; `embedded_learning` is the service most of them run."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from bloop.platform.kit.events.types import registry
from bloop.platform.kit.sqlite import SqliteDB
from bloop.platform.learning.service import LearningService
from bloop.platform.learning.stores.embedded import EmbeddedLearningStore


@contextlib.asynccontextmanager
async def embedded_learning(tmp_path: Path) -> AsyncIterator[LearningService]:
    """A learning service on an embedded store in `tmp_path`, closed after."""
    db = SqliteDB(tmp_path / "learning.sqlite3")
    store = EmbeddedLearningStore(db, registry)
    await store.setup()
    service = LearningService(store)
    try:
        yield service
    finally:
        await service.close()
        await db.close()
