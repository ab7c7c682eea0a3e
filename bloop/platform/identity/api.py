"""identity's HTTP API: sign-in and tokens, tenants and their settings, users, roles,
invitations, profiles and API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from bloop.platform.identity.model import (
    INVITATION_ID_CHARS,
    SLUG_PATTERN,
    ApiKey,
    Invitation,
    InvitationAcceptance,
    KeyRole,
    NewApiKey,
    NewInvitation,
    NewTenant,
    NewUser,
    PasswordChange,
    PasswordReset,
    ProfileEdit,
    Role,
    RoleChange,
    Scope,
    SignUp,
    Tenant,
    TenantSettingsEdit,
    User,
)
from bloop.platform.identity.service import ApiKeyService, AuthService, IdentityService, TokenGrant
from bloop.platform.kit.auth import TOKEN_URL, Principal, a_person, require
from bloop.platform.kit.auth.principal import PrincipalView
from bloop.platform.kit.errors import Problem
from bloop.platform.kit.idempotency.layer import SECRET_ANSWER
from bloop.platform.kit.middleware import client_ip
from bloop.platform.kit.pagination import After, Page
from bloop.platform.kit.personal_data import PERSONAL_ANSWER, PersonalDataSources
from bloop.platform.kit.problem_docs import documented_problem

TenantId = Annotated[str, Path(pattern=SLUG_PATTERN, description="the tenant's slug")]
UserId = Annotated[str, Path(max_length=64)]
InvitationId = Annotated[str, Path(pattern=rf"^[0-9a-f]{{{INVITATION_ID_CHARS}}}$",
                                   description="the invitation's id")]
EmailAfter = Annotated[str | None, Query(max_length=254, description="the last email seen")]


async def get_service(request: Request) -> IdentityService:
    service: IdentityService = request.app.state.identity.state["service"]
    return service


async def get_auth(request: Request) -> AuthService:
    service: AuthService = request.app.state.identity.state["auth"]
    return service


Svc = Annotated[IdentityService, Depends(get_service)]
AuthSvc = Annotated[AuthService, Depends(get_auth)]

PlatformAdmin = Annotated[Principal, Depends(require("platform_admin", scopes=["identity:write"]))]
PlatformReader = Annotated[Principal, Depends(require("platform_admin", scopes=["identity:read"]))]
TenantAdmin = Annotated[Principal, Depends(require("tenant_admin", scopes=["identity:write"]))]
STAFF_ROLES: tuple[Role, ...] = ("educator", "teaching_assistant", "tenant_admin")
Staff = Annotated[Principal, Depends(require(*STAFF_ROLES, scopes=["identity:read"]))]
Member = Annotated[Principal, Depends(require(scopes=["identity:read"]))]
ProfileScope = Annotated[Principal, Depends(require(scopes=["profile"]))]


async def person(me: ProfileScope) -> Principal:
    return a_person(me)


Self = Annotated[Principal, Depends(person)]
Anyone = Annotated[Principal, Depends(require())]


class TokenRequest(BaseModel):
    """The OAuth2 token request (RFC 6749 §4.3 and §6), plus the tenant signed in to (here or
    in the query string, where Swagger UI's Authorize dialog puts it)."""

    model_config = ConfigDict(extra="forbid")

    grant_type: Literal["password", "refresh_token"]
    tenant: Annotated[str, Field(pattern=SLUG_PATTERN)] | None = None
    username: Annotated[str, Field(max_length=254)] | None = None
    password: Annotated[str, Field(max_length=1024)] | None = None
    refresh_token: Annotated[str, Field(max_length=200)] | None = None
    scope: Annotated[str, Field(max_length=500)] = ""
    client_id: Annotated[str, Field(max_length=200)] | None = None
    client_secret: Annotated[str, Field(max_length=200)] | None = None


class PendingInvitation(BaseModel):
    id: str = Field(description="names the invitation to withdraw it; not its token")
    email: str
    roles: list[Role]
    invited_by: str
    created_at: datetime
    expires_at: datetime

    @classmethod
    def of(cls, invitation: Invitation) -> PendingInvitation:
        return cls(id=invitation.id, email=invitation.email, roles=invitation.roles,
                   invited_by=invitation.invited_by, created_at=invitation.created_at,
                   expires_at=invitation.expires_at)


class InvitationIssued(PendingInvitation):
    token: str = Field(description="send this to the invitee; it is shown only once")


auth_router = APIRouter(tags=["auth"])


@auth_router.post(TOKEN_URL)
async def token(form: Annotated[TokenRequest, Form()], request: Request, response: Response,
                auth: AuthSvc,
                tenant_in_query: Annotated[str | None, Query(alias="tenant", pattern=SLUG_PATTERN)]
                = None) -> TokenGrant:
    """Signs in (`grant_type=password`, username = email) or trades a refresh token for a new
    pair (`grant_type=refresh_token`; the refresh token is spent)."""
    response.headers["Cache-Control"] = "no-store"
    if form.tenant and tenant_in_query and form.tenant != tenant_in_query:
        raise Problem("the form and the query string name different tenants",
                      extra={"error": "invalid_request"}, code="invalid_request")
    tenant = form.tenant or tenant_in_query
    if tenant is None:
        raise Problem("name the tenant to sign in to: the `tenant` field",
                      extra={"error": "invalid_request"}, code="invalid_request")
    if form.grant_type == "password":
        if not form.username or form.password is None:
            raise Problem("the password grant needs a username and a password",
                          extra={"error": "invalid_request"}, code="invalid_request")
        return await auth.login(tenant, form.username, form.password, form.scope,
                                client_ip(request))
    if not form.refresh_token:
        raise Problem("the refresh_token grant needs a refresh_token",
                      extra={"error": "invalid_request"}, code="invalid_request")
    return await auth.refresh(tenant, form.refresh_token, form.scope, client_ip(request))


@auth_router.get("/.well-known/jwks.json")
async def jwks(auth: AuthSvc) -> dict[str, Any]:
    return await auth.keys.jwks()


@auth_router.get("/v1/auth/principal", dependencies=[PERSONAL_ANSWER])
async def principal(me: Anyone) -> PrincipalView:
    """Who the presented credential (an access token or an API key) acts as: its tenant, roles
    and scopes. Processes that run without identity check API keys here."""
    return PrincipalView.of(me)


@auth_router.post("/v1/tenants/{tenant}/auth/logout", status_code=204)
async def logout(tenant: TenantId, me: Anyone, auth: AuthSvc) -> None:
    """Signs out: this access token is refused from now on, and its session's refresh tokens.
    An API key is refused 403 `not_a_person`: a tenant admin revokes it
    (`DELETE …/api-keys/{id}`)."""
    await auth.logout(me)


router = APIRouter(prefix="/v1/tenants", tags=["identity"])


@router.post("", status_code=201)
async def create_tenant(body: NewTenant, service: Svc, _: PlatformAdmin) -> Tenant:
    return await service.create_tenant(body)


@router.get("")
async def list_tenants(
    service: Svc, _: PlatformReader,
    after: Annotated[str | None, Query(max_length=63, description="the last id seen")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[Tenant]:
    """Every tenant of the platform, by id, a page at a time (platform admins only)."""
    tenants = await service.tenants(after=after, limit=limit)
    return Page(items=tenants.items, next=tenants.next)


@router.get("/{tenant}")
async def get_tenant(tenant: TenantId, service: Svc, _: Member) -> Tenant:
    return await service.tenant(tenant)


@router.patch("/{tenant}/settings")
async def update_settings(tenant: TenantId, body: TenantSettingsEdit, service: Svc,
                          _: TenantAdmin) -> Tenant:
    """The tenant's own settings: the email domains whose people may sign up on their own.
    AI spending limits are the AI service's (`…/ai/settings`)."""
    return await service.update_settings(tenant, body)


@router.post("/{tenant}/signup", status_code=201)
async def sign_up(tenant: TenantId, body: SignUp, request: Request, service: Svc,
                  auth: AuthSvc) -> User:
    """Creates a learner account, when the tenant accepts the email's domain. A sign-up counts
    in its address's token-request budget (it hashes a password as a sign-in does)."""
    await auth.admit(client_ip(request))
    return await service.sign_up(tenant, body)


@router.post("/{tenant}/users", status_code=201)
async def register_user(tenant: TenantId, body: NewUser, service: Svc, me: TenantAdmin) -> User:
    return await service.register_user(tenant, body, by=me)


@router.get("/{tenant}/users", dependencies=[PERSONAL_ANSWER])
async def list_users(
    tenant: TenantId, service: Svc, _: Staff,
    after: EmailAfter = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[User]:
    users = await service.users(tenant, after=after, limit=limit)
    return Page(items=users.items, next=users.next)


@router.get("/{tenant}/users/{user_id}", dependencies=[PERSONAL_ANSWER])
async def get_user(tenant: TenantId, user_id: UserId, service: Svc, _: Staff) -> User:
    return await service.user(tenant, user_id)


@router.put("/{tenant}/users/{user_id}/roles")
async def change_roles(tenant: TenantId, user_id: UserId, body: RoleChange, service: Svc,
                       me: TenantAdmin) -> User:
    return await service.change_roles(tenant, user_id, body, by=me)


@router.put("/{tenant}/users/{user_id}/password", status_code=204)
async def reset_password(tenant: TenantId, user_id: UserId, body: PasswordReset, auth: AuthSvc,
                         me: TenantAdmin) -> None:
    """Sets someone's password (one they forgot) and signs out all their sessions."""
    await auth.reset_password(tenant, user_id, body.new_password.get_secret_value(), by=me)


@router.delete("/{tenant}/users/{user_id}", status_code=204)
async def delete_user(tenant: TenantId, user_id: UserId, service: Svc, me: TenantAdmin) -> None:
    await service.delete_user(tenant, user_id, by=me)


@router.post("/{tenant}/invitations", status_code=201, dependencies=[SECRET_ANSWER])
async def invite(tenant: TenantId, body: NewInvitation, service: Svc,
                 me: TenantAdmin) -> InvitationIssued:
    """Invites someone by email; an earlier invitation of the same email stops working."""
    invitation, secret = await service.invite(tenant, body, by=me)
    return InvitationIssued(**PendingInvitation.of(invitation).model_dump(), token=secret)


@router.get("/{tenant}/invitations", dependencies=[PERSONAL_ANSWER])
async def list_invitations(tenant: TenantId, service: Svc, _: TenantAdmin, after: After = None,
                           limit: Annotated[int, Query(ge=1, le=500)] = 100,
                           ) -> Page[PendingInvitation]:
    """The invitations not accepted, withdrawn or expired yet, newest first, never with their
    tokens; a page at a time (`next` is the cursor, `after`, of the following page)."""
    found = await service.invitations(tenant, after=after, limit=limit)
    return Page(items=[PendingInvitation.of(i) for i in found.items], next=found.next)


@router.delete("/{tenant}/invitations/{invitation_id}", status_code=204)
async def withdraw_invitation(tenant: TenantId, invitation_id: InvitationId, service: Svc,
                              _: TenantAdmin) -> None:
    """Withdraws a pending invitation: its token is refused from now on."""
    await service.withdraw_invitation(tenant, invitation_id)


ACCEPTED = "/v1/tenants/demo/invitations/accept"


@router.post("/{tenant}/invitations/accept", status_code=201, responses={
    404: documented_problem("the token is unknown, withdrawn, replaced or expired", 404,
                            "invitation_invalid", "the invitation is unknown, used or expired; "
                            "ask for a new one", instance=ACCEPTED),
    409: documented_problem("the invitation was accepted already (a retry whose answer was "
                            "lost, most likely): its account exists", 409, "invitation_used",
                            "this invitation was accepted already: sign in with its email "
                            "address and the password chosen then", instance=ACCEPTED)})
async def accept_invitation(tenant: TenantId, body: InvitationAcceptance, service: Svc) -> User:
    """Makes the invited account, with the name and password chosen here; the token is spent.
    Sent again once accepted, 409 `invitation_used`."""
    return await service.accept_invitation(tenant, body)


@router.get("/{tenant}/me", dependencies=[PERSONAL_ANSWER])
async def my_profile(tenant: TenantId, service: Svc, me: Self) -> User:
    return await service.user(tenant, me.user_id)


@router.patch("/{tenant}/me")
async def update_my_profile(tenant: TenantId, body: ProfileEdit, service: Svc, me: Self) -> User:
    return await service.update_profile(tenant, me.user_id, body)


@router.put("/{tenant}/me/password", status_code=204)
async def change_my_password(tenant: TenantId, body: PasswordChange, request: Request,
                             auth: AuthSvc, me: Self) -> None:
    """Changes the caller's password, given the current one; their other sessions are signed
    out, this one stays."""
    await auth.change_password(me, body.current_password.get_secret_value(),
                               body.new_password.get_secret_value(), client_ip(request))


async def _export_response(request: Request, tenant: str, user_id: str) -> JSONResponse:
    sources: PersonalDataSources = request.app.state.personal_data
    document = await sources.export(tenant, user_id)
    return JSONResponse(document, headers={
        "Content-Disposition": f'attachment; filename="bloop-{tenant}-{user_id}.json"',
        "Cache-Control": "no-store"})


@router.get("/{tenant}/me/export", response_class=JSONResponse)
async def export_my_data(request: Request, tenant: TenantId, me: Self) -> JSONResponse:
    """Everything the platform holds about the caller, from every service, as one JSON file."""
    return await _export_response(request, tenant, me.user_id)


@router.get("/{tenant}/users/{user_id}/export", response_class=JSONResponse)
async def export_user_data(request: Request, tenant: TenantId, user_id: UserId, service: Svc,
                           _: TenantAdmin) -> JSONResponse:
    """A user's data export, for a tenant admin answering that user's request."""
    await service.user(tenant, user_id)
    return await _export_response(request, tenant, user_id)


@router.delete("/{tenant}/me", status_code=204)
async def delete_my_account(tenant: TenantId, service: Svc, me: Self, auth: AuthSvc) -> None:
    """Deletes the caller's account and signs this session out."""
    await service.delete_user(tenant, me.user_id, by=me)
    await auth.logout(me)


# API keys for third-party apps

async def get_api_keys(request: Request) -> ApiKeyService:
    service: ApiKeyService = request.app.state.identity.state["api_keys"]
    return service


KeySvc = Annotated[ApiKeyService, Depends(get_api_keys)]
KeyReader = Annotated[Principal, Depends(require("tenant_admin", scopes=["identity:read"]))]
KeyId = Annotated[str, Path(pattern=r"^[0-9a-f]{12}$", description="the key's id")]


class ApiKeyView(BaseModel):
    """An API key as listed: never its secret, nor its hash."""

    id: str
    prefix: str = Field(description="how the key starts, to tell keys apart")
    name: str
    scopes: list[Scope]
    roles: list[KeyRole]
    created_by: str
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> ApiKeyView:
        return cls(id=key.id, prefix=key.prefix, name=key.name, scopes=key.scopes,
                   roles=key.roles, created_by=key.created_by, created_at=key.created_at,
                   revoked_at=key.revoked_at)


class ApiKeyIssued(ApiKeyView):
    key: str = Field(description="the key itself, `bloop_<prefix>_<secret>`: it is shown only "
                                 "once; send it as `Authorization: Bearer …` or `X-API-Key`")


@router.post("/{tenant}/api-keys", status_code=201, dependencies=[SECRET_ANSWER])
async def create_api_key(tenant: TenantId, body: NewApiKey, keys: KeySvc, me: TenantAdmin
                         ) -> ApiKeyIssued:
    key, secret = await keys.create(tenant, body, by=me)
    return ApiKeyIssued(**ApiKeyView.of(key).model_dump(), key=secret)


KEY_STATES: dict[str, bool | None] = {"all": None, "live": False, "revoked": True}


@router.get("/{tenant}/api-keys")
async def list_api_keys(tenant: TenantId, keys: KeySvc, _: KeyReader, after: After = None,
                        limit: Annotated[int, Query(ge=1, le=200)] = 50,
                        state: Annotated[Literal["all", "live", "revoked"], Query(
                            description="only the live keys, or only the revoked ones")] = "all",
                        ) -> Page[ApiKeyView]:
    """The tenant's keys, newest first, never their secrets; a page at a time (`next` is the
    cursor, `after`, of the following page)."""
    found = await keys.keys(tenant, revoked=KEY_STATES[state], after=after, limit=limit)
    return Page(items=[ApiKeyView.of(k) for k in found.items], next=found.next)


@router.delete("/{tenant}/api-keys/{key_id}", status_code=204)
async def revoke_api_key(tenant: TenantId, key_id: KeyId, keys: KeySvc, _: TenantAdmin) -> None:
    """Revokes the key: it is refused from the next request on."""
    await keys.revoke(tenant, key_id)
