"""External sign-in's use cases: a tenant admin configures the tenant's providers, and anyone
signs in through one, which ends in Bloop's tokens for the account the provider's is linked to."""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from authlib.integrations.base_client import OAuthError

from bloop.platform.identity.model import User
from bloop.platform.identity.oidc.addresses import check_url
from bloop.platform.identity.oidc.configuration import (
    RESERVED_NAMES,
    callback_path,
    pinned_callback,
    resolve,
)
from bloop.platform.identity.oidc.downloads import HTTP_ERRORS, ProviderDownloads
from bloop.platform.identity.oidc.links import AccountLinks
from bloop.platform.identity.oidc.model import (
    Attempt,
    CallbackParams,
    ExternalIdentity,
    OidcLink,
    OidcProvider,
    ProviderSettings,
    ProviderView,
)
from bloop.platform.identity.oidc.ports import OidcProviderStore
from bloop.platform.identity.oidc.problems import id_token_invalid, refuse, unreachable
from bloop.platform.identity.oidc.tokens import (
    ID_TOKEN_ALGORITHMS,
    display_name,
    names_unknown_key,
    verify_id_token,
)
from bloop.platform.identity.service import AuthService, IdentityService, TokenGrant
from bloop.platform.kit.auth import RateLimited, RateLimiter
from bloop.platform.kit.cache import Cache
from bloop.platform.kit.errors import NotFound, Problem
from bloop.platform.kit.settings import OidcSettings

security = logging.getLogger("bloop.security")
log = logging.getLogger("bloop.identity.oidc")


def state_key(state: str) -> str:
    return f"oidc:state:{state}"


def _state_invalid(detail: str) -> Problem:
    return refuse(f"{detail}; start the sign-in again", "oidc_state_invalid")


