"""Who is calling: the verified content of an access token, or an API key's service principal
(`kind == "api_key"`, see `kit.auth.apikeys`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

Role = Literal["learner", "educator", "teaching_assistant", "tenant_admin", "platform_admin"]
ROLES: tuple[Role, ...] = ("learner", "educator", "teaching_assistant", "tenant_admin",
                           "platform_admin")
STAFF: frozenset[Role] = frozenset({"educator", "teaching_assistant", "tenant_admin",
                                    "platform_admin"})

Scope = Literal["identity:read", "identity:write", "content:read", "content:write", "profile",
                "learning:read", "learning:write"]
SCOPES: tuple[Scope, ...] = ("identity:read", "identity:write", "content:read", "content:write",
                             "profile", "learning:read", "learning:write")

PrincipalKind = Literal["user", "api_key"]


@dataclass(frozen=True)
class Principal:
    user_id: str
    tenant: str
    roles: frozenset[str]
    scopes: frozenset[str]
    token_id: str
    session_id: str
    expires_at: int
    kind: PrincipalKind = "user"

    @property
    def is_platform_admin(self) -> bool:
        return "platform_admin" in self.roles

    def has_any(self, roles: Iterable[str]) -> bool:
        """True when the caller holds one of `roles`; a platform admin holds them all."""
        return self.is_platform_admin or not self.roles.isdisjoint(roles)

    def may_enter(self, tenant: str) -> bool:
        return self.tenant == tenant or self.is_platform_admin


class PrincipalView(BaseModel):
    """A principal as identity's `GET /v1/auth/principal` tells it to a process that runs
    without identity."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    user_id: str
    tenant: str
    roles: list[Role]
    scopes: list[Scope]
    token_id: str
    session_id: str
    expires_at: int
    kind: PrincipalKind

    @classmethod
    def of(cls, p: Principal) -> PrincipalView:
        return cls.model_validate({
            "user_id": p.user_id, "tenant": p.tenant, "roles": sorted(p.roles),
            "scopes": sorted(p.scopes), "token_id": p.token_id, "session_id": p.session_id,
            "expires_at": p.expires_at, "kind": p.kind})

    def principal(self) -> Principal:
        return Principal(user_id=self.user_id, tenant=self.tenant, roles=frozenset(self.roles),
                         scopes=frozenset(self.scopes), token_id=self.token_id,
                         session_id=self.session_id, expires_at=self.expires_at, kind=self.kind)
