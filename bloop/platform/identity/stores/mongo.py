"""The MongoDB identity store (database `identity`). Each change and its events are one
single-document write: the events ride in the document's outbox field (kit MongoOutbox), so it
needs no multi-document transaction and runs on FerretDB v1 as well as MongoDB. Every update of
a tenant or user document holds that document's guard (kit mongo_guard; FerretDB's updates are
not atomic), as the outbox relay does."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReturnDocument
from pymongo.errors import DuplicateKeyError

from bloop.platform.identity.model import ApiKey, Invitation, RefreshToken, SigningKey, Tenant, User
from bloop.platform.identity.ports import (
    ENDED_MARGIN,
    SEEN,
    Announcement,
    Duplicate,
    HoldsRole,
    LastHolder,
    Missing,
    ProfileSetLater,
    TooMany,
    Unannounced,
    ZoneSetLater,
)
from bloop.platform.kit.auth import Role
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.outbox.mongo import MongoOutbox
from bloop.platform.kit.events.types import EventRegistry
from bloop.platform.kit.mongo_guard import MongoGuard
from bloop.platform.kit.pagination import Slice, key_of
from bloop.platform.kit.personal_data import ERASED_USER
from bloop.platform.kit.read_back import STORED
from bloop.platform.kit.times import json_time

Doc = dict[str, Any]
# Reads leave out the outbox fields and the password hash (internal fields are all named `_…`).
HIDE = {"_outbox": 0, "_outbox_pending": 0, "_password": 0}
WITH_PASSWORD = {"_outbox": 0, "_outbox_pending": 0}
# A deleted user's document stays as a tombstone until its events are sent.
LIVE = {"_deleted": {"$ne": True}}
ANNOUNCED = "_announced_zone"  # the user's time zone an event last carried
FLAGGED = "_zone_announced"  # True: an event carried the zone stored (before ANNOUNCED)
# When the user's time zone was last set (`replace_user`'s `zone_at`); not one of User's fields.
ZONE_AT = "_time_zone_at"
# When the user's name and avatar were last set (`replace_user`'s `profile_at`); the same.
PROFILE_AT = "_profile_at"


def _fields(doc: Doc) -> Doc:
    return {k: v for k, v in doc.items() if not k.startswith("_")}


def _unannounced(doc: Doc) -> Unannounced:
    at = doc.get(ZONE_AT)
    return Unannounced(User.model_validate(_fields(doc), context=STORED), doc.get(ANNOUNCED),
                       None if at is None else datetime.fromisoformat(at))


def _key(tenant: str, record_id: str) -> str:
    """A tenant's records carry the tenant in their `_id`: another tenant's key never matches."""
    return f"{tenant}/{record_id}"


def _earlier_than(field: str, at: datetime) -> Doc:
    """A filter on users whose `field` holds a time before `at`, or none."""
    return {"$or": [{field: {"$exists": False}}, {field: {"$lt": json_time(at)}}]}


def _lacking(role: Role | None) -> Doc:
    """A filter on users not holding `role` (any user when None)."""
    return {} if role is None else {"roles": {"$ne": role}}


class MongoIdentityStore:
    def __init__(self, client: AsyncMongoClient[Doc], registry: EventRegistry,
                 database: str = "identity", guard: MongoGuard | None = None) -> None:
        db = client[database]
        self.tenants = db["tenants"]
        self.users = db["users"]
        self.invitations = db["invitations"]
        self.used_invitations = db["used_invitations"]
        self.refresh = db["refresh_tokens"]
        self.ended = db["ended_sessions"]
        self.api_keys = db["api_keys"]  # MongoApiKeys's: a user's deletion rewrites theirs
        self.oidc_links = db["oidc_links"]  # MongoOidcProviders's: and erases their links
        self.guard = guard or MongoGuard.of(db)
        self._outbox = MongoOutbox([self.tenants, self.users], registry,
                                   name=f"{database}-outbox", guard=self.guard)

    @property
    def outbox(self) -> MongoOutbox:
        return self._outbox

    async def setup(self) -> None:
        await self.users.create_index([("tenant", ASCENDING), ("email", ASCENDING)],
                                      name="tenant_email", unique=True)
        await self.refresh.create_index([("tenant", ASCENDING), ("family", ASCENDING)],
                                        name="tenant_family")
        await self.refresh.create_index([("expires_at", ASCENDING)], name="expires_at")
        await self.refresh.create_index(
            [("tenant", ASCENDING), ("user_id", ASCENDING), ("created_at", ASCENDING),
             ("token_hash", ASCENDING)], name="tenant_user")
        await self.ended.create_index([("until", ASCENDING)], name="until")
        await self.invitations.create_index([("tenant", ASCENDING)], name="tenant")
        await self.invitations.create_index(
            [("tenant", ASCENDING), ("created_at", DESCENDING), ("token_hash", ASCENDING)],
            name="tenant_created")
        await self.invitations.create_index([("tenant", ASCENDING), ("email", ASCENDING)],
                                            name="tenant_email")
        await self.invitations.create_index([("tenant", ASCENDING), ("invited_by", ASCENDING)],
                                            name="tenant_invited_by")
        await self.used_invitations.create_index([("tenant", ASCENDING), ("until", ASCENDING)],
                                                 name="tenant_until")
        await self.invitations.create_index([("expires_at", ASCENDING)], name="expires_at")
        await self.used_invitations.create_index([("until", ASCENDING)], name="until")
        await self._outbox.setup()
        await self.guard.setup()
        await self._migrate_flags()

    async def _migrate_flags(self) -> None:
        """Users flagged as announced lose the flag: an earlier version's learning may have
        passed the announcement by, so their zones are announced again."""
        async for doc in self.users.find({FLAGGED: {"$exists": True}}, {"_id": 1}):
            async with self.guard.hold(self.users, doc["_id"]):
                await self.users.update_one({"_id": doc["_id"]}, {"$unset": {FLAGGED: ""}})

    async def add_tenant(self, tenant: Tenant, events: Sequence[Envelope]) -> None:
        doc = {"_id": tenant.id, **tenant.model_dump(mode="json")}
        try:
            await self.tenants.insert_one(self._outbox.new_document(doc, *events))
        except DuplicateKeyError:
            raise Duplicate(tenant.id) from None

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        doc = await self.tenants.find_one({"_id": tenant_id}, HIDE)
        return None if doc is None else Tenant.model_validate(_fields(doc), context=STORED)

    async def list_tenants(self, *, after: str | None = None, limit: int = 50) -> list[Tenant]:
        cursor = (self.tenants.find({"_id": {"$gt": after or ""}}, HIDE)
                  .sort("_id", ASCENDING).limit(limit))
        return [Tenant.model_validate(_fields(d), context=STORED) async for d in cursor]

    async def replace_tenant(self, tenant: Tenant, *,
                             settings: Collection[str] | None = None) -> None:
        doc = tenant.model_dump(mode="json")
        changed = doc if settings is None else {
            f"settings.{name}": doc["settings"][name] for name in settings}
        async with self.guard.hold(self.tenants, tenant.id):
            result = await self.tenants.update_one({"_id": tenant.id}, {"$set": changed})
        if result.matched_count == 0:
            raise Missing(tenant.id)

    async def add_user(self, user: User, events: Sequence[Envelope],
                       password_hash: str | None = None) -> None:
        doc = {"_id": _key(user.tenant, user.id), **user.model_dump(mode="json"),
               "_password": password_hash}
        try:
            await self.users.insert_one(self._outbox.new_document(doc, *events))
        except DuplicateKeyError:
            raise Duplicate(user.email) from None
        await self.invitations.delete_many({"tenant": user.tenant, "email": user.email})

    async def get_user(self, tenant: str, user_id: str) -> User | None:
        doc = await self.users.find_one({"_id": _key(tenant, user_id), "tenant": tenant, **LIVE},
                                        HIDE)
        return None if doc is None else User.model_validate(_fields(doc), context=STORED)

    async def get_user_by_email(self, tenant: str, email: str) -> User | None:
        doc = await self.users.find_one({"tenant": tenant, "email": email, **LIVE}, HIDE)
        return None if doc is None else User.model_validate(_fields(doc), context=STORED)

    async def get_login(self, tenant: str, email: str) -> tuple[User, str | None] | None:
        doc = await self.users.find_one({"tenant": tenant, "email": email, **LIVE}, WITH_PASSWORD)
        if doc is None:
            return None
        return User.model_validate(_fields(doc), context=STORED), doc.get("_password")

    async def set_password_hash(self, tenant: str, user_id: str, password_hash: str, *,
                                replacing: str | None = None,
                                unless_role: Role | None = None) -> bool:
        key = _key(tenant, user_id)
        match: Doc = {"_id": key, **LIVE, **_lacking(unless_role)}
        if replacing is not None:
            match["_password"] = replacing
        async with self.guard.hold(self.users, key):
            result = await self.users.update_one(match, {"$set": {"_password": password_hash}})
        if result.matched_count:
            return True
        await self._refused(key, user_id, unless_role)
        return False

    async def replace_user(self, user: User, events: Sequence[Envelope], *,
                           fields: Collection[str] | None = None,
                           unless_role: Role | None = None,
                           keeping: Role | None = None,
                           announces_zone: bool = False,
                           zone_at: datetime | None = None,
                           profile_read: User | None = None,
                           profile_at: datetime | None = None) -> None:
        doc = user.model_dump(mode="json")
        update = {"$set": doc if fields is None else {name: doc[name] for name in fields}}
        if announces_zone:
            update["$set"] = {**update["$set"], ANNOUNCED: user.time_zone}
        key = _key(user.tenant, user.id)
        match: Doc = {"_id": key, **LIVE, **_lacking(unless_role)}
        later: list[Doc] = []
        if zone_at is not None:
            # A time as text, to the microsecond: a BSON date keeps milliseconds.
            update["$set"][ZONE_AT] = json_time(zone_at)
            later.append(_earlier_than(ZONE_AT, zone_at))
        if profile_read is not None:
            read = profile_read.model_dump(mode="json")
            match.update({name: read[name] for name in SEEN})
        if profile_at is not None:
            update["$set"][PROFILE_AT] = json_time(profile_at)
            later.append(_earlier_than(PROFILE_AT, profile_at))
        if later:
            match["$and"] = later
        async with self._holders(user.tenant, keeping):
            await self._refuse_if_last(user.tenant, key, keeping)
            async with self.guard.hold(self.users, key):
                result = await self.users.update_one(
                    match, self._outbox.with_events(update, *events))
        if result.matched_count == 0:
            await self._refused(key, user.id, unless_role)
            stored = await self.users.find_one({"_id": key, **LIVE}, {ZONE_AT: 1, PROFILE_AT: 1})
            if (stored is not None and zone_at is not None
                    and stored.get(ZONE_AT, "") >= json_time(zone_at)):
                raise ZoneSetLater(datetime.fromisoformat(stored[ZONE_AT]))
            if stored is not None and profile_read is not None:
                at = stored.get(PROFILE_AT)
                raise ProfileSetLater(None if at is None else datetime.fromisoformat(at))
            raise Missing(user.id)

    async def delete_user(self, tenant: str, user_id: str, events: Sequence[Envelope], *,
                          unless_role: Role | None = None,
                          keeping: Role | None = None,
                          since: datetime | None = None) -> list[str]:
        erased = {"_deleted": True, "email": f"{user_id}@deleted.invalid", "display_name": "",
                  "bio": "", "avatar_url": None, "_password": None}
        key = _key(tenant, user_id)
        async with self._holders(tenant, keeping):
            await self._refuse_if_last(tenant, key, keeping)
            async with self.guard.hold(self.users, key):
                before = await self.users.find_one_and_update(
                    {"_id": key, **LIVE, **_lacking(unless_role)},
                    self._outbox.with_events({"$set": erased}, *events),
                    return_document=ReturnDocument.BEFORE)  # (FerretDB v1: no projection)
        if before is None:
            await self._refused(key, user_id, unless_role)
            raise Missing(user_id)
        await self.invitations.delete_many({"tenant": tenant, "email": before["email"]})
        await self.invitations.update_many({"tenant": tenant, "invited_by": user_id},
                                           {"$set": {"invited_by": ERASED_USER}})
        await self.api_keys.update_many({"tenant": tenant, "created_by": user_id},
                                        {"$set": {"created_by": ERASED_USER}})
        await self.oidc_links.delete_many({"tenant": tenant, "user_id": user_id})
        return await self._forget_sessions(tenant, user_id, since)

    async def _forget_sessions(self, tenant: str, user_id: str,
                               since: datetime | None) -> list[str]:
        """Ends every session of the user and deletes their refresh tokens; returns the
        sessions `revoke_user_sessions` would."""
        mine = {"tenant": tenant, "user_id": user_id}
        tokens = [RefreshToken.model_validate(_fields(d), context=STORED)
                  async for d in self.refresh.find(mine)]
        await self._end_sessions(tenant, sorted({t.family for t in tokens}))
        await self.refresh.delete_many(mine)
        return sorted({t.family for t in tokens
                       if not t.revoked or (since is not None and t.created_at >= since)})

    def _holders(self, tenant: str, role: Role | None) -> AbstractAsyncContextManager[None]:
        """The tenant's holders of `role` changed one write at a time, on MongoDB too: two
        admins each taking the role from the other at once both found another admin, and
        left none."""
        if role is None:
            return nullcontext()
        return self.guard.hold(self.users, f"{tenant}#holders-of:{role}", always=True)

    async def _refuse_if_last(self, tenant: str, key: str, role: Role | None) -> None:
        if role is not None and await self.users.find_one(
                {"tenant": tenant, "roles": role, "_id": {"$ne": key}, **LIVE}, {"_id": 1}) is None:
            raise LastHolder(role)

    async def _refused(self, key: str, user_id: str, role: Role | None) -> None:
        """Why a write matched no user: HoldsRole when it holds `role`, Missing when there is
        none; returns when neither (another condition of the write's)."""
        doc = await self.users.find_one({"_id": key, **LIVE}, {"roles": 1})
        if doc is None:
            raise Missing(user_id)
        if role is not None and role in doc.get("roles", []):
            raise HoldsRole(role)

    async def list_users(self, tenant: str, *, after: str | None = None,
                         limit: int = 50) -> list[User]:
        cursor = (self.users.find({"tenant": tenant, "email": {"$gt": after or ""}, **LIVE}, HIDE)
                  .sort("email", ASCENDING).limit(limit))
        return [User.model_validate(_fields(d), context=STORED) async for d in cursor]

    async def unannounced_time_zones(self, tenant: str, *, after: str | None = None,
                                     limit: int = 500) -> list[Unannounced]:
        # FerretDB compares no two fields of a document ($expr): the users with a zone other
        # than UTC or one announced are read `limit` at a time, and those differing kept.
        found: list[Unannounced] = []
        while len(found) < limit:
            # Ids are UUIDs: the tenant's keys lie between "tenant/" and "tenant/~".
            cursor = (self.users.find(
                {"_id": {"$gt": _key(tenant, after or ""), "$lt": _key(tenant, "~")},
                 "tenant": tenant, **LIVE,
                 "$or": [{"time_zone": {"$nin": ["UTC", None]}},
                         {ANNOUNCED: {"$nin": ["UTC", None]}}]},
                HIDE).sort("_id", ASCENDING).limit(limit))
            read = [_unannounced(d) async for d in cursor]
            found += [r for r in read if r.user.time_zone != (r.announced or "UTC")]
            if len(read) < limit:
                break
            after = read[-1].user.id
        return found[:limit]

    async def announce_time_zones(self, tenant: str,
                                  announcements: Sequence[Announcement]) -> int:
        stored = 0
        for told in announcements:
            user, zone_at = told.read.user, told.zone_at
            key = _key(tenant, user.id)
            update: Doc = {ANNOUNCED: user.time_zone}
            if zone_at is not None:
                update[ZONE_AT] = json_time(zone_at)
            async with self.guard.hold(self.users, key):
                result = await self.users.update_one(
                    {"_id": key, "tenant": tenant, **LIVE, ANNOUNCED: told.read.announced,
                     "time_zone": {"$in": [None, "UTC"]} if user.time_zone == "UTC"
                     else user.time_zone},
                    self._outbox.with_events({"$set": update}, told.event))
            stored += result.matched_count
        return stored

    async def add_invitation(self, invitation: Invitation) -> None:
        doc = {"_id": _key(invitation.tenant, invitation.token_hash),
               **invitation.model_dump(mode="json")}
        try:
            await self.invitations.insert_one(doc)
        except DuplicateKeyError:
            raise Duplicate(invitation.token_hash) from None
        await self.used_invitations.delete_one({"_id": doc["_id"]})

    async def get_invitation(self, tenant: str, token_hash: str) -> Invitation | None:
        doc = await self.invitations.find_one({"_id": _key(tenant, token_hash), "tenant": tenant})
        return None if doc is None else Invitation.model_validate(_fields(doc), context=STORED)

    async def delete_invitation(self, tenant: str, token_hash: str, *,
                                used: bool = False) -> bool:
        key = _key(tenant, token_hash)
        found = await self.invitations.find_one({"_id": key, "tenant": tenant}) if used else None
        result = await self.invitations.delete_one({"_id": key, "tenant": tenant})
        if result.deleted_count != 1:
            return False
        if found is not None:  # after the delete: of two acceptances at once, the one that spent it
            await self.used_invitations.replace_one(
                {"_id": key}, {"tenant": tenant, "until": found["expires_at"]}, upsert=True)
        return True

    async def invitation_used(self, tenant: str, token_hash: str, at: datetime) -> bool:
        return await self.used_invitations.find_one(
            {"_id": _key(tenant, token_hash), "tenant": tenant,
             "until": {"$gt": json_time(at)}}, {"_id": 1}) is not None

    async def pending_invitations(self, tenant: str, at: datetime, *, after: str | None = None,
                                  limit: int = 100) -> Slice[Invitation]:
        query: dict[str, Any] = {"tenant": tenant, "expires_at": {"$gt": json_time(at)}}
        if after:
            created, hashed = key_of(after, str, str)
            query["$or"] = [{"created_at": {"$lt": created}},
                            {"created_at": created, "token_hash": {"$gt": hashed}}]
        cursor = (self.invitations.find(query)
                  .sort([("created_at", DESCENDING), ("token_hash", ASCENDING)]).limit(limit + 1))
        found = [Invitation.model_validate(_fields(d), context=STORED) async for d in cursor]
        return Slice.of(found, limit, lambda i: (json_time(i.created_at), i.token_hash))

    async def find_invitation(self, tenant: str, invitation_id: str) -> Invitation | None:
        start = _key(tenant, invitation_id)
        cursor = self.invitations.find(
            {"_id": {"$gte": start, "$lt": f"{start}~"}, "tenant": tenant}).sort(
            "_id", ASCENDING).limit(1)
        found = [Invitation.model_validate(_fields(d), context=STORED) async for d in cursor]
        return found[0] if found else None

    async def prune_invitations(self, tenant: str, email: str, at: datetime) -> None:
        stale: list[dict[str, Any]] = [{"expires_at": {"$lte": json_time(at)}}]
        newest = await self.invitations.find_one(
            {"tenant": tenant, "email": email}, {"created_at": 1, "token_hash": 1},
            sort=[("created_at", DESCENDING), ("token_hash", ASCENDING)])
        if newest is not None:
            created, hashed = newest["created_at"], newest["token_hash"]
            stale.append({"email": email, "$or": [
                {"created_at": {"$lt": created}},
                {"created_at": created, "token_hash": {"$gt": hashed}}]})
        await self.invitations.delete_many({"tenant": tenant, "$or": stale})
        await self.used_invitations.delete_many({"tenant": tenant,
                                                 "until": {"$lte": json_time(at)}})

    async def prune_expired_invitations(self, at: datetime) -> int:
        await self.used_invitations.delete_many({"until": {"$lte": json_time(at)}})
        result = await self.invitations.delete_many({"expires_at": {"$lte": json_time(at)}})
        return result.deleted_count

    async def add_refresh_token(self, token: RefreshToken) -> None:
        await self.refresh.insert_one({"_id": _key(token.tenant, token.token_hash),
                                       **token.model_dump(mode="json")})

    async def invitations_by(self, tenant: str, user_id: str) -> list[Invitation]:
        cursor = self.invitations.find({"tenant": tenant, "invited_by": user_id}).sort(
            [("created_at", DESCENDING), ("token_hash", ASCENDING)])
        return [Invitation.model_validate(_fields(d), context=STORED) async for d in cursor]

    async def invitations_to(self, tenant: str, email: str) -> list[Invitation]:
        cursor = self.invitations.find({"tenant": tenant, "email": email}).sort(
            [("created_at", DESCENDING), ("token_hash", ASCENDING)])
        return [Invitation.model_validate(_fields(d), context=STORED) async for d in cursor]

    async def refresh_tokens_of(self, tenant: str, user_id: str) -> list[RefreshToken]:
        cursor = self.refresh.find({"tenant": tenant, "user_id": user_id}).sort(
            [("created_at", ASCENDING), ("token_hash", ASCENDING)])
        return [RefreshToken.model_validate(_fields(d), context=STORED) async for d in cursor]

    async def get_refresh_token(self, tenant: str, token_hash: str) -> RefreshToken | None:
        doc = await self.refresh.find_one({"_id": _key(tenant, token_hash), "tenant": tenant})
        return None if doc is None else RefreshToken.model_validate(_fields(doc), context=STORED)

    async def use_refresh_token(self, tenant: str, token_hash: str,
                                at: datetime) -> RefreshToken | None:
        key = {"_id": _key(tenant, token_hash), "tenant": tenant}
        doc = await self.refresh.find_one_and_update(
            key | {"used": {"$ne": True}}, {"$set": {"used": True, "used_at": json_time(at)}},
            return_document=ReturnDocument.BEFORE)
        if doc is None:  # used before (its first use's time kept), or no such token
            doc = await self.refresh.find_one(key)
        if doc is None:
            return None
        token = RefreshToken.model_validate(_fields(doc), context=STORED)
        if await self.ended.find_one({"_id": _key(tenant, token.family)}, {"_id": 1}):
            return token.model_copy(update={"revoked": True})
        return token

    async def _end_sessions(self, tenant: str, families: Collection[str]) -> None:
        """Marks the sessions ended, until their last token expires (see the port); a session
        whose tokens were deleted (its person's) keeps the end it had."""
        for family in families:
            last = await self.refresh.find_one({"tenant": tenant, "family": family},
                                               {"expires_at": 1}, sort=[("expires_at", DESCENDING)])
            await self.ended.update_one(
                {"_id": _key(tenant, family)},
                {"$set": {"tenant": tenant, "family": family},
                 "$max": {"until": last["expires_at"] if last is not None else ""}}, upsert=True)

    async def revoke_refresh_family(self, tenant: str, family: str) -> int:
        await self._end_sessions(tenant, [family])
        result = await self.refresh.update_many({"tenant": tenant, "family": family},
                                                {"$set": {"revoked": True}})
        return result.matched_count

    async def prune_refresh_tokens(self, at: datetime) -> int:
        await self.ended.delete_many({"until": {"$lte": json_time(at - ENDED_MARGIN)}})
        result = await self.refresh.delete_many({"expires_at": {"$lte": json_time(at)}})
        return result.deleted_count

    async def revoke_user_sessions(self, tenant: str, user_id: str, *, keep: str | None = None,
                                   since: datetime | None = None) -> list[str]:
        mine: Doc = {"tenant": tenant, "user_id": user_id}
        if keep is not None:
            mine["family"] = {"$ne": keep}
        live: Doc = {**mine, "revoked": {"$ne": True}}
        named: Doc = live if since is None else {
            **mine, "$or": [{"revoked": {"$ne": True}}, {"created_at": {"$gte": json_time(since)}}]}
        families = {doc["family"] async for doc in self.refresh.find(named, {"family": 1})}
        await self._end_sessions(tenant, sorted(
            {doc["family"] async for doc in self.refresh.find(live, {"family": 1})}))
        await self.refresh.update_many(live, {"$set": {"revoked": True}})
        return sorted(families)


class MongoSigningKeys:
    def __init__(self, client: AsyncMongoClient[Doc], database: str = "identity") -> None:
        self.keys = client[database]["signing_keys"]
        self.secrets = client[database]["secrets"]

    async def setup(self) -> None:
        await self.keys.create_index([("created_at", DESCENDING)], name="created_at")

    async def add_signing_key(self, key: SigningKey) -> None:
        await self.keys.insert_one({"_id": key.kid, "algorithm": key.algorithm,
                                    "private_pem": key.private_pem, "public_jwk": key.public_jwk,
                                    "created_at": key.created_at})

    async def signing_keys(self) -> list[SigningKey]:
        cursor = self.keys.find({}).sort("created_at", DESCENDING)
        return [SigningKey(kid=d["_id"], algorithm=d["algorithm"], private_pem=d["private_pem"],
                           public_jwk=d["public_jwk"], created_at=d["created_at"])
                async for d in cursor]

    async def delete_signing_keys(self, created_before: datetime) -> int:
        result = await self.keys.delete_many({"created_at": {"$lt": created_before}})
        return result.deleted_count

    async def secret(self, name: str, candidate: bytes) -> bytes:
        with contextlib.suppress(DuplicateKeyError):
            await self.secrets.insert_one({"_id": name, "value": candidate.hex()})
        found = await self.secrets.find_one({"_id": name})
        assert found is not None  # stored above, or by the write that came first
        return bytes.fromhex(found["value"])


class MongoApiKeys:
    """API keys, one document each; `_id` carries the tenant, so another tenant's id never
    matches."""

    def __init__(self, client: AsyncMongoClient[Doc], database: str = "identity") -> None:
        self.keys = client[database]["api_keys"]

    async def setup(self) -> None:
        await self.keys.create_index([("tenant", ASCENDING), ("created_at", DESCENDING)],
                                     name="tenant_created")

    async def add_api_key(self, key: ApiKey, *, max_live: int | None = None) -> None:
        # Counted after the insert, so that keys added at once see each other: each that finds
        # the tenant past the limit takes itself back (both may; never one too many).
        key_id = _key(key.tenant, key.id)
        try:
            await self.keys.insert_one({"_id": key_id, **key.model_dump(mode="json")})
        except DuplicateKeyError:
            raise Duplicate(key.id) from None
        if max_live is not None and await self.count_live_api_keys(key.tenant) > max_live:
            await asyncio.shield(self.keys.delete_one({"_id": key_id}))
            raise TooMany(key.tenant)

    async def get_api_key(self, tenant: str, key_id: str) -> ApiKey | None:
        doc = await self.keys.find_one({"_id": _key(tenant, key_id), "tenant": tenant})
        return None if doc is None else ApiKey.model_validate(_fields(doc), context=STORED)

    async def list_api_keys(self, tenant: str, *, revoked: bool | None = None,
                            created_by: str | None = None,
                            limit: int | None = 200) -> list[ApiKey]:
        query: Doc = {"tenant": tenant}
        if revoked is not None:
            query["revoked_at"] = {"$ne": None} if revoked else None
        if created_by is not None:
            query["created_by"] = created_by
        found = await self._newest_first(query, limit or 0)
        return [ApiKey.model_validate(_fields(d), context=STORED) for d in found]

    async def page_api_keys(self, tenant: str, *, revoked: bool | None = None,
                            after: str | None = None, limit: int = 50) -> Slice[ApiKey]:
        query: Doc = {"tenant": tenant}
        if revoked is not None:
            query["revoked_at"] = {"$ne": None} if revoked else None
        if after:
            created, key_id = key_of(after, str, str)
            query["$or"] = [{"created_at": {"$lt": created}},
                            {"created_at": created, "id": {"$gt": key_id}}]
        docs = Slice.of(await self._newest_first(query, limit + 1), limit,
                        lambda d: (d["created_at"], d["id"]))
        return docs.map(lambda d: ApiKey.model_validate(_fields(d), context=STORED))

    async def _newest_first(self, query: Doc, limit: int) -> list[Doc]:
        cursor = (self.keys.find(query)
                  .sort([("created_at", DESCENDING), ("id", ASCENDING)]).limit(limit))
        return [d async for d in cursor]

    async def count_live_api_keys(self, tenant: str) -> int:
        return await self.keys.count_documents({"tenant": tenant, "revoked_at": None})

    async def revoke_api_key(self, tenant: str, key_id: str, at: datetime) -> ApiKey | None:
        await self.keys.update_one(
            {"_id": _key(tenant, key_id), "tenant": tenant, "revoked_at": None},
            {"$set": {"revoked_at": json_time(at)}})
        return await self.get_api_key(tenant, key_id)

