"""Sign-in through a tenant's external identity providers: OpenID Connect (Google, Microsoft, any
issuer with a discovery document) and GitHub, which speaks plain OAuth2.

A sign-in goes out with `state`, `nonce` and a PKCE (S256) challenge; the state is kept in the
cache for a few minutes, bound to the tenant and provider, and spent on its first use. The
callback trades the code (authlib), checks the ID token (signature against the provider's JWKS,
issuer, audience, expiry, nonce; joserfc), requires a verified email at an allowed domain, and
issues Bloop's own tokens for the account the provider's account (its `sub`) is linked to. An
unlinked one is linked, at this first sign-in, to the tenant's user with that email (unless a self
sign-up made it, its email never proved: 409 `email_unverified`; or it is linked already: 409
`oidc_linked_elsewhere`) or to a new learner. Each sign-in and refusal goes to the security
log. The callback address given to the provider is never the request's own (its Host header is
anyone's to write): it is pinned when an admin configures the provider, or set by the operator."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import logging
import math
import secrets
import time
import unicodedata
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Annotated, Any, Literal, Protocol
from urllib.parse import urlsplit

import httpx
from joserfc import jwt
from joserfc.errors import ClaimError, ExpiredTokenError, JoseError
from joserfc.jwk import KeySet
from pydantic import BaseModel, ConfigDict, Field, SecretStr, StrictBool, StringConstraints

from bloop.platform.identity.model import Domain, NewUser, User, normalise_email, now
from bloop.platform.identity.service import AuthService, IdentityService, TokenGrant
from bloop.platform.kit.auth import RateLimited, RateLimiter
from bloop.platform.kit.cache import Cache
from bloop.platform.kit.errors import Conflict, NotFound, Problem
from bloop.platform.kit.read_back import Tolerant
from bloop.platform.kit.settings import OidcSettings
from bloop.platform.kit.text import NonBlankLine, one_line
from bloop.platform.kit.urls import (
    USERINFO_PROBLEM,
    has_userinfo,
    http_url_problem,
    masked_url,
    private_address_problem,
)

# authlib's httpx client runs on the httpx2 fork (which `openai` brings), not on the platform's
# httpx, and raises its errors; without httpx2 it falls back to httpx, and warns: not for us.
with warnings.catch_warnings():
    from authlib.deprecate import AuthlibDeprecationWarning  # installs authlib's filter first

    warnings.filterwarnings("ignore", "The httpx module is deprecated", AuthlibDeprecationWarning)
    from authlib.integrations.base_client import OAuthError
    from authlib.integrations.httpx_client import AsyncOAuth2Client
    from authlib.integrations.httpx_client._compat import httpx2 as authlib_http

# What a provider's HTTP exchange may fail with, whichever client made it.
HTTP_ERRORS: tuple[type[Exception], ...] = (httpx.HTTPError, authlib_http.HTTPError, ValueError)

Preset = Literal["google", "microsoft", "github"]
Kind = Literal["oidc", "github"]

GOOGLE_ISSUER = "https://accounts.google.com"
MICROSOFT_ISSUER = "https://login.microsoftonline.com/{tenant}/v2.0"
GITHUB_AUTHORIZE = "https://github.com/login/oauth/authorize"
GITHUB_TOKEN = "https://github.com/login/oauth/access_token"  # noqa: S105  (a URL)
GITHUB_API = "https://api.github.com"
OIDC_SCOPES = ["openid", "email", "profile"]
GITHUB_SCOPES = ["read:user", "user:email"]
# Asymmetric algorithms only: an HS256 ID token would be signed with the client secret.
ID_TOKEN_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
                       "ES512", "EdDSA")
# `/oidc/providers/...` holds the configuration routes, so no provider may be called that.
RESERVED_NAMES = frozenset({"providers"})
# The most a provider's answer (a document, a token, a GitHub API response) may hold.
MAX_RESPONSE_BYTES = 1024 * 1024
# An ID token naming a key the cached JWKS lacks downloads it again at most this often.
KEY_REFRESH_S = 60.0
# Unicode categories of characters an address a provider vouches for may not hold: invisible
# ones (format: zero-width space, soft hyphen, bidirectional marks) and control characters.
UNUSABLE_CATEGORIES = frozenset({"Cf", "Cc"})

security = logging.getLogger("bloop.security")

PROVIDER_URLS = ("issuer", "discovery_url", "authorization_endpoint", "token_endpoint", "api_url",
                 "callback_url")

log = logging.getLogger("bloop.identity.oidc")


Url = Annotated[str, StringConstraints(strip_whitespace=True, min_length=8, max_length=2048)]
ScopeToken = Annotated[str, StringConstraints(pattern=r"^[\x21\x23-\x5B\x5D-\x7E]{1,100}$")]
AzureTenant = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]{0,99}$")]


class ProviderSettings(Tolerant):
    """A tenant admin's configuration of one provider (the body of the PUT)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    preset: Preset | None = Field(
        default=None, description="google, microsoft or github fill in the provider's addresses; "
        "without one, `issuer` or `discovery_url` names an OpenID Connect provider")
    issuer: Url | None = Field(default=None, description="the OpenID Connect issuer")
    discovery_url: Url | None = Field(
        default=None, description="the discovery document; `{issuer}/.well-known/"
        "openid-configuration` when unset")
    microsoft_tenant: AzureTenant | None = Field(
        default=None, description="with the microsoft preset: the directory (tenant id or "
        "domain), or `organizations` / `common` for any work account")
    authorization_endpoint: Url | None = Field(
        default=None, description="with the github preset: GitHub Enterprise Server's address")
    token_endpoint: Url | None = Field(default=None, description="with the github preset")
    api_url: Url | None = Field(default=None, description="with the github preset: the REST "
                                "API root (https://api.github.com)")
    client_id: NonBlankLine[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                             max_length=300)]]
    client_secret: Annotated[SecretStr, Field(min_length=1, max_length=500)] | None = Field(
        default=None, description="stored, never returned; may be left out when replacing a "
        "configuration that has one")
    scopes: Annotated[list[ScopeToken], Field(min_length=1, max_length=30)] | None = Field(
        default=None, description="openid email profile (OpenID Connect) or read:user "
        "user:email (GitHub) when unset")
    allowed_email_domains: Annotated[list[Domain], Field(max_length=50)] = Field(
        default_factory=list, description="only emails at these domains may sign in; any "
        "domain when empty")
    create_users: StrictBool = Field(default=False, description="create a learner account on the "
                               "first sign-in of an email the tenant does not know")
    callback_url: Url | None = Field(
        default=None, description="where the provider sends people back, to register there as "
        "is: this provider's `/v1/tenants/{tenant}/oidc/{name}/callback` at the API's public "
        "address; when unset, the one this request was sent to (BLOOP_OIDC_PUBLIC_URL's when "
        "the operator set it, which then always wins)")


