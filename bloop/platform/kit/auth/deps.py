"""The one authorisation dependency every non-public route uses, and the list of public routes.

`require(...)` authenticates the bearer token, keeps the caller inside the `{tenant}` of the path
(a platform admin may cross tenants), checks roles and scopes, and counts the call against the
caller's rate limit. An API key (`Authorization: Bearer bloop_…` or `X-API-Key`) passes the same
checks as a service principal of its tenant, and counts against a rate limit of its own
(see `kit.auth.apikeys`). Last, it takes a POST's `Idempotency-Key` for the caller
(`kit.idempotency.layer`), which may answer the request there and then.

The call is counted before the credential's revocation marks are checked, so a call refused as
revoked or forbidden still counts against the caller's rate limit. With the Redis cache, neither
costs a round trip in the common case: revocations are mirrored in every process and calls are
counted in process while the caller is well under its limit (`kit.auth.revocations`,
`kit.auth.ratelimit`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import iter_route_contexts
from fastapi.security import OAuth2PasswordBearer

from bloop.platform.kit.auth.apikeys import (
    API_KEY_HEADER,
    ApiKeySource,
    api_key_header,
    is_api_key,
    parse_api_key,
    revoked_key_mark,
)
from bloop.platform.kit.auth.principal import SCOPES, Principal, Role, Scope
from bloop.platform.kit.auth.ratelimit import RateLimited, RateLimiter
from bloop.platform.kit.auth.revocations import Revocations
from bloop.platform.kit.auth.tokens import Forbidden, TokenVerifier, Unauthenticated
from bloop.platform.kit.cache import Cache
from bloop.platform.kit.idempotency.layer import claim
from bloop.platform.kit.middleware import client_ip
from bloop.platform.kit.settings import AuthSettings

TOKEN_URL = "/v1/auth/token"  # noqa: S105  (a route, not a secret)

PUBLIC_ROUTES: frozenset[tuple[str, str]] = frozenset({
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/favicon.ico"),
    ("GET", "/"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
    ("GET", "/openapi.json"),
    ("GET", "/.well-known/jwks.json"),
    ("POST", TOKEN_URL),
    ("POST", "/v1/tenants/{tenant}/signup"),
    ("POST", "/v1/tenants/{tenant}/invitations/accept"),
    ("GET", "/v1/tenants/{tenant}/oidc/{name}/login"),
    ("GET", "/v1/tenants/{tenant}/oidc/{name}/callback"),
    ("GET", "/v1/tenants/{tenant}/ai/links/{job}/{name}"),  # its signature is the credential
    ("GET", "/v1/tenants/{tenant}/media/{media}/signed"),  # likewise
})

NEVER_LIMITED: frozenset[str] = frozenset({
    "/healthz", "/readyz", "/metrics",  # probes and scrapers
    "/v1/tenants/{tenant}/ai/links/{job}/{name}",  # a signed link: its signature (one HMAC,
    "/v1/tenants/{tenant}/media/{media}/signed",  # checked before any read) is its credential
})
"""Paths never answered 429 by a rate limit."""
ANONYMOUS_UNCOUNTED: frozenset[str] = NEVER_LIMITED | {
    TOKEN_URL, "/v1/tenants/{tenant}/signup", "/v1/tenants/{tenant}/oidc/{name}/login"}
"""Paths the anonymous limit leaves alone: `NEVER_LIMITED`, and the sign-ins, which their
address's own budgets limit (`token_rate_limit`, the OIDC `login_rate_limit`), so that pages
asked from an address never keep its people from signing in."""

bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False,
                              scopes={s: s for s in SCOPES})


class Auth:
    """What the dependency needs at request time; one per process, on `Platform.auth`."""

    def __init__(self, settings: AuthSettings, cache: Cache,
                 revocations: Revocations | None = None) -> None:
        self.settings = settings
        self.revocations = revocations or Revocations(cache)
        self.verifier = TokenVerifier(settings, cache, self.revocations)
        share, sync_s = settings.rate_local_share, settings.rate_sync_s
        self.limiter = RateLimiter(cache, settings.rate_limit, settings.rate_window_s,
                                   local_share=share, sync_s=sync_s)
        self.key_limiter = RateLimiter(cache, settings.api_key_rate_limit,
                                       settings.api_key_rate_window_s, local_share=share,
                                       sync_s=sync_s)
        self.anonymous = RateLimiter(cache, settings.anonymous_rate_limit,
                                     settings.anonymous_rate_window_s, local_share=share,
                                     sync_s=sync_s)
        self.api_keys: ApiKeySource | None = None

    async def start(self) -> None:
        await self.revocations.start()

    async def close(self) -> None:
        await self.limiter.close()
        await self.key_limiter.close()
        await self.anonymous.close()
        await self.revocations.close()

    async def count_anonymous(self, address: str) -> None:
        """Counts a request without a credential, or with one refused 401, against its client
        `address`; `RateLimited` past the address's limit."""
        state = await self.anonymous.hit(f"anon:{address}")
        if not state.allowed:
            raise RateLimited(state, "anonymous")

    def use_api_keys(self, source: ApiKeySource) -> None:
        self.api_keys = source

    async def authenticate_key(self, raw: str) -> tuple[Principal, list[str]]:
        """The service principal an API key acts as, and the mark that refuses the key once
        revoked (the caller checks it, after counting the call); 401 when the key is malformed,
        unknown, or revoked in its record."""
        key = parse_api_key(raw)
        if key is None:
            raise Unauthenticated("the API key is malformed: it reads bloop_<prefix>_<secret>",
                                  code="invalid_token")
        if self.api_keys is None:
            raise Unauthenticated("this process runs without identity and accepts no API keys "
                                  "(BLOOP_AUTH_API_KEYS_URL is unset)", code="invalid_token")
        return await self.api_keys.authenticate(key), [revoked_key_mark(key.tenant, key.key_id)]


