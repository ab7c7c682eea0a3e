"""identity's HTTP API: tenants and their users.

The next step is authentication: sessions and tokens issued here, and a kit dependency that puts
the caller's tenant and roles on each request, so these routes can require `tenant_admin` to
create users and `platform_admin` to create tenants.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from bloop.platform.identity.model import SLUG_PATTERN, NewTenant, NewUser, Tenant, User
from bloop.platform.identity.service import IdentityService
from bloop.platform.kit.pagination import Page

TenantId = Annotated[str, Path(pattern=SLUG_PATTERN, description="the tenant's slug")]


def get_service(request: Request) -> IdentityService:
    service: IdentityService = request.app.state.identity.state["service"]
    return service


Svc = Annotated[IdentityService, Depends(get_service)]

router = APIRouter(prefix="/v1/tenants", tags=["identity"])


@router.post("", status_code=201)
async def create_tenant(body: NewTenant, service: Svc) -> Tenant:
    return await service.create_tenant(body)


@router.get("/{tenant}")
async def get_tenant(tenant: TenantId, service: Svc) -> Tenant:
    return await service.tenant(tenant)


@router.post("/{tenant}/users", status_code=201)
async def register_user(tenant: TenantId, body: NewUser, service: Svc) -> User:
    return await service.register_user(tenant, body)


@router.get("/{tenant}/users")
async def list_users(
    tenant: TenantId, service: Svc,
    after: Annotated[str | None, Query(max_length=254, description="the last email seen")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[User]:
    users = await service.users(tenant, after=after, limit=limit)
    return Page(items=users, next=users[-1].email if len(users) == limit else None)


@router.get("/{tenant}/users/{user_id}")
async def get_user(tenant: TenantId, user_id: Annotated[str, Path(max_length=64)],
                   service: Svc) -> User:
    return await service.user(tenant, user_id)
