"""A user's data export, assembled from every service that holds something about them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from fastapi import Depends
from starlette.responses import Response

ERASED_USER = "deleted-user"
"""What a deleted person's records that stay (a tenant's API keys, AI jobs, …) name instead of
them."""


def not_stored(response: Response) -> None:
    """Marks an answer `Cache-Control: no-store`: no cache keeps it, the browser's own included
    (`private` would let it write the answer to disk, for the next person at that computer)."""
    response.headers["Cache-Control"] = "no-store"


PERSONAL_ANSWER = Depends(not_stored)
"""In a route's `dependencies`: its answer carries people's data (a profile, a list of users or
of invited addresses, a learner's progress or quiz attempts), which no cache keeps, as a data
export; they carry no validator to revalidate a kept copy with anyway."""

PersonalData = Callable[[str, str], Awaitable[dict[str, object]]]
"""(tenant, user id) → everything one service holds about that user, as JSON-ready data."""


@dataclass(frozen=True)
class PersonalDataSources:
    """The exporters of the services this process runs, and the services it does not run (in a
    split deployment their data is exported by their own processes)."""

    exporters: Mapping[str, PersonalData] = field(default_factory=dict)
    elsewhere: Sequence[str] = ()

    async def export(self, tenant: str, user_id: str) -> dict[str, object]:
        """One document: each service's part under its name. A service whose store is down
        fails the whole export (a 503) rather than hand out an incomplete one."""
        services: dict[str, object] = {}
        for name, exporter in self.exporters.items():
            services[name] = await exporter(tenant, user_id)
        return {"tenant": tenant, "user_id": user_id,
                "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "services": services, "not_exported_by_this_process": list(self.elsewhere)}
