"""Who is calling: the verified content of an access token, or an API key's service principal
(`kind == "api_key"`, see `kit.auth.apikeys`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

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
