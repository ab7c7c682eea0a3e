"""The one authorisation dependency every non-public route uses, and the list of public routes.

`require(...)` authenticates the bearer token, keeps the caller inside the `{tenant}` of the path
(a platform admin may cross tenants), checks roles and scopes, and counts the call against the
caller's rate limit."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

from fastapi import Depends, Request, Response
from fastapi.security import OAuth2PasswordBearer

from bloop.platform.kit.auth.principal import SCOPES, Principal, Role, Scope
from bloop.platform.kit.auth.ratelimit import RateLimited, RateLimiter
from bloop.platform.kit.auth.tokens import Forbidden, TokenVerifier, Unauthenticated
from bloop.platform.kit.cache import Cache
from bloop.platform.kit.settings import AuthSettings

TOKEN_URL = "/v1/auth/token"  # noqa: S105  (a route, not a secret)

PUBLIC_ROUTES: frozenset[tuple[str, str]] = frozenset({
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
    ("GET", "/openapi.json"),
    ("GET", "/.well-known/jwks.json"),
    ("POST", TOKEN_URL),
    ("POST", "/v1/tenants/{tenant}/signup"),
    ("POST", "/v1/tenants/{tenant}/invitations/accept"),
})

bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False,
                              scopes={s: s for s in SCOPES})


class Auth:
    """What the dependency needs at request time; one per process, on `Platform.auth`."""

    def __init__(self, settings: AuthSettings, cache: Cache) -> None:
        self.settings = settings
        self.verifier = TokenVerifier(settings, cache)
        self.limiter = RateLimiter(cache, settings.rate_limit, settings.rate_window_s)


class Requirement:
    """A route's requirement: one of `roles` (any member when empty) and every one of `scopes`."""

    def __init__(self, roles: Iterable[Role], scopes: Iterable[Scope]) -> None:
        self.roles: frozenset[str] = frozenset(roles)
        self.scopes: frozenset[str] = frozenset(scopes)

    def __repr__(self) -> str:
        return f"require(roles={sorted(self.roles)}, scopes={sorted(self.scopes)})"

    async def __call__(self, request: Request, response: Response,
                       token: Annotated[str | None, Depends(bearer)]) -> Principal:
        auth: Auth = request.app.state.platform.auth
        if not token:
            raise Unauthenticated("sign in first: this route needs an `Authorization: Bearer` "
                                  "access token")
        principal = await auth.verifier.verify(token)
        authorise(principal, request.path_params.get("tenant"), self.roles, self.scopes)
        state = await auth.limiter.hit(f"user:{principal.tenant}:{principal.user_id}")
        if not state.allowed:
            raise RateLimited(state)
        response.headers.update(state.headers())
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
