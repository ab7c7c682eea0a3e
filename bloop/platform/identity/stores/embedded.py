"""The embedded identity store: SQLite, with the outbox in the same database. Each change and
its events are written in one transaction."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Sequence
from datetime import datetime

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
from bloop.platform.kit.events.outbox.sqlite import SqliteOutbox
from bloop.platform.kit.events.types import EventRegistry
from bloop.platform.kit.pagination import Slice, key_of
from bloop.platform.kit.personal_data import ERASED_USER
from bloop.platform.kit.read_back import STORED
from bloop.platform.kit.sqlite import SqliteDB
from bloop.platform.kit.times import json_time

# The invitation fields lists and clean-ups query, as indexed (times as their JSON keeps them).
EMAIL = "json_extract(doc, '$.email')"
CREATED = "json_extract(doc, '$.created_at')"
EXPIRES = "json_extract(doc, '$.expires_at')"
ZONE = "coalesce(json_extract(doc, '$.time_zone'), 'UTC')"  # a user's (stored before it: UTC)
# When the user's time zone was last set (`replace_user`'s `zone_at`); not one of User's fields.
ZONE_AT = "_time_zone_at"
# When the user's name and avatar were last set (`replace_user`'s `profile_at`); the same.
PROFILE_AT = "_profile_at"

SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (
  id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
  tenant TEXT NOT NULL, id TEXT NOT NULL, email TEXT NOT NULL, doc TEXT NOT NULL,
  PRIMARY KEY (tenant, id), UNIQUE (tenant, email));
CREATE TABLE IF NOT EXISTS invitations (
  tenant TEXT NOT NULL, token_hash TEXT NOT NULL, doc TEXT NOT NULL,
  PRIMARY KEY (tenant, token_hash));
CREATE INDEX IF NOT EXISTS invitations_email ON invitations (tenant, json_extract(doc, '$.email'));
CREATE INDEX IF NOT EXISTS invitations_created
  ON invitations (tenant, json_extract(doc, '$.created_at'));
CREATE INDEX IF NOT EXISTS invitations_expiry
  ON invitations (tenant, json_extract(doc, '$.expires_at'));
CREATE INDEX IF NOT EXISTS invitations_expired ON invitations (json_extract(doc, '$.expires_at'));
CREATE INDEX IF NOT EXISTS invitations_by ON invitations
  (tenant, json_extract(doc, '$.invited_by'), json_extract(doc, '$.created_at') DESC, token_hash);
CREATE TABLE IF NOT EXISTS used_invitations (
  tenant TEXT NOT NULL, token_hash TEXT NOT NULL, until TEXT NOT NULL,
  PRIMARY KEY (tenant, token_hash));
CREATE INDEX IF NOT EXISTS used_invitations_until ON used_invitations (tenant, until);
CREATE INDEX IF NOT EXISTS used_invitations_expired ON used_invitations (until);
CREATE TABLE IF NOT EXISTS refresh_tokens (
  tenant TEXT NOT NULL, token_hash TEXT NOT NULL, family TEXT NOT NULL, doc TEXT NOT NULL,
  PRIMARY KEY (tenant, token_hash));
CREATE INDEX IF NOT EXISTS refresh_tokens_family ON refresh_tokens (tenant, family);
CREATE INDEX IF NOT EXISTS refresh_tokens_expiry ON refresh_tokens (json_extract(doc, '$.expires_at'));
CREATE INDEX IF NOT EXISTS refresh_tokens_user ON refresh_tokens
  (tenant, json_extract(doc, '$.user_id'), json_extract(doc, '$.created_at'), token_hash);
CREATE TABLE IF NOT EXISTS ended_sessions (
  tenant TEXT NOT NULL, family TEXT NOT NULL, until TEXT NOT NULL, PRIMARY KEY (tenant, family));
"""

KEY_SCHEMA = """
CREATE TABLE IF NOT EXISTS signing_keys (
  kid TEXT PRIMARY KEY, created_at TEXT NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS secrets (
  name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

API_KEY_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
  tenant TEXT NOT NULL, id TEXT NOT NULL, created_at TEXT NOT NULL, revoked INTEGER NOT NULL,
  doc TEXT NOT NULL, PRIMARY KEY (tenant, id));
CREATE INDEX IF NOT EXISTS api_keys_created ON api_keys (tenant, created_at);
"""