class OidcService(ProviderDownloads):
    def __init__(self, store: OidcProviderStore, identity: IdentityService, auth: AuthService,
                 cache: Cache, settings: OidcSettings,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(settings, clock)
        self.store = store
        self.identity = identity
        self.auth = auth
        self.cache = cache
        self.limiter = RateLimiter(cache, settings.login_rate_limit, 60)
        self.linking = AccountLinks(store, identity)

    # configuration

    async def configure(self, tenant: str, name: str, body: ProviderSettings,
                        request_callback: str) -> ProviderView:
        """Adds or replaces the provider. Its callback is `body.callback_url`, else the one it
        had (as its secret stays when none is given), else the public URL's, else
        `request_callback`: the callback's address as the admin's own (authenticated) request
        reached the API."""
        if name in RESERVED_NAMES:
            raise refuse(f"{name!r} is reserved; name the provider otherwise",
                         "oidc_config_invalid", 422)
        await self.identity.tenant(tenant)
        existing = await self.store.get_provider(tenant, name)
        if body.client_secret is not None:
            secret = body.client_secret.get_secret_value()
        elif existing is not None:
            secret = existing.client_secret
        else:
            raise refuse("a new provider needs its client_secret", "oidc_secret_missing", 422)
        if body.callback_url is not None:
            callback = pinned_callback(self.settings, tenant, name, body.callback_url)
        elif existing is not None and existing.callback_url is not None:
            # A PUT to rotate the secret, sent through a port-forward or past the TLS proxy,
            # would otherwise pin an address the provider does not know, or plain http.
            callback = existing.callback_url
        else:
            callback = self._public_callback(tenant, name) or request_callback
        provider = await resolve(self.settings, tenant, name, body, secret, callback)
        # Without a secret in the body, the one stored at the write stays: one rotated while
        # this request ran is not put back.
        if not await self.store.put_provider(provider, keep_secret=body.client_secret is None):
            raise refuse("the provider was deleted meanwhile; a new provider needs its "
                         "client_secret", "oidc_secret_missing", 422)
        await self.linking.reconfigured(existing, provider)
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

    # an account's links

    async def links(self, tenant: str, user_id: str) -> list[OidcLink]:
        return await self.linking.links(tenant, user_id)

    async def unlink(self, tenant: str, user_id: str, name: str, by: str) -> None:
        await self.linking.unlink(tenant, user_id, name, by)

    # the sign-in

    async def begin(self, tenant: str, name: str, client_ip: str) -> str:
        """The provider's authorization URL for a new sign-in, whose state is now stored."""
        limit = await self.limiter.hit(f"oidc-login:{client_ip}")
        if not limit.allowed:
            raise RateLimited(limit, "oidc_sign_ins")
        provider = await self.provider(tenant, name)
        redirect_uri = self.callback_url(provider)
        if redirect_uri is None:
            raise refuse(f"the sign-in provider {name!r} was configured before its callback "
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
        attempt = Attempt(tenant, name, client_ip)
        try:
            user = await self._signed_in(tenant, name, params, attempt)
        except Problem as refusal:
            security.warning("provider sign-in refused", extra={
                **await self._logged(attempt), "code": refusal.code, "status": refusal.status})
            raise
        security.info("provider sign-in", extra=await self._logged(attempt))
        await self.auth.throttle.remember(tenant, user.email, client_ip)
        return await self.auth.issue_tokens(user)

    async def _logged(self, attempt: Attempt) -> dict[str, str | None]:
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
                         attempt: Attempt) -> User:
        if params.error:
            described = f" ({params.error_description})" if params.error_description else ""
            raise refuse(f"the provider did not sign the user in: {params.error}{described}",
                         "oidc_provider_error")
        if not params.state:
            raise _state_invalid("the callback carries no state")
        record = await self._spend_state(tenant, name, params.state)
        if not params.code:
            raise refuse("the callback carries no code", "oidc_code_missing")
        provider = await self.provider(tenant, name)
        with self._told_publicly(provider):
            if provider.kind == "github":
                who = await self._github_identity(provider, params.code, record)
            else:
                who = await self._oidc_identity(provider, params.code, record)
        return await self.linking.user_for(provider, who, attempt)

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
            raise refuse(f"the sign-in provider {provider.name!r} could not be reached or "
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
                raise refuse(f"the provider refused the code: {exc.error}",
                             "oidc_code_refused") from None
            except HTTP_ERRORS as exc:
                raise unreachable(f"token endpoint: {exc.__class__.__name__}") from None
        if not isinstance(token, Mapping) or not isinstance(token.get("access_token"), str):
            raise unreachable("the token response holds no access_token")
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
            raise id_token_invalid("the token response holds no id_token")
        offered = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [a for a in offered if a in ID_TOKEN_ALGORITHMS]
        if not algorithms:
            raise unreachable("the provider signs ID tokens with no asymmetric algorithm")
        jwks_uri = await self._endpoint(metadata, "jwks_uri")
        claims = await self._verify(id_token, jwks_uri, metadata, provider, record, algorithms)
        email = claims.get("email")
        if not isinstance(email, str):
            raise refuse("the provider shared no email address; the sign-in needs the email "
                         "scope", "oidc_email_missing", 403)
        verified = claims.get("email_verified") is True or (
            provider.preset == "microsoft" and claims.get("xms_edov") is True)
        return ExternalIdentity(subject=str(claims["sub"]), email=email, email_verified=verified,
                                name=display_name(claims))

    async def _verify(self, id_token: str, jwks_uri: str, metadata: Mapping[str, Any],
                      provider: OidcProvider, record: Mapping[str, str],
                      algorithms: list[str]) -> dict[str, Any]:
        issuer = str(metadata.get("issuer") or provider.issuer)

        def check(jwks: Mapping[str, Any]) -> dict[str, Any]:
            return verify_id_token(id_token, jwks, issuer=issuer, client_id=provider.client_id,
                                   nonce=record["nonce"], algorithms=algorithms,
                                   now_s=int(self.clock()), leeway_s=self.settings.clock_leeway_s)

        jwks = await self._document(jwks_uri)
        if names_unknown_key(id_token, jwks):
            jwks = await self._document(jwks_uri, refresh=True)  # the provider rotated its keys
        return check(jwks)

    async def _github_identity(self, provider: OidcProvider, code: str,
                               record: Mapping[str, str]) -> ExternalIdentity:
        for url in (str(provider.token_endpoint), str(provider.api_url)):
            await check_url(self.settings, url)
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
                raise unreachable(f"GitHub API: {exc.__class__.__name__}") from None
        if not isinstance(profile, dict) or not isinstance(addresses, list):
            raise unreachable("GitHub API: unexpected response")
        primary = next((e for e in addresses if isinstance(e, dict) and e.get("primary")), None)
        if primary is None or not isinstance(primary.get("email"), str):
            raise refuse("the GitHub account shares no primary email; the sign-in needs the "
                         "user:email scope", "oidc_email_missing", 403)
        if not isinstance(profile.get("id"), int) or isinstance(profile.get("id"), bool):
            raise unreachable("GitHub API: the user has no numeric id")  # the link's subject
        name = profile.get("name") or profile.get("login")
        return ExternalIdentity(subject=str(profile["id"]), email=primary["email"],
                                email_verified=primary.get("verified") is True,
                                name=name if isinstance(name, str) else None)
