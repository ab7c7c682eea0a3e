"""Tenants, users, invitations, sign-in records and API keys, and the rules they keep. No I/O
here."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    StringConstraints,
    ValidationInfo,
)

from bloop.platform.kit.auth import ROLES, SCOPES, Role, Scope
from bloop.platform.kit.read_back import Tolerant, read_back
from bloop.platform.kit.text import (
    BIDI,
    CONTROLS,
    INVISIBLE,
    NONCHARACTERS,
    Lines,
    NonBlankLine,
    lookalike,
)
from bloop.platform.kit.times import Instant

__all__ = ["ROLES", "Role", "Scope"]

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN)]
# A host name: labels of ASCII letters, digits and hyphens (an internationalised name in its
# `xn--` form), none empty nor starting or ending with a hyphen, and a top-level one of letters
# (so not an IP address).
_DOMAIN_NAME = r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
_DOMAIN = re.compile(f"^{_DOMAIN_NAME}$")


def _domain(value: str, info: ValidationInfo) -> str:
    domain = value.lower()
    if not _DOMAIN.match(domain) and not read_back(info):
        raise ValueError("is not a domain name such as school.example")
    return domain


Domain = Annotated[str, StringConstraints(strip_whitespace=True, max_length=253),
                   AfterValidator(_domain)]

# Python's whitespace (str.isspace) spelled out, not `\s`: the documented pattern must mean what
# the check means, and `\s` differs between Python, pydantic's Rust regex and JSON Schema's
# ECMA-262 (U+001C-U+001F, U+0085, U+FEFF). str.strip takes these away at either end. Inside, an
# address holds no space nor anything `lookalike` refuses, and its domain is a host name. The
# documented pattern says all but Unicode compatibility (NFKC), which no pattern can say. A
# stored address is not checked again (`_email`), nor is one signing in (`normalise_email`), so
# one kept under an older rule still reads and signs in.
_SPACE = r"\t\n\v\f\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_LOCAL = rf"[^@{_SPACE}{CONTROLS}{INVISIBLE}{NONCHARACTERS}]+"
_EMAIL = re.compile(rf"^{_LOCAL}@{_DOMAIN_NAME}$")
_EMAIL_DOC = rf"^[{_SPACE}]*{_LOCAL}@{_DOMAIN_NAME.replace('a-z', 'A-Za-z')}[{_SPACE}]*$"
_ANY_PART = rf"[^@{_SPACE}{CONTROLS}{BIDI}]+"
_ANY_EMAIL = re.compile(rf"^{_ANY_PART}@{_ANY_PART}\.{_ANY_PART}$")


def normalise_email(value: str) -> str:
    """Emails compare without regard to case: `Ada@Demo.Bloop.dev` is `ada@demo.bloop.dev`. What
    signs in: an address kept under an older rule still does; a new one is `email_address`."""
    email = value.strip().lower()  # str.strip takes exactly the _SPACE characters
    if not _ANY_EMAIL.fullmatch(email):
        raise ValueError("is not an email address")
    return email


def email_address(value: str) -> str:
    """A new account's or invitation's address, normalised: none that passes for another's."""
    email = normalise_email(value)
    if lookalike(value.strip()):
        raise ValueError("is not a usable email address: it holds characters that read as "
                         "others or not at all (Unicode compatibility forms, format or control "
                         "characters)")
    if not _EMAIL.fullmatch(email):
        raise ValueError("is not an email address at a domain name such as school.example")
    return email


def _email(value: str, info: ValidationInfo) -> str:
    return value if read_back(info) else email_address(value)


def _roles(value: list[Role]) -> list[Role]:
    """Each role once, in the canonical order."""
    return [r for r in ROLES if r in value]


_LEARNER: list[Role] = ["learner"]

Email = Annotated[str, StringConstraints(max_length=254), AfterValidator(_email),
                  Field(json_schema_extra={"pattern": _EMAIL_DOC})]
