"""The store of tenants' sign-in providers, run against the embedded (SQLite) adapter and a real
MongoDB-wire server (FerretDB v1 from infra/, or MongoDB)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bloop.platform.identity.model import now
from bloop.platform.identity.oidc.model import OidcLink, OidcProvider
from bloop.platform.identity.oidc.ports import OidcProviderStore
from bloop.platform.identity.stores.oidc_embedded import EmbeddedOidcProviders
from bloop.platform.identity.stores.oidc_mongo import MongoOidcProviders
from bloop.platform.kit.sqlite import SqliteDB
from tests.contract.test_identity_store import real_mongo


@pytest.fixture(params=["embedded", pytest.param("real", marks=pytest.mark.real)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OidcProviderStore]:
    if request.param == "embedded":
        db = SqliteDB(tmp_path / "identity.sqlite3")
        embedded = EmbeddedOidcProviders(db)
        await embedded.setup()
        yield embedded
        await db.close()
        return
    client = real_mongo()
    name = f"oidc_test_{uuid.uuid4().hex[:12]}"
    mongo = MongoOidcProviders(client, database=name)
    try:
        await mongo.setup()
        await mongo.setup()  # safe to repeat
        yield mongo
    finally:
        await client.drop_database(name)
        await client.close()


def provider(tenant: str, name: str, **changes: Any) -> OidcProvider:
    return OidcProvider.model_validate({
        "tenant": tenant, "name": name, "kind": "oidc", "preset": "google",
        "issuer": "https://accounts.google.com",
        "discovery_url": "https://accounts.google.com/.well-known/openid-configuration",
        "client_id": f"{tenant}-client", "client_secret": f"{tenant}-secret",
        "scopes": ["openid", "email", "profile"], "allowed_email_domains": [f"{tenant}.dev"],
        "create_users": False, "updated_at": now(), **changes})


async def test_a_provider_round_trips_with_its_secret(store: OidcProviderStore) -> None:
    google = provider("acme", "google")
    await store.put_provider(google)
    assert await store.get_provider("acme", "google") == google
    assert await store.get_provider("acme", "github") is None


async def test_a_put_replaces_the_provider_of_that_name(store: OidcProviderStore) -> None:
    await store.put_provider(provider("acme", "google"))
    changed = provider("acme", "google", create_users=True, client_secret="rotated")
    await store.put_provider(changed)
    assert await store.get_provider("acme", "google") == changed
    assert len(await store.list_providers("acme")) == 1


async def test_a_put_keeping_the_secret_keeps_the_one_stored_at_the_write(
        store: OidcProviderStore) -> None:
    """An edit without a secret, read before another admin rotated it, does not put the old
    one back."""
    assert not await store.put_provider(provider("acme", "google"), keep_secret=True)
    assert await store.get_provider("acme", "google") is None
    await store.put_provider(provider("acme", "google", client_secret="rotated"))
    assert await store.put_provider(provider("acme", "google", create_users=True,
                                             client_secret="read-before"), keep_secret=True)
    kept = await store.get_provider("acme", "google")
    assert kept is not None
    assert (kept.client_secret, kept.create_users) == ("rotated", True)


async def test_tenants_never_see_each_others_providers(store: OidcProviderStore) -> None:
    github = provider("acme", "github", kind="github", preset="github", issuer=None,
                      discovery_url=None,
                      authorization_endpoint="https://github.com/login/oauth/authorize",
                      token_endpoint="https://github.com/login/oauth/access_token",
                      api_url="https://api.github.com", scopes=["read:user", "user:email"])
    await store.put_provider(provider("acme", "google"))
    await store.put_provider(github)
    await store.put_provider(provider("beta", "google"))
    assert [p.name for p in await store.list_providers("acme")] == ["github", "google"]
    assert [p.client_id for p in await store.list_providers("beta")] == ["beta-client"]
    assert await store.get_provider("beta", "github") is None
    assert await store.get_provider("acme", "github") == github
    assert await store.list_providers("gamma") == []


async def test_a_delete_says_whether_there_was_one(store: OidcProviderStore) -> None:
    await store.put_provider(provider("acme", "google"))
    await store.put_provider(provider("beta", "google"))
    assert await store.delete_provider("acme", "google") is True
    assert await store.delete_provider("acme", "google") is False
    assert await store.get_provider("acme", "google") is None
    assert await store.get_provider("beta", "google") is not None


def link(tenant: str, provider_name: str, subject: str, user_id: str) -> OidcLink:
    return OidcLink(tenant=tenant, provider=provider_name, subject=subject, user_id=user_id,
                    email=f"{user_id}@{tenant}.dev", linked_at=now())


async def test_a_link_round_trips_and_an_account_holds_one(store: OidcProviderStore) -> None:
    first = link("acme", "google", "sub-1", "u1")
    assert await store.add_link(first) is True
    assert await store.get_link("acme", "google", "sub-1") == first
    assert await store.links_of("acme", "u1") == [first]
    # the account linked already: not to another subject, nor through another provider
    assert await store.add_link(link("acme", "google", "sub-2", "u1")) is False
    assert await store.add_link(link("acme", "github", "sub-1", "u1")) is False
    # the subject linked already: not to another account
    assert await store.add_link(link("acme", "google", "sub-1", "u2")) is False
    assert await store.get_link("acme", "google", "sub-2") is None
    assert await store.links_of("acme", "u2") == []
    # another provider's subject of the same value is another person
    other = link("acme", "github", "sub-1", "u2")
    assert await store.add_link(other) is True
    assert await store.get_link("acme", "github", "sub-1") == other


async def test_tenants_never_see_each_others_links(store: OidcProviderStore) -> None:
    mine = link("acme", "google", "sub-1", "u1")
    await store.add_link(mine)
    theirs = link("beta", "google", "sub-1", "u1")
    assert await store.add_link(theirs) is True
    assert await store.get_link("beta", "google", "sub-1") == theirs
    assert await store.links_of("acme", "u1") == [mine]
    assert await store.delete_link("beta", "u1", "google") is True
    assert await store.links_of("acme", "u1") == [mine]


async def test_a_removed_link_frees_the_account_and_the_subject(store: OidcProviderStore) -> None:
    await store.add_link(link("acme", "google", "sub-1", "u1"))
    assert await store.delete_link("acme", "u1", "github") is False
    assert await store.delete_link("acme", "u1", "google") is True
    assert await store.delete_link("acme", "u1", "google") is False
    assert await store.get_link("acme", "google", "sub-1") is None
    relinked = link("acme", "google", "sub-2", "u1")
    assert await store.add_link(relinked) is True
    assert await store.links_of("acme", "u1") == [relinked]


async def test_a_deleted_provider_takes_its_links_along(store: OidcProviderStore) -> None:
    for tenant in ("acme", "beta"):
        await store.put_provider(provider(tenant, "google"))
        await store.add_link(link(tenant, "google", "sub-1", "u1"))
    await store.put_provider(provider("acme", "github"))
    kept = link("acme", "github", "sub-9", "u2")
    await store.add_link(kept)
    assert await store.delete_provider("acme", "google") is True
    assert await store.get_link("acme", "google", "sub-1") is None
    assert await store.links_of("acme", "u1") == []
    assert await store.links_of("acme", "u2") == [kept]
    assert await store.get_link("beta", "google", "sub-1") is not None


async def test_a_providers_links_are_forgotten_together(store: OidcProviderStore) -> None:
    for tenant in ("acme", "beta"):
        await store.add_link(link(tenant, "google", "sub-1", "u1"))
    await store.add_link(link("acme", "google", "sub-2", "u2"))
    kept = link("acme", "github", "sub-9", "u3")
    await store.add_link(kept)
    assert await store.forget_links("acme", "google") == 2
    assert await store.forget_links("acme", "google") == 0
    assert await store.links_of("acme", "u1") == []
    assert await store.links_of("acme", "u3") == [kept]
    assert await store.get_link("beta", "google", "sub-1") is not None


async def test_a_provider_stored_before_callbacks_were_pinned_reads_back_without_one(
        store: OidcProviderStore) -> None:
    """Its sign-ins then refuse (the service's 409 `oidc_callback_unset`) until it is put
    again, which pins one, with or without a new secret."""
    old = provider("acme", "google").model_dump(mode="json", exclude={"callback_url"})
    if isinstance(store, EmbeddedOidcProviders):
        await store.db.transaction(lambda c: c.execute(
            "INSERT INTO oidc_providers (tenant, name, doc) VALUES (?, ?, ?)",
            ("acme", "google", json.dumps(old))))
    else:
        assert isinstance(store, MongoOidcProviders)
        await store.providers.insert_one({"_id": "acme/google", **old})
    read = await store.get_provider("acme", "google")
    assert read is not None
    assert (read.callback_url, read.client_secret) == (None, "acme-secret")
    assert [p.callback_url for p in await store.list_providers("acme")] == [None]
    callback = "https://learn.acme.dev/v1/tenants/acme/oidc/google/callback"
    assert await store.put_provider(provider("acme", "google", callback_url=callback,
                                             client_secret="unsent"), keep_secret=True)
    pinned = await store.get_provider("acme", "google")
    assert pinned is not None
    assert (pinned.callback_url, pinned.client_secret) == (callback, "acme-secret")
