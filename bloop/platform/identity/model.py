"""Tenants and users, and the rules they keep. No I/O here."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN)]

Role = Literal["learner", "educator", "teaching_assistant", "tenant_admin", "platform_admin"]
ROLES: tuple[Role, ...] = ("learner", "educator", "teaching_assistant", "tenant_admin",
                           "platform_admin")

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalise_email(value: str) -> str:
    """Emails compare without regard to case: `Ada@Demo.Bloop.dev` is `ada@demo.bloop.dev`."""
    email = value.strip().lower()
    if not _EMAIL.match(email):
        raise ValueError("is not an email address")
    return email


def _roles(value: list[Role]) -> list[Role]:
    """Each role once, in the canonical order."""
    return [r for r in ROLES if r in value]


_LEARNER: list[Role] = ["learner"]

Email = Annotated[str, StringConstraints(max_length=254), AfterValidator(normalise_email)]
Roles = Annotated[list[Role], Field(min_length=1, max_length=len(ROLES)), AfterValidator(_roles)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def now() -> datetime:
    """The current time, to the millisecond (what every store keeps)."""
    t = datetime.now(UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NewTenant(_Input):
    id: Slug
    name: Name


class NewUser(_Input):
    email: Email
    display_name: Name
    roles: Roles = Field(default_factory=lambda: _LEARNER.copy())


class Tenant(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Slug
    name: Name
    created_at: datetime

    @classmethod
    def create(cls, new: NewTenant, at: datetime | None = None) -> Tenant:
        return cls(id=new.id, name=new.name, created_at=at or now())


class User(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    tenant: Slug
    email: Email
    display_name: Name
    roles: Roles
    created_at: datetime

    @classmethod
    def register(cls, tenant: str, new: NewUser, at: datetime | None = None) -> User:
        return cls(id=str(uuid.uuid4()), tenant=tenant, email=new.email,
                   display_name=new.display_name, roles=new.roles, created_at=at or now())

    def has_role(self, role: Role) -> bool:
        return role in self.roles