Roles = Annotated[list[Role], Field(min_length=1, max_length=len(ROLES)), AfterValidator(_roles)]
Name = NonBlankLine[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                      max_length=200)]]
Password = Annotated[SecretStr, Field(min_length=1, max_length=256)]
Locale = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")]
Bio = Lines[Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]]


def _time_zone(value: str) -> str:
    if value not in _zones():
        raise ValueError("is not an IANA time zone such as Europe/Paris")
    return value


_ZONES: set[str] = set()


def _zones() -> set[str]:
    if not _ZONES:
        _ZONES.update(available_timezones(), {"UTC"})
    return _ZONES


TimeZone = Annotated[str, StringConstraints(max_length=64), AfterValidator(_time_zone)]


def _https(value: str) -> str:
    url = HttpUrl(value)
    if url.scheme != "https":
        raise ValueError("must be an https URL")
    return str(url)


AvatarUrl = Annotated[str, StringConstraints(max_length=2048), AfterValidator(_https)]


def now() -> datetime:
    """The current time, to the millisecond (what every store keeps)."""
    t = datetime.now(UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TenantSettings(Tolerant):
    model_config = ConfigDict(extra="forbid", frozen=True)

    allowed_signup_domains: Annotated[list[Domain], Field(max_length=50)] = Field(
        default_factory=list,
        description="emails at these domains may sign up on their own; nobody when empty")

    def allows_signup(self, email: str) -> bool:
        return email.rpartition("@")[2] in self.allowed_signup_domains


class TenantSettingsEdit(_Input):
    allowed_signup_domains: Annotated[list[Domain], Field(max_length=50)] | None = None


class NewTenant(_Input):
    id: Slug
    name: Name
    settings: TenantSettings = Field(default_factory=TenantSettings)


class NewUser(_Input):
    email: Email
    display_name: Name
    roles: Roles = Field(default_factory=lambda: _LEARNER.copy())
    password: Password | None = None


class SignUp(_Input):
    email: Email
    display_name: Name
    password: Password


class NewInvitation(_Input):
    email: Email
    roles: Roles = Field(default_factory=lambda: _LEARNER.copy())


class InvitationAcceptance(_Input):
    token: Annotated[str, StringConstraints(min_length=16, max_length=200)]
    display_name: Name
    password: Password


class PasswordChange(_Input):
    current_password: Password
    new_password: Password


class PasswordReset(_Input):
    new_password: Password


class RoleChange(_Input):
    roles: Roles


class ProfileEdit(_Input):
    """Fields left out or null stay as they are, except `avatar_url`: null removes the avatar."""

    display_name: Name | None = None
    avatar_url: AvatarUrl | None = Field(default=None, description="null: no avatar")
    locale: Locale | None = None
    time_zone: TimeZone | None = None
    bio: Bio | None = None

    def changes(self) -> dict[str, Any]:
        """The fields this edit sets: those given and not null, and `avatar_url` when given."""
        out = self.model_dump(exclude_none=True, mode="json")
        if "avatar_url" in self.model_fields_set:
            out["avatar_url"] = self.avatar_url
        return out


class Tenant(Tolerant):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Slug
    name: Name
    settings: TenantSettings = Field(default_factory=TenantSettings)
    created_at: datetime

    @classmethod
    def create(cls, new: NewTenant, at: datetime | None = None) -> Tenant:
        return cls(id=new.id, name=new.name, settings=new.settings, created_at=at or now())

    def with_settings(self, edit: TenantSettingsEdit) -> Tenant:
        changed = edit.model_dump(exclude_none=True)
        return self.model_copy(update={
            "settings": TenantSettings.model_validate(self.settings.model_dump() | changed)})


class User(Tolerant):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    tenant: Slug
    email: Email
    display_name: Name
    roles: Roles
    avatar_url: str | None = None
    locale: Locale = "en"
    time_zone: TimeZone = "UTC"
    bio: Bio = ""
    created_at: datetime
    email_verified: bool = Field(default=True, description=(
        "false for an account made by self sign-up, whose email no one proved is the person's "
        "(a provider's sign-in does not join it); true when an invitation's token reached the "
        "address, a provider vouched for it, or an admin made the account (and for accounts "
        "stored before this field, which cannot be told apart)"))

    @classmethod
    def register(cls, tenant: str, new: NewUser, at: datetime | None = None, *,
                 email_verified: bool = True) -> User:
        return cls(id=str(uuid.uuid4()), tenant=tenant, email=new.email,
                   display_name=new.display_name, roles=new.roles, created_at=at or now(),
                   email_verified=email_verified)

    def has_role(self, role: Role) -> bool:
        return role in self.roles

    def with_profile(self, edit: ProfileEdit) -> User:
        return self.model_copy(update=edit.changes())

    def with_roles(self, roles: list[Role]) -> User:
        return self.model_copy(update={"roles": roles})


INVITATION_ID_CHARS = 20


class Invitation(Tolerant):
    """An invitation to join a tenant; the store keeps only its token's hash."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    token_hash: str
    tenant: Slug
    email: Email
    roles: Roles
    invited_by: str
    created_at: Instant
    expires_at: Instant

    @property
    def id(self) -> str:
        """How admins name it (to withdraw it): the start of its token's hash, which tells
        nothing of the token."""
        return self.token_hash[:INVITATION_ID_CHARS]


class RefreshToken(Tolerant):
    """One refresh token of a session (`family`); each use spends it and issues the next one.
    The store keeps only the token's hash."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    token_hash: str
    tenant: Slug
    user_id: str
    family: str
    scopes: list[Scope]
    created_at: Instant
    expires_at: Instant
    used: bool = False
    used_at: Instant | None = None
    revoked: bool = False


@dataclass(frozen=True)
class SigningKey:
    """A token-signing key pair. `public_jwk` is what `/.well-known/jwks.json` publishes."""

    kid: str
    algorithm: str
    private_pem: str
    public_jwk: dict[str, Any] = field(hash=False)
    created_at: datetime


# API keys

KeyRole = Literal["learner", "educator", "teaching_assistant"]
KEY_ROLES: tuple[KeyRole, ...] = ("learner", "educator", "teaching_assistant")


def _key_scopes(value: list[Scope]) -> list[Scope]:
    """Each scope once, in the canonical order."""
    return [s for s in SCOPES if s in value]


def _key_roles(value: list[KeyRole]) -> list[KeyRole]:
    return [r for r in KEY_ROLES if r in value]


KeyScopes = Annotated[list[Scope], Field(min_length=1, max_length=len(SCOPES)),
                      AfterValidator(_key_scopes)]
KeyRoles = Annotated[list[KeyRole], Field(max_length=len(KEY_ROLES)), AfterValidator(_key_roles)]


class NewApiKey(_Input):
    name: Name = Field(description="what the key is for, e.g. the app that holds it")
    scopes: KeyScopes = Field(description="what the key may do; within the creator's own scopes")
    roles: KeyRoles = Field(default_factory=list, description=(
        "roles the key acts with; none by default, so it reaches only routes that need no "
        "role. Never tenant_admin nor platform_admin: a key cannot manage keys or people"))


class ApiKey(Tolerant):
    """An API key of a tenant. The store keeps the SHA-256 of its secret, never the secret."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{12}$")]
    tenant: Slug
    name: Name
    scopes: list[Scope]
    roles: list[KeyRole]
    secret_hash: str
    created_by: str
    created_at: Instant
    revoked_at: Instant | None = None

    @property
    def prefix(self) -> str:
        """What the key starts with: shown in listings so people can tell their keys apart."""
        return f"bloop_{self.tenant}.{self.id}"

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None
