"""What external sign-in is made of: a tenant's providers (as an admin configures them, as
stored, as shown), the links of a provider's accounts to Bloop's, and what a sign-in carries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StrictBool, StringConstraints

from bloop.platform.identity.model import Domain
from bloop.platform.kit.read_back import Tolerant
from bloop.platform.kit.text import NonBlankLine
from bloop.platform.kit.urls import masked_url

Preset = Literal["google", "microsoft", "github"]
Kind = Literal["oidc", "github"]

PROVIDER_URLS = ("issuer", "discovery_url", "authorization_endpoint", "token_endpoint", "api_url",
                 "callback_url")

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


@dataclass
class Attempt:
    """What the security log tells of a provider's sign-in, as far as it got."""

    tenant: str
    provider: str
    client_ip: str
    subject: str | None = None
    email: str | None = None
    user_id: str | None = None
