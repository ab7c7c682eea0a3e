"""Identity's use cases. They take ports (a repository, the key ring, the cache) and never a
driver."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ValidationError

from bloop.platform.identity import passwords
from bloop.platform.identity.events import (
    TenantCreated,
    UserDeleted,
    UserProfileChanged,
    UserRegistered,
    UserRoleChanged,
    UserTimeZoneChanged,
)
from bloop.platform.identity.keys import KeyRing
from bloop.platform.identity.model import (
    ApiKey,
    Invitation,
    InvitationAcceptance,
    NewApiKey,
    NewInvitation,
    NewTenant,
    NewUser,
    ProfileEdit,
    RefreshToken,
    Role,
    RoleChange,
    SignUp,
    Tenant,
    TenantSettingsEdit,
    User,
    normalise_email,
    now,
)
from bloop.platform.identity.ports import (
    SEEN,
    Announcement,
    ApiKeyStore,
    Duplicate,
    HoldsRole,
    IdentityRepository,
    LastHolder,
    Missing,
    ProfileSetLater,
    SigningKeyStore,
    TooMany,
    Unannounced,
    ZoneSetLater,
)
from bloop.platform.kit.auth import (
    SCOPES,
    ApiKeyCredential,
    Forbidden,
    Principal,
    RateLimited,
    RateLimiter,
    Scope,
    TokenVerifier,
    Unauthenticated,
)
from bloop.platform.kit.auth.apikeys import revoked_key_mark
from bloop.platform.kit.auth.revocations import Revocations
from bloop.platform.kit.auth.tokens import taken_after_expiry_s
from bloop.platform.kit.cache import Cache
from bloop.platform.kit.errors import Conflict, NotFound, Problem, is_store_down
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.types import type_of
from bloop.platform.kit.pagination import Slice
from bloop.platform.kit.settings import AuthSettings

ANNOUNCE_BATCH = 500
"""Users whose time zones are announced in one write at start-up (`announce_time_zones`)."""
HASH_WRITES = 3
"""Tries of a password change whose hash a sign-in renewed meanwhile (same password)."""
PROFILE_WRITES = 5
"""Tries of a profile edit whose name, avatar or time zone other edits stored meanwhile."""
PASSWORD_RETRY_S = 900
"""How long a session that changed its password has that change's retry answered as done."""
ACCOUNT_DIGEST_KEY = "account-digest"
"""The name under which identity keeps the key of `account_digest`."""

