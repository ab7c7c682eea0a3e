"""identity's GraphQL fields: a tenant, and its users a page at a time.

Reads only, under the HTTP API's rules: members of a tenant see it; its staff see its users.
"""

from __future__ import annotations

from datetime import datetime

import strawberry

from bloop.graphql.context import Context
from bloop.graphql.fields import Page, field, page_size, sized
from bloop.graphql.scalars import Slug
from bloop.platform.identity import model
from bloop.platform.identity.api import STAFF_ROLES, EmailAfter
from bloop.platform.identity.service import IdentityService
from bloop.platform.kit.errors import NotFound

Info = strawberry.Info[Context, None]


def _service(info: Info) -> IdentityService:
    return info.context.service("identity", IdentityService)


@strawberry.type(description="an organisation using Bloop: its people, courses and learning "
                             "data are its own")
class Tenant:
    id: str = strawberry.field(description="its id, a slug")
    name: str = strawberry.field(description="its display name")
    created_at: datetime = strawberry.field(description="when it was created")

    @classmethod
    def of(cls, tenant: model.Tenant) -> Tenant:
        return cls(id=tenant.id, name=tenant.name, created_at=tenant.created_at)


@strawberry.type(description="a person's account in a tenant")
class User:
    id: str = strawberry.field(description="the user's id")
    tenant: str = strawberry.field(description="the id of their tenant")
    email: str = strawberry.field(description="their email address, compared without regard to "
                                              "case (stored lower-case)")
    display_name: str = strawberry.field(description="the name shown for them")
    roles: list[str] = strawberry.field(description=(
        "at least one of `learner`, `educator`, `teaching_assistant`, `tenant_admin` and "
        "`platform_admin`, each once, in that order"))
    avatar_url: str | None = strawberry.field(description="their picture's URL; null when none")
    locale: str = strawberry.field(description="the language they read, a BCP 47 tag such as "
                                               "`en`")
    time_zone: str = strawberry.field(description="their IANA time zone, such as "
                                                  "`Europe/Lisbon`")
    bio: str = strawberry.field(description="what they say about themselves; empty when nothing")
    email_verified: bool = strawberry.field(description=(
        "false for an account made by self sign-up, whose email no one proved is theirs"))
    created_at: datetime = strawberry.field(description="when the account was made")

    @classmethod
    def of(cls, user: model.User) -> User:
        return cls(id=user.id, tenant=user.tenant, email=user.email,
                   display_name=user.display_name, roles=list(user.roles),
                   avatar_url=user.avatar_url, locale=user.locale, time_zone=user.time_zone,
                   bio=user.bio, email_verified=user.email_verified,
                   created_at=user.created_at)


@strawberry.type
class Query:
    @field("a tenant; null when there is none")
    async def tenant(self, info: Info, id: Slug) -> Tenant | None:
        info.context.authorise(id, scopes=["identity:read"])
        try:
            return Tenant.of(await _service(info).tenant(id))
        except NotFound:
            return None

    @field("the tenant's users ordered by email, `first` of them after the cursor `after`; "
           "null when there is no such tenant")
    async def users(self, info: Info, tenant: Slug, first: int = 50,
                    after: str | None = None) -> Page[User] | None:
        info.context.authorise(tenant, *STAFF_ROLES, scopes=["identity:read"])
        try:
            users = await _service(info).users(tenant, after=sized(after, "after", EmailAfter),
                                               limit=page_size(first))
        except NotFound:
            return None
        return Page.of(users, User.of)
