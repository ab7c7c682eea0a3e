from bloop.platform.kit.auth.deps import (
    PUBLIC_ROUTES,
    TOKEN_URL,
    Auth,
    Requirement,
    authorise,
    require,
)
from bloop.platform.kit.auth.principal import ROLES, SCOPES, STAFF, Principal, Role, Scope
from bloop.platform.kit.auth.ratelimit import RateLimited, RateLimiter, RateState
from bloop.platform.kit.auth.tokens import (
    TOKEN_TYPE,
    Forbidden,
    KeySource,
    RemoteJwks,
    TokenVerifier,
    Unauthenticated,
)

__all__ = ["PUBLIC_ROUTES", "ROLES", "SCOPES", "STAFF", "TOKEN_TYPE", "TOKEN_URL", "Auth",
           "Forbidden", "KeySource", "Principal", "RateLimited", "RateLimiter", "RateState",
           "RemoteJwks", "Requirement", "Role", "Scope", "TokenVerifier", "Unauthenticated",
           "authorise", "require"]
