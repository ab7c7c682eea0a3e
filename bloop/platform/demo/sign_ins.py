"""The demo people a page may offer to sign in as."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from bloop.platform.demo import data
from bloop.platform.demo.data import Person
from bloop.platform.kit.errors import is_store_down

if TYPE_CHECKING:
    from bloop.platform.identity.service import IdentityService


class DemoSignIns:
    """Only the demo people who still exist with their public password: one an administrator
    deleted or gave a new password is not offered. The verdict is kept for the stored hash, so
    looking at a page hashes no password after the first look."""

    def __init__(self, identity: Callable[[], IdentityService | None],
                 people: Sequence[Person] = data.PEOPLE) -> None:
        self._identity = identity
        self.people = people
        self._verdicts: dict[str, tuple[str, bool]] = {}

    async def offered(self) -> list[Person]:
        """Nobody while identity's store is down (a page is not worth an error)."""
        service = self._identity()
        if service is None:
            return []
        out = []
        for person in self.people:
            try:
                found = await service.repo.get_login(data.TENANT_ID, person.email)
            except Exception as exc:
                if is_store_down(exc):
                    return []
                raise
            if found is not None and found[1] is not None \
                    and await self._works(service, person, found[1]):
                out.append(person)
        return out

    async def _works(self, service: IdentityService, person: Person, hashed: str) -> bool:
        kept = self._verdicts.get(person.email)
        if kept is None or kept[0] != hashed:
            kept = (hashed, await service.hasher.verify(hashed, person.password))
            self._verdicts[person.email] = kept
        return kept[1]
