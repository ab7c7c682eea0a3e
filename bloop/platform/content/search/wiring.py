"""Builds search for content's mount: the index under the data dir, the service over content's
repository, and the consumer that keeps the index in step."""

from __future__ import annotations

from dataclasses import dataclass

from bloop.platform.content.search.consumers import subscriptions
from bloop.platform.content.search.index import TantivyIndex
from bloop.platform.content.search.service import SearchService
from bloop.platform.content.search.settings import SearchSettings
from bloop.platform.content.search.source import RepositoryContent
from bloop.platform.content.service import ContentService
from bloop.platform.kit.events.bus.port import Subscription
from bloop.platform.kit.wiring import Platform


@dataclass(frozen=True)
class Search:
    service: SearchService
    subscriptions: list[Subscription]

    async def setup(self) -> None:
        """Builds a new index from the store (before the consumer starts)."""
        await self.service.build()

    async def close(self) -> None:
        await self.service.index.close()


def mount_search(platform: Platform, content: ContentService,
                 settings: SearchSettings | None = None) -> Search:
    settings = settings or SearchSettings()
    directory = settings.directory or platform.settings.runtime.data_dir / "search"
    index = TantivyIndex(directory, writer_heap_mb=settings.writer_heap_mb)
    service = SearchService(index, RepositoryContent(content.repo), settings)
    return Search(service=service, subscriptions=subscriptions(service))
