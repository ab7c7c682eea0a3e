"""Where content learns who belongs to a tenant (to check a co-author): never identity's store,
always its public surface. In one process with identity, its service object; otherwise
identity's HTTP API (`BLOOP_AUTH_IDENTITY_URL`), with the caller's credential, so the caller is
shown exactly what identity would show them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import httpx

from bloop.platform.identity.service import IdentityService
from bloop.platform.kit import peers
from bloop.platform.kit.auth import STAFF, Principal, authorise
from bloop.platform.kit.errors import NotFound, Problem, StoreUnavailable

IDENTITY_REFUSED = "identity_forbidden"


class Members(Protocol):
    async def roles(self, tenant: str, user_id: str, by: Principal | None,
                    credentials: Mapping[str, str]) -> frozenset[str] | None:
        """The roles `user_id` holds in `tenant`, None when the tenant has no such user.
        Refused (403) when the caller `by` may not look up the tenant's users."""


class TenantMembers:
    """Identity's users in this process when it runs here (looked up at each call: it may be
    mounted after content), else over HTTP at `base_url`."""

    def __init__(self, here: Callable[[], Mapping[str, object] | None], base_url: str | None,
                 client: httpx.AsyncClient | None = None, timeout_s: float = 10.0) -> None:
        self.here = here
        self.base_url = base_url.rstrip("/") if base_url else None
        self.client = client or httpx.AsyncClient(timeout=timeout_s)

    async def roles(self, tenant: str, user_id: str, by: Principal | None,
                    credentials: Mapping[str, str]) -> frozenset[str] | None:
        state = self.here()
        identity = None if state is None else state.get("service")
        if isinstance(identity, IdentityService):
            if by is not None:  # as identity's own route checks the caller
                try:
                    authorise(by, tenant, sorted(STAFF), ["identity:read"])
                except Problem as refused:
                    raise _refused(refused.detail) from None
            try:
                return frozenset((await identity.user(tenant, user_id)).roles)
            except NotFound:
                return None
        if self.base_url is None:
            raise StoreUnavailable("identity", "this process does not run identity; set "
                                               "BLOOP_AUTH_IDENTITY_URL")
        return await self._over_http(f"{self.base_url}/v1/tenants/{tenant}/users/{user_id}",
                                     credentials)

    async def _over_http(self, url: str, credentials: Mapping[str, str]) -> frozenset[str] | None:
        r = await peers.get(self.client, "identity", url, credentials)
        if r.status_code == 404:
            return None
        if r.status_code in (401, 403):
            raise _refused(str(peers.problem_of(r).get("detail") or f"HTTP {r.status_code}"))
        roles = r.json().get("roles")
        if not isinstance(roles, list):
            raise StoreUnavailable("identity", "a user without roles in its answer")
        return frozenset(str(role) for role in roles)

    async def close(self) -> None:
        await self.client.aclose()


def _refused(why: str) -> Problem:
    return Problem(f"naming a co-author needs looking up the tenant's users, which identity "
                   f"refuses this caller: {why}", status=403, code=IDENTITY_REFUSED)

