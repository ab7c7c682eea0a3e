"""Letting the first people in: an operator at the command line opens a tenant and invites its
admin, before anyone can sign in to do it through the API."""

from __future__ import annotations

from bloop.platform.identity.model import Invitation, NewInvitation, NewTenant, Tenant
from bloop.platform.identity.service import IdentityService
from bloop.platform.kit.auth import Principal

OPERATOR = "bloop-cli"  # who an invitation made here says invited


def operator(tenant: str) -> Principal:
    """The operator, who runs the platform and so may grant any role, in `tenant`."""
    return Principal(user_id=OPERATOR, tenant=tenant, roles=frozenset({"platform_admin"}),
                     scopes=frozenset(), token_id="", session_id="", expires_at=0)


async def open_tenant(identity: IdentityService, new: NewTenant,
                      admin: NewInvitation) -> tuple[Tenant, Invitation, str]:
    """Creates the tenant and invites its admin; the invitation's token is shown once."""
    tenant = await identity.create_tenant(new)
    invitation, token = await identity.invite(tenant.id, admin, by=operator(tenant.id))
    return tenant, invitation, token


async def invite(identity: IdentityService, tenant: str,
                 person: NewInvitation) -> tuple[Invitation, str]:
    """An invitation into an existing tenant, with any roles (an admin who lost their way in)."""
    return await identity.invite(tenant, person, by=operator(tenant))
