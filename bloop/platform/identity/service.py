"""Identity's use cases. They take a repository (ports.py) and never a driver."""

from __future__ import annotations

from collections.abc import Callable

from bloop.platform.identity.events import TenantCreated, UserRegistered
from bloop.platform.identity.model import NewTenant, NewUser, Tenant, User
from bloop.platform.identity.ports import Duplicate, IdentityRepository
from bloop.platform.kit.errors import Conflict, NotFound
from bloop.platform.kit.events.types import type_of


class IdentityService:
    def __init__(self, repo: IdentityRepository,
                 on_write: Callable[[], None] = lambda: None) -> None:
        """`on_write` runs after each write that stored events (the outbox relay's `wake`)."""
        self.repo = repo
        self._on_write = on_write

    async def create_tenant(self, new: NewTenant) -> Tenant:
        tenant = Tenant.create(new)
        event = type_of(TenantCreated).envelope(
            TenantCreated(tenant_id=tenant.id, name=tenant.name, created_at=tenant.created_at),
            tenant=tenant.id, subject=tenant.id, time=tenant.created_at)
        try:
            await self.repo.add_tenant(tenant, [event])
        except Duplicate:
            raise Conflict(f"the tenant {tenant.id!r} already exists",
                           code="tenant_exists") from None
        self._on_write()
        return tenant

    async def tenant(self, tenant_id: str) -> Tenant:
        tenant = await self.repo.get_tenant(tenant_id)
        if tenant is None:
            raise NotFound(f"no tenant {tenant_id!r}")
        return tenant

    async def register_user(self, tenant_id: str, new: NewUser) -> User:
        await self.tenant(tenant_id)
        user = User.register(tenant_id, new)
        event = type_of(UserRegistered).envelope(
            UserRegistered(user_id=user.id, display_name=user.display_name, roles=user.roles,
                           registered_at=user.created_at),
            tenant=tenant_id, subject=user.id, time=user.created_at)
        try:
            await self.repo.add_user(user, [event])
        except Duplicate:
            raise Conflict(f"a user with the email {user.email!r} already exists in this tenant",
                           code="email_taken") from None
        self._on_write()
        return user

    async def user(self, tenant_id: str, user_id: str) -> User:
        user = await self.repo.get_user(tenant_id, user_id)
        if user is None:
            raise NotFound(f"no user {user_id!r} in tenant {tenant_id!r}")
        return user

    async def users(self, tenant_id: str, *, after: str | None = None,
                    limit: int = 50) -> list[User]:
        await self.tenant(tenant_id)
        return await self.repo.list_users(tenant_id, after=after, limit=limit)
