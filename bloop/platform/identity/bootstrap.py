"""Letting the first people in: an operator at the command line opens a tenant and invites its
admin, before anyone can sign in to do it through the API."""

from __future__ import annotations

from dataclasses import dataclass

from bloop.platform.identity.model import Invitation, NewInvitation, NewTenant, Tenant
from bloop.platform.identity.service import IdentityService
from bloop.platform.kit.auth import Principal
from bloop.platform.kit.errors import Conflict

OPERATOR = "bloop-cli"  # who an invitation made here says invited


def operator(tenant: str) -> Principal:
    """The operator, who runs the platform and so may grant any role, in `tenant`."""
    return Principal(user_id=OPERATOR, tenant=tenant, roles=frozenset({"platform_admin"}),
                     scopes=frozenset(), token_id="", session_id="", expires_at=0)


@dataclass(frozen=True)
class Opened:
    tenant: Tenant
    invitation: Invitation
    token: str  # shown once
    resumed: bool
    """The tenant was there already, with no one in it and no one invited: an earlier
    `open_tenant` made it, then failed to invite its admin, and this one only invites."""


async def open_tenant(identity: IdentityService, new: NewTenant,
                      admin: NewInvitation) -> Opened:
    """Creates the tenant and invites its admin. Run again with the same id and name after the
    invitation failed (the tenant has no member and no pending invitation), it only invites."""
    resumed = False
    try:
        tenant = await identity.create_tenant(new)
    except Conflict:
        tenant = await identity.tenant(new.id)
        if tenant.name != new.name or not await _empty(identity, tenant.id):
            raise Conflict(f"the tenant {new.id!r} already exists; to invite someone into it, "
                           f"run `bloop tenant invite {new.id} EMAIL`",
                           code="tenant_exists") from None
        resumed = True
    invitation, token = await identity.invite(tenant.id, admin, by=operator(tenant.id))
    return Opened(tenant, invitation, token, resumed)


async def _empty(identity: IdentityService, tenant: str) -> bool:
    """Whether the tenant has no user and no pending invitation."""
    return (not (await identity.users(tenant, limit=1)).items
            and not (await identity.invitations(tenant, limit=1)).items)


async def invite(identity: IdentityService, tenant: str,
                 person: NewInvitation) -> tuple[Invitation, str]:
    """An invitation into an existing tenant, with any roles (an admin who lost their way in)."""
    return await identity.invite(tenant, person, by=operator(tenant))