class OidcProvider(Tolerant):
    """A tenant's provider as stored, its secret included."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant: str
    name: str
    kind: Kind
    preset: Preset | None = None
    issuer: str | None = None
    discovery_url: str | None = None
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    api_url: str | None = None
    client_id: str
    client_secret: str
    scopes: list[str]
    allowed_email_domains: list[str]
    create_users: bool
    updated_at: datetime
    callback_url: str | None = None  # None: configured before callbacks were pinned

    def view(self, callback_url: str | None) -> ProviderView:
        """The provider as shown, with the callback address sign-ins use, and the user name and
        password of an address stored before they were refused as `***`."""
        shown = self.model_dump(exclude={"client_secret"})
        for field in PROVIDER_URLS:
            if shown[field] is not None:
                shown[field] = masked_url(shown[field])
        return ProviderView.model_validate({**shown, "callback_url": callback_url})

    def allows(self, email: str) -> bool:
        return (not self.allowed_email_domains
                or email.rpartition("@")[2] in self.allowed_email_domains)


class ProviderView(BaseModel):
    """A provider as the API shows it: everything but the client secret."""

    tenant: str
    name: str
    kind: Kind
    preset: Preset | None = None
    issuer: str | None = None
    discovery_url: str | None = None
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    api_url: str | None = None
    client_id: str
    scopes: list[str]
    allowed_email_domains: list[str]
    create_users: bool
    updated_at: datetime
    has_client_secret: bool = True
    callback_url: str | None = Field(
        description="the address the provider sends people back to: register exactly this one "
        "there; null for a provider configured before callbacks were pinned, which signs nobody "
        "in until it is configured again")


class OidcLink(Tolerant):
    """A provider's account (its `sub`) joined to a Bloop account at its first sign-in: later
    sign-ins of that `sub` come into this account, whatever email the provider names then."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant: str
    provider: str
    subject: str
    user_id: str
    email: str = Field(description="the email the provider named when the link was made")
    linked_at: datetime


class OidcProviderStore(Protocol):
    """Where each tenant's provider configurations, and the accounts linked through them,
    live; every call names its tenant."""

    async def setup(self) -> None: ...

    async def put_provider(self, provider: OidcProvider, *, keep_secret: bool = False) -> bool:
        """Adds the provider, or replaces the tenant's provider of the same name. With
        `keep_secret`, the stored provider's secret stays as it is at the write, whatever
        `provider` carries; False (nothing written) when no provider of the name is stored."""

    async def get_provider(self, tenant: str, name: str) -> OidcProvider | None: ...

    async def list_providers(self, tenant: str) -> list[OidcProvider]:
        """The tenant's providers, ordered by name."""

    async def delete_provider(self, tenant: str, name: str) -> bool:
        """True when the provider existed; its links go with it."""

    async def add_link(self, link: OidcLink) -> bool:
        """Stores the link; False (nothing stored) when the provider's `subject` or the
        account already has one (an account holds one link at a time)."""

    async def get_link(self, tenant: str, provider: str, subject: str) -> OidcLink | None: ...

    async def links_of(self, tenant: str, user_id: str) -> list[OidcLink]:
        """The account's links, ordered by provider."""

    async def delete_link(self, tenant: str, user_id: str, provider: str) -> bool:
        """True when the account had a link through `provider`."""

    async def forget_links(self, tenant: str, provider: str) -> int:
        """Drops every link made through the provider; how many."""