class Requirement:
    """A route's requirement: one of `roles` (any member when empty) and every one of `scopes`."""

    def __init__(self, roles: Iterable[Role], scopes: Iterable[Scope]) -> None:
        self.roles: frozenset[str] = frozenset(roles)
        self.scopes: frozenset[str] = frozenset(scopes)

    def __repr__(self) -> str:
        return f"require(roles={sorted(self.roles)}, scopes={sorted(self.scopes)})"

    async def __call__(self, request: Request, response: Response) -> Principal:
        # The headers are read here rather than through `bearer` and `api_key_header` as
        # sub-dependencies, which cost a fifth of the whole check; `document_security` puts
        # their schemes back in the OpenAPI document.
        auth: Auth = request.app.state.platform.auth
        headers = request.headers
        api_key = headers.get(API_KEY_HEADER)
        scheme, _, token = (headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer":
            token = ""
        by_key = api_key is not None or bool(token and is_api_key(token))
        revocation: list[str] = []
        try:
            if by_key:
                if api_key is not None and token:
                    raise Unauthenticated("send one credential: an `Authorization` header or "
                                          "an `X-API-Key` header, not both", code="invalid_token")
                principal, revocation = await auth.authenticate_key(api_key or token or "")
            elif not token:
                raise Unauthenticated("sign in first: this route needs an `Authorization: "
                                      "Bearer` access token")
            else:
                principal = await auth.verifier.verify_signed(token)
        except Unauthenticated:
            # A request without these headers was counted as anonymous as it came in
            # (`kit.middleware`); one whose credential is refused counts so here.
            if api_key is not None or "authorization" in headers:
                await auth.count_anonymous(client_ip(request))
            raise
        if by_key:
            state = await auth.key_limiter.hit(f"key:{principal.tenant}:{principal.user_id}")
            limit = "api_keys"
            if await auth.revocations.any_revoked(revocation):
                raise Unauthenticated("the API key has been revoked", code="token_revoked")
        else:
            state = await auth.limiter.hit(f"user:{principal.tenant}:{principal.user_id}")
            limit = "requests"
            await auth.verifier.refuse_revoked(principal)
        tenant = request.path_params.get("tenant")
        authorise(principal, tenant, self.roles, self.scopes)
        if not state.allowed:
            raise RateLimited(state, limit)
        response.raw_headers.extend(state.raw_headers())
        await claim(request, tenant, (principal.tenant, principal.kind, principal.user_id))
        return principal


def authorise(principal: Principal, tenant: str | None, roles: Iterable[str] = (),
              scopes: Iterable[str] = ()) -> None:
    """Refuses a caller outside `tenant` (a platform admin may cross), holding none of `roles`
    (any member when empty), or lacking one of `scopes`."""
    if tenant is not None and not principal.may_enter(tenant):
        raise Forbidden("the token belongs to another tenant", code="wrong_tenant")
    wanted = frozenset(roles)
    if wanted and not principal.has_any(wanted):
        raise Forbidden(f"this needs one of the roles {', '.join(sorted(wanted))}",
                        code="missing_role")
    missing = sorted(frozenset(scopes) - principal.scopes)
    if missing:
        raise Forbidden(f"the token lacks the scope {', '.join(missing)}",
                        code="insufficient_scope")


def require(*roles: Role, scopes: Iterable[Scope] = ()) -> Requirement:
    return Requirement(roles, scopes)


def a_person(me: Principal) -> Principal:
    """The caller of a `…/me` route or field, who must be a person: an API key acts for its
    tenant and has no account, profile or learning of its own (403 `not_a_person`)."""
    if me.kind != "user":
        raise Forbidden("an API key is not a person: it has no account, profile or learning of "
                        "its own; call this with a person's access token", code="not_a_person")
    return me


def credentials(headers: Mapping[str, str]) -> dict[str, str]:
    """The caller's credential headers as it sent them (a bearer token or an API key), for a
    call made on its behalf to another Bloop service, which then refuses what it would refuse
    the caller."""
    return {name: value for name in ("Authorization", API_KEY_HEADER)
            if (value := headers.get(name)) is not None}


def requirements(dependant: Dependant) -> Iterator[Requirement]:
    """The `require()` dependencies a route's dependency tree holds."""
    for dep in dependant.dependencies:
        if isinstance(dep.call, Requirement):
            yield dep.call
        yield from requirements(dep)


def document_security(app: FastAPI) -> None:
    """Names, in the app's OpenAPI document, the credentials each guarded route accepts: an
    OAuth2 bearer token (the password flow of `TOKEN_URL`) or an API key."""
    build = app.openapi
    schemes = {"OAuth2PasswordBearer": bearer.model, "APIKeyHeader": api_key_header.model}

    def openapi() -> dict[str, Any]:
        schema = build()
        components = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        for name, model in schemes.items():
            components[name] = model.model_dump(mode="json", by_alias=True, exclude_none=True)
        for route in iter_route_contexts(app.routes):
            dependant = getattr(route, "dependant", None)
            if isinstance(dependant, Dependant) and any(requirements(dependant)):
                for method in route.methods or ():
                    operation = schema.get("paths", {}).get(route.path_format, {}).get(
                        method.lower())
                    if operation is not None:
                        operation["security"] = [{name: []} for name in schemes]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
