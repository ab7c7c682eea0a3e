"""What media needs from a store: a file's bytes and its record, kept together. Every call names
its tenant; no call reaches another tenant's media."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from bloop.platform.content.media.model import MediaInfo
from bloop.platform.kit.pagination import Slice


class MediaExists(Exception):
    """The tenant already has media with this id."""


class MediaMissing(Exception):
    """The tenant has no media with this id."""


@dataclass(frozen=True)
class Swept:
    """What a sweep removed: how many files, and their bytes."""

    files: int = 0
    bytes: int = 0

    def __add__(self, other: Swept) -> Swept:
        return Swept(self.files + other.files, self.bytes + other.bytes)


class MediaStore(Protocol):
    async def setup(self) -> None:
        """Creates tables, folders or indexes; safe to call on every start."""

    async def put(self, info: MediaInfo, source: Path) -> MediaInfo:
        """Stores the bytes of the file at `source` (exactly `info.size` of them) with `info`,
        both or neither, and returns `info`; the store may move `source` away. `MediaExists`
        when the id is taken. When the tenant already has media of the same bytes and type
        (`sha256` and `content_type`), stores nothing and returns that media, claimed (as
        `claim`): of such puts side by side, the first to commit its record is the one kept.
        (Media stored before this rule held may share their bytes; `find_by_checksum` finds them.)"""

    async def get(self, tenant: str, media_id: str) -> MediaInfo | None: ...

    async def find_by_checksum(self, tenant: str, sha256: str) -> MediaInfo | None:
        """Media of the tenant with these bytes, if any."""

    async def list_media(self, tenant: str, *, after: str | None = None,
                         limit: int = 100) -> Slice[MediaInfo]:
        """The tenant's media, newest first, from the cursor `after` on."""

    async def uploaded_by(self, tenant: str, user_id: str) -> list[MediaInfo]:
        """The tenant's media `user_id` uploaded first, oldest first (a person's export)."""

    async def forget_uploader(self, tenant: str, user_id: str) -> int:
        """Clears `created_by` on the media `user_id` uploaded (a person deleted); how many.
        Running it again changes nothing."""

    async def usage(self, tenant: str) -> int:
        """The bytes the tenant's media take, in all."""

    async def largest(self, tenant: str, *, content_type: str | None = None,
                      at_most: int | None = None) -> int:
        """The size of the tenant's largest media (of `content_type`, of at most `at_most`
        bytes, when given); 0 when it has none."""

    def read(self, tenant: str, media_id: str, start: int, end: int) -> AsyncIterator[bytes]:
        """The bytes [start, end) of the media, in chunks; `MediaMissing` when there is none."""

    async def claim(self, tenant: str, media_id: str) -> bool:
        """Marks the media as used by an upload other than the one that stored it (an upload of
        the same bytes, deduplicated onto it); False when it is gone or going."""

    async def delete(self, tenant: str, media_id: str, *, unless_claimed: bool = False) -> bool:
        """Removes the media's record and bytes; False when there was none, or, with
        `unless_claimed`, when another upload has claimed it (it stays)."""

    async def sweep_orphans(self, older_than: datetime) -> Swept:
        """Removes the bytes of files no record names (a process killed between storing a
        file's bytes and its record, or between removing them) that were last written before
        `older_than`; younger ones stay, since a put may be about to record them."""