OIDC_LINK_SCHEMA = """
CREATE TABLE IF NOT EXISTS oidc_links (
  tenant TEXT NOT NULL, provider TEXT NOT NULL, subject TEXT NOT NULL, user_id TEXT NOT NULL,
  doc TEXT NOT NULL, PRIMARY KEY (tenant, provider, subject), UNIQUE (tenant, user_id));
"""


def _migrate(c: sqlite3.Connection) -> None:
    c.executescript(SCHEMA)
    c.executescript(API_KEY_SCHEMA)  # a user's deletion rewrites the keys they made
    c.executescript(OIDC_LINK_SCHEMA)  # and erases their sign-in links
    columns = {row["name"] for row in c.execute("PRAGMA table_info(users)")}
    if "password_hash" not in columns:
        c.execute("ALTER TABLE users ADD COLUMN password_hash TEXT")
    if "announced_zone" not in columns:  # the user's time zone an event last carried
        c.execute("ALTER TABLE users ADD COLUMN announced_zone TEXT")
    # An earlier version's `zone_announced` flag, if there, is left unread: its processes may
    # still run beside this one (a rolling upgrade) and write it with every zone edit.


class EmbeddedIdentityStore:
    def __init__(self, db: SqliteDB, registry: EventRegistry) -> None:
        self.db = db
        self._outbox = SqliteOutbox(db, registry, name="identity_outbox")

    @property
    def outbox(self) -> SqliteOutbox:
        return self._outbox

    async def setup(self) -> None:
        await self.db.run(_migrate)
        await self._outbox.setup()

    async def add_tenant(self, tenant: Tenant, events: Sequence[Envelope]) -> None:
        def write(c: sqlite3.Connection) -> None:
            c.execute("INSERT INTO tenants (id, doc) VALUES (?, ?)",
                      (tenant.id, tenant.model_dump_json()))
            self._outbox.add(c, *events)

        try:
            await self.db.transaction(write)
        except sqlite3.IntegrityError:
            raise Duplicate(tenant.id) from None

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        row = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM tenants WHERE id = ?", (tenant_id,)).fetchone())
        return None if row is None else Tenant.model_validate_json(row["doc"], context=STORED)

    async def list_tenants(self, *, after: str | None = None, limit: int = 50) -> list[Tenant]:
        rows = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM tenants WHERE id > ? ORDER BY id LIMIT ?",
            (after or "", limit)).fetchall())
        return [Tenant.model_validate_json(r["doc"], context=STORED) for r in rows]

    async def replace_tenant(self, tenant: Tenant, *,
                             settings: Collection[str] | None = None) -> None:
        doc = tenant.model_dump(mode="json")
        if settings is None:
            sql, values = "?", [tenant.model_dump_json()]
        else:
            sql = "json_set(doc, {})".format(
                ", ".join(f"'$.settings.{name}', json(?)" for name in settings))
            values = [json.dumps(doc["settings"][name]) for name in settings]

        def write(c: sqlite3.Connection) -> int:
            return c.execute(f"UPDATE tenants SET doc = {sql} WHERE id = ?",  # noqa: S608
                             (*values, tenant.id)).rowcount

        if not await self.db.transaction(write):
            raise Missing(tenant.id)

    async def add_user(self, user: User, events: Sequence[Envelope],
                       password_hash: str | None = None) -> None:
        def write(c: sqlite3.Connection) -> None:
            c.execute("INSERT INTO users (tenant, id, email, doc, password_hash) "
                      "VALUES (?, ?, ?, ?, ?)",
                      (user.tenant, user.id, user.email, user.model_dump_json(), password_hash))
            self._outbox.add(c, *events)
            _delete_invitations_to(c, user.tenant, user.email)

        try:
            await self.db.transaction(write)
        except sqlite3.IntegrityError:
            raise Duplicate(user.email) from None

    async def get_user(self, tenant: str, user_id: str) -> User | None:
        row = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM users WHERE tenant = ? AND id = ?", (tenant, user_id)).fetchone())
        return None if row is None else User.model_validate_json(row["doc"], context=STORED)

    async def get_user_by_email(self, tenant: str, email: str) -> User | None:
        found = await self.get_login(tenant, email)
        return None if found is None else found[0]

    async def get_login(self, tenant: str, email: str) -> tuple[User, str | None] | None:
        row = await self.db.run(lambda c: c.execute(
            "SELECT doc, password_hash FROM users WHERE tenant = ? AND email = ?",
            (tenant, email)).fetchone())
        if row is None:
            return None
        return User.model_validate_json(row["doc"], context=STORED), row["password_hash"]

    async def set_password_hash(self, tenant: str, user_id: str, password_hash: str, *,
                                replacing: str | None = None,
                                unless_role: Role | None = None) -> bool:
        def write(c: sqlite3.Connection) -> str | None:
            row = c.execute("SELECT password_hash, doc FROM users WHERE tenant = ? AND id = ?",
                            (tenant, user_id)).fetchone()
            if row is None:
                raise Missing(user_id)
            _refuse_if_holds(row["doc"], unless_role)
            if replacing is not None and row["password_hash"] != replacing:
                return None
            c.execute("UPDATE users SET password_hash = ? WHERE tenant = ? AND id = ?",
                      (password_hash, tenant, user_id))
            return password_hash

        return await self.db.transaction(write) is not None

    async def replace_user(self, user: User, events: Sequence[Envelope], *,
                           fields: Collection[str] | None = None,
                           unless_role: Role | None = None,
                           keeping: Role | None = None,
                           announces_zone: bool = False,
                           zone_at: datetime | None = None,
                           profile_read: User | None = None,
                           profile_at: datetime | None = None) -> None:
        doc = user.model_dump(mode="json")
        named = list(doc if fields is None else fields)
        if zone_at is not None:
            doc[ZONE_AT] = json_time(zone_at)
            named.append(ZONE_AT)
        if profile_at is not None:
            doc[PROFILE_AT] = json_time(profile_at)
            named.append(PROFILE_AT)
        paths = ", ".join(f"'$.{name}', json(?)" for name in named)
        values = [json.dumps(doc[name]) for name in named]
        announced = ", announced_zone = ?" if announces_zone else ""
        if announces_zone:
            values.append(user.time_zone)

        def write(c: sqlite3.Connection) -> int:
            stored = _user_doc(c, user.tenant, user.id)
            _refuse_if_holds(stored, unless_role)
            if zone_at is not None and stored is not None:
                _refuse_if_zone_later(stored, doc[ZONE_AT])
            if profile_read is not None and stored is not None:
                _refuse_if_profile_changed(stored, profile_read, doc.get(PROFILE_AT))
            _refuse_if_last(c, user.tenant, user.id, keeping)
            changed = c.execute(f"UPDATE users SET doc = json_set(doc, {paths}){announced}"  # noqa: S608
                                " WHERE tenant = ? AND id = ?",
                                (*values, user.tenant, user.id)).rowcount
            if changed:
                self._outbox.add(c, *events)
            return changed

        if not await self.db.transaction(write):
            raise Missing(user.id)

    async def delete_user(self, tenant: str, user_id: str, events: Sequence[Envelope], *,
                          unless_role: Role | None = None,
                          keeping: Role | None = None,
                          since: datetime | None = None) -> list[str]:
        def write(c: sqlite3.Connection) -> list[str] | None:
            doc = _user_doc(c, tenant, user_id)
            _refuse_if_holds(doc, unless_role)
            _refuse_if_last(c, tenant, user_id, keeping)
            if doc is None or not c.execute("DELETE FROM users WHERE tenant = ? AND id = ?",
                                            (tenant, user_id)).rowcount:
                return None
            self._outbox.add(c, *events)
            _delete_invitations_to(c, tenant, json.loads(doc)["email"])
            c.execute("UPDATE invitations SET doc = json_set(doc, '$.invited_by', ?)"
                      " WHERE tenant = ? AND json_extract(doc, '$.invited_by') = ?",
                      (ERASED_USER, tenant, user_id))
            c.execute("UPDATE api_keys SET doc = json_set(doc, '$.created_by', ?)"
                      " WHERE tenant = ? AND json_extract(doc, '$.created_by') = ?",
                      (ERASED_USER, tenant, user_id))
            c.execute("DELETE FROM oidc_links WHERE tenant = ? AND user_id = ?", (tenant, user_id))
            return _forget_sessions(c, tenant, user_id, since)

        families = await self.db.transaction(write)
        if families is None:
            raise Missing(user_id)
        await self.db.empty_wal()
        return families

    async def list_users(self, tenant: str, *, after: str | None = None,
                         limit: int = 50) -> list[User]:
        rows = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM users WHERE tenant = ? AND email > ? ORDER BY email LIMIT ?",
            (tenant, after or "", limit)).fetchall())
        return [User.model_validate_json(r["doc"], context=STORED) for r in rows]

    async def unannounced_time_zones(self, tenant: str, *, after: str | None = None,
                                     limit: int = 500) -> list[Unannounced]:
        rows = await self.db.run(lambda c: c.execute(
            "SELECT doc, announced_zone FROM users WHERE tenant = ? AND id > ?"  # noqa: S608
            f" AND coalesce(announced_zone, 'UTC') != {ZONE} ORDER BY id LIMIT ?",
            (tenant, after or "", limit)).fetchall())
        return [_unannounced(r["doc"], r["announced_zone"]) for r in rows]

    async def announce_time_zones(self, tenant: str,
                                  announcements: Sequence[Announcement]) -> int:
        def write(c: sqlite3.Connection) -> int:
            stored = 0
            for told in announcements:
                user, zone_at = told.read.user, told.zone_at
                at = None if zone_at is None else json.dumps(json_time(zone_at))
                if c.execute(
                        "UPDATE users SET announced_zone = ?, doc = CASE WHEN ? IS NULL THEN doc"  # noqa: S608
                        f" ELSE json_set(doc, '$.{ZONE_AT}', json(?)) END"
                        f" WHERE tenant = ? AND id = ? AND announced_zone IS ? AND {ZONE} = ?",
                        (user.time_zone, at, at, tenant, user.id, told.read.announced,
                         user.time_zone)).rowcount:
                    self._outbox.add(c, told.event)
                    stored += 1
            return stored

        return await self.db.transaction(write)

    async def add_invitation(self, invitation: Invitation) -> None:
        def write(c: sqlite3.Connection) -> None:
            c.execute("INSERT INTO invitations (tenant, token_hash, doc) VALUES (?, ?, ?)",
                      (invitation.tenant, invitation.token_hash, invitation.model_dump_json()))
            c.execute("DELETE FROM used_invitations WHERE tenant = ? AND token_hash = ?",
                      (invitation.tenant, invitation.token_hash))

        try:
            await self.db.transaction(write)
        except sqlite3.IntegrityError:
            raise Duplicate(invitation.token_hash) from None

    async def get_invitation(self, tenant: str, token_hash: str) -> Invitation | None:
        row = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM invitations WHERE tenant = ? AND token_hash = ?",
            (tenant, token_hash)).fetchone())
        return None if row is None else Invitation.model_validate_json(row["doc"], context=STORED)

    async def delete_invitation(self, tenant: str, token_hash: str, *,
                                used: bool = False) -> bool:
        def write(c: sqlite3.Connection) -> bool:
            if used:
                c.execute(f"INSERT OR REPLACE INTO used_invitations SELECT tenant, token_hash, "  # noqa: S608
                          f"{EXPIRES} FROM invitations WHERE tenant = ? AND token_hash = ?",
                          (tenant, token_hash))
            deleted: int = c.execute(
                "DELETE FROM invitations WHERE tenant = ? AND token_hash = ?",
                (tenant, token_hash)).rowcount
            return deleted == 1

        return await self.db.transaction(write)

    async def invitation_used(self, tenant: str, token_hash: str, at: datetime) -> bool:
        row = await self.db.run(lambda c: c.execute(
            "SELECT 1 FROM used_invitations WHERE tenant = ? AND token_hash = ? AND until > ?",
            (tenant, token_hash, json_time(at))).fetchone())
        return row is not None

    async def pending_invitations(self, tenant: str, at: datetime, *, after: str | None = None,
                                  limit: int = 100) -> Slice[Invitation]:
        where = f"tenant = ? AND {EXPIRES} > ?"
        args: list[object] = [tenant, json_time(at)]
        if after:
            created, hashed = key_of(after, str, str)
            where += f" AND ({CREATED} < ? OR ({CREATED} = ? AND token_hash > ?))"
            args += [created, created, hashed]
        rows = await self.db.run(lambda c: c.execute(
            f"SELECT doc FROM invitations WHERE {where}"  # noqa: S608
            f" ORDER BY {CREATED} DESC, token_hash LIMIT ?", (*args, limit + 1)).fetchall())
        found = [Invitation.model_validate_json(r["doc"], context=STORED) for r in rows]
        return Slice.of(found, limit, lambda i: (json_time(i.created_at), i.token_hash))

    async def find_invitation(self, tenant: str, invitation_id: str) -> Invitation | None:
        row = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM invitations WHERE tenant = ? AND token_hash >= ?"
            " AND token_hash < ? ORDER BY token_hash LIMIT 1",
            (tenant, invitation_id, f"{invitation_id}~")).fetchone())
        return None if row is None else Invitation.model_validate_json(row["doc"], context=STORED)

    async def prune_invitations(self, tenant: str, email: str, at: datetime) -> None:
        def write(c: sqlite3.Connection) -> None:
            c.execute(f"DELETE FROM invitations WHERE tenant = ? AND {EMAIL} = ?"  # noqa: S608
                      " AND token_hash <> (SELECT token_hash FROM invitations WHERE tenant = ?"
                      f" AND {EMAIL} = ? ORDER BY {CREATED} DESC, token_hash LIMIT 1)",
                      (tenant, email, tenant, email))
            c.execute(f"DELETE FROM invitations WHERE tenant = ? AND {EXPIRES} <= ?",  # noqa: S608
                      (tenant, json_time(at)))
            c.execute("DELETE FROM used_invitations WHERE tenant = ? AND until <= ?",
                      (tenant, json_time(at)))

        await self.db.transaction(write)

    async def prune_expired_invitations(self, at: datetime) -> int:
        def write(c: sqlite3.Connection) -> int:
            c.execute("DELETE FROM used_invitations WHERE until <= ?", (json_time(at),))
            return int(c.execute(f"DELETE FROM invitations WHERE {EXPIRES} <= ?",  # noqa: S608
                                 (json_time(at),)).rowcount)

        return await self.db.transaction(write)

    async def add_refresh_token(self, token: RefreshToken) -> None:
        await self.db.transaction(lambda c: c.execute(
            "INSERT INTO refresh_tokens (tenant, token_hash, family, doc) VALUES (?, ?, ?, ?)",
            (token.tenant, token.token_hash, token.family, token.model_dump_json())))

    async def invitations_by(self, tenant: str, user_id: str) -> list[Invitation]:
        rows = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM invitations WHERE tenant = ? AND json_extract(doc, '$.invited_by') = ?"
            " ORDER BY json_extract(doc, '$.created_at') DESC, token_hash",
            (tenant, user_id)).fetchall())
        return [Invitation.model_validate_json(r["doc"], context=STORED) for r in rows]

    async def invitations_to(self, tenant: str, email: str) -> list[Invitation]:
        rows = await self.db.run(lambda c: c.execute(
            f"SELECT doc FROM invitations WHERE tenant = ? AND {EMAIL} = ?"  # noqa: S608
            f" ORDER BY {CREATED} DESC, token_hash", (tenant, email)).fetchall())
        return [Invitation.model_validate_json(r["doc"], context=STORED) for r in rows]

    async def refresh_tokens_of(self, tenant: str, user_id: str) -> list[RefreshToken]:
        rows = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM refresh_tokens WHERE tenant = ? AND json_extract(doc, '$.user_id') = ?"
            " ORDER BY json_extract(doc, '$.created_at'), token_hash", (tenant, user_id)).fetchall())
        return [RefreshToken.model_validate_json(r["doc"], context=STORED) for r in rows]

    async def get_refresh_token(self, tenant: str, token_hash: str) -> RefreshToken | None:
        row = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM refresh_tokens WHERE tenant = ? AND token_hash = ?",
            (tenant, token_hash)).fetchone())
        return None if row is None else RefreshToken.model_validate_json(row["doc"], context=STORED)

    async def use_refresh_token(self, tenant: str, token_hash: str,
                                at: datetime) -> RefreshToken | None:
        def use(c: sqlite3.Connection) -> RefreshToken | None:
            row = c.execute("SELECT doc FROM refresh_tokens WHERE tenant = ? AND token_hash = ?",
                            (tenant, token_hash)).fetchone()
            if row is None:
                return None
            before = RefreshToken.model_validate_json(row["doc"], context=STORED)
            if not before.used:
                c.execute("UPDATE refresh_tokens SET doc = ? WHERE tenant = ? AND token_hash = ?",
                          (before.model_copy(update={"used": True, "used_at": at}
                                             ).model_dump_json(), tenant, token_hash))
            if c.execute("SELECT 1 FROM ended_sessions WHERE tenant = ? AND family = ?",
                         (tenant, before.family)).fetchone() is not None:
                return before.model_copy(update={"revoked": True})
            return before

        return await self.db.transaction(use)

    async def revoke_refresh_family(self, tenant: str, family: str) -> int:
        def revoke(c: sqlite3.Connection) -> int:
            _end_sessions(c, tenant, [family])
            rows = c.execute("SELECT token_hash, doc FROM refresh_tokens "
                             "WHERE tenant = ? AND family = ?", (tenant, family)).fetchall()
            for row in rows:
                doc = json.loads(row["doc"]) | {"revoked": True}
                c.execute("UPDATE refresh_tokens SET doc = ? WHERE tenant = ? AND token_hash = ?",
                          (json.dumps(doc), tenant, row["token_hash"]))
            return len(rows)

        return await self.db.transaction(revoke)

    async def prune_refresh_tokens(self, at: datetime) -> int:
        def prune(c: sqlite3.Connection) -> int:
            c.execute("DELETE FROM ended_sessions WHERE until <= ?",
                      (json_time(at - ENDED_MARGIN),))
            return int(c.execute("DELETE FROM refresh_tokens WHERE"
                                 " json_extract(doc, '$.expires_at') <= ?",
                                 (json_time(at),)).rowcount)

        return await self.db.transaction(prune)

    async def revoke_user_sessions(self, tenant: str, user_id: str, *, keep: str | None = None,
                                   since: datetime | None = None) -> list[str]:
        def revoke(c: sqlite3.Connection) -> list[str]:
            rows = c.execute("SELECT token_hash, family, doc FROM refresh_tokens WHERE tenant = ?"
                             " AND json_extract(doc, '$.user_id') = ? AND family IS NOT ?",
                             (tenant, user_id, keep)).fetchall()
            families: set[str] = set()
            ended: set[str] = set()
            for row in rows:
                doc = json.loads(row["doc"])
                if since is not None and RefreshToken.model_validate(doc, context=STORED).created_at >= since:
                    families.add(row["family"])
                if doc.get("revoked"):
                    continue
                families.add(row["family"])
                ended.add(row["family"])
                c.execute("UPDATE refresh_tokens SET doc = ? WHERE tenant = ? AND token_hash = ?",
                          (json.dumps(doc | {"revoked": True}), tenant, row["token_hash"]))
            _end_sessions(c, tenant, sorted(ended))
            return sorted(families)

        return await self.db.transaction(revoke)