# Sign-in refusals an operator watches for attacks; accounts are named by a digest, not an email.
security = logging.getLogger("bloop.security")
log = logging.getLogger("bloop.identity")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class IdentityService:
    def __init__(self, repo: IdentityRepository,
                 on_write: Callable[[], None] = lambda: None, *,
                 hasher: passwords.Hasher | None = None,
                 settings: AuthSettings | None = None,
                 verifier: TokenVerifier | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        """`on_write` runs after each write that stored events (the outbox relay's `wake`);
        `verifier` refuses the access tokens of sessions signed out here."""
        self.repo = repo
        self._on_write = on_write
        self._hasher = hasher
        self.settings = settings or AuthSettings()
        self.verifier = verifier
        self.clock = clock

    @property
    def hasher(self) -> passwords.Hasher:
        if self._hasher is None:
            self._hasher = passwords.Hasher()
        return self._hasher

    # tenants

    async def create_tenant(self, new: NewTenant) -> Tenant:
        tenant = Tenant.create(new)
        event = type_of(TenantCreated).envelope(
            TenantCreated(tenant_id=tenant.id, name=tenant.name, created_at=tenant.created_at),
            tenant=tenant.id, subject=tenant.id, time=tenant.created_at)
        try:
            await self.repo.add_tenant(tenant, [event])
        except Duplicate:
            raise Conflict(f"the tenant {tenant.id!r} already exists",
                           code="tenant_exists") from None
        self._on_write()
        return tenant

    async def tenant(self, tenant_id: str) -> Tenant:
        tenant = await self.repo.get_tenant(tenant_id)
        if tenant is None:
            raise NotFound(f"no tenant {tenant_id!r}")
        return tenant

    async def tenants(self, *, after: str | None = None, limit: int = 50) -> Slice[Tenant]:
        """The tenants by id, `limit` at a time after the id `after`."""
        found = await self.repo.list_tenants(after=after, limit=limit + 1)
        return Slice.keyed(found, limit, lambda t: t.id)

    async def update_settings(self, tenant_id: str, edit: TenantSettingsEdit) -> Tenant:
        updated = (await self.tenant(tenant_id)).with_settings(edit)
        changed = edit.model_dump(exclude_none=True).keys()
        if not changed:
            return updated
        try:
            await self.repo.replace_tenant(updated, settings=changed)
        except Missing:
            raise NotFound(f"no tenant {tenant_id!r}") from None
        return updated

    # users

    async def register_user(self, tenant_id: str, new: NewUser, *,
                            by: Principal | None = None) -> User:
        """Adds a user; `by` is the admin doing it (None for the platform itself)."""
        if by is not None:
            _may_grant(by, new.roles)
        await self.tenant(tenant_id)
        hashed = None
        if new.password is not None:
            password = new.password.get_secret_value()
            passwords.check(password, email=new.email)
            hashed = await self.hasher.hash(password)
        return await self._add_user(User.register(tenant_id, new), hashed)

    async def _add_user(self, user: User, password_hash: str | None) -> User:
        event = type_of(UserRegistered).envelope(
            UserRegistered(user_id=user.id, display_name=user.display_name, roles=user.roles,
                           registered_at=user.created_at),
            tenant=user.tenant, subject=user.id, time=user.created_at)
        try:
            await self.repo.add_user(user, [event], password_hash)
        except Duplicate:
            raise Conflict(f"a user with the email {user.email!r} already exists in this tenant",
                           code="email_taken") from None
        self._on_write()
        return user

    async def sign_up(self, tenant_id: str, body: SignUp) -> User:
        """Self-service sign-up, open to emails at the domains the tenant allows. Bloop sends
        no email, so the account's email stays unverified: a provider's sign-in does not join
        it (`OidcService`)."""
        tenant = await self.repo.get_tenant(tenant_id)
        if tenant is None or not tenant.settings.allows_signup(body.email):
            raise Forbidden("this tenant does not accept sign-ups from that email domain; ask "
                            "an administrator for an invitation", code="signup_not_allowed")
        password = body.password.get_secret_value()
        passwords.check(password, email=body.email)
        user = User.register(tenant_id, NewUser(email=body.email, display_name=body.display_name),
                             email_verified=False)
        return await self._add_user(user, await self.hasher.hash(password))

    async def user(self, tenant_id: str, user_id: str) -> User:
        user = await self.repo.get_user(tenant_id, user_id)
        if user is None:
            raise NotFound(f"no user {user_id!r} in tenant {tenant_id!r}")
        return user

    async def users(self, tenant_id: str, *, after: str | None = None,
                    limit: int = 50) -> Slice[User]:
        """The tenant's users by email, `limit` at a time after the email `after`."""
        await self.tenant(tenant_id)
        found = await self.repo.list_users(tenant_id, after=after, limit=limit + 1)
        return Slice.keyed(found, limit, lambda u: u.email)

    async def update_profile(self, tenant_id: str, user_id: str, edit: ProfileEdit) -> User:
        """Writes only the fields the edit sets, so an edit racing a role change (or another
        edit) does not put back what that one changed. Learning hears of each time zone set,
        the same again too (it keeps the latest), and the zones are stored in the order of the
        times the events carry: an edit finding a zone stored as set later tries again later.
        A name or avatar is written only over the ones read, and stored in the order of the
        times of their `user.profile_changed`, which carries both as stored: an edit finding
        others stored since tries again, from them."""
        changed = edit.changes().keys()
        zone_stored_at: datetime | None = None
        profile_stored_at: datetime | None = None
        for _ in range(PROFILE_WRITES):
            user = await self.user(tenant_id, user_id)
            updated = user.with_profile(edit)
            if not changed:
                return updated
            events: list[Envelope] = []
            profile_at = None
            if (updated.display_name, updated.avatar_url) != (user.display_name, user.avatar_url):
                profile_at = _after(profile_stored_at)
                events.append(type_of(UserProfileChanged).envelope(
                    UserProfileChanged(user_id=user.id, display_name=updated.display_name,
                                       avatar_url=updated.avatar_url, changed_at=profile_at),
                    tenant=tenant_id, subject=user.id, time=profile_at))
            zone_at = None
            if "time_zone" in changed:
                zone_at = _after(zone_stored_at)
                events.append(type_of(UserTimeZoneChanged).envelope(
                    UserTimeZoneChanged(user_id=user.id, time_zone=updated.time_zone,
                                        changed_at=zone_at),
                    tenant=tenant_id, subject=user.id, time=zone_at))
            try:
                await self.repo.replace_user(
                    updated, events, fields=changed, zone_at=zone_at,
                    announces_zone=zone_at is not None,
                    profile_read=None if SEEN.isdisjoint(changed) else user,
                    profile_at=profile_at)
            except Missing:
                raise NotFound(f"no user {user_id!r} in tenant {tenant_id!r}") from None
            except ZoneSetLater as later:
                zone_stored_at = later.at
                continue
            except ProfileSetLater as later:
                profile_stored_at = later.at or profile_stored_at
                continue
            if events:
                self._on_write()
            return updated
        raise Conflict("the profile kept changing; try again", code="busy")

    async def announce_time_zones(self, *, batch: int = ANNOUNCE_BATCH) -> int:
        """Announces (`user.time_zone_changed`) each time zone other than the one last
        announced for its user, `batch` users a write; returns how many. One never announced
        (set before identity announced zones) says it changed when the user was made, before
        any change announced as it was made, which learning keeps over it whichever comes
        first (one stored with the time it was set, by the version that marked zones announced
        with a flag, just after then: learning may have missed that announcement); one changed
        by a version that did not announce it says now (and is stored as set then), after the
        one learning keeps."""
        announced, tenants_after = 0, None
        while tenants := await self.repo.list_tenants(after=tenants_after, limit=100):
            for tenant in tenants:
                after = None
                while users := await self.repo.unannounced_time_zones(tenant.id, after=after,
                                                                      limit=batch):
                    at = now()
                    stored = await self.repo.announce_time_zones(
                        tenant.id, [_announcement(tenant.id, u, at) for u in users])
                    if stored:
                        self._on_write()
                    announced += stored
                    after = users[-1].user.id
            tenants_after = tenants[-1].id
        return announced

    async def change_roles(self, tenant_id: str, user_id: str, change: RoleChange,
                           by: Principal) -> User:
        user = await self.user(tenant_id, user_id)
        _may_grant(by, [*change.roles, *user.roles])
        if change.roles == user.roles:
            return user
        updated = user.with_roles(change.roles)
        at = now()
        event = type_of(UserRoleChanged).envelope(
            UserRoleChanged(user_id=user.id, roles=updated.roles, previous_roles=user.roles,
                            changed_by=by.user_id, changed_at=at),
            tenant=tenant_id, subject=user.id, time=at)
        keeping: Role | None = ("tenant_admin" if "tenant_admin" in user.roles
                                and "tenant_admin" not in updated.roles else None)
        try:
            await self.repo.replace_user(updated, [event], fields=["roles"],
                                         unless_role=_guarded(by), keeping=keeping)
        except Missing:
            raise NotFound(f"no user {user_id!r} in tenant {tenant_id!r}") from None
        except HoldsRole:
            raise _platform_admins_only() from None
        except LastHolder:
            raise _last_admin("take the tenant_admin role from") from None
        self._on_write()
        if set(user.roles) - set(updated.roles):
            # Their tokens carry the roles taken away: they sign in again to get the new ones.
            await self.end_sessions(tenant_id, user_id)
        return updated

    async def delete_user(self, tenant_id: str, user_id: str, by: Principal) -> None:
        user = await self.user(tenant_id, user_id)
        _may_grant(by, user.roles)
        at = now()
        event = type_of(UserDeleted).envelope(
            UserDeleted(user_id=user_id, deleted_by=by.user_id, deleted_at=at),
            tenant=tenant_id, subject=user_id, time=at)
        keeping: Role | None = "tenant_admin" if "tenant_admin" in user.roles else None
        try:
            families = await self.repo.delete_user(
                tenant_id, user_id, [event], unless_role=_guarded(by), keeping=keeping,
                since=self._tokens_since())
        except Missing:
            raise NotFound(f"no user {user_id!r} in tenant {tenant_id!r}") from None
        except HoldsRole:
            raise _platform_admins_only() from None
        except LastHolder:
            raise _last_admin("delete") from None
        self._on_write()
        await self._refuse_access(families)

    async def sign_ins(self, tenant_id: str, user_id: str) -> list[RefreshToken]:
        """The refresh tokens of the user's sessions, oldest first (their export)."""
        return await self.repo.refresh_tokens_of(tenant_id, user_id)

    async def invitations_sent(self, tenant_id: str, user_id: str) -> list[Invitation]:
        """The invitations the user sent that are still pending, newest first (their export)."""
        return await self.repo.invitations_by(tenant_id, user_id)

    async def invitations_received(self, tenant_id: str, email: str) -> list[Invitation]:
        """The invitations to `email` not accepted or withdrawn, newest first (their export)."""
        return await self.repo.invitations_to(tenant_id, email)

    async def end_sessions(self, tenant_id: str, user_id: str, *, keep: str | None = None) -> None:
        """Signs the user out everywhere but the session `keep`: their refresh tokens are
        revoked and their access tokens refused. A retry after a failure part-way finishes it:
        sessions whose access tokens may still be valid are refused again, revoked or not."""
        await self._refuse_access(await self.repo.revoke_user_sessions(
            tenant_id, user_id, keep=keep, since=self._tokens_since()))

    def _tokens_since(self) -> datetime:
        """When the oldest access token that may still be valid was issued."""
        return datetime.fromtimestamp(self.clock() - self.settings.access_ttl_s
                                      - taken_after_expiry_s(self.settings), UTC)

    async def _refuse_access(self, families: list[str]) -> None:
        """Refuses the access tokens of the sessions `families`."""
        if self.verifier is not None:
            for family in families:
                await self.verifier.revoke_session(family)

    # invitations

    async def invite(self, tenant_id: str, new: NewInvitation,
                     by: Principal) -> tuple[Invitation, str]:
        """An invitation and its token: the token is shown once, and only its hash is kept."""
        _may_grant(by, new.roles)
        await self.tenant(tenant_id)
        if await self.repo.get_user_by_email(tenant_id, new.email) is not None:
            raise Conflict(f"a user with the email {new.email!r} already exists in this tenant",
                           code="email_taken")
        token = secrets.token_urlsafe(32)
        at = now()
        invitation = Invitation(
            token_hash=token_hash(token), tenant=tenant_id, email=new.email, roles=new.roles,
            invited_by=by.user_id, created_at=at,
            expires_at=at + timedelta(seconds=self.settings.invitation_ttl_s))
        await self.repo.add_invitation(invitation)
        # one invitation per email; expired ones are cleared while at it
        await self.repo.prune_invitations(tenant_id, invitation.email, at)
        return invitation, token

    async def prune_invitations(self) -> int:
        """Deletes every tenant's expired invitations, and the emails they hold with them;
        returns how many (an identity process does so every PRUNE_INVITATIONS_S)."""
        return await self.repo.prune_expired_invitations(now())

    async def invitations(self, tenant_id: str, *, after: str | None = None,
                          limit: int = 100) -> Slice[Invitation]:
        """The tenant's pending invitations, newest first, a page at a time."""
        await self.tenant(tenant_id)
        return await self.repo.pending_invitations(tenant_id, now(), after=after, limit=limit)

    async def withdraw_invitation(self, tenant_id: str, invitation_id: str) -> None:
        """The invitation's token stops working at once."""
        invitation = await self.repo.find_invitation(tenant_id, invitation_id)
        if invitation is None or invitation.expires_at <= now():
            raise NotFound(f"no pending invitation {invitation_id!r} in tenant {tenant_id!r}")
        await self.repo.delete_invitation(tenant_id, invitation.token_hash)

    async def accept_invitation(self, tenant_id: str, body: InvitationAcceptance) -> User:
        """The invitation is spent before the account is made (of two acceptances at once, one
        spends it) and put back when the account cannot be made, so neither a failure nor a
        retry leaves an account beside an invitation still pending."""
        hashed = token_hash(body.token)
        invitation = await self.repo.get_invitation(tenant_id, hashed)
        if invitation is None or invitation.expires_at <= now():
            raise await self._unusable(tenant_id, hashed)
        password = body.password.get_secret_value()
        passwords.check(password, email=invitation.email)
        try:
            new = NewUser(email=invitation.email, display_name=body.display_name,
                          roles=invitation.roles)
        except ValidationError:  # an address invited before the rule that now refuses it
            raise Conflict("the invitation's address is not usable: it holds characters that "
                           "read as others or not at all; ask for an invitation to another",
                           code="email_unusable") from None
        user = User.register(tenant_id, new)
        password_hash = await self.hasher.hash(password)
        if not await self.repo.delete_invitation(tenant_id, hashed, used=True):
            raise await self._unusable(tenant_id, hashed)
        try:
            return await self._add_user(user, password_hash)
        except Exception:
            await asyncio.shield(self.repo.add_invitation(invitation))
            raise

    async def _unusable(self, tenant_id: str, hashed: str) -> Problem:
        """Why the token is refused: 409 when it was accepted already (a retry whose answer was
        lost, most likely), which tells the holder no more than that."""
        if await self.repo.invitation_used(tenant_id, hashed, now()):
            return Conflict("this invitation was accepted already: sign in with its email "
                            "address and the password chosen then", code="invitation_used")
        return Problem("the invitation is unknown, used or expired; ask for a new one",
                       status=404, code="invitation_invalid")


def _may_grant(by: Principal, roles: list[Role]) -> None:
    if "platform_admin" in roles and not by.is_platform_admin:
        raise _platform_admins_only()


def _guarded(by: Principal) -> Role | None:
    """The role a write by `by` must find its user without, at the write itself: one granted
    after the user was read and checked is still out of reach."""
    return None if by.is_platform_admin else "platform_admin"


def _last_admin(act: str) -> Conflict:
    return Conflict(f"this is the tenant's only admin: make someone else a tenant_admin before "
                    f"you {act} them (else nobody could manage the tenant)", code="last_admin")


def _platform_admins_only() -> Forbidden:
    return Forbidden("only a platform admin may grant, revoke or act on the platform_admin role",
                     code="missing_role")


def _after(stored: datetime | None) -> datetime:
    """Now, or just after `stored` (a time stored by a host whose clock is ahead) if later."""
    return now() if stored is None else max(now(), stored + timedelta(microseconds=1))


class TokenGrant(BaseModel):
    """The OAuth2 token response (RFC 6749 §5.1)."""

    access_token: str
    token_type: str = "bearer"  # noqa: S105  (the OAuth2 token type, not a secret)
    expires_in: int
    refresh_token: str
    scope: str


def invalid_grant(detail: str, code: str = "invalid_grant") -> Problem:
    return Problem(detail, status=400, code=code, extra={"error": "invalid_grant"})


class LoginThrottle:
    """Failed sign-ins counted per account and address, per account, and per address; past a
    limit the sign-in is refused for `lockout_s`, before any password is checked.

    An account is locked for an address after `account_max_failures` from that address, and
    for everyone else after `account_max_failures_anywhere` from all addresses together. The
    addresses it signed in from in the last `known_address_s` are not everyone else: guessing
    from anywhere cannot lock the owner out where they signed in before (their own address's
    lock still holds). An attempt is counted for its account and address, and for its
    account, before its password is checked, and forgiven when it succeeds, so guesses sent
    at once cannot all pass the check before any of them has failed. The address count is
    failures only, once known: a classroom signing in at once behind one address is not taken
    for an attack."""

    def __init__(self, cache: Cache, settings: AuthSettings, secrets: SigningKeyStore) -> None:
        self.cache, self.settings, self.secrets = cache, settings, secrets
        self._digest_key: bytes | None = None

    async def _key(self) -> bytes:
        if self._digest_key is None:
            self._digest_key = await self.secrets.secret(ACCOUNT_DIGEST_KEY, secrets.token_bytes(32))
        return self._digest_key

    async def digest(self, tenant: str, email: str) -> str:
        """The account, or another name of a person (a provider's subject), as the security log
        names it (see `account_digest`)."""
        return account_digest(await self._key(), tenant, email)

    async def _known(self, tenant: str, email: str, ip: str) -> str:
        """The mark of an address the account signed in from: keyed, like `account_digest`,
        so the cache does not tell who signs in from where."""
        named = hmac.new(await self._key(), f"{tenant}\0{email}\0{ip}".encode(), hashlib.sha256)
        return f"auth:known:{named.hexdigest()[:32]}"

    def _keys(self, tenant: str, email: str, ip: str) -> tuple[str, str, str]:
        account = f"auth:fail:acct:{tenant}:{email}"
        return f"{account}:from:{ip}", account, f"auth:fail:ip:{ip}"

    async def attempt(self, tenant: str, email: str, ip: str,
                      verify: Callable[[], Awaitable[bool]]) -> bool:
        """Runs `verify`, a password check, as one counted attempt; refuses it with 429 when the
        account (for this address or, unless the account signed in from it, for all) or the
        address is locked."""
        s = self.settings
        pair, account, address = self._keys(tenant, email, ip)
        known = await self._known(tenant, email, ip)
        attempts, (address_failures, signed_in_here) = await self.cache.incr_and_get_many(
            pair, [address, known], ttl_s=s.lockout_s)
        if attempts > s.account_max_failures:
            raise await self._account_locked(tenant, email, ip)
        anywhere = await self.cache.incr(account, 1, ttl_s=s.lockout_s)

        async def forgive() -> None:
            await self.cache.decr(pair)
            await self.cache.decr(account)

        if anywhere > s.account_max_failures_anywhere and signed_in_here is None:
            await forgive()
            raise await self._account_locked(tenant, email, ip)
        if address_failures is not None and int(address_failures) >= s.ip_max_failures:
            await forgive()
            security.warning("sign-in refused: address locked", extra={
                "tenant": tenant, "account": await self.digest(tenant, email), "client_ip": ip})
            raise Problem(f"too many failed sign-ins from this address: try again in "
                          f"{_minutes(s.lockout_s)}", status=429, code="too_many_attempts",
                          headers={"Retry-After": str(s.lockout_s)})
        try:
            right = await verify()
        except BaseException:
            await asyncio.shield(forgive())  # not a guess
            raise
        if right:
            await self.cache.delete(pair)
            await self.cache.decr(account)
            await self._remember(known, tenant, email, ip)
        else:
            await self.cache.incr(address, 1, ttl_s=s.lockout_s)
            security.info("sign-in refused: wrong password", extra={
                "tenant": tenant, "account": await self.digest(tenant, email), "client_ip": ip})
        return right

    async def remember(self, tenant: str, email: str, ip: str) -> None:
        """Marks the address as one the account signed in from (a sign-in through a provider,
        which checks no password here), so guesses elsewhere do not lock the owner out there."""
        await self._remember(await self._known(tenant, email, ip), tenant, email, ip)

    async def _remember(self, known: str, tenant: str, email: str, ip: str) -> None:
        """Marks the address as one the account signed in from, if the cache takes it: without
        the mark, the sign-in that was right stands, whatever the cache failed with (down, out
        of memory, a reply it could not read, a bug: an error that is no outage is logged with
        its traceback)."""
        if not self.settings.known_address_s or not ip:
            return
        try:
            await self.cache.set(known, b"1", ttl_s=self.settings.known_address_s)
        except Exception as exc:
            down = is_store_down(exc)
            log.warning("the cache %s: an address the account signed in from is not "
                        "remembered", "is down" if down else "failed",
                        exc_info=None if down else exc,
                        extra={"tenant": tenant, "account": await self.digest(tenant, email),
                               "client_ip": ip, "error": repr(exc)})

    async def _account_locked(self, tenant: str, email: str, ip: str) -> Problem:
        s = self.settings
        security.warning("sign-in refused: account locked", extra={
            "tenant": tenant, "account": await self.digest(tenant, email), "client_ip": ip})
        return Problem(f"too many failed sign-ins for this account: it is locked for "
                       f"{_minutes(s.lockout_s)}; try again later or reset the password",
                       status=429, code="account_locked",
                       headers={"Retry-After": str(s.lockout_s)})


def account_digest(key: bytes, tenant: str, email: str) -> str:
    """A stable name for an account in logs that does not give its email away: keyed, so that
    nobody without the deployment's secret can tell it from a list of candidate emails."""
    return hmac.new(key, f"{tenant}\0{email}".encode(), hashlib.sha256).hexdigest()[:16]


def _minutes(seconds: int) -> str:
    return f"{max(1, round(seconds / 60))} minutes" if seconds >= 60 else f"{seconds} seconds"


class AuthService:
    """Sign-in (OAuth2 password grant), refresh with rotation and reuse detection, sign-out."""

    def __init__(self, identity: IdentityService, keys: KeyRing, verifier: TokenVerifier,
                 cache: Cache, settings: AuthSettings,
                 clock: Callable[[], float] = time.time) -> None:
        self.identity = identity
        self.repo = identity.repo
        self.keys = keys
        self.verifier = verifier
        self.settings = settings
        self.cache = cache
        self.throttle = LoginThrottle(cache, settings, keys.store)
        self.requests = RateLimiter(cache, settings.token_rate_limit,
                                    settings.token_rate_window_s, clock)
        self.clock = clock
        self._pruned_at = 0.0

    async def admit(self, client_ip: str) -> None:
        """Counts a request from `client_ip` that hashes a password (a token request, right or
        wrong, or a sign-up) before any work; `RateLimited` past the address's budget."""
        state = await self.requests.hit(f"token:{client_ip}")
        if not state.allowed:
            raise RateLimited(state, "token_requests")

    async def login(self, tenant: str, username: str, password: str, scope: str,
                    client_ip: str) -> TokenGrant:
        await self.admit(client_ip)
        try:
            email = normalise_email(username)
        except ValueError:
            raise invalid_grant("the username must be the account's email address") from None
        scopes = _scopes(scope)
        found = await self.repo.get_login(tenant, email)
        user, hashed = found if found is not None else (None, None)

        async def verify() -> bool:
            return await self.identity.hasher.verify(hashed, password)  # None: the dummy hash

        if not await self.throttle.attempt(tenant, email, client_ip, verify) or user is None:
            raise invalid_grant("wrong email or password", code="invalid_credentials")
        if hashed is not None and self.identity.hasher.needs_rehash(hashed):
            rehashed = await self.identity.hasher.hash(password)
            if await self.repo.set_password_hash(tenant, user.id, rehashed, replacing=hashed):
                hashed = rehashed
        family = uuid.uuid4().hex
        grant = await self._grant(user, family, scopes)
        # A password change that signed the user's sessions out before this one was stored
        # must not miss it. (Another sign-in's rehash changes the hash, not the password.)
        now_found = await self.repo.get_login(tenant, email)
        now_hash = None if now_found is None else now_found[1]
        if now_hash != hashed and not await self.identity.hasher.verify(now_hash, password):
            await self.repo.revoke_refresh_family(tenant, family)
            raise invalid_grant("the password changed while signing in; sign in again",
                                code="invalid_credentials")
        return grant

    async def refresh(self, tenant: str, refresh_token: str, scope: str,
                      client_ip: str) -> TokenGrant:
        """A new pair for a refresh token, which is spent. A request refused for its scope
        spends nothing, so the client can ask again with the same token. The new pair is stored
        before the old token is spent: a refresh that fails part-way leaves the old token
        unspent for the client's retry, never a spent token and no successor."""
        await self.admit(client_ip)
        hashed = token_hash(refresh_token)
        found = await self.repo.get_refresh_token(tenant, hashed)
        if found is None or found.revoked:
            raise invalid_grant("the refresh token is unknown or revoked; sign in again")
        if found.used and not self._in_grace(found):
            raise await self._reused(tenant, found, client_ip)
        scopes = _scopes(scope) if scope else list(found.scopes)
        if not set(scopes) <= set(found.scopes):
            raise invalid_grant("a refresh may narrow the scopes, never widen them",
                                code="invalid_scope")
        if found.expires_at.timestamp() <= self.clock():
            raise invalid_grant("the refresh token has expired; sign in again")
        user = await self.repo.get_user(tenant, found.user_id)
        if user is None:
            raise invalid_grant("the account no longer exists")
        grant = await self._grant(user, found.family, scopes)
        spent = await self.repo.use_refresh_token(tenant, hashed,
                                                  datetime.fromtimestamp(self.clock(), UTC))
        if spent is None or spent.revoked:
            # Signed out meanwhile: the successor just stored must not outlive its session.
            await self.repo.revoke_refresh_family(tenant, found.family)
            raise invalid_grant("the refresh token is unknown or revoked; sign in again")
        if spent.used and not self._in_grace(spent):
            raise await self._reused(tenant, found, client_ip)
        return grant

    def _in_grace(self, used: RefreshToken) -> bool:
        """Whether a token presented again is within the grace after its first use: two tabs
        refreshing at once, or a retry whose answer was lost, get a pair of their own (the
        session goes on with both) rather than signing the session out."""
        grace = self.settings.refresh_reuse_grace_s
        if grace <= 0 or used.used_at is None:
            return False
        # Before its first use: a replica whose clock is behind the one that recorded it (by
        # the leeway at most), or, beyond, a clock set back, which is no grace at all.
        elapsed = self.clock() - used.used_at.timestamp()
        return -self.settings.clock_leeway_s <= elapsed <= grace

    async def _reused(self, tenant: str, found: RefreshToken, client_ip: str) -> Problem:
        security.warning("refresh token reused: session signed out", extra={
            "tenant": tenant, "user_id": found.user_id, "session": found.family,
            "client_ip": client_ip})
        await self.repo.revoke_refresh_family(tenant, found.family)
        await self.verifier.revoke_session(found.family)
        return invalid_grant("this refresh token was already used, so it may have been stolen: "
                             "the whole session is signed out; sign in again",
                             code="refresh_token_reused")

    async def logout(self, principal: Principal) -> None:
        """Ends the session's refresh tokens, and refuses the caller's access token at once.
        In that order: a logout that fails part-way leaves the access token working for the
        retry, not a refused token beside a session that can still be refreshed. An API key
        has no session to end (403 `not_a_person`): the tenant's admins revoke it."""
        if principal.kind != "user":
            raise Forbidden("an API key has no session to sign out; a tenant admin revokes it "
                            "with DELETE /v1/tenants/{tenant}/api-keys/{id}",
                            code="not_a_person")
        await self.repo.revoke_refresh_family(principal.tenant, principal.session_id)
        await self.verifier.revoke(principal)

    async def change_password(self, me: Principal, current: str, new: str,
                              client_ip: str) -> None:
        """The caller's own password, once they give the current one (counted like sign-ins,
        so it cannot be guessed here either); their other sessions are signed out. The same
        change sent again from the same session within PASSWORD_RETRY_S succeeds and does
        nothing more: the hash it replaced is kept in the cache to recognise it."""
        if me.kind != "user":
            raise Forbidden("an API key has no password; sign in as the person",
                            code="not_a_person")
        user = await self.identity.user(me.tenant, me.user_id)
        found = await self.repo.get_login(user.tenant, user.email)
        hashed = found[1] if found is not None else None
        if hashed is None:
            raise Conflict("this account signs in through an external provider and has no "
                           "password to change", code="no_password")

        changed = f"auth:password-changed:{me.tenant}:{me.user_id}:{me.session_id}"
        replaced = await self.cache.get(changed)
        retried = False

        async def verify() -> bool:
            nonlocal retried
            hasher = self.identity.hasher
            if await hasher.verify(hashed, current):
                return True
            # This session's change again (its answer lost): the password is `new` already
            # and `current` is the one it replaced, so the caller learns nothing new.
            retried = (replaced is not None and await hasher.verify(hashed, new)
                       and await hasher.verify(replaced.decode(), current))
            return retried

        if not await self.throttle.attempt(user.tenant, user.email, client_ip, verify):
            raise Forbidden("the current password is wrong", code="wrong_password")
        if retried:
            return
        await self._set_password(user, new, keep=me.session_id, replacing=hashed,
                                 current=current)
        await self.cache.set(changed, hashed.encode(), ttl_s=PASSWORD_RETRY_S)

    async def reset_password(self, tenant: str, user_id: str, new: str, by: Principal) -> None:
        """An admin sets someone's password (one they forgot); all their sessions are signed
        out."""
        user = await self.identity.user(tenant, user_id)
        _may_grant(by, user.roles)
        await self._set_password(user, new, keep=None, unless_role=_guarded(by))

    async def _set_password(self, user: User, new: str, keep: str | None,
                            replacing: str | None = None, current: str = "",
                            unless_role: Role | None = None) -> None:
        """With `replacing`, only over that hash, the `current` password's: 409 when the
        password changed meanwhile (a sign-in's rehash of the same password is written over).
        Sessions whose access tokens may still be valid are marked revoked whether or not an
        earlier try already revoked their refresh tokens, so an admin's retry after a failure
        here finishes the sign-out."""
        passwords.check(new, email=user.email)
        new_hash = await self.identity.hasher.hash(new)
        for _ in range(HASH_WRITES):
            try:
                if await self.repo.set_password_hash(user.tenant, user.id, new_hash,
                                                     replacing=replacing, unless_role=unless_role):
                    break
            except HoldsRole:
                raise _platform_admins_only() from None
            found = await self.repo.get_login(user.tenant, user.email)
            stored = None if found is None else found[1]
            if not await self.identity.hasher.verify(stored, current):
                if await self.identity.hasher.verify(stored, new):
                    return  # this change, sent again and done first: that one signs out
                raise Conflict("the password was changed by someone else while this request "
                               "ran; sign in again", code="password_changed")
            replacing = stored  # a new hash of the same password: written over
        else:
            raise Conflict("the password's hash kept changing; try again", code="busy")
        await self.identity.end_sessions(user.tenant, user.id, keep=keep)

    async def issue_tokens(self, user: User, scope: str = "") -> TokenGrant:
        """A new session for `user`, whom an external identity provider has signed in."""
        return await self._grant(user, uuid.uuid4().hex, _scopes(scope))

    async def _grant(self, user: User, family: str, scopes: list[Scope]) -> TokenGrant:
        issued = self.clock()
        principal = Principal(
            user_id=user.id, tenant=user.tenant, roles=frozenset(user.roles),
            scopes=frozenset(scopes), token_id=uuid.uuid4().hex, session_id=family,
            expires_at=int(issued) + self.settings.access_ttl_s)
        access = await self.keys.mint(principal)
        refresh = secrets.token_urlsafe(32)
        at = datetime.fromtimestamp(issued, UTC)
        await self.repo.add_refresh_token(RefreshToken(
            token_hash=token_hash(refresh), tenant=user.tenant, user_id=user.id, family=family,
            scopes=scopes, created_at=at,
            expires_at=at + timedelta(seconds=self.settings.refresh_ttl_s)))
        # Taking a role away signs out the sessions stored before it: one stored after, with
        # the roles read before it, is caught here, as the account's deletion is.
        current = await self.repo.get_user(user.tenant, user.id)
        if current is None or set(user.roles) - set(current.roles):
            await self.repo.revoke_refresh_family(user.tenant, family)
            raise invalid_grant("the account's roles changed while signing in; sign in again")
        if issued - self._pruned_at > 3600:  # each grant stores a token: expired ones go
            self._pruned_at = issued
            await self.repo.prune_refresh_tokens(at)
        return TokenGrant(access_token=access, expires_in=self.settings.access_ttl_s,
                          refresh_token=refresh, scope=" ".join(sorted(scopes)))


def _scopes(scope: str) -> list[Scope]:
    asked = scope.split()
    if not asked:
        return list(SCOPES)
    unknown = [s for s in asked if s not in SCOPES]
    if unknown:
        raise Problem(f"unknown scope {unknown[0]!r}; choose from {', '.join(SCOPES)}",
                      status=400, code="invalid_scope", extra={"error": "invalid_scope"})
    return [s for s in SCOPES if s in asked]


class ApiKeyService:
    """API keys for third-party apps: a tenant admin creates one with a name and scopes, its
    secret is shown once and only its SHA-256 is stored; keys are listed without secrets and
    revoked at once.

    It is also the `ApiKeySource` that `require()` asks. A process keeps a key's record for
    `api_key_cache_s`; `revoke` also sets the key's revocation mark (`kit.auth.revocations`),
    which `require()` checks on every request, so a revoked key is refused at once by every
    process that shares the cache."""

    RECORDS_KEPT = 10_000

    def __init__(self, identity: IdentityService, store: ApiKeyStore, cache: Cache,
                 settings: AuthSettings, clock: Callable[[], float] = time.monotonic,
                 revocations: Revocations | None = None) -> None:
        self.identity = identity
        self.store = store
        self.cache = cache
        self.revocations = revocations or Revocations(cache)
        self.settings = settings
        self.clock = clock
        self._records: dict[tuple[str, str], tuple[ApiKey, float]] = {}

    async def create(self, tenant_id: str, new: NewApiKey, by: Principal) -> tuple[ApiKey, str]:
        """The key and its full text (`bloop_<prefix>_<secret>`), which is shown only once."""
        if by.kind == "api_key":
            raise Forbidden("an API key cannot create API keys", code="missing_role")
        beyond = [s for s in new.scopes if s not in by.scopes]
        if beyond:
            raise Forbidden(f"a key cannot hold a scope the creator's token lacks: "
                            f"{', '.join(beyond)}", code="insufficient_scope")
        await self.identity.tenant(tenant_id)
        credential = ApiKeyCredential.new(tenant_id)
        key = ApiKey(id=credential.key_id, tenant=tenant_id, name=new.name, scopes=new.scopes,
                     roles=new.roles, secret_hash=token_hash(credential.secret),
                     created_by=by.user_id, created_at=now())
        try:
            await self.store.add_api_key(key, max_live=self.settings.max_api_keys)
        except Duplicate:
            raise Conflict("a key with this id exists already; ask again",
                           code="api_key_collision") from None
        except TooMany:
            raise Conflict(f"the tenant has {self.settings.max_api_keys} live API keys already; "
                           "revoke one first", code="too_many_api_keys") from None
        self._keep(key)
        return key, str(credential)

    async def keys(self, tenant_id: str, *, revoked: bool | None = None, after: str | None = None,
                   limit: int = 50) -> Slice[ApiKey]:
        """The tenant's keys, newest first, a page at a time; only the live or the revoked
        ones when `revoked` says."""
        await self.identity.tenant(tenant_id)
        return await self.store.page_api_keys(tenant_id, revoked=revoked, after=after,
                                              limit=limit)

    async def created_by(self, tenant_id: str, user_id: str) -> list[ApiKey]:
        """Every key the user created in the tenant, revoked ones included."""
        return await self.store.list_api_keys(tenant_id, created_by=user_id, limit=None)

    async def revoke(self, tenant_id: str, key_id: str) -> ApiKey:
        key = await self.store.revoke_api_key(tenant_id, key_id, now())
        if key is None:
            raise NotFound(f"no API key {key_id!r} in tenant {tenant_id!r}")
        await self.revocations.revoke(revoked_key_mark(tenant_id, key_id),
                                      self.settings.api_key_cache_s + 5)
        self._records.pop((tenant_id, key_id), None)
        return key

    async def authenticate(self, key: ApiKeyCredential) -> Principal:
        """The key's principal, from its record (kept for `api_key_cache_s`): refuses a key
        that is unknown, whose secret is wrong, or whose record says revoked. The revocation
        mark in the cache is the caller's to read (see `revoked`)."""
        record = await self._record(key.tenant, key.key_id)
        if record is None or not hmac.compare_digest(record.secret_hash, token_hash(key.secret)):
            raise Unauthenticated("the API key is unknown", code="invalid_token")
        if record.revoked:
            raise Unauthenticated("the API key has been revoked", code="token_revoked")
        name = f"apikey:{record.tenant}.{record.id}"
        return Principal(user_id=name, tenant=record.tenant, roles=frozenset(record.roles),
                         scopes=frozenset(record.scopes), token_id=name, session_id=name,
                         expires_at=int(time.time()) + self.settings.access_ttl_s,
                         kind="api_key")

    async def revoked(self, key: ApiKeyCredential) -> bool:
        """True when the key's revocation mark is in the cache (a revocation by any process)."""
        return await self.revocations.any_revoked([revoked_key_mark(key.tenant, key.key_id)])

    async def _record(self, tenant_id: str, key_id: str) -> ApiKey | None:
        kept = self._records.get((tenant_id, key_id))
        if kept is not None and self.clock() - kept[1] < self.settings.api_key_cache_s:
            return kept[0]
        record = await self.store.get_api_key(tenant_id, key_id)
        if record is not None:
            self._keep(record)
        return record

    def _keep(self, key: ApiKey) -> None:
        self._records.pop((key.tenant, key.id), None)
        if len(self._records) >= self.RECORDS_KEPT:
            del self._records[next(iter(self._records))]
        self._records[(key.tenant, key.id)] = (key, self.clock())


def _announcement(tenant: str, read: Unannounced, at: datetime) -> Announcement:
    user, zone_at = read.user, None
    if read.announced is not None:
        zone_at = at if read.set_at is None else max(at, read.set_at + timedelta(microseconds=1))
    changed_at = zone_at or (user.created_at if read.set_at is None
                             else read.set_at + timedelta(microseconds=1))
    return Announcement(read, type_of(UserTimeZoneChanged).envelope(
        UserTimeZoneChanged(user_id=user.id, time_zone=user.time_zone, changed_at=changed_at),
        tenant=tenant, subject=user.id, time=at), zone_at)
