"""What identity needs from a store. Every read and write of a tenant's records names its tenant;
there is no way to reach another tenant's users through this port. Signing keys belong to the
platform, not to a tenant, and have a port of their own."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from bloop.platform.identity.model import ApiKey, Invitation, RefreshToken, SigningKey, Tenant, User
from bloop.platform.kit.auth import Role
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.outbox import OutboxStore
from bloop.platform.kit.pagination import Slice

ENDED_MARGIN = timedelta(days=1)
"""How long a session's end is kept past its last token's expiry (a successor stored while
it ended expires a moment after the tokens it read)."""
SEEN = frozenset({"display_name", "avatar_url"})
"""What others see of a user, which `user.profile_changed` carries (`replace_user`'s
`profile_read` is compared on them)."""


class Duplicate(Exception):
    """The record (a tenant id, a user's email within its tenant) already exists."""


class Missing(Exception):
    """The record to change does not exist (or no longer does)."""


class TooMany(Exception):
    """A write would take the tenant past a limit on how many it may have."""


class HoldsRole(Exception):
    """The user holds the role a write was told to leave alone (granted since it was read)."""


class LastHolder(Exception):
    """A write would leave the tenant with no user holding the role it was told to keep."""


class ZoneSetLater(Exception):
    """A write of the user's time zone as set at some time found one stored as set at `at`,
    no earlier."""

    def __init__(self, at: datetime) -> None:
        super().__init__(at.isoformat())
        self.at = at


class ProfileSetLater(Exception):
    """A write of the user's name and avatar over those it read found others stored since, or
    found them stored as set at `at` (None: never through such a write), no earlier."""

    def __init__(self, at: datetime | None) -> None:
        super().__init__(None if at is None else at.isoformat())
        self.at = at


@dataclass(frozen=True)
class Unannounced:
    """A user whose time zone is not the one last announced (a zone set before zones were
    announced, or by a version that did not announce it)."""

    user: User
    announced: str | None
    """The zone last announced for the user; None: none ever was."""
    set_at: datetime | None
    """When the stored zone was set, as `replace_user`'s `zone_at` (None: never told)."""


@dataclass(frozen=True)
class Announcement:
    read: Unannounced
    event: Envelope
    zone_at: datetime | None
    """Stored as when the user's zone was set (as `replace_user`'s); None: left as it is."""


class IdentityRepository(Protocol):
    @property
    def outbox(self) -> OutboxStore:
        """Where the events written beside each change wait for the relay."""

    async def setup(self) -> None:
        """Creates tables or indexes; safe to call on every start."""

    async def add_tenant(self, tenant: Tenant, events: Sequence[Envelope]) -> None:
        """Stores the tenant and its events atomically; `Duplicate` when the id is taken."""

    async def get_tenant(self, tenant_id: str) -> Tenant | None: ...

    async def list_tenants(self, *, after: str | None = None, limit: int = 50) -> list[Tenant]:
        """Tenants ordered by id, starting after the id `after`."""

    async def replace_tenant(self, tenant: Tenant, *,
                             settings: Collection[str] | None = None) -> None:
        """Stores the tenant's new state (only the `settings` named, when given, so an edit
        racing another of other settings keeps them); `Missing` when it does not exist."""

    async def add_user(self, user: User, events: Sequence[Envelope],
                       password_hash: str | None = None) -> None:
        """Stores the user, its password hash and its events atomically; `Duplicate` when the
        email is taken in the user's tenant. The tenant's invitations to its email are deleted
        (nobody could accept them now: `email_taken`), in the write's transaction on SQLite,
        just after it on MongoDB."""

    async def get_user(self, tenant: str, user_id: str) -> User | None: ...

    async def get_user_by_email(self, tenant: str, email: str) -> User | None:
        """`email` is already normalised."""

    async def get_login(self, tenant: str, email: str) -> tuple[User, str | None] | None:
        """The user with `email` (already normalised) and its password hash."""

    async def set_password_hash(self, tenant: str, user_id: str, password_hash: str, *,
                                replacing: str | None = None,
                                unless_role: Role | None = None) -> bool:
        """Stores the user's password hash; with `replacing`, only while the stored hash is
        still that one (False when another write came first). Missing: no such user.
        HoldsRole: the user holds `unless_role` (this and the writes below)."""

    async def replace_user(self, user: User, events: Sequence[Envelope], *,
                           fields: Collection[str] | None = None,
                           unless_role: Role | None = None,
                           keeping: Role | None = None,
                           announces_zone: bool = False,
                           zone_at: datetime | None = None,
                           profile_read: User | None = None,
                           profile_at: datetime | None = None) -> None:
        """Stores the user's new state (only `fields` of it, when named, so a write racing
        another of other fields keeps them) and its events atomically; `Missing` when the user
        does not exist. LastHolder: no other user of the tenant holds `keeping` (this and
        `delete_user`; checked in the write's transaction on SQLite, just before it on
        MongoDB). `announces_zone`: the events announce the user's time zone, kept as the one
        last announced (`unannounced_time_zones`). With `zone_at`, the time zone is stored as
        set then, only over one set earlier (ZoneSetLater otherwise, and nothing is written):
        the zones stored follow one another in the order of their times, as learning, keeping
        the latest, sees them. With `profile_read` (the user as read before the write), only
        while the stored name and avatar are still its; with `profile_at` too, they are stored
        as set then, only over ones set earlier (ProfileSetLater otherwise, and nothing is
        written): each `user.profile_changed` stored carries the name and avatar stored with it,
        and the latest by its time the ones stored last."""

    async def delete_user(self, tenant: str, user_id: str, events: Sequence[Envelope], *,
                          unless_role: Role | None = None,
                          keeping: Role | None = None,
                          since: datetime | None = None) -> list[str]:
        """Erases the user (email, profile, password) and stores its events atomically; the
        email is free again afterwards. `Missing` when the user does not exist. Their sessions
        end (as `revoke_user_sessions` ends them, whose sessions it returns) and their refresh
        tokens, their sign-in providers' links and the invitations to their email are deleted;
        the invitations they sent and the API keys they made (the tenant's, which go on
        working) name `personal_data.ERASED_USER` instead. All in the user's write's
        transaction on SQLite, just after it on MongoDB."""

    async def list_users(self, tenant: str, *, after: str | None = None,
                         limit: int = 50) -> list[User]:
        """Users ordered by email, starting after the email `after`."""

    async def unannounced_time_zones(self, tenant: str, *, after: str | None = None,
                                     limit: int = 500) -> list[Unannounced]:
        """The tenant's users whose time zone differs from the one last announced (none
        announced counts as UTC), ordered by id, starting after the id `after`."""

    async def announce_time_zones(self, tenant: str,
                                  announcements: Sequence[Announcement]) -> int:
        """Stores each event, its user's zone kept as the one last announced with it
        atomically (and its `zone_at`), for the users whose zone and zone last announced are
        still those read (others: another process, or an edit, came first); returns how many
        were stored. One transaction on SQLite, one write a user on MongoDB."""

    async def add_invitation(self, invitation: Invitation) -> None: ...

    async def get_invitation(self, tenant: str, token_hash: str) -> Invitation | None: ...

    async def delete_invitation(self, tenant: str, token_hash: str, *,
                                used: bool = False) -> bool:
        """True when it was there (of two deletes at once, one). With `used` (an acceptance),
        the token is remembered as used until the invitation would have expired
        (`invitation_used`; in the delete's transaction on SQLite, just after it on MongoDB);
        `add_invitation` putting it back forgets that."""

    async def invitation_used(self, tenant: str, token_hash: str, at: datetime) -> bool:
        """Whether the token was spent by an acceptance and its invitation had not expired
        by `at`."""

    async def pending_invitations(self, tenant: str, at: datetime, *, after: str | None = None,
                                  limit: int = 100) -> Slice[Invitation]:
        """The tenant's invitations not accepted, withdrawn or expired at `at`, newest first
        (then by token hash), up to `limit` of them from the cursor `after` on."""

    async def find_invitation(self, tenant: str, invitation_id: str) -> Invitation | None:
        """The invitation whose id (the start of its token's hash) is `invitation_id`,
        expired or not."""

    async def prune_invitations(self, tenant: str, email: str, at: datetime) -> None:
        """Deletes the tenant's invitations to `email` but the newest (the first that
        `pending_invitations` lists), and every invitation of the tenant expired at `at`, used
        ones included.
        Invitations to one email made at once, each pruning after its own was added, so end
        as exactly one: none deletes an invitation newer than the newest it read."""

    async def prune_expired_invitations(self, at: datetime) -> int:
        """Deletes the invitations, of every tenant, expired at `at` (used ones' marks too);
        returns how many invitations."""

    async def invitations_to(self, tenant: str, email: str) -> list[Invitation]:
        """The tenant's invitations to `email` not accepted or withdrawn (expired ones until
        pruned), newest first (a person's export)."""

    async def invitations_by(self, tenant: str, user_id: str) -> list[Invitation]:
        """The tenant's invitations `user_id` sent and nobody accepted or withdrew yet (expired
        ones until pruned), newest first (a person's export)."""

    async def add_refresh_token(self, token: RefreshToken) -> None: ...

    async def refresh_tokens_of(self, tenant: str, user_id: str) -> list[RefreshToken]:
        """Every refresh token of the user's sessions (until pruned), oldest first (a
        person's export)."""

    async def get_refresh_token(self, tenant: str, token_hash: str) -> RefreshToken | None:
        """The token as it is, changing nothing."""

    async def use_refresh_token(self, tenant: str, token_hash: str,
                                at: datetime) -> RefreshToken | None:
        """Marks the token used at `at` (its first use's time is kept), atomically, and returns
        it as it was before: a token returned with `used` set was presented a second time. It
        is returned revoked, whatever its own flag says, when its session was ended (below)."""

    async def revoke_refresh_family(self, tenant: str, family: str) -> int:
        """Ends the session `family`, and revokes every token of it; returns how many there
        were. Its end is kept apart from its tokens (until the last of them expires): a refresh
        that stored a successor while the revocation ran, or wrote its token's `used` over the
        revocation (a store whose updates are not atomic), still finds the session ended when
        it spends its token, and signs it out."""

    async def prune_refresh_tokens(self, at: datetime) -> int:
        """Forgets the refresh tokens, of every tenant, that expired by `at` (nothing can be
        done with them, not even telling a reused one); returns how many."""

    async def revoke_user_sessions(self, tenant: str, user_id: str, *, keep: str | None = None,
                                   since: datetime | None = None) -> list[str]:
        """Ends every session of the user but `keep` that has a live token, as
        `revoke_refresh_family` does, and revokes their refresh tokens; returns the
        sessions (families) that had a token not yet revoked, and those with a token made at or
        after `since` (whose access tokens may still be valid, revoked before or not)."""


class SigningKeyStore(Protocol):
    async def setup(self) -> None: ...

    async def add_signing_key(self, key: SigningKey) -> None: ...

    async def signing_keys(self) -> list[SigningKey]:
        """Every stored key, newest first."""

    async def delete_signing_keys(self, created_before: datetime) -> int: ...

    async def secret(self, name: str, candidate: bytes) -> bytes:
        """The platform's secret `name`, the same for every process on this store: `candidate`,
        stored, when there is none yet (of several stored at once, the first)."""


class ApiKeyStore(Protocol):
    """A tenant's API keys. Every call names the tenant: a key is found only within its own."""

    async def setup(self) -> None: ...

    async def add_api_key(self, key: ApiKey, *, max_live: int | None = None) -> None:
        """`Duplicate` when the tenant already has a key with this id; `TooMany` (nothing kept)
        when the tenant would have more than `max_live` live keys, keys added at once counted
        too."""

    async def get_api_key(self, tenant: str, key_id: str) -> ApiKey | None:
        """The key, revoked or not."""

    async def list_api_keys(self, tenant: str, *, revoked: bool | None = None,
                            created_by: str | None = None,
                            limit: int | None = 200) -> list[ApiKey]:
        """The tenant's keys, newest first: revoked or live ones only when `revoked` says,
        those one user created when `created_by` names them; all of them with no `limit`."""

    async def page_api_keys(self, tenant: str, *, revoked: bool | None = None,
                            after: str | None = None, limit: int = 50) -> Slice[ApiKey]:
        """The tenant's keys, newest first, `limit` at a time from the cursor `after`: revoked
        or live ones only when `revoked` says. `BadCursor` for a cursor of no such list."""

    async def count_live_api_keys(self, tenant: str) -> int: ...

    async def revoke_api_key(self, tenant: str, key_id: str, at: datetime) -> ApiKey | None:
        """Marks the key revoked at `at` (a key revoked before keeps its first time) and returns
        it as stored now; None when the tenant has no such key."""