def _end_sessions(c: sqlite3.Connection, tenant: str, families: Sequence[str]) -> None:
    """Marks the sessions ended, until their last token expires (see the port); a session
    whose tokens were deleted (its person's) keeps the end it had."""
    c.executemany(
        "INSERT INTO ended_sessions (tenant, family, until)"
        " SELECT ?, ?, coalesce(max(json_extract(doc, '$.expires_at')), '') FROM refresh_tokens"
        " WHERE tenant = ? AND family = ? ON CONFLICT (tenant, family)"
        " DO UPDATE SET until = max(until, excluded.until)",
        [(tenant, f, tenant, f) for f in families])


def _forget_sessions(c: sqlite3.Connection, tenant: str, user_id: str,
                     since: datetime | None) -> list[str]:
    """Ends every session of the user and deletes their refresh tokens; returns the sessions
    `revoke_user_sessions` would."""
    rows = c.execute("SELECT family, doc FROM refresh_tokens WHERE tenant = ?"
                     " AND json_extract(doc, '$.user_id') = ?", (tenant, user_id)).fetchall()
    tokens = [RefreshToken.model_validate_json(r["doc"], context=STORED) for r in rows]
    _end_sessions(c, tenant, sorted({t.family for t in tokens}))
    c.execute("DELETE FROM refresh_tokens WHERE tenant = ? AND json_extract(doc, '$.user_id') = ?",
              (tenant, user_id))
    return sorted({t.family for t in tokens
                   if not t.revoked or (since is not None and t.created_at >= since)})