class CallbackParams(BaseModel):
    """What the provider sends back to the callback (RFC 6749 §4.1.2 and §4.1.2.1)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    state: Annotated[str, StringConstraints(max_length=200)] | None = None
    code: Annotated[str, StringConstraints(max_length=4096)] | None = None
    error: Annotated[str, StringConstraints(max_length=200)] | None = None
    error_description: Annotated[str, StringConstraints(max_length=1000)] | None = None


class ExternalIdentity(BaseModel):
    subject: str
    email: str
    email_verified: bool
    name: str | None = None


def _refuse(detail: str, code: str, status: int = 400) -> Problem:
    return Problem(detail, status=status, code=code)


def _state_invalid(detail: str) -> Problem:
    return _refuse(f"{detail}; start the sign-in again", "oidc_state_invalid")


def _id_token_invalid(detail: str) -> Problem:
    return _refuse(f"the provider's ID token was refused: {detail}", "oidc_id_token_invalid", 401)


def _unreachable(detail: str) -> Problem:
    return _refuse(f"the identity provider could not be reached or answered badly: {detail}",
                   "oidc_provider_unavailable", 502)


def _linked_elsewhere(email: str) -> Problem:
    return _refuse(f"the account of {email} is linked to another account at a sign-in provider; "
                   "a tenant administrator removes that link (the user's oidc-links) before this "
                   "one can sign in to it", "oidc_linked_elsewhere", 409)


def email_unusable(email: str) -> bool:
    """Whether a provider's address could pass for another once compared (`.lower()` folds the
    Kelvin sign onto a K) or looks like one it is not (a zero-width space or soft hyphen)."""
    return (unicodedata.normalize("NFKC", email) != email
            or any(unicodedata.category(ch) in UNUSABLE_CATEGORIES for ch in email))


def _accounts_of(provider: OidcProvider) -> tuple[str | None, ...]:
    """What decides whose account a provider's `sub` is: its issuer (or GitHub's API) and the
    app registered there."""
    return provider.kind, provider.issuer, provider.api_url, provider.client_id


def state_key(state: str) -> str:
    return f"oidc:state:{state}"


@dataclass
class _Attempt:
    """What the security log tells of a provider's sign-in, as far as it got."""

    tenant: str
    provider: str
    client_ip: str
    subject: str | None = None
    email: str | None = None
    user_id: str | None = None


def callback_path(tenant: str, name: str) -> str:
    return f"/v1/tenants/{tenant}/oidc/{name}/callback"


def verify_id_token(id_token: str, jwks: Mapping[str, Any], *, issuer: str, client_id: str,
                    nonce: str, algorithms: list[str], now_s: int, leeway_s: int) -> dict[str, Any]:
    """The ID token's claims, once its signature (a key of `jwks`), issuer, audience, expiry and
    nonce hold (OpenID Connect Core §3.1.3.7). `issuer` may hold Microsoft's `{tenantid}`
    marker, which the token's own `tid` claim fills in."""
    try:
        keys = KeySet.import_key_set(dict(jwks))  # type: ignore[arg-type]
        token = jwt.decode(id_token, keys, algorithms=algorithms)
    except (JoseError, ValueError, TypeError) as exc:
        raise _id_token_invalid(f"its signature does not verify ({exc.__class__.__name__})") \
            from None
    claims = token.claims
    expected = issuer
    if "{tenantid}" in issuer and isinstance(claims.get("tid"), str):
        expected = issuer.replace("{tenantid}", claims["tid"])
    registry = jwt.JWTClaimsRegistry(
        now=now_s, leeway=leeway_s, iss={"essential": True, "value": expected},
        aud={"essential": True, "value": client_id}, exp={"essential": True},
        iat={"essential": True}, sub={"essential": True}, nonce={"essential": True, "value": nonce})
    try:
        registry.validate(claims)
    except ExpiredTokenError:
        raise _id_token_invalid("it has expired") from None
    except ClaimError as exc:
        raise _id_token_invalid(f"the claim {exc.claim} is missing or wrong") from None
    audience = claims["aud"]
    if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != client_id:
        raise _id_token_invalid("it names several audiences but is not authorised for this client")
    return claims


async def _capped(response: httpx.Response) -> None:
    """A response hook (of httpx's clients and authlib's): reads the body before the client
    would read it whole, refusing it past MAX_RESPONSE_BYTES."""
    declared = response.headers.get("content-length", "")
    too_large = _unreachable(f"{response.request.url}: the answer is larger than "
                             f"{MAX_RESPONSE_BYTES // 1024} KiB")
    if declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
        raise too_large
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > MAX_RESPONSE_BYTES:
            raise too_large
    response._content = bytes(body)  # what `aread()` keeps, and then returns without reading


class _Fetched:
    def __init__(self, value: dict[str, Any], until: float) -> None:
        self.value, self.until = value, until


