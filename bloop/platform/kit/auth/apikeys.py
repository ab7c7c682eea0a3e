"""API keys for third-party apps: their format, and the port `require()` asks to authenticate one.

A key reads `bloop_<prefix>_<secret>`. The prefix, `<tenant>.<id>`, names the key and its tenant
(so the store is always read within that tenant) and is not secret; the secret is 32 random bytes
in hex, of which the store keeps only the SHA-256. Identity owns the keys and plugs its
`ApiKeySource` into `Auth` when it runs in the process; a process without it asks identity
(`kit.auth.remote_keys`), or refuses keys when it has not been told where identity is.

A key acts as a service principal of its tenant (`Principal.kind == "api_key"`): it holds the
scopes chosen at creation and only the roles chosen there (none by default; never tenant_admin
nor platform_admin). `require(roles)` treats it like any caller: a route that needs a role is open
to a key only when the key was given that role, and a route that needs no role is open to it when
it holds the route's scopes."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Protocol

from fastapi.security import APIKeyHeader

from bloop.platform.kit.auth.principal import Principal

API_KEY_START = "bloop_"
API_KEY_HEADER = "X-API-Key"
_KEY = re.compile(r"^bloop_([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)\.([0-9a-f]{12})_([0-9a-f]{64})$")

api_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False,
                              description="an API key, `bloop_<prefix>_<secret>`; the same key "
                                          "may come as `Authorization: Bearer bloop_…`")


@dataclass(frozen=True)
class ApiKeyCredential:
    """A presented key, parsed; `secret` is what the caller sent, unverified."""

    tenant: str
    key_id: str
    secret: str = ""

    @property
    def prefix(self) -> str:
        return f"{self.tenant}.{self.key_id}"

    def __str__(self) -> str:
        return f"{API_KEY_START}{self.prefix}_{self.secret}"

    def __repr__(self) -> str:  # never print the secret
        return f"ApiKeyCredential({self.prefix!r})"

    @classmethod
    def new(cls, tenant: str) -> ApiKeyCredential:
        return cls(tenant=tenant, key_id=secrets.token_hex(6), secret=secrets.token_hex(32))


def is_api_key(token: str) -> bool:
    """True for a string shaped like a key at first sight (access tokens start with `eyJ`)."""
    return token.startswith(API_KEY_START)


def parse_api_key(raw: str) -> ApiKeyCredential | None:
    """The key's parts, or None when `raw` is not a well-formed key."""
    match = _KEY.match(raw)
    if match is None:
        return None
    tenant, key_id, secret = match.groups()
    return ApiKeyCredential(tenant=tenant, key_id=key_id, secret=secret)


class ApiKeySource(Protocol):
    async def authenticate(self, key: ApiKeyCredential) -> Principal:
        """The principal the key acts as; raises `Unauthenticated` when the key is unknown,
        its secret wrong, or it is revoked."""


def revoked_key_mark(tenant: str, key_id: str) -> str:
    """The cache entry that refuses a revoked key in every process, before their copies of the
    key's record expire."""
    return f"auth:revoked:key:{tenant}:{key_id}"