class EmbeddedSigningKeys:
    def __init__(self, db: SqliteDB) -> None:
        self.db = db

    async def setup(self) -> None:
        await self.db.run(lambda c: c.executescript(KEY_SCHEMA))

    async def add_signing_key(self, key: SigningKey) -> None:
        doc = {"kid": key.kid, "algorithm": key.algorithm, "private_pem": key.private_pem,
               "public_jwk": key.public_jwk, "created_at": key.created_at.isoformat(timespec="microseconds")}
        await self.db.transaction(lambda c: c.execute(
            "INSERT INTO signing_keys (kid, created_at, doc) VALUES (?, ?, ?)",
            (key.kid, key.created_at.isoformat(timespec="microseconds"), json.dumps(doc))))

    async def signing_keys(self) -> list[SigningKey]:
        rows = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM signing_keys ORDER BY created_at DESC").fetchall())
        out = []
        for row in rows:
            doc = json.loads(row["doc"])
            out.append(SigningKey(kid=doc["kid"], algorithm=doc["algorithm"],
                                  private_pem=doc["private_pem"], public_jwk=doc["public_jwk"],
                                  created_at=datetime.fromisoformat(doc["created_at"])))
        return out

    async def delete_signing_keys(self, created_before: datetime) -> int:
        return await self.db.transaction(lambda c: c.execute(
            "DELETE FROM signing_keys WHERE created_at < ?",
            (created_before.isoformat(timespec="microseconds"),)).rowcount)

    async def secret(self, name: str, candidate: bytes) -> bytes:
        def keep(c: sqlite3.Connection) -> bytes:
            c.execute("INSERT OR IGNORE INTO secrets (name, value) VALUES (?, ?)",
                      (name, candidate.hex()))
            return bytes.fromhex(c.execute("SELECT value FROM secrets WHERE name = ?",
                                           (name,)).fetchone()["value"])

        return await self.db.transaction(keep)



