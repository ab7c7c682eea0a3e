"""A provider as a tenant admin configures it, resolved to what is stored: a preset's addresses
filled in, every address checked, the callback pinned to this provider's route."""

from __future__ import annotations

from urllib.parse import urlsplit

from bloop.platform.identity.model import now
from bloop.platform.identity.oidc.addresses import check_url, check_web_address
from bloop.platform.identity.oidc.model import PROVIDER_URLS, Kind, OidcProvider, ProviderSettings
from bloop.platform.identity.oidc.problems import refuse
from bloop.platform.kit.settings import OidcSettings

GOOGLE_ISSUER = "https://accounts.google.com"
MICROSOFT_ISSUER = "https://login.microsoftonline.com/{tenant}/v2.0"
GITHUB_AUTHORIZE = "https://github.com/login/oauth/authorize"
GITHUB_TOKEN = "https://github.com/login/oauth/access_token"  # noqa: S105  (a URL)
GITHUB_API = "https://api.github.com"
OIDC_SCOPES = ["openid", "email", "profile"]
GITHUB_SCOPES = ["read:user", "user:email"]
# `/oidc/providers/...` holds the configuration routes, so no provider may be called that.
RESERVED_NAMES = frozenset({"providers"})


def callback_path(tenant: str, name: str) -> str:
    return f"/v1/tenants/{tenant}/oidc/{name}/callback"


def pinned_callback(settings: OidcSettings, tenant: str, name: str, url: str) -> str:
    """`url`, once it is an address of this provider's callback route (any path before
    it, for a proxy that serves the API under one)."""
    check_web_address(settings, url, 422, "oidc_config_invalid", "callback_url")
    path = callback_path(tenant, name)
    if "?" in url or "#" in url or not urlsplit(url).path.endswith(path):
        raise refuse(f"the callback_url must end with this provider's callback route, "
                     f"{path}, and hold no query or fragment", "oidc_config_invalid", 422)
    return url


async def resolve(settings: OidcSettings, tenant: str, name: str, body: ProviderSettings,
                  secret: str, callback: str) -> OidcProvider:
    endpoints: tuple[str | None, str | None, str | None]
    github_fields = (body.authorization_endpoint, body.token_endpoint, body.api_url)
    if body.preset == "github":
        if body.issuer or body.discovery_url or body.microsoft_tenant:
            raise refuse("GitHub is not an OpenID Connect provider: it takes no issuer, "
                         "discovery_url nor microsoft_tenant", "oidc_config_invalid", 422)
        kind: Kind = "github"
        issuer, discovery = None, None
        endpoints = (body.authorization_endpoint or GITHUB_AUTHORIZE,
                     body.token_endpoint or GITHUB_TOKEN, body.api_url or GITHUB_API)
    else:
        if any(github_fields):
            raise refuse("authorization_endpoint, token_endpoint and api_url belong to the "
                         "github preset; OpenID Connect providers publish theirs in their "
                         "discovery document", "oidc_config_invalid", 422)
        if body.microsoft_tenant and body.preset != "microsoft":
            raise refuse("microsoft_tenant goes with the microsoft preset",
                         "oidc_config_invalid", 422)
        kind = "oidc"
        issuer = body.issuer
        if issuer is None and body.preset == "google":
            issuer = GOOGLE_ISSUER
        if issuer is None and body.preset == "microsoft":
            issuer = MICROSOFT_ISSUER.format(tenant=body.microsoft_tenant or "organizations")
        discovery = body.discovery_url
        if issuer is None and discovery is None:
            raise refuse("name the provider: a preset (google, microsoft, github), an "
                         "issuer or a discovery_url", "oidc_config_invalid", 422)
        if discovery is None and issuer is not None:
            discovery = issuer.rstrip("/") + "/.well-known/openid-configuration"
        endpoints = (None, None, None)
    for field, url in zip(PROVIDER_URLS[:5], (issuer, discovery, *endpoints), strict=True):
        if url is not None:
            await check_url(settings, url, at_use=False, field=field)
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
