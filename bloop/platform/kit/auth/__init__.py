from bloop.platform.kit.auth.apikeys import (
    API_KEY_HEADER,
    ApiKeyCredential,
    ApiKeySource,
    is_api_key,
    parse_api_key,
)
from bloop.platform.kit.auth.deps import (
    PUBLIC_ROUTES,
    TOKEN_URL,
    Auth,
    Requirement,
    a_person,
    authorise,
    credentials,
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

__all__ = ["API_KEY_HEADER", "PUBLIC_ROUTES", "ROLES", "SCOPES", "STAFF", "TOKEN_TYPE",
           "TOKEN_URL", "ApiKeyCredential", "ApiKeySource", "Auth", "Forbidden", "KeySource",
           "Principal", "RateLimited", "RateLimiter", "RateState", "RemoteJwks", "Requirement",
           "Role", "Scope", "TokenVerifier", "Unauthenticated", "a_person", "authorise",
           "credentials", "is_api_key", "parse_api_key", "require"]