class EmbeddedApiKeys:
    def __init__(self, db: SqliteDB) -> None:
        self.db = db

    async def setup(self) -> None:
        await self.db.run(lambda c: c.executescript(API_KEY_SCHEMA))

    async def add_api_key(self, key: ApiKey, *, max_live: int | None = None) -> None:
        def write(c: sqlite3.Connection) -> None:
            if max_live is not None and c.execute(
                    "SELECT COUNT(*) FROM api_keys WHERE tenant = ? AND revoked = 0",
                    (key.tenant,)).fetchone()[0] >= max_live:
                raise TooMany(key.tenant)
            c.execute("INSERT INTO api_keys (tenant, id, created_at, revoked, doc) "
                      "VALUES (?, ?, ?, ?, ?)",
                      (key.tenant, key.id, _created(key),
                       int(key.revoked), key.model_dump_json()))

        try:
            await self.db.transaction(write)
        except sqlite3.IntegrityError:
            raise Duplicate(key.id) from None

    async def get_api_key(self, tenant: str, key_id: str) -> ApiKey | None:
        row = await self.db.run(lambda c: c.execute(
            "SELECT doc FROM api_keys WHERE tenant = ? AND id = ?", (tenant, key_id)).fetchone())
        return None if row is None else ApiKey.model_validate_json(row["doc"], context=STORED)

    async def list_api_keys(self, tenant: str, *, revoked: bool | None = None,
                            created_by: str | None = None,
                            limit: int | None = 200) -> list[ApiKey]:
        where, args = ["tenant = ?"], list[object]([tenant])
        if revoked is not None:
            where.append("revoked = ?")
            args.append(int(revoked))
        if created_by is not None:
            where.append("json_extract(doc, '$.created_by') = ?")
            args.append(created_by)
        return await self._newest_first(where, args, limit or -1)

    async def page_api_keys(self, tenant: str, *, revoked: bool | None = None,
                            after: str | None = None, limit: int = 50) -> Slice[ApiKey]:
        where, args = ["tenant = ?"], list[object]([tenant])
        if revoked is not None:
            where.append("revoked = ?")
            args.append(int(revoked))
        if after:
            created, key_id = key_of(after, str, str)
            where.append("(created_at < ? OR (created_at = ? AND id > ?))")
            args += [created, created, key_id]
        found = await self._newest_first(where, args, limit + 1)
        return Slice.of(found, limit, lambda k: (_created(k), k.id))

    async def _newest_first(self, where: list[str], args: list[object],
                            limit: int) -> list[ApiKey]:
        sql = (f"SELECT doc FROM api_keys WHERE {' AND '.join(where)}"  # noqa: S608
               " ORDER BY created_at DESC, id LIMIT ?")
        rows = await self.db.run(lambda c: c.execute(sql, (*args, limit)).fetchall())
        return [ApiKey.model_validate_json(r["doc"], context=STORED) for r in rows]

    async def count_live_api_keys(self, tenant: str) -> int:
        row = await self.db.run(lambda c: c.execute(
            "SELECT COUNT(*) AS n FROM api_keys WHERE tenant = ? AND revoked = 0",
            (tenant,)).fetchone())
        return int(row["n"])

    async def revoke_api_key(self, tenant: str, key_id: str, at: datetime) -> ApiKey | None:
        def revoke(c: sqlite3.Connection) -> ApiKey | None:
            row = c.execute("SELECT doc FROM api_keys WHERE tenant = ? AND id = ?",
                            (tenant, key_id)).fetchone()
            if row is None:
                return None
            key = ApiKey.model_validate_json(row["doc"], context=STORED)
            if key.revoked:
                return key
            key = key.model_copy(update={"revoked_at": at})
            c.execute("UPDATE api_keys SET revoked = 1, doc = ? WHERE tenant = ? AND id = ?",
                      (key.model_dump_json(), tenant, key_id))
            return key

        return await self.db.transaction(revoke)


