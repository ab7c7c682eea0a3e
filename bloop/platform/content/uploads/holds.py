"""What an import holds while it runs, so that a process killed part-way leaves nothing for good:
the ids its new media and its lessons get, written before any of them. An import releases its
hold once its lessons are stored; a hold left past its expiry is an import that died, and the
sweep deletes the media it stored unless its lessons were stored (or another upload claimed
them)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from pydantic import ConfigDict

from bloop.platform.kit.read_back import Tolerant


class ImportHold(Tolerant):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant: str
    id: str
    course: str
    lessons: list[str]
    """The ids its lessons get, stored all together or none."""
    media: list[str]
    """The ids its new media get (bytes the tenant already kept keep theirs)."""
    expires_at: datetime


class ImportHolds(Protocol):
    async def setup(self) -> None:
        """Creates tables or indexes; safe to call on every start."""

    async def add(self, hold: ImportHold) -> None: ...

    async def release(self, tenant: str, import_id: str) -> bool:
        """Removes the hold unless a sweep has taken it; False when one has (or it is gone)."""

    async def take_expired(self, at: datetime, until: datetime,
                           limit: int = 100) -> Sequence[ImportHold]:
        """Up to `limit` holds expired at `at`, each marked taken (so `release` fails) and
        expiring again at `until` (taken again then, should its sweep stop midway)."""

    async def drop(self, tenant: str, import_id: str) -> None:
        """Removes the hold, taken or not."""
