"""`bloop tenant create`'s use case: a tenant made, then its admin's invitation failed (a store
locked by the server beside it), is taken up by running the command again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bloop.platform.identity.bootstrap import open_tenant
from bloop.platform.identity.model import NewInvitation, NewTenant
from bloop.platform.identity.service import IdentityService
from bloop.platform.identity.stores.embedded import EmbeddedIdentityStore
from bloop.platform.kit.errors import Conflict, StoreUnavailable
from bloop.platform.kit.events.types import registry
from bloop.platform.kit.sqlite import SqliteDB

ACME = NewTenant(id="acme", name="Acme School")
BOSS = NewInvitation(email="boss@acme.org", roles=["tenant_admin"])


@pytest.fixture
async def identity(tmp_path: Path) -> AsyncIterator[IdentityService]:
    db = SqliteDB(tmp_path / "identity.sqlite3")
    store = EmbeddedIdentityStore(db, registry)
    await store.setup()
    yield IdentityService(store)
    await db.close()


async def test_a_tenant_whose_admin_was_not_invited_is_opened_by_running_it_again(
        identity: IdentityService, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as m:
        async def locked(*_: object, **__: object) -> None:
            raise StoreUnavailable("sqlite", "a file is locked")

        m.setattr(identity, "invite", locked)
        with pytest.raises(StoreUnavailable):
            await open_tenant(identity, ACME, BOSS)
    assert (await identity.tenant("acme")).name == "Acme School"

    opened = await open_tenant(identity, ACME, BOSS)
    assert opened.resumed
    assert (opened.invitation.tenant, opened.invitation.email) == ("acme", "boss@acme.org")
    assert [i.email for i in (await identity.invitations("acme")).items] == ["boss@acme.org"]


async def test_a_tenant_in_use_or_of_another_name_is_not_opened_again(
        identity: IdentityService) -> None:
    opened = await open_tenant(identity, ACME, BOSS)
    assert not opened.resumed
    for again in (ACME, NewTenant(id="acme", name="Another School")):
        with pytest.raises(Conflict) as refused:
            await open_tenant(identity, again, NewInvitation(email="x@acme.org",
                                                             roles=["tenant_admin"]))
        assert refused.value.detail == ("the tenant 'acme' already exists; to invite someone "
                                        "into it, run `bloop tenant invite acme EMAIL`")
    assert [i.email for i in (await identity.invitations("acme")).items] == ["boss@acme.org"]