def _created(key: ApiKey) -> str:
    """A key's time as its `created_at` column holds it, which orders as the times do."""
    return key.created_at.isoformat(timespec="microseconds")


def _user_doc(c: sqlite3.Connection, tenant: str, user_id: str) -> str | None:
    row = c.execute("SELECT doc FROM users WHERE tenant = ? AND id = ?",
                    (tenant, user_id)).fetchone()
    return None if row is None else str(row["doc"])


def _delete_invitations_to(c: sqlite3.Connection, tenant: str, email: str) -> None:
    c.execute(f"DELETE FROM invitations WHERE tenant = ? AND {EMAIL} = ?",  # noqa: S608
              (tenant, email))


def _unannounced(doc: str, announced: str | None) -> Unannounced:
    at = json.loads(doc).get(ZONE_AT)
    return Unannounced(User.model_validate_json(doc, context=STORED), announced,
                       None if at is None else datetime.fromisoformat(at))


def _refuse_if_zone_later(doc: str, zone_at: str) -> None:
    stored = json.loads(doc).get(ZONE_AT)
    if stored is not None and stored >= zone_at:
        raise ZoneSetLater(datetime.fromisoformat(stored))


def _refuse_if_profile_changed(doc: str, read: User, profile_at: str | None) -> None:
    stored = json.loads(doc)
    at = stored.get(PROFILE_AT)
    if (any(stored.get(name) != getattr(read, name) for name in SEEN)
            or (profile_at is not None and at is not None and at >= profile_at)):
        raise ProfileSetLater(None if at is None else datetime.fromisoformat(at))


def _refuse_if_holds(doc: str | None, role: Role | None) -> None:
    if doc is not None and role is not None and role in json.loads(doc).get("roles", []):
        raise HoldsRole(role)


def _refuse_if_last(c: sqlite3.Connection, tenant: str, user_id: str, role: Role | None) -> None:
    if role is not None and c.execute(
            "SELECT 1 FROM users AS u, json_each(u.doc, '$.roles') AS r"
            " WHERE u.tenant = ? AND u.id != ? AND r.value = ? LIMIT 1",
            (tenant, user_id, role)).fetchone() is None:
        raise LastHolder(role)
