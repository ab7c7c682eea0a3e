"""Which Bloop account a provider's account (its `sub`) signs in to: the one it is linked to,
else, at its first sign-in, the tenant's user with the email the provider vouches for (or a new
learner), then linked to it. An admin sees and removes an account's links; a provider whose new
configuration names other accounts loses its links."""

from __future__ import annotations

import logging

from bloop.platform.identity.model import NewUser, User, email_address, now
from bloop.platform.identity.oidc.model import Attempt, ExternalIdentity, OidcLink, OidcProvider
from bloop.platform.identity.oidc.ports import OidcProviderStore
from bloop.platform.identity.oidc.problems import refuse
from bloop.platform.identity.service import IdentityService
from bloop.platform.kit.errors import Conflict, NotFound, Problem
from bloop.platform.kit.text import lookalike, one_line, visible

security = logging.getLogger("bloop.security")
log = logging.getLogger("bloop.identity.oidc")


class AccountLinks:
    def __init__(self, store: OidcProviderStore, identity: IdentityService) -> None:
        self.store = store
        self.identity = identity

    async def user_for(self, provider: OidcProvider, who: ExternalIdentity,
                       attempt: Attempt) -> User:
        attempt.subject, attempt.email = who.subject, who.email
        if lookalike(who.email):
            raise refuse("the provider's email address holds characters that read as others or "
                         "not at all (Unicode compatibility forms, format or control "
                         "characters): it cannot sign in", "oidc_email_unusable", 403)
        try:
            email = email_address(who.email)
        except ValueError:
            raise refuse("the provider's email address is malformed", "oidc_email_missing",
                         403) from None
        attempt.email = email
        if not who.email_verified:
            raise refuse(f"the provider has not verified the email {email}; verify it there "
                         "first", "oidc_email_unverified", 403)
        if not provider.allows(email):
            raise refuse(f"this tenant does not accept sign-ins from {email.rpartition('@')[2]} "
                         f"through {provider.name}", "oidc_domain_not_allowed", 403)
        link = await self.store.get_link(provider.tenant, provider.name, who.subject)
        if link is not None:
            # The link decides, whatever email the provider names now: an address it gives to
            # someone else later does not lead them into this account.
            linked = await self.identity.repo.get_user(provider.tenant, link.user_id)
            if linked is not None:
                attempt.user_id = linked.id
                _refuse_platform_admin(linked)
                return linked
        user = await self.identity.repo.get_user_by_email(provider.tenant, email)
        if user is not None:
            return await self._join(provider, who, email, user, attempt)
        if not provider.create_users:
            raise refuse(f"{email} has no account in this tenant; ask an administrator for an "
                         "invitation", "oidc_no_account", 403)
        display = one_line(who.name or email.partition("@")[0]).strip()[:200]
        display = display if visible(display) else email
        try:
            user = await self.identity.register_user(provider.tenant, NewUser(
                email=email, display_name=display, roles=["learner"]))
        except Conflict:
            again = await self.identity.repo.get_user_by_email(provider.tenant, email)
            if again is None:
                raise
            user = again
        return await self._join(provider, who, email, user, attempt)

    async def _join(self, provider: OidcProvider, who: ExternalIdentity, email: str, user: User,
                    attempt: Attempt) -> User:
        """Links the provider's account to `user`, that of its email, at its first sign-in:
        only an account with no link yet (an invitation's, an admin's or this provider's) is
        joined, so a second provider, or another account at this one that names the address
        (a mailbox given to someone else), does not come into it."""
        attempt.user_id = user.id
        _refuse_platform_admin(user)
        if not user.email_verified:
            # Whoever signed up chose the password and never proved the address: joining their
            # account would let them into the one the address's owner signs in to.
            raise refuse(f"the account of {email} was made by a sign-up that never proved the "
                         "address, so a provider's sign-in does not join it: sign in with its "
                         "password, or ask an administrator to remove the account",
                         "email_unverified", 409)
        link = OidcLink(tenant=provider.tenant, provider=provider.name, subject=who.subject,
                        user_id=user.id, email=email, linked_at=now())
        if await self.store.add_link(link):
            return user
        again = await self.store.get_link(provider.tenant, provider.name, who.subject)
        if again is not None and again.user_id == user.id:
            return user  # the same person's sign-in twice at once
        raise _linked_elsewhere(email)

    # an account's links

    async def links(self, tenant: str, user_id: str) -> list[OidcLink]:
        await self.identity.user(tenant, user_id)
        return await self.store.links_of(tenant, user_id)

    async def unlink(self, tenant: str, user_id: str, name: str, by: str) -> None:
        """Removes the account's link through the provider `name`: its next sign-in through a
        provider links it again, as a first one does."""
        await self.identity.user(tenant, user_id)
        if not await self.store.delete_link(tenant, user_id, name):
            raise NotFound(f"the user {user_id!r} has no link through the provider {name!r}",
                           code="oidc_link_not_found")
        security.info("provider link removed", extra={
            "tenant": tenant, "provider": name, "user_id": user_id, "by": by})

    async def reconfigured(self, existing: OidcProvider | None, provider: OidcProvider) -> None:
        """Drops the provider's links when its new configuration names other accounts than
        `existing`, the one it replaced, did."""
        if existing is not None and _accounts_of(existing) != _accounts_of(provider):
            # Another issuer's (or app's: Microsoft's subjects are per app) `sub` of the same
            # value is someone else: each account is linked again at its next sign-in.
            dropped = await self.store.forget_links(provider.tenant, provider.name)
            log.info("tenant %s: the sign-in provider %s now names other accounts; %d links "
                     "dropped", provider.tenant, provider.name, dropped)


def _linked_elsewhere(email: str) -> Problem:
    return refuse(f"the account of {email} is linked to another account at a sign-in provider; "
                  "a tenant administrator removes that link (the user's oidc-links) before this "
                  "one can sign in to it", "oidc_linked_elsewhere", 409)


def _accounts_of(provider: OidcProvider) -> tuple[str | None, ...]:
    """What decides whose account a provider's `sub` is: its issuer (or GitHub's API) and the
    app registered there."""
    return provider.kind, provider.issuer, provider.api_url, provider.client_id


def _refuse_platform_admin(user: User) -> None:
    if "platform_admin" in user.roles:
        # A tenant admin configures the tenant's providers, and a provider vouches for any
        # address it likes: it must not reach powers no tenant admin may grant.
        raise refuse(f"{user.email} is a platform admin, who signs in with a password, not "
                     f"through a tenant's provider", "oidc_platform_admin", 403)
