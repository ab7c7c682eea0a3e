"""Access-token verification: signed JWTs (RFC 9068 `at+jwt`) whose public keys come from a
`KeySource` (identity's key ring in-process, or its JWKS over HTTP in another process)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import time
from typing import Any, Protocol

import httpx
import jwt

from bloop.platform.kit.auth.principal import ROLES, SCOPES, Principal
from bloop.platform.kit.auth.revocations import Revocations
from bloop.platform.kit.cache import Cache
from bloop.platform.kit.errors import Problem, StoreUnavailable
from bloop.platform.kit.settings import AuthSettings

TOKEN_TYPE = "at+jwt"  # noqa: S105  (RFC 9068 media type, not a secret)
_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# A JOSE header (alg, typ and a kid of at most 100 characters) is far shorter.
_HEADER = re.compile(r"^[A-Za-z0-9_-]{2,512}$")
_REQUIRED = ["exp", "iat", "sub", "jti", "aud", "iss", "tid", "sid"]


class KeySource(Protocol):
    async def public_key(self, kid: str) -> Any | None:
        """The verification key `kid` names, or None when no such key is published."""


class Unauthenticated(Problem):
    status, code = 401, "unauthenticated"

    def __init__(self, detail: str, *, code: str = "unauthenticated") -> None:
        value = "Bearer" if code == "unauthenticated" else 'Bearer error="invalid_token"'
        super().__init__(detail, code=code, headers={"WWW-Authenticate": value})


class Forbidden(Problem):
    status, code = 403, "forbidden"


def taken_after_expiry_s(settings: AuthSettings) -> int:
    """How long after its expiry, on this host's clock, an access token may still be taken
    somewhere: the leeway, on a verifier whose clock may be behind this one by as much again
    (and a second, as claims count whole seconds)."""
    return 2 * settings.clock_leeway_s + 1


def revoked_token_key(jti: str) -> str:
    return f"auth:revoked:jti:{jti}"


def revoked_session_key(sid: str) -> str:
    return f"auth:revoked:sid:{sid}"


def revocation_keys(principal: Principal) -> list[str]:
    """The cache entries that refuse the principal's token: its own mark and its session's."""
    return [revoked_token_key(principal.token_id), revoked_session_key(principal.session_id)]


class TokenVerifier:
    VERIFIED_KEPT = 10_000

    def __init__(self, settings: AuthSettings, cache: Cache,
                 revocations: Revocations | None = None) -> None:
        self.settings = settings
        self.cache = cache
        self.revocations = revocations or Revocations(cache)
        self.keys: KeySource | None = None
        # Tokens whose signature and claims were checked, with the key that checked them. A
        # client sends one token for its whole life, so its next requests skip the signature
        # and claim checks as long as the same key is still published; expiry and revocation
        # are checked on every request all the same.
        self._verified: dict[str, tuple[Principal, str, Any]] = {}

    def use_keys(self, keys: KeySource) -> None:
        self.keys = keys

    async def verify(self, token: str) -> Principal:
        """The token's principal; refuses a token that is malformed, forged, expired, signed by
        a key no longer published, or revoked."""
        principal = await self.verify_signed(token)
        await self.refuse_revoked(principal)
        return principal

    async def refuse_revoked(self, principal: Principal) -> None:
        """Refuses the token when it or its session has been revoked."""
        if await self.revocations.any_revoked(revocation_keys(principal)):
            raise Unauthenticated("the token has been revoked", code="token_revoked")

    async def verify_signed(self, token: str) -> Principal:
        """What `verify` checks but revocation, which the caller must check with
        `refuse_revoked` (`require()` counts the call against the rate limit in between)."""
        known = self._verified.get(token)
        if known is not None and self.keys is not None:
            principal, kid, key = known
            if principal.expires_at + self.settings.clock_leeway_s <= time.time():
                self._verified.pop(token, None)  # a concurrent request may have dropped it
                raise Unauthenticated("the token has expired", code="token_expired")
            if await self.keys.public_key(kid) is key:
                return principal
            self._verified.pop(token, None)  # a concurrent request may have dropped it
        principal, kid, key = await self._check(token)
        if len(self._verified) >= self.VERIFIED_KEPT:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = (principal, kid, key)
        return principal

    async def _check(self, token: str) -> tuple[Principal, str, Any]:
        """The token's principal, and the id of the key that verified its signature and the
        key."""
        s = self.settings
        header = _header(token)
        if header.get("alg") != s.algorithm:
            raise Unauthenticated(f"tokens must be signed with {s.algorithm}",
                                  code="invalid_token")
        if header.get("typ") != TOKEN_TYPE:
            raise Unauthenticated("the token is not an access token", code="invalid_token")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > 100:
            raise Unauthenticated("the token names no signing key", code="invalid_token")
        if self.keys is None:
            raise Unauthenticated("this process has no token keys configured",
                                  code="invalid_token")
        key = await self.keys.public_key(kid)
        if key is None:
            raise Unauthenticated("the token's signing key is unknown", code="invalid_token")
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=[s.algorithm], audience=s.audience, issuer=s.issuer,
                options={"require": _REQUIRED}, leeway=s.clock_leeway_s)
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired", code="token_expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("the token is not valid yet (its issuer's clock is ahead of "
                                  "this server's)", code="token_not_yet_valid") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"the token is invalid: {exc}", code="invalid_token") from None
        return _principal(claims), kid, key

    async def revoke(self, principal: Principal) -> None:
        """Refuses the token from now until it expires, and every token of its session."""
        ttl = max(1.0, principal.expires_at - time.time() + taken_after_expiry_s(self.settings))
        await self.revocations.revoke(revoked_token_key(principal.token_id), ttl)
        await self.revoke_session(principal.session_id)

    async def revoke_session(self, session_id: str) -> None:
        await self.revocations.revoke(revoked_session_key(session_id),
                                      self.settings.access_ttl_s + taken_after_expiry_s(self.settings))


def _header(token: str) -> dict[str, Any]:
    """The token's JOSE header, unverified (PyJWT checks it again with the signature)."""
    segment, dot, _ = token.partition(".")
    if not dot or not _HEADER.match(segment):
        raise Unauthenticated("the bearer token is not a JWT", code="invalid_token")
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error, RecursionError):
        raise Unauthenticated("the bearer token is not a JWT", code="invalid_token") from None
    if not isinstance(header, dict):
        raise Unauthenticated("the bearer token is not a JWT", code="invalid_token")
    return header


