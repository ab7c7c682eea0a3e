"""identity's HTTP API for external sign-in: a tenant admin configures providers and sees and
removes the accounts' links to them; anyone starts a sign-in (302 to the provider) and comes back
to the callback, which answers with Bloop's tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import RedirectResponse

from bloop.platform.identity.model import SLUG_PATTERN
from bloop.platform.identity.oidc.model import (
    CallbackParams,
    OidcLink,
    ProviderSettings,
    ProviderView,
)
from bloop.platform.identity.oidc.service import OidcService
from bloop.platform.identity.service import TokenGrant
from bloop.platform.kit.auth import Principal, require
from bloop.platform.kit.middleware import client_ip
from bloop.platform.kit.personal_data import PERSONAL_ANSWER

TenantId = Annotated[str, Path(pattern=SLUG_PATTERN, description="the tenant's slug")]
Name = Annotated[str, Path(pattern=SLUG_PATTERN, max_length=40, description="the provider's name")]
UserId = Annotated[str, Path(max_length=64, description="the user's id")]
AdminWrite = Annotated[Principal, Depends(require("tenant_admin", scopes=["identity:write"]))]
AdminRead = Annotated[Principal, Depends(require("tenant_admin", scopes=["identity:read"]))]


async def get_oidc(request: Request) -> OidcService:
    service: OidcService = request.app.state.identity.state["oidc"]
    return service


Oidc = Annotated[OidcService, Depends(get_oidc)]

oidc_router = APIRouter(prefix="/v1/tenants", tags=["sign-in providers"])


@oidc_router.get("/{tenant}/oidc/providers")
async def list_providers(tenant: TenantId, oidc: Oidc, _: AdminRead) -> list[ProviderView]:
    return await oidc.providers(tenant)


@oidc_router.put("/{tenant}/oidc/providers/{name}")
async def put_provider(tenant: TenantId, name: Name, body: ProviderSettings, request: Request,
                       oidc: Oidc, _: AdminWrite) -> ProviderView:
    """Adds or replaces a provider. The client secret is stored and never shown again; the
    callback address, `callback_url` or this request's own, is pinned for every sign-in."""
    here = str(request.url_for("oidc_callback", tenant=tenant, name=name))
    return await oidc.configure(tenant, name, body, here)


@oidc_router.get("/{tenant}/oidc/providers/{name}")
async def get_provider(tenant: TenantId, name: Name, oidc: Oidc, _: AdminRead) -> ProviderView:
    return oidc.view(await oidc.provider(tenant, name))


@oidc_router.delete("/{tenant}/oidc/providers/{name}", status_code=204)
async def delete_provider(tenant: TenantId, name: Name, oidc: Oidc, _: AdminWrite) -> None:
    await oidc.remove(tenant, name)


@oidc_router.get("/{tenant}/users/{user_id}/oidc-links", dependencies=[PERSONAL_ANSWER])
async def list_links(tenant: TenantId, user_id: UserId, oidc: Oidc,
                     _: AdminRead) -> list[OidcLink]:
    """The account's links to a provider's account, made at its first sign-in through one."""
    return await oidc.links(tenant, user_id)


@oidc_router.delete("/{tenant}/users/{user_id}/oidc-links/{name}", status_code=204)
async def delete_link(tenant: TenantId, user_id: UserId, name: Name, oidc: Oidc,
                      me: AdminWrite) -> None:
    """Removes the account's link through the provider: its next sign-in through a provider
    (this one or another) links it again."""
    await oidc.unlink(tenant, user_id, name, me.user_id)


@oidc_router.get("/{tenant}/oidc/{name}/login", status_code=302, response_class=RedirectResponse)
async def login(tenant: TenantId, name: Name, request: Request, oidc: Oidc) -> RedirectResponse:
    """Starts a sign-in: redirects to the provider, which sends the browser back to the
    provider's pinned callback."""
    url = await oidc.begin(tenant, name, client_ip(request))
    return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})


@oidc_router.get("/{tenant}/oidc/{name}/callback", name="oidc_callback")
async def callback(tenant: TenantId, name: Name, params: Annotated[CallbackParams, Query()],
                   request: Request, response: Response, oidc: Oidc) -> TokenGrant:
    """Where the provider sends the browser back: answers with Bloop's access and refresh
    tokens."""
    response.headers["Cache-Control"] = "no-store"
    return await oidc.finish(tenant, name, params, client_ip(request))
