"""What identity needs from a store. Every read and write names its tenant; there is no way to
reach another tenant's users through this port."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bloop.platform.identity.model import Tenant, User
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.outbox import OutboxStore


class Duplicate(Exception):
    """The record (a tenant id, a user's email within its tenant) already exists."""


class IdentityRepository(Protocol):
    @property
    def outbox(self) -> OutboxStore:
        """Where the events written beside each change wait for the relay."""

    async def setup(self) -> None:
        """Creates tables or indexes; safe to call on every start."""

    async def add_tenant(self, tenant: Tenant, events: Sequence[Envelope]) -> None:
        """Stores the tenant and its events atomically; `Duplicate` when the id is taken."""

    async def get_tenant(self, tenant_id: str) -> Tenant | None: ...

    async def add_user(self, user: User, events: Sequence[Envelope]) -> None:
        """Stores the user and its events atomically; `Duplicate` when the email is taken in
        the user's tenant."""

    async def get_user(self, tenant: str, user_id: str) -> User | None: ...

    async def get_user_by_email(self, tenant: str, email: str) -> User | None:
        """`email` is already normalised."""

    async def list_users(self, tenant: str, *, after: str | None = None,
                         limit: int = 50) -> list[User]:
        """Users ordered by email, starting after the email `after`."""