class OidcService:
    def __init__(self, store: OidcProviderStore, identity: IdentityService, auth: AuthService,
                 cache: Cache, settings: OidcSettings,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.identity = identity
        self.auth = auth
        self.cache = cache
        self.settings = settings
        self.clock = clock
        self.limiter = RateLimiter(cache, settings.login_rate_limit, 60)
        self._documents: dict[str, _Fetched] = {}
        self._downloads: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._refreshed: dict[str, float] = {}

    # configuration

    async def configure(self, tenant: str, name: str, body: ProviderSettings,
                        request_callback: str) -> ProviderView:
        """Adds or replaces the provider. Its callback is `body.callback_url`, else the one it
        had (as its secret stays when none is given), else the public URL's, else
        `request_callback`: the callback's address as the admin's own (authenticated) request
        reached the API."""
        if name in RESERVED_NAMES:
            raise _refuse(f"{name!r} is reserved; name the provider otherwise",
                          "oidc_config_invalid", 422)
        await self.identity.tenant(tenant)
        existing = await self.store.get_provider(tenant, name)
        if body.client_secret is not None:
            secret = body.client_secret.get_secret_value()
        elif existing is not None:
            secret = existing.client_secret
        else:
            raise _refuse("a new provider needs its client_secret", "oidc_secret_missing", 422)
        if body.callback_url is not None:
            callback = self._pinned_callback(tenant, name, body.callback_url)
        elif existing is not None and existing.callback_url is not None:
            # A PUT to rotate the secret, sent through a port-forward or past the TLS proxy,
            # would otherwise pin an address the provider does not know, or plain http.
            callback = existing.callback_url
        else:
            callback = self._public_callback(tenant, name) or request_callback
        provider = await self._resolve(tenant, name, body, secret, callback)
        # Without a secret in the body, the one stored at the write stays: one rotated while
        # this request ran is not put back.
        if not await self.store.put_provider(provider, keep_secret=body.client_secret is None):
            raise _refuse("the provider was deleted meanwhile; a new provider needs its "
                          "client_secret", "oidc_secret_missing", 422)
        if existing is not None and _accounts_of(existing) != _accounts_of(provider):
            # Another issuer's (or app's: Microsoft's subjects are per app) `sub` of the same
            # value is someone else: each account is linked again at its next sign-in.
            dropped = await self.store.forget_links(tenant, name)
            log.info("tenant %s: the sign-in provider %s now names other accounts; %d links "
                     "dropped", tenant, name, dropped)
        return self.view(provider)

    def _public_callback(self, tenant: str, name: str) -> str | None:
        public = self.settings.public_url
        return public.rstrip("/") + callback_path(tenant, name) if public else None

    def callback_url(self, provider: OidcProvider) -> str | None:
        """Where sign-ins send the provider's users back: BLOOP_OIDC_PUBLIC_URL's callback when
        set, else the one pinned when the provider was configured."""
        return self._public_callback(provider.tenant, provider.name) or provider.callback_url

    def view(self, provider: OidcProvider) -> ProviderView:
        return provider.view(self.callback_url(provider))

    def _pinned_callback(self, tenant: str, name: str, url: str) -> str:
        """`url`, once it is an address of this provider's callback route (any path before
        it, for a proxy that serves the API under one)."""
        self._check_web_address(url, 422, "oidc_config_invalid", "callback_url")
        path = callback_path(tenant, name)
        if "?" in url or "#" in url or not urlsplit(url).path.endswith(path):
            raise _refuse(f"the callback_url must end with this provider's callback route, "
                          f"{path}, and hold no query or fragment", "oidc_config_invalid", 422)
        return url

    async def _resolve(self, tenant: str, name: str, body: ProviderSettings, secret: str,
                       callback: str) -> OidcProvider:
        endpoints: tuple[str | None, str | None, str | None]
        github_fields = (body.authorization_endpoint, body.token_endpoint, body.api_url)
        if body.preset == "github":
            if body.issuer or body.discovery_url or body.microsoft_tenant:
                raise _refuse("GitHub is not an OpenID Connect provider: it takes no issuer, "
                              "discovery_url nor microsoft_tenant", "oidc_config_invalid", 422)
            kind: Kind = "github"
            issuer, discovery = None, None
            endpoints = (body.authorization_endpoint or GITHUB_AUTHORIZE,
                         body.token_endpoint or GITHUB_TOKEN, body.api_url or GITHUB_API)
        else:
            if any(github_fields):
                raise _refuse("authorization_endpoint, token_endpoint and api_url belong to the "
                              "github preset; OpenID Connect providers publish theirs in their "
                              "discovery document", "oidc_config_invalid", 422)
            if body.microsoft_tenant and body.preset != "microsoft":
                raise _refuse("microsoft_tenant goes with the microsoft preset",
                              "oidc_config_invalid", 422)
            kind = "oidc"
            issuer = body.issuer
            if issuer is None and body.preset == "google":
                issuer = GOOGLE_ISSUER
            if issuer is None and body.preset == "microsoft":
                issuer = MICROSOFT_ISSUER.format(tenant=body.microsoft_tenant or "organizations")
            discovery = body.discovery_url
            if issuer is None and discovery is None:
                raise _refuse("name the provider: a preset (google, microsoft, github), an "
                              "issuer or a discovery_url", "oidc_config_invalid", 422)
            if discovery is None and issuer is not None:
                discovery = issuer.rstrip("/") + "/.well-known/openid-configuration"
            endpoints = (None, None, None)
        for field, url in zip(PROVIDER_URLS[:5], (issuer, discovery, *endpoints), strict=True):
            if url is not None:
                await self._check_url(url, at_use=False, field=field)
        scopes = body.scopes or (GITHUB_SCOPES if kind == "github" else OIDC_SCOPES)
        if kind == "oidc" and "openid" not in scopes:
            scopes = ["openid", *scopes]
        return OidcProvider(
            tenant=tenant, name=name, kind=kind, preset=body.preset, issuer=issuer,
            discovery_url=discovery, authorization_endpoint=endpoints[0],
            token_endpoint=endpoints[1], api_url=endpoints[2], client_id=body.client_id,
            client_secret=secret, scopes=list(dict.fromkeys(scopes)),
            allowed_email_domains=list(dict.fromkeys(body.allowed_email_domains)),
            create_users=body.create_users, updated_at=now(), callback_url=callback)

    async def _check_url(self, url: str, *, at_use: bool = True, field: str | None = None) -> None:
        """Refuses an address of the provider's that is no https URL, holds a user name or
        password, or (unless the operator allows it) is of this machine or a private network:
        422 when given, 502 when used (a discovery document's, or a name that resolves elsewhere
        since)."""
        status, invalid = (502, "oidc_provider_unavailable") if at_use else (
            422, "oidc_config_invalid")
        self._check_web_address(url, status, invalid, field)
        loopback_allowed = (self.settings.allow_http_loopback
                            and _loopback((urlsplit(url).hostname or "").lower()))
        if loopback_allowed or self.settings.private_addresses:
            return
        private = await private_address_problem(url, unresolved_ok=not at_use)
        if private is not None:
            raise _refuse(f"the provider's address {url!r} may not be used: {private}",
                          "private_address", status)

    def _check_web_address(self, url: str, status: int, invalid: str,
                           field: str | None) -> None:
        """Refuses `url` (the `field` of the configuration, if any) unless it is an https URL
        (http on loopback when the operator allows it) without a user name or password, which
        the problem does not repeat."""
        if has_userinfo(url):
            what = f"the {field}" if field else "an address of the provider's"
            raise Problem(f"{what} may not be used: {USERINFO_PROBLEM}", status=status,
                          code="credentials_in_url", extra={"field": field} if field else None)
        problem = http_url_problem(url)
        if problem is not None:
            raise _refuse(f"{url!r} is not a web address: {problem}", invalid, status)
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if not (parts.scheme == "https" and host) and not (
                parts.scheme == "http" and self.settings.allow_http_loopback and _loopback(host)):
            raise _refuse(f"{url!r} is not an https URL", invalid, status)

    async def provider(self, tenant: str, name: str) -> OidcProvider:
        found = await self.store.get_provider(tenant, name)
        if found is None:
            raise NotFound(f"the tenant {tenant!r} has no sign-in provider {name!r}",
                           code="oidc_provider_not_found")
        return found

    async def providers(self, tenant: str) -> list[ProviderView]:
        await self.identity.tenant(tenant)
        return [self.view(p) for p in await self.store.list_providers(tenant)]

    async def remove(self, tenant: str, name: str) -> None:
        if not await self.store.delete_provider(tenant, name):
            raise NotFound(f"the tenant {tenant!r} has no sign-in provider {name!r}",
                           code="oidc_provider_not_found")

    # the sign-in

    async def begin(self, tenant: str, name: str, client_ip: str) -> str:
        """The provider's authorization URL for a new sign-in, whose state is now stored."""
        limit = await self.limiter.hit(f"oidc-login:{client_ip}")
        if not limit.allowed:
            raise RateLimited(limit)
        provider = await self.provider(tenant, name)
        redirect_uri = self.callback_url(provider)
        if redirect_uri is None:
            raise _refuse(f"the sign-in provider {name!r} was configured before its callback "
                          "address was pinned, so it signs nobody in: an administrator puts its "
                          f"configuration again (PUT /v1/tenants/{tenant}/oidc/providers/{name}) "
                          "and registers the callback_url it shows at the provider, or the "
                          "operator sets BLOOP_OIDC_PUBLIC_URL", "oidc_callback_unset", 409)
        if provider.kind == "github":
            authorize = str(provider.authorization_endpoint)
        else:
            with self._told_publicly(provider):
                authorize = await self._endpoint(await self._metadata(provider),
                                                 "authorization_endpoint")
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64)
        extra = {"nonce": nonce} if provider.kind == "oidc" else {}
        async with self._client(provider, redirect_uri) as client:
            url, _ = client.create_authorization_url(authorize, state=state,
                                                     code_verifier=verifier, **extra)
        record = {"tenant": tenant, "provider": name, "nonce": nonce, "verifier": verifier,
                  "redirect_uri": redirect_uri}
        await self.cache.set(state_key(state), json.dumps(record).encode(),
                             ttl_s=self.settings.state_ttl_s)
        return str(url)

    async def finish(self, tenant: str, name: str, params: CallbackParams,
                     client_ip: str = "") -> TokenGrant:
        """Completes a sign-in the provider sent back, and issues Bloop's tokens."""
        attempt = _Attempt(tenant, name, client_ip)
        try:
            user = await self._signed_in(tenant, name, params, attempt)
        except Problem as refusal:
            security.warning("provider sign-in refused", extra={
                **await self._logged(attempt), "code": refusal.code, "status": refusal.status})
            raise
        security.info("provider sign-in", extra=await self._logged(attempt))
        return await self.auth.issue_tokens(user)

    async def _logged(self, attempt: _Attempt) -> dict[str, str | None]:
        """The attempt as the security log names it: the provider's subject and the email by
        keyed digests, as the password sign-ins name their accounts."""
        digest = self.auth.throttle.digest
        return {"tenant": attempt.tenant, "provider": attempt.provider,
                "client_ip": attempt.client_ip, "user_id": attempt.user_id,
                "subject": None if attempt.subject is None else await digest(
                    attempt.tenant, f"oidc:{attempt.provider}\0{attempt.subject}"),
                "account": None if attempt.email is None else await digest(
                    attempt.tenant, attempt.email)}

    async def _signed_in(self, tenant: str, name: str, params: CallbackParams,
                         attempt: _Attempt) -> User:
        if params.error:
            described = f" ({params.error_description})" if params.error_description else ""
            raise _refuse(f"the provider did not sign the user in: {params.error}{described}",
                          "oidc_provider_error")
        if not params.state:
            raise _state_invalid("the callback carries no state")
        record = await self._spend_state(tenant, name, params.state)
        if not params.code:
            raise _refuse("the callback carries no code", "oidc_code_missing")
        provider = await self.provider(tenant, name)
        with self._told_publicly(provider):
            if provider.kind == "github":
                who = await self._github_identity(provider, params.code, record)
            else:
                who = await self._oidc_identity(provider, params.code, record)
        return await self._user_for(provider, who, attempt)

    @contextmanager
    def _told_publicly(self, provider: OidcProvider) -> Iterator[None]:
        """Anyone may start a sign-in: a provider that cannot be used is named to them, never
        its addresses (which may hold what the tenant keeps to itself); why goes to the log."""
        try:
            yield
        except Problem as problem:
            if problem.status != 502:
                raise
            log.warning("tenant %s: the sign-in provider %s cannot be used (%s): %s",
                        provider.tenant, provider.name, problem.code, problem.detail)
            raise _refuse(f"the sign-in provider {provider.name!r} could not be reached or "
                          "answered badly; the server's log says why", problem.code,
                          502) from None

    async def _spend_state(self, tenant: str, name: str, state: str) -> dict[str, str]:
        raw = await self.cache.get(state_key(state))
        if raw is None:
            raise _state_invalid("the sign-in state is unknown, expired or already used")
        record: dict[str, str] = json.loads(raw)
        if record.get("tenant") != tenant or record.get("provider") != name:
            raise _state_invalid("the sign-in state belongs to another tenant or provider")
        if await self.cache.delete(state_key(state)) == 0:
            raise _state_invalid("the sign-in state is unknown, expired or already used")
        return record

    async def _exchange(self, provider: OidcProvider, token_endpoint: str, code: str,
                        record: Mapping[str, str], auth_method: str) -> dict[str, Any]:
        async with self._client(provider, record["redirect_uri"], auth_method) as client:
            try:
                async with self._deadline("token endpoint"):
                    token = await client.fetch_token(token_endpoint, code=code,
                                                     code_verifier=record["verifier"])
            except OAuthError as exc:
                raise _refuse(f"the provider refused the code: {exc.error}",
                              "oidc_code_refused") from None
            except HTTP_ERRORS as exc:
                raise _unreachable(f"token endpoint: {exc.__class__.__name__}") from None
        if not isinstance(token, Mapping) or not isinstance(token.get("access_token"), str):
            raise _unreachable("the token response holds no access_token")
        return dict(token)

    async def _oidc_identity(self, provider: OidcProvider, code: str,
                             record: Mapping[str, str]) -> ExternalIdentity:
        metadata = await self._metadata(provider)
        methods = metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        method = ("client_secret_basic" if "client_secret_basic" in methods
                  else "client_secret_post")
        token = await self._exchange(provider, await self._endpoint(metadata, "token_endpoint"), code,
                                     record, method)
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise _id_token_invalid("the token response holds no id_token")
        offered = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [a for a in offered if a in ID_TOKEN_ALGORITHMS]
        if not algorithms:
            raise _unreachable("the provider signs ID tokens with no asymmetric algorithm")
        jwks_uri = await self._endpoint(metadata, "jwks_uri")
        claims = await self._verify(id_token, jwks_uri, metadata, provider, record, algorithms)
        email = claims.get("email")
        if not isinstance(email, str):
            raise _refuse("the provider shared no email address; the sign-in needs the email "
                          "scope", "oidc_email_missing", 403)
        verified = claims.get("email_verified") is True or (
            provider.preset == "microsoft" and claims.get("xms_edov") is True)
        return ExternalIdentity(subject=str(claims["sub"]), email=email, email_verified=verified,
                                name=_display_name(claims))

    async def _verify(self, id_token: str, jwks_uri: str, metadata: Mapping[str, Any],
                      provider: OidcProvider, record: Mapping[str, str],
                      algorithms: list[str]) -> dict[str, Any]:
        issuer = str(metadata.get("issuer") or provider.issuer)

        def check(jwks: Mapping[str, Any]) -> dict[str, Any]:
            return verify_id_token(id_token, jwks, issuer=issuer, client_id=provider.client_id,
                                   nonce=record["nonce"], algorithms=algorithms,
                                   now_s=int(self.clock()), leeway_s=self.settings.clock_leeway_s)

        jwks = await self._document(jwks_uri)
        if _names_unknown_key(id_token, jwks):
            jwks = await self._document(jwks_uri, refresh=True)  # the provider rotated its keys
        return check(jwks)

    async def _github_identity(self, provider: OidcProvider, code: str,
                               record: Mapping[str, str]) -> ExternalIdentity:
        for url in (str(provider.token_endpoint), str(provider.api_url)):
            await self._check_url(url)
        token = await self._exchange(provider, str(provider.token_endpoint), code, record,
                                     "client_secret_post")
        api = str(provider.api_url).rstrip("/")
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
        async with self._client(provider, record["redirect_uri"], token=token) as client:
            try:
                async with self._deadline("GitHub API"):
                    user = await client.get(f"{api}/user", headers=headers)
                async with self._deadline("GitHub API"):
                    emails = await client.get(f"{api}/user/emails", headers=headers)
                user.raise_for_status()
                emails.raise_for_status()
                profile, addresses = user.json(), emails.json()
            except HTTP_ERRORS as exc:
                raise _unreachable(f"GitHub API: {exc.__class__.__name__}") from None
        if not isinstance(profile, dict) or not isinstance(addresses, list):
            raise _unreachable("GitHub API: unexpected response")
        primary = next((e for e in addresses if isinstance(e, dict) and e.get("primary")), None)
        if primary is None or not isinstance(primary.get("email"), str):
            raise _refuse("the GitHub account shares no primary email; the sign-in needs the "
                          "user:email scope", "oidc_email_missing", 403)
        if not isinstance(profile.get("id"), int) or isinstance(profile.get("id"), bool):
            raise _unreachable("GitHub API: the user has no numeric id")  # the link's subject
        name = profile.get("name") or profile.get("login")
        return ExternalIdentity(subject=str(profile["id"]), email=primary["email"],
                                email_verified=primary.get("verified") is True,
                                name=name if isinstance(name, str) else None)

    async def _user_for(self, provider: OidcProvider, who: ExternalIdentity,
                        attempt: _Attempt) -> User:
        attempt.subject, attempt.email = who.subject, who.email
        if email_unusable(who.email):
            raise _refuse("the provider's email address holds characters that read as others or "
                          "not at all (Unicode compatibility forms, format or control "
                          "characters): it cannot sign in", "oidc_email_unusable", 403)
        try:
            email = normalise_email(who.email)
        except ValueError:
            raise _refuse("the provider's email address is malformed", "oidc_email_missing",
                          403) from None
        attempt.email = email
        if not who.email_verified:
            raise _refuse(f"the provider has not verified the email {email}; verify it there "
                          "first", "oidc_email_unverified", 403)
        if not provider.allows(email):
            raise _refuse(f"this tenant does not accept sign-ins from {email.rpartition('@')[2]} "
                          f"through {provider.name}", "oidc_domain_not_allowed", 403)
        link = await self.store.get_link(provider.tenant, provider.name, who.subject)
        if link is not None:
            # The link decides, whatever email the provider names now: an address it gives to
            # someone else later does not lead them into this account.
            linked = await self.identity.repo.get_user(provider.tenant, link.user_id)
            if linked is not None:
                attempt.user_id = linked.id
                _refuse_platform_admin(linked)
                return linked
        user = await self.identity.repo.get_user_by_email(provider.tenant, email)
        if user is not None:
            return await self._join(provider, who, email, user, attempt)
        if not provider.create_users:
            raise _refuse(f"{email} has no account in this tenant; ask an administrator for an "
                          "invitation", "oidc_no_account", 403)
        display = one_line(who.name or email.partition("@")[0]).strip()[:200] or email
        try:
            user = await self.identity.register_user(provider.tenant, NewUser(
                email=email, display_name=display, roles=["learner"]))
        except Conflict:
            again = await self.identity.repo.get_user_by_email(provider.tenant, email)
            if again is None:
                raise
            user = again
        return await self._join(provider, who, email, user, attempt)

    async def _join(self, provider: OidcProvider, who: ExternalIdentity, email: str, user: User,
                    attempt: _Attempt) -> User:
        """Links the provider's account to `user`, that of its email, at its first sign-in:
        only an account with no link yet (an invitation's, an admin's or this provider's) is
        joined, so a second provider, or another account at this one that names the address
        (a mailbox given to someone else), does not come into it."""
        attempt.user_id = user.id
        _refuse_platform_admin(user)
        if not user.email_verified:
            # Whoever signed up chose the password and never proved the address: joining their
            # account would let them into the one the address's owner signs in to.
            raise _refuse(f"the account of {email} was made by a sign-up that never proved the "
                          "address, so a provider's sign-in does not join it: sign in with its "
                          "password, or ask an administrator to remove the account",
                          "email_unverified", 409)
        link = OidcLink(tenant=provider.tenant, provider=provider.name, subject=who.subject,
                        user_id=user.id, email=email, linked_at=now())
        if await self.store.add_link(link):
            return user
        again = await self.store.get_link(provider.tenant, provider.name, who.subject)
        if again is not None and again.user_id == user.id:
            return user  # the same person's sign-in twice at once
        raise _linked_elsewhere(email)

    # an account's links

    async def links(self, tenant: str, user_id: str) -> list[OidcLink]:
        await self.identity.user(tenant, user_id)
        return await self.store.links_of(tenant, user_id)

    async def unlink(self, tenant: str, user_id: str, name: str, by: str) -> None:
        """Removes the account's link through the provider `name`: its next sign-in through a
        provider links it again, as a first one does."""
        await self.identity.user(tenant, user_id)
        if not await self.store.delete_link(tenant, user_id, name):
            raise NotFound(f"the user {user_id!r} has no link through the provider {name!r}",
                           code="oidc_link_not_found")
        security.info("provider link removed", extra={
            "tenant": tenant, "provider": name, "user_id": user_id, "by": by})

    # the provider's documents

    def _client(self, provider: OidcProvider, redirect_uri: str,
                auth_method: str = "client_secret_basic",
                token: Mapping[str, Any] | None = None) -> Any:
        return AsyncOAuth2Client(
            client_id=provider.client_id, client_secret=provider.client_secret,
            scope=" ".join(provider.scopes), redirect_uri=redirect_uri,
            code_challenge_method="S256", token_endpoint_auth_method=auth_method,
            token=dict(token) if token is not None else None,
            timeout=self.settings.http_timeout_s, follow_redirects=False,
            event_hooks={"response": [_capped]})

    @asynccontextmanager
    async def _deadline(self, what: str) -> AsyncIterator[None]:
        """Bounds a call to the provider as a whole (httpx's timeout bounds each read, and a
        provider sending a byte at a time never passes it)."""
        seconds = self.settings.http_timeout_s
        try:
            async with asyncio.timeout(seconds):
                yield
        except TimeoutError:
            raise _unreachable(f"{what}: no answer within {seconds:g}s") from None

    async def _metadata(self, provider: OidcProvider) -> dict[str, Any]:
        document = await self._document(str(provider.discovery_url))
        issuer = document.get("issuer")
        if not isinstance(issuer, str):
            raise _unreachable("the discovery document names no issuer")
        if (provider.issuer is not None and issuer.rstrip("/") != provider.issuer.rstrip("/")
                and "{tenantid}" not in issuer):
            raise _unreachable(f"the discovery document is for the issuer {issuer!r}, not "
                               f"{provider.issuer!r}")
        return document

    async def _document(self, url: str, *, refresh: bool = False) -> dict[str, Any]:
        """The JSON document at `url`, cached. Whoever needs it while it downloads waits for
        that download; with `refresh` (a key the JWKS lacks), it downloads again unless it did
        so within KEY_REFRESH_S."""
        await self._check_url(url)
        download = self._downloads.get(url)
        if download is None:
            cached, now = self._documents.get(url), self.clock()
            if refresh and now - self._refreshed.get(url, -math.inf) >= KEY_REFRESH_S:
                self._refreshed[url] = now
            elif cached is not None and cached.until > now:
                return cached.value
            download = self._downloads[url] = asyncio.ensure_future(self._download(url))
            download.add_done_callback(partial(self._downloaded, url))
        # A waiter going away (its client hung up) leaves the download to the others.
        return await asyncio.shield(download)

    def _downloaded(self, url: str, download: asyncio.Future[dict[str, Any]]) -> None:
        if self._downloads.get(url) is download:
            del self._downloads[url]
        if not download.cancelled():
            download.exception()  # retrieved, should every waiter have gone

    async def _download(self, url: str) -> dict[str, Any]:
        try:
            async with self._deadline(url), httpx.AsyncClient(
                    timeout=self.settings.http_timeout_s,
                    event_hooks={"response": [_capped]}) as client:
                response = await client.get(url, headers={"Accept": "application/json"})
                response.raise_for_status()
                value = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise _unreachable(f"{url}: {exc.__class__.__name__}") from None
        if not isinstance(value, dict):
            raise _unreachable(f"{url} is not a JSON object")
        self._documents[url] = _Fetched(value, self.clock() + self.settings.metadata_ttl_s)
        return value

    async def _endpoint(self, metadata: Mapping[str, Any], name: str) -> str:
        """The address the discovery document gives as `name`, held to the provider's own
        rules (`_check_url`)."""
        value = metadata.get(name)
        if not isinstance(value, str) or not value:
            raise _unreachable(f"the discovery document names no {name}")
        problem = http_url_problem(value)
        if problem is not None:
            raise _unreachable(f"the discovery document's {name} is not a web address: {problem}")
        await self._check_url(value)
        return value


def _refuse_platform_admin(user: User) -> None:
    if "platform_admin" in user.roles:
        # A tenant admin configures the tenant's providers, and a provider vouches for any
        # address it likes: it must not reach powers no tenant admin may grant.
        raise _refuse(f"{user.email} is a platform admin, who signs in with a password, not "
                      f"through a tenant's provider", "oidc_platform_admin", 403)


def _names_unknown_key(id_token: str, jwks: Mapping[str, Any]) -> bool:
    try:
        header = json.loads(_b64(id_token.split(".")[0]))
    except (ValueError, IndexError):
        return False
    kid = header.get("kid") if isinstance(header, dict) else None
    known = {k.get("kid") for k in jwks.get("keys", []) if isinstance(k, dict)}
    return kid is not None and kid not in known


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _display_name(claims: Mapping[str, Any]) -> str | None:
    name = claims.get("name")
    if isinstance(name, str) and name.strip():
        return name
    parts = [claims.get(k) for k in ("given_name", "family_name")]
    joined = " ".join(p for p in parts if isinstance(p, str) and p.strip())
    return joined or None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