def _principal(claims: dict[str, Any]) -> Principal:
    roles, scope = claims.get("roles"), claims.get("scope")
    tenant, sub, jti, sid = (claims.get(k) for k in ("tid", "sub", "jti", "sid"))
    if (not isinstance(roles, list) or not all(r in ROLES for r in roles)
            or not isinstance(scope, str) or not all(x in SCOPES for x in scope.split())
            or not isinstance(tenant, str) or not _SLUG.match(tenant)
            or not all(isinstance(v, str) and v for v in (sub, jti, sid))):
        raise Unauthenticated("the token's claims are malformed", code="invalid_token")
    return Principal(user_id=str(sub), tenant=tenant, roles=frozenset(roles),
                     scopes=frozenset(scope.split()), token_id=str(jti), session_id=str(sid),
                     expires_at=int(claims["exp"]))


class RemoteJwks:
    """Keys read from identity's `/.well-known/jwks.json`, for processes that run without
    identity. An unknown `kid` refetches the set, at most once per `min_interval_s`. Identity
    out of reach is 503 (`StoreUnavailable`) for a token whose key is not known yet, tried
    again at most once per `retry_s` meanwhile; tokens of keys known go on working."""

    def __init__(self, url: str, min_interval_s: float = 30.0, timeout_s: float = 2.0,
                 retry_s: float = 1.0) -> None:
        self.url = url
        self.min_interval_s = min_interval_s
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self._keys: dict[str, Any] = {}
        self._jwks: dict[str, dict[str, Any]] = {}
        self._fetched_at = float("-inf")
        self._failed: tuple[float, str] | None = None  # when the last fetch failed, and why
        self._lock = asyncio.Lock()

    async def public_key(self, kid: str) -> Any | None:
        if kid in self._keys:
            return self._keys[kid]
        async with self._lock:
            if kid not in self._keys and time.monotonic() - self._fetched_at >= self.min_interval_s:
                if self._failed is not None and time.monotonic() - self._failed[0] < self.retry_s:
                    raise StoreUnavailable("identity", self._failed[1], retry_after_s=1)
                await self._fetch()
        return self._keys.get(kid)

    async def _fetch(self) -> None:
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                response = await client.get(self.url)
                response.raise_for_status()
                response.json()
        except (httpx.HTTPError, ValueError) as exc:
            self._failed = (time.monotonic(), f"its keys at {self.url} could not be read "
                                              f"({type(exc).__name__})")
            raise StoreUnavailable("identity", self._failed[1], retry_after_s=1) from None
        self._failed = None
        self._fetched_at = time.monotonic()
        keys: dict[str, Any] = {}
        jwks: dict[str, dict[str, Any]] = {}
        for jwk in response.json().get("keys", []):
            try:
                kid = jwk["kid"]
                # An unchanged key keeps its object: the verifier's memo compares keys by `is`.
                same = self._jwks.get(kid) == jwk and kid in self._keys
                keys[kid] = self._keys[kid] if same else jwt.PyJWK(jwk).key
                jwks[kid] = jwk
            except (KeyError, TypeError, jwt.PyJWKError):
                continue
        self._keys, self._jwks = keys, jwks
