"""What external sign-in needs: a store of each tenant's providers and of the accounts linked
through them."""

from __future__ import annotations

from typing import Protocol

from bloop.platform.identity.oidc.model import OidcLink, OidcProvider


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
