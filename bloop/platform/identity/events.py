"""The events identity publishes on `user.events`. A user's email stays in identity: the events
carry what other services need to show and authorise a user, and no more."""

from __future__ import annotations

from pydantic import BaseModel

from bloop.platform.identity.model import Role
from bloop.platform.kit.events.types import event_type
from bloop.platform.kit.times import EventTime

TOPIC = "user.events"


@event_type("bloop.identity.tenant.created", 1, TOPIC)
class TenantCreated(BaseModel):
    tenant_id: str
    name: str
    created_at: EventTime


@event_type("bloop.identity.user.registered", 1, TOPIC)
class UserRegistered(BaseModel):
    user_id: str
    display_name: str
    roles: list[Role]
    registered_at: EventTime


@event_type("bloop.identity.user.profile_changed", 1, TOPIC)
class UserProfileChanged(BaseModel):
    """The name or avatar others see for the user changed (their other settings stay theirs)."""

    user_id: str
    display_name: str
    avatar_url: str | None
    changed_at: EventTime


@event_type("bloop.identity.user.time_zone_changed", 1, TOPIC)
class UserTimeZoneChanged(BaseModel):
    """The user's IANA time zone changed (learning starts their day by it)."""

    user_id: str
    time_zone: str
    changed_at: EventTime  # a zone set before zones were announced: when the user was made


@event_type("bloop.identity.user.role_changed", 1, TOPIC)
class UserRoleChanged(BaseModel):
    user_id: str
    roles: list[Role]
    previous_roles: list[Role]
    changed_by: str
    changed_at: EventTime


@event_type("bloop.identity.user.deleted", 1, TOPIC)
class UserDeleted(BaseModel):
    """The user is gone: every service erases or anonymises what it holds about them."""

    user_id: str
    deleted_by: str
    deleted_at: EventTime
