"""identity's routes: status codes and problem+json bodies, through the real app, signed in."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from bloop.platform.app import create_app
from bloop.platform.identity.model import User
from bloop.platform.identity.service import IdentityService, token_hash
from bloop.platform.kit.errors import StoreUnavailable
from bloop.platform.kit.events.bus.embedded import EmbeddedEventBus
from bloop.platform.kit.settings import RuntimeSettings, Settings
from tests.support import (
    PASSWORD,
    api_client,
    check_fits,
    eventually,
    login,
    member,
    pages_of,
    start_up_announced,
)


@pytest.fixture
async def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FastAPI]:
    for var in ("BLOOP_STORE", "BLOOP_MONGO_ADAPTER", "BLOOP_KAFKA_ADAPTER", "BLOOP_REDIS_ADAPTER"):
        monkeypatch.delenv(var, raising=False)
    settings = Settings(runtime=RuntimeSettings(data_dir=tmp_path, seed_demo=False))
    application = create_app(settings, services=["identity"])
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(app) as c:
        yield c


async def event_types(app: FastAPI) -> list[str]:
    """The types of identity's events, waiting in the outbox or already on the bus."""
    service: IdentityService = app.state.identity.state["service"]
    bus = app.state.platform.bus
    assert isinstance(bus, EmbeddedEventBus)
    values = [p.message.value for p in await service.repo.outbox.pending(500)]
    values += [m.value for m in await bus.read("user.events")]
    events = {e["id"]: e["type"] for e in map(json.loads, values)}
    return list(events.values())


async def test_tenants_and_users_round_trip(app: FastAPI, client: httpx.AsyncClient) -> None:
    root = await member(app, client, "platform", ["platform_admin"])
    r = await client.post("/v1/tenants", json={"id": "acme", "name": "Acme School"}, headers=root)
    assert r.status_code == 201, r.text
    admin = await member(app, client, "acme", ["tenant_admin"], email="admin@acme.dev")
    assert (await client.get("/v1/tenants/acme", headers=admin)).json()["name"] == "Acme School"

    r = await client.post("/v1/tenants/acme/users", headers=admin, json={
        "email": "Ada@Acme.dev", "display_name": "Ada", "roles": ["educator"]})
    assert r.status_code == 201, r.text
    ada = r.json()
    assert ada["email"] == "ada@acme.dev"
    assert "password" not in ada
    assert (await client.get(f"/v1/tenants/acme/users/{ada['id']}", headers=admin)).json() == ada
    for email in ("b@acme.dev", "c@acme.dev"):
        await client.post("/v1/tenants/acme/users", headers=admin,
                          json={"email": email, "display_name": "X"})
    first = (await client.get("/v1/tenants/acme/users?limit=2", headers=admin)).json()
    assert [u["email"] for u in first["items"]] == ["ada@acme.dev", "admin@acme.dev"]
    rest = (await client.get(f"/v1/tenants/acme/users?limit=2&after={first['next']}",
                             headers=admin)).json()
    assert [u["email"] for u in rest["items"]] == ["b@acme.dev", "c@acme.dev"]
    assert rest["next"] is None  # the last page, exactly full: before, a `next` to an empty one
    assert await pages_of(client, "/v1/tenants/acme/users", 4, headers=admin) == [
        first["items"] + rest["items"]]


async def test_a_platform_admin_lists_the_tenants(app: FastAPI, client: httpx.AsyncClient) -> None:
    root = await member(app, client, "platform", ["platform_admin"])
    for tid in ("gamma", "alpha", "beta"):
        r = await client.post("/v1/tenants", json={"id": tid, "name": tid.title()}, headers=root)
        assert r.status_code == 201, r.text
    first = (await client.get("/v1/tenants?limit=2", headers=root)).json()
    assert [(t["id"], t["name"]) for t in first["items"]] == [("alpha", "Alpha"), ("beta", "Beta")]
    rest = (await client.get(f"/v1/tenants?limit=2&after={first['next']}", headers=root)).json()
    assert [t["id"] for t in rest["items"]] == ["gamma", "platform"]
    assert rest["next"] is None  # the last page, exactly full: before, "platform" and one more
    assert (await client.get("/v1/tenants?after=gamma", headers=root)).json()["items"] == [
        rest["items"][1]]
    assert (await client.get("/v1/tenants?after=platform", headers=root)).json() == {
        "items": [], "next": None}
    admin = await member(app, client, "alpha", ["tenant_admin"])
    assert (await client.get("/v1/tenants", headers=admin)).status_code == 403


async def test_errors_are_problems(app: FastAPI, client: httpx.AsyncClient) -> None:
    root = await member(app, client, "platform", ["platform_admin"])
    await client.post("/v1/tenants", json={"id": "acme", "name": "Acme"}, headers=root)
    r = await client.post("/v1/tenants", json={"id": "acme", "name": "Acme"}, headers=root)
    assert r.status_code == 409
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "tenant_exists"

    admin = await member(app, client, "acme", ["tenant_admin"])
    users = "/v1/tenants/acme/users"
    await client.post(users, json={"email": "a@acme.dev", "display_name": "A"}, headers=admin)
    r = await client.post(users, json={"email": "A@ACME.dev", "display_name": "B"}, headers=admin)
    assert r.status_code == 409
    assert r.json()["code"] == "email_taken"
    r = await client.post(users, headers=admin,
                          json={"email": "b@acme.dev", "display_name": "B", "is_admin": True})
    assert r.status_code == 422
    assert r.json()["code"] == "validation_failed"
    r = await client.post(users, headers=admin,
                          json={"email": "c@acme.dev", "display_name": "C", "roles": ["root"]})
    assert r.status_code == 422
    r = await client.post(users, headers=admin, json={
        "email": "d@acme.dev", "display_name": "D", "password": "password1234"})
    assert r.status_code == 422
    assert r.json()["code"] == "weak_password"
    r = await client.post(users, headers=admin, json={
        "email": "e@acme.dev", "display_name": "E", "roles": ["platform_admin"]})
    assert r.status_code == 403
    r = await client.post(users, headers=admin, content=b'{"email": ',
                          )
    assert r.status_code == 422
    emails = [u["email"] for u in (await client.get(users, headers=admin)).json()["items"]]
    assert not {"b@acme.dev", "c@acme.dev", "d@acme.dev", "e@acme.dev"} & set(emails)

    assert (await client.get("/v1/tenants/nowhere", headers=root)).status_code == 404
    assert (await client.get("/v1/tenants/acme/users/nobody", headers=admin)).status_code == 404
    assert (await client.get("/v1/tenants/Not_A_Slug", headers=root)).status_code == 422


async def test_settings_are_the_tenant_admins(app: FastAPI, client: httpx.AsyncClient) -> None:
    admin = await member(app, client, "acme", ["tenant_admin"])
    r = await client.patch("/v1/tenants/acme/settings", headers=admin, json={
        "allowed_signup_domains": ["Acme.dev"]})
    assert r.status_code == 200, r.text
    assert r.json()["settings"] == {"allowed_signup_domains": ["acme.dev"]}
    # settings nothing honoured are refused, not kept (the AI quota is the AI service's)
    for bad in ({"data_retention_days": 30}, {"allowed_signup_domains": ["not a domain"]},
                {"ai_quota": 50}, {"plan": "gold"}):
        assert (await client.patch("/v1/tenants/acme/settings", headers=admin,
                                   json=bad)).status_code == 422
    educator = await member(app, client, "acme", ["educator"])
    r = await client.patch("/v1/tenants/acme/settings", headers=educator,
                           json={"allowed_signup_domains": ["b.dev"]})
    assert r.status_code == 403
    tenant = (await client.get("/v1/tenants/acme", headers=educator)).json()
    assert tenant["settings"] == {"allowed_signup_domains": ["acme.dev"]}


async def test_sign_up_needs_an_allowed_domain_and_a_strong_password(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    admin = await member(app, client, "acme", ["tenant_admin"])
    signup = "/v1/tenants/acme/signup"
    body = {"email": "Zoe@Acme.dev", "display_name": "Zoe", "password": PASSWORD}
    r = await client.post(signup, json=body)
    assert r.status_code == 403
    assert r.json()["code"] == "signup_not_allowed"
    await client.patch("/v1/tenants/acme/settings", headers=admin,
                       json={"allowed_signup_domains": ["acme.dev"]})
    assert (await client.post(signup, json={**body, "email": "zoe@evil.dev"})).status_code == 403
    r = await client.post(signup, json={**body, "password": "Password123!"})
    assert r.status_code == 422
    assert r.json()["code"] == "weak_password"
    assert (await client.post(signup, json={**body, "password": "short"})).status_code == 422
    r = await client.post(signup, json=body)
    assert r.status_code == 201, r.text
    assert r.json()["roles"] == ["learner"]
    assert (await client.post(signup, json={**body, "email": "ZOE@acme.DEV"})).status_code == 409
    assert (await client.post("/v1/tenants/nowhere/signup", json=body)).status_code == 403
    assert (await client.post(signup, json={**body, "roles": ["tenant_admin"]})).status_code == 422
    await login(client, "acme", "zoe@acme.dev")
    assert (await event_types(app)).count("bloop.identity.user.registered.v1") == 2


async def test_invitations_carry_roles_and_are_spent_once(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    admin = await member(app, client, "acme", ["tenant_admin"])
    r = await client.post("/v1/tenants/acme/invitations", headers=admin,
                          json={"email": "Tess@acme.dev", "roles": ["teaching_assistant"]})
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    accept = "/v1/tenants/acme/invitations/accept"
    weak = await client.post(accept, json={"token": token, "display_name": "T",
                                           "password": "qwertyuiop123"})
    assert weak.status_code == 422
    assert (await client.post("/v1/tenants/other/invitations/accept", json={
        "token": token, "display_name": "T", "password": PASSWORD})).status_code == 404
    r = await client.post(accept, json={"token": token, "display_name": "Tess",
                                        "password": PASSWORD})
    assert r.status_code == 201, r.text
    assert (r.json()["email"], r.json()["roles"]) == ("tess@acme.dev", ["teaching_assistant"])
    again = await client.post(accept, json={"token": token, "display_name": "Tess",
                                            "password": PASSWORD})
    assert (again.status_code, again.json()["code"]) == (409, "invitation_used"), again.text
    assert "sign in" in again.json()["detail"]
    path = "/v1/tenants/{tenant}/invitations/accept"
    check_fits(app.openapi(), "post", path, again)
    documented = app.openapi()["paths"][path]["post"]["responses"]["409"]
    assert documented["content"]["application/problem+json"]["example"]["code"] == "invitation_used"
    tess = await login(client, "acme", "tess@acme.dev")
    assert (await client.get("/v1/tenants/acme/users", headers=tess)).status_code == 200
    r = await client.post("/v1/tenants/acme/invitations", headers=admin,
                          json={"email": "boss@acme.dev", "roles": ["platform_admin"]})
    assert r.status_code == 403
    r = await client.post("/v1/tenants/acme/invitations", headers=admin,
                          json={"email": "tess@acme.dev"})
    assert r.status_code == 409


async def test_an_expired_invitation_can_be_neither_accepted_nor_withdrawn(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    admin = await member(app, client, "acme", ["tenant_admin"])
    r = await client.post("/v1/tenants/acme/invitations", headers=admin,
                          json={"email": "tess@acme.dev"})
    token, invitation_id = r.json()["token"], r.json()["id"]
    repo = app.state.identity.state["service"].repo
    sent = await repo.get_invitation("acme", token_hash(token))
    assert sent is not None
    await repo.delete_invitation("acme", sent.token_hash)
    await repo.add_invitation(sent.model_copy(update={"expires_at": sent.created_at}))
    r = await client.post("/v1/tenants/acme/invitations/accept", json={
        "token": token, "display_name": "Tess", "password": PASSWORD})
    assert (r.status_code, r.json()["code"]) == (404, "invitation_invalid"), r.text
    r = await client.delete(f"/v1/tenants/acme/invitations/{invitation_id}", headers=admin)
    assert r.status_code == 404, r.text
    assert (await client.get("/v1/tenants/acme/invitations", headers=admin)).json()["items"] == []


async def test_an_invitation_accepted_twice_at_once_makes_one_account(
        app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """One acceptance spends it, the others (and later retries) are told it is used, 409, not
    404 "ask for a new one". An acceptance whose account could not be stored leaves the
    invitation pending for the retry."""
    admin = await member(app, client, "acme", ["tenant_admin"])
    r = await client.post("/v1/tenants/acme/invitations", headers=admin,
                          json={"email": "tess@acme.dev"})
    body = {"token": r.json()["token"], "display_name": "Tess", "password": PASSWORD}
    accept = "/v1/tenants/acme/invitations/accept"
    service: IdentityService = app.state.identity.state["service"]
    repo = service.repo
    adding = repo.add_user

    async def down(*args: object, **kwargs: object) -> None:
        raise StoreUnavailable("sqlite", "the disk went away")

    monkeypatch.setattr(repo, "add_user", down)
    assert (await client.post(accept, json=body)).status_code == 503
    monkeypatch.setattr(repo, "add_user", adding)
    pending = (await client.get("/v1/tenants/acme/invitations", headers=admin)).json()["items"]
    assert [i["email"] for i in pending] == ["tess@acme.dev"]
    answers = await asyncio.gather(*(client.post(accept, json=body) for _ in range(6)))
    assert sorted(r.status_code for r in answers) == [201] + [409] * 5
    assert {r.json()["code"] for r in answers if r.status_code == 409} == {"invitation_used"}
    assert (await client.get("/v1/tenants/acme/invitations", headers=admin)).json()["items"] == []
    retried = await client.post(accept, json=body)
    assert (retried.status_code, retried.json()["code"]) == (409, "invitation_used")


async def test_one_email_invited_several_times_at_once_keeps_one_good_invitation(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    """Each invitation's prune deleted every other one to its email: sent at once (a double
    click), none was left, while each request had answered 201 with a token."""
    admin = await member(app, client, "acme", ["tenant_admin"])
    invitations = "/v1/tenants/acme/invitations"
    sent = await asyncio.gather(*(client.post(invitations, headers=admin,
                                              json={"email": "tess@acme.dev"}) for _ in range(5)))
    assert [r.status_code for r in sent] == [201] * 5
    pending = (await client.get(invitations, headers=admin)).json()["items"]
    assert [i["email"] for i in pending] == ["tess@acme.dev"]
    join = {"display_name": "Tess", "password": PASSWORD}
    accepted = [await client.post(f"{invitations}/accept", json={"token": r.json()["token"],
                                                                  **join}) for r in sent]
    assert sorted(r.status_code for r in accepted) == [201, 404, 404, 404, 404]
    assert pending[0]["id"] in {r.json()["id"] for r in sent}


async def test_admins_see_pending_invitations_and_withdraw_them(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    """Before, an invitation sent to a mistyped address, or with the wrong role, stayed good
    until it expired, with no way to see it; inviting the same email again left both good."""
    admin = await member(app, client, "acme", ["tenant_admin"])
    invitations, accept = "/v1/tenants/acme/invitations", "/v1/tenants/acme/invitations/accept"

    async def invite(email: str, roles: list[str]) -> dict[str, Any]:
        r = await client.post(invitations, headers=admin, json={"email": email, "roles": roles})
        assert r.status_code == 201, r.text
        return dict(r.json())

    tess = await invite("tess@acme.dev", ["learner"])
    typo = await invite("tes@acme.dev", ["educator"])
    tess_again = await invite("tess@acme.dev", ["educator"])
    listed = (await client.get(invitations, headers=admin)).json()
    assert listed["next"] is None
    assert [(i["id"], i["email"], i["roles"]) for i in listed["items"]] == [
        (tess_again["id"], "tess@acme.dev", ["educator"]), (typo["id"], "tes@acme.dev", ["educator"])]
    assert all("token" not in i for i in listed["items"])
    first = (await client.get(invitations, params={"limit": 1}, headers=admin)).json()
    assert [i["id"] for i in first["items"]] == [tess_again["id"]]
    rest = (await client.get(invitations, params={"limit": 1, "after": first["next"]},
                             headers=admin)).json()
    assert ([i["id"] for i in rest["items"]], rest["next"]) == ([typo["id"]], None)
    r = await client.get(invitations, params={"after": "nonsense"}, headers=admin)
    assert (r.status_code, r.json()["code"]) == (422, "bad_cursor")
    join = {"display_name": "Tess", "password": PASSWORD}
    r = await client.post(accept, json={"token": tess["token"], **join})
    assert (r.status_code, r.json()["code"]) == (404, "invitation_invalid")

    assert (await client.delete(f"{invitations}/{typo['id']}", headers=admin)).status_code == 204
    r = await client.post(accept, json={"token": typo["token"], **join})
    assert (r.status_code, r.json()["code"]) == (404, "invitation_invalid")
    r = await client.delete(f"{invitations}/{typo['id']}", headers=admin)
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
    assert (await client.delete(f"{invitations}/not-an-id", headers=admin)).status_code == 422

    learner = await member(app, client, "acme", ["learner"])
    assert (await client.get(invitations, headers=learner)).status_code == 403
    r = await client.delete(f"{invitations}/{tess_again['id']}", headers=learner)
    assert r.status_code == 403
    r = await client.post(accept, json={"token": tess_again["token"], **join})
    assert (r.status_code, r.json()["roles"]) == (201, ["educator"])
    assert (await client.get(invitations, headers=admin)).json() == {"items": [], "next": None}


async def admin_and_learner(app: FastAPI, client: httpx.AsyncClient
                            ) -> tuple[dict[str, str], dict[str, str], str]:
    """A tenant admin's and a learner's headers, and the URL of the learner's roles."""
    admin = await member(app, client, "acme", ["tenant_admin"])
    learner = await member(app, client, "acme", ["learner"], email="lee@acme.dev")
    lee = (await client.get("/v1/tenants/acme/me", headers=learner)).json()
    return admin, learner, f"/v1/tenants/acme/users/{lee['id']}/roles"

async def test_role_changes_are_the_admins_and_announced(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    admin, learner, url = await admin_and_learner(app, client)
    assert (await client.put(url, headers=learner, json={"roles": ["tenant_admin"]})
            ).status_code == 403
    assert (await client.put(url, headers=admin, json={"roles": ["platform_admin"]})
            ).status_code == 403
    assert (await client.put(url, headers=admin, json={"roles": []})).status_code == 422
    r = await client.put(url, headers=admin, json={"roles": ["educator", "learner"]})
    assert r.status_code == 200, r.text
    assert r.json()["roles"] == ["learner", "educator"]
    assert (await event_types(app)).count("bloop.identity.user.role_changed.v1") == 1
    again = await login(client, "acme", "lee@acme.dev")
    assert (await client.get("/v1/tenants/acme/users", headers=again)).status_code == 200


async def test_a_demotion_or_a_deletion_signs_the_person_out(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    """Access tokens carry roles: one kept after a demotion would let the person undo it for
    as long as it lives (15 minutes), and one kept after a deletion would still act."""
    admin, _, url = await admin_and_learner(app, client)
    assert (await client.put(url, headers=admin, json={"roles": ["tenant_admin"]})
            ).status_code == 200
    r = await client.post("/v1/auth/token", data={
        "grant_type": "password", "tenant": "acme", "username": "lee@acme.dev",
        "password": PASSWORD})
    lee = {"Authorization": f"Bearer {r.json()['access_token']}"}
    refresh = r.json()["refresh_token"]
    assert (await client.put(url, headers=admin, json={"roles": ["learner"]})).status_code == 200
    r = await client.put(url, headers=lee, json={"roles": ["tenant_admin"]})
    assert r.status_code == 401, r.text
    r = await client.post("/v1/tenants/acme/api-keys", headers=lee,
                          json={"name": "kept", "scopes": ["content:read"]})
    assert r.status_code == 401, r.text
    r = await client.post("/v1/auth/token", data={"grant_type": "refresh_token",
                                                  "tenant": "acme", "refresh_token": refresh})
    assert r.status_code == 400, r.text
    again = await login(client, "acme", "lee@acme.dev")
    assert (await client.put(url, headers=again, json={"roles": ["tenant_admin"]})
            ).status_code == 403
    # a grant takes nothing away: the session stays
    assert (await client.put(url, headers=admin, json={"roles": ["learner", "educator"]})
            ).status_code == 200
    assert (await client.get("/v1/tenants/acme/me", headers=again)).status_code == 200

    boss = await member(app, client, "acme", ["tenant_admin"], email="boss2@acme.dev")
    boss_id = (await client.get("/v1/tenants/acme/me", headers=boss)).json()["id"]
    r = await client.delete(f"/v1/tenants/acme/users/{boss_id}", headers=admin)
    assert r.status_code == 204, r.text
    r = await client.post("/v1/tenants/acme/invitations", headers=boss,
                          json={"email": "new-admin@acme.dev", "roles": ["tenant_admin"]})
    assert r.status_code == 401, r.text


async def test_the_tenant_s_last_admin_stays_one(app: FastAPI, client: httpx.AsyncClient) -> None:
    """An only admin could drop their own role, or delete their account, and nobody could
    manage the tenant any more (only the operator's command line could bring one back)."""
    boss = await member(app, client, "acme", ["educator", "tenant_admin"])
    boss_id = (await client.get("/v1/tenants/acme/me", headers=boss)).json()["id"]
    roles = f"/v1/tenants/acme/users/{boss_id}/roles"
    for r in (await client.put(roles, headers=boss, json={"roles": ["educator"]}),
              await client.delete(f"/v1/tenants/acme/users/{boss_id}", headers=boss),
              await client.delete("/v1/tenants/acme/me", headers=boss)):
        assert (r.status_code, r.json()["code"]) == (409, "last_admin"), r.text
    assert (await client.get("/v1/tenants/acme/users", headers=boss)).status_code == 200
    await member(app, client, "acme", ["tenant_admin"])
    r = await client.put(roles, headers=boss, json={"roles": ["educator"]})
    assert r.status_code == 200, r.text


async def test_a_platform_admin_granted_meanwhile_is_out_of_a_tenant_admins_reach(
        app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """A platform admin grants the role while a tenant admin's change, reset or deletion of the
    same person is under way (after it read and checked their roles): each is refused 403,
    and the person keeps the role, the password and the account."""
    admin, _learner, url = await admin_and_learner(app, client)
    service: IdentityService = app.state.identity.state["service"]
    lee = await service.user("acme", url.split("/")[-2])
    reading = service.user

    async def granted_after_reading(tenant: str, user_id: str) -> User:
        read = await reading(tenant, user_id)
        await service.repo.replace_user(read.with_roles(["platform_admin"]), [],
                                        fields=["roles"])
        return read

    monkeypatch.setattr(service, "user", granted_after_reading)
    user_url = url.removesuffix("/roles")
    for method, path, body in (("PUT", url, {"roles": ["educator"]}),
                               ("PUT", f"{user_url}/password",
                                {"new_password": "a fresh start for lee"}),
                               ("DELETE", user_url, None)):
        await service.repo.replace_user(lee, [], fields=["roles"])  # a learner again
        r = await client.request(method, path, headers=admin, json=body)
        assert (r.status_code, r.json()["code"]) == (403, "missing_role"), (method, path, r.text)
    monkeypatch.setattr(service, "user", reading)
    kept = await service.user("acme", lee.id)
    assert kept.roles == ["platform_admin"]
    assert (await client.post("/v1/auth/token", data={
        "grant_type": "password", "tenant": "acme", "username": "lee@acme.dev",
        "password": PASSWORD})).status_code == 200


async def test_profiles_are_the_users_own(app: FastAPI, client: httpx.AsyncClient) -> None:
    me = await member(app, client, "acme", ["learner"])
    r = await client.patch("/v1/tenants/acme/me", headers=me, json={
        "display_name": "Lee", "avatar_url": "https://img.acme.dev/lee.png", "locale": "fr-FR",
        "time_zone": "Europe/Paris", "bio": "I like loops."})
    assert r.status_code == 200, r.text
    profile = (await client.get("/v1/tenants/acme/me", headers=me)).json()
    assert (profile["display_name"], profile["locale"], profile["time_zone"]) == (
        "Lee", "fr-FR", "Europe/Paris")
    assert profile["avatar_url"] == "https://img.acme.dev/lee.png"
    for bad in ({"time_zone": "Mars/Olympus"}, {"avatar_url": "http://img.acme.dev/x.png"},
                {"avatar_url": "javascript:alert(1)"}, {"locale": "french!"},
                {"bio": "x" * 2001}, {"roles": ["tenant_admin"]}, {"email": "x@y.dev"}):
        r = await client.patch("/v1/tenants/acme/me", headers=me, json=bad)
        assert r.status_code == 422, bad
    assert (await client.get("/v1/tenants/acme/me", headers=me)).json() == profile
    # null leaves a field as it is, but takes the avatar away
    r = await client.patch("/v1/tenants/acme/me", headers=me,
                           json={"display_name": None, "avatar_url": None})
    assert r.status_code == 200, r.text
    assert r.json() == profile | {"avatar_url": None}
    assert (await client.get("/v1/tenants/acme/me", headers=me)).json() == r.json()
    # others are told of a new name or avatar, not of the rest, nor of an edit changing nothing
    r = await client.patch("/v1/tenants/acme/me", headers=me, json={"locale": "de-DE"})
    assert r.status_code == 200, r.text
    r = await client.patch("/v1/tenants/acme/me", headers=me, json={"display_name": "Lee"})
    assert r.status_code == 200, r.text
    assert (await event_types(app)).count("bloop.identity.user.profile_changed.v1") == 2
    # learning is told of the time zone (the start of the learner's day) each time it is set,
    # the same again too: the latest it hears of repairs what it may have missed
    r = await client.patch("/v1/tenants/acme/me", headers=me, json={"time_zone": "Europe/Paris"})
    assert r.status_code == 200, r.text
    assert (await event_types(app)).count("bloop.identity.user.time_zone_changed.v1") == 2
    r = await client.patch("/v1/tenants/acme/me", headers=me, json={"time_zone": "Asia/Tokyo"})
    assert r.status_code == 200, r.text
    assert (await event_types(app)).count("bloop.identity.user.time_zone_changed.v1") == 3
    assert (await event_types(app)).count("bloop.identity.user.profile_changed.v1") == 2


async def test_zones_set_before_they_were_announced_are_announced_a_batch_at_a_time(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    """Every tenant's users, `batch` a write, each once (see learning's test of the start-up
    announcement, which this runs)."""
    await start_up_announced()
    service: IdentityService = app.state.identity.state["service"]
    zoned: list[str] = []
    for tenant, people in (("acme", 3), ("beta", 2)):
        for _ in range(people):
            r = await client.get(f"/v1/tenants/{tenant}/me",
                                 headers=await member(app, client, tenant))
            user = await service.user(tenant, r.json()["id"])
            await service.repo.replace_user(user.model_copy(update={"time_zone": "Asia/Tokyo"}),
                                            [], fields=["time_zone"])
            zoned.append(user.id)
    assert await service.announce_time_zones(batch=2) == 5
    assert await service.announce_time_zones(batch=2) == 0
    announced = [json.loads(m.value) for m in await bus_messages(app)]
    assert sorted(e["subject"] for e in announced
                  if e["type"] == "bloop.identity.user.time_zone_changed.v1") == sorted(zoned)


async def bus_messages(app: FastAPI) -> list[Any]:
    """identity's events, once the relay has sent them all."""
    service: IdentityService = app.state.identity.state["service"]
    bus = app.state.platform.bus
    assert isinstance(bus, EmbeddedEventBus)

    async def sent() -> bool:
        return not await service.repo.outbox.pending(1)

    await eventually(sent, timeout_s=15, what="the outbox sent")
    return list(await bus.read("user.events"))


async def test_a_profile_edit_racing_a_role_change_keeps_both(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    admin, _, url = await admin_and_learner(app, client)
    for n, roles in enumerate((["learner", "educator"], ["learner", "teaching_assistant"]) * 3):
        # A learner again first (a demotion signs lee out), then a grant raced with an edit.
        assert (await client.put(url, headers=admin, json={"roles": ["learner"]})
                ).status_code == 200
        learner = await login(client, "acme", "lee@acme.dev")
        edit, change = await asyncio.gather(
            client.patch("/v1/tenants/acme/me", headers=learner, json={"bio": f"Bio {n}"}),
            client.put(url, headers=admin, json={"roles": roles}))
        assert (edit.status_code, change.status_code) == (200, 200)
        me = (await client.get("/v1/tenants/acme/me", headers=learner)).json()
        assert (me["bio"], me["roles"]) == (f"Bio {n}", roles)


async def test_deleting_an_account_announces_it_and_ends_sign_in(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    admin = await member(app, client, "acme", ["tenant_admin"])
    await member(app, client, "acme", ["learner"], email="gone@acme.dev")
    users = (await client.get("/v1/tenants/acme/users", headers=admin)).json()["items"]
    gone = next(u for u in users if u["email"] == "gone@acme.dev")
    r = await client.delete(f"/v1/tenants/acme/users/{gone['id']}", headers=admin)
    assert r.status_code == 204
    assert (await client.get(f"/v1/tenants/acme/users/{gone['id']}", headers=admin)
            ).status_code == 404
    assert "bloop.identity.user.deleted.v1" in await event_types(app)
    r = await client.post("/v1/auth/token", data={
        "grant_type": "password", "tenant": "acme", "username": "gone@acme.dev",
        "password": PASSWORD})
    assert r.status_code == 400

    me = await member(app, client, "acme", ["learner"], email="leaving@acme.dev")
    assert (await client.delete("/v1/tenants/acme/me", headers=me)).status_code == 204
    assert (await client.get("/v1/tenants/acme/me", headers=me)).status_code == 401


async def test_a_deleted_admin_is_no_longer_named_by_what_stays(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    """Their API key and invitation stayed with `created_by`/`invited_by` naming them, and
    their refresh tokens (user id, scopes, times) for 30 days. What the tenant holds goes on
    working; their own export, made before, listed it all."""
    await member(app, client, "acme", ["tenant_admin"], email="stays@acme.dev")
    other = await login(client, "acme", "stays@acme.dev")
    await member(app, client, "acme", ["tenant_admin"], email="boss@acme.dev")
    r = await client.post("/v1/auth/token", data={
        "grant_type": "password", "tenant": "acme", "username": "boss@acme.dev",
        "password": PASSWORD})
    assert r.status_code == 200, r.text
    boss, refresh = {"Authorization": f"Bearer {r.json()['access_token']}"}, r.json()[
        "refresh_token"]
    r = await client.post("/v1/tenants/acme/api-keys", headers=boss,
                          json={"name": "gradebook sync", "scopes": ["identity:read"]})
    assert r.status_code == 201, r.text
    key = r.json()
    r = await client.post("/v1/tenants/acme/invitations", headers=boss,
                          json={"email": "new@acme.dev", "roles": ["learner"]})
    assert r.status_code == 201, r.text
    invitation = r.json()
    mine = (await client.get("/v1/tenants/acme/me/export", headers=boss)).json()[
        "services"]["identity"]
    boss_id = mine["profile"]["id"]
    assert ([k["id"] for k in mine["api_keys_created"]],
            [i["id"] for i in mine["invitations_sent"]], len(mine["sign_ins"])) == (
        [key["id"]], [invitation["id"]], 2)

    assert (await client.delete(f"/v1/tenants/acme/users/{boss_id}", headers=other)
            ).status_code == 204
    keys = (await client.get("/v1/tenants/acme/api-keys", headers=other)).json()["items"]
    assert [(k["id"], k["created_by"], k["revoked_at"]) for k in keys] == [
        (key["id"], "deleted-user", None)]
    pending = (await client.get("/v1/tenants/acme/invitations", headers=other)).json()["items"]
    assert [(i["id"], i["invited_by"]) for i in pending] == [(invitation["id"], "deleted-user")]
    service: IdentityService = app.state.identity.state["service"]
    assert await service.sign_ins("acme", boss_id) == []
    assert boss_id not in (await client.get("/v1/tenants/acme/api-keys", headers=other)).text
    r = await client.post("/v1/auth/token", data={
        "grant_type": "refresh_token", "tenant": "acme", "refresh_token": refresh})
    assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")
    # the tenant's key and invitation still work
    r = await client.get("/v1/tenants/acme", headers={"Authorization": f"Bearer {key['key']}"})
    assert r.status_code == 200, r.text
    r = await client.post("/v1/tenants/acme/invitations/accept", json={
        "token": invitation["token"], "password": PASSWORD, "display_name": "New"})
    assert r.status_code == 201, r.text


async def test_no_cache_keeps_an_invitation_s_token_or_people_s_data(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    """The invitation's one-time token came back storable (API keys and tokens did not), and so
    did profiles and lists of users."""
    admin = await member(app, client, "acme", ["tenant_admin"], email="boss@acme.dev")
    r = await client.post("/v1/tenants/acme/invitations", headers=admin,
                          json={"email": "new@acme.dev", "roles": ["learner"]})
    assert r.status_code == 201, r.text
    assert r.headers["cache-control"] == "no-store"
    r = await client.post("/v1/tenants/acme/api-keys", headers=admin,
                          json={"name": "gradebook sync", "scopes": ["content:read"]})
    assert (r.status_code, r.headers["cache-control"]) == (201, "no-store"), r.text
    me = (await client.get("/v1/tenants/acme/me", headers=admin)).json()
    for path in ("/me", "/users", f"/users/{me['id']}", "/invitations"):
        r = await client.get(f"/v1/tenants/acme{path}", headers=admin)
        assert (r.status_code, r.headers.get("cache-control")) == (200, "no-store"), path
    # A tenant's name is no one's data.
    assert "cache-control" not in (await client.get("/v1/tenants/acme", headers=admin)).headers


async def test_a_user_exports_everything_held_about_them(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    admin = await member(app, client, "acme", ["tenant_admin"], email="boss@acme.dev")
    r = await client.post("/v1/tenants/acme/api-keys", headers=admin,
                          json={"name": "gradebook sync", "scopes": ["content:read"]})
    assert r.status_code == 201, r.text
    secret = r.json()["key"]

    r = await client.post("/v1/tenants/acme/invitations", headers=admin,
                          json={"email": "new@acme.dev", "roles": ["learner"]})
    assert r.status_code == 201, r.text
    invitation = r.json()
    r = await client.get("/v1/tenants/acme/me/export", headers=admin)
    assert r.status_code == 200, r.text
    assert [(i["id"], i["email"]) for i in r.json()["services"]["identity"][
        "invitations_sent"]] == [(invitation["id"], "new@acme.dev")]
    assert invitation["token"] not in r.text
    assert r.headers["content-disposition"].startswith("attachment;")
    assert r.headers["cache-control"] == "no-store"
    document = r.json()
    me = document["services"]["identity"]
    assert document["tenant"] == "acme"
    assert document["user_id"] == me["profile"]["id"]
    assert me["profile"]["email"] == "boss@acme.dev"
    assert [k["name"] for k in me["api_keys_created"]] == ["gradebook sync"]
    [session] = me["sign_ins"]  # the one `member` made: no token or hash of it
    assert (session["user_id"], session["revoked"]) == (me["profile"]["id"], False)
    assert "token_hash" not in r.text
    assert secret.rsplit("_", 1)[-1] not in r.text
    assert "content" in document["not_exported_by_this_process"]
    assert "identity" not in document["not_exported_by_this_process"]


async def test_an_invited_persons_account_takes_their_invitation(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    """An admin invited pat, then made pat's account: the invitation stayed listed (its token
    refused, `email_taken`), in no export, and kept after pat's erasure."""
    admin = await member(app, client, "acme", ["tenant_admin"])
    r = await client.post("/v1/tenants/acme/invitations", headers=admin,
                          json={"email": "pat@example.org", "roles": ["educator"]})
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    r = await client.post("/v1/tenants/acme/users", headers=admin, json={
        "email": "pat@example.org", "display_name": "Pat", "password": PASSWORD})
    assert r.status_code == 201, r.text
    pat_id = r.json()["id"]
    assert (await client.get("/v1/tenants/acme/invitations", headers=admin)).json()["items"] == []
    r = await client.post("/v1/tenants/acme/invitations/accept", json={
        "token": token, "display_name": "Pat", "password": PASSWORD})
    assert (r.status_code, r.json()["code"]) == (404, "invitation_invalid"), r.text

    service: IdentityService = app.state.identity.state["service"]
    sent = await service.repo.get_invitation("acme", token_hash(token))
    assert sent is None
    r = await client.post("/v1/tenants/acme/invitations", headers=admin,
                          json={"email": "max@acme.dev"})
    late = await service.repo.get_invitation("acme", token_hash(r.json()["token"]))
    assert late is not None  # an invitation made as pat's account was
    raced = late.model_copy(update={"token_hash": "f" * 64, "email": "pat@example.org"})
    await service.repo.add_invitation(raced)
    pat = await login(client, "acme", "pat@example.org")
    mine = (await client.get("/v1/tenants/acme/me/export", headers=pat)).json()
    assert [(i["id"], i["email"], i["roles"]) for i in mine["services"]["identity"][
        "invitations_received"]] == [(raced.id, "pat@example.org", ["learner"])]
    assert raced.token_hash not in json.dumps(mine)
    assert (await client.delete("/v1/tenants/acme/me", headers=pat)).status_code == 204
    assert await service.repo.get_invitation("acme", raced.token_hash) is None
    pending = (await client.get("/v1/tenants/acme/invitations", headers=admin)).json()["items"]
    assert [i["email"] for i in pending] == ["max@acme.dev"]
    assert pat_id not in json.dumps(pending)


async def test_expired_invitations_are_deleted_on_a_timer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """They went only when the same tenant invited someone again."""
    from bloop.platform.identity import wiring

    monkeypatch.setattr(wiring, "PRUNE_INVITATIONS_S", 0.05)
    for var in ("BLOOP_STORE", "BLOOP_MONGO_ADAPTER", "BLOOP_KAFKA_ADAPTER", "BLOOP_REDIS_ADAPTER"):
        monkeypatch.delenv(var, raising=False)
    settings = Settings(runtime=RuntimeSettings(data_dir=tmp_path, seed_demo=False))
    application = create_app(settings, services=["identity"])
    async with application.router.lifespan_context(application), api_client(application) as c:
        admin = await member(application, c, "acme", ["tenant_admin"])
        r = await c.post("/v1/tenants/acme/invitations", headers=admin,
                         json={"email": "tess@acme.dev"})
        service: IdentityService = application.state.identity.state["service"]
        sent = await service.repo.get_invitation("acme", token_hash(r.json()["token"]))
        assert sent is not None
        await service.repo.delete_invitation("acme", sent.token_hash)
        await service.repo.add_invitation(sent.model_copy(update={"expires_at": sent.created_at}))

        async def deleted() -> bool:
            return await service.repo.find_invitation("acme", sent.id) is None

        await eventually(deleted, timeout_s=5, what="the expired invitation's deletion")


async def test_only_a_tenant_admin_exports_another_users_data(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    admin = await member(app, client, "acme", ["tenant_admin"])
    learner = await member(app, client, "acme", ["learner"], email="lee@acme.dev")
    stranger = await member(app, client, "globex", ["tenant_admin"])
    users = (await client.get("/v1/tenants/acme/users", headers=admin)).json()["items"]
    lee = next(u for u in users if u["email"] == "lee@acme.dev")

    r = await client.get(f"/v1/tenants/acme/users/{lee['id']}/export", headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["services"]["identity"]["profile"]["email"] == "lee@acme.dev"
    for headers in (learner, stranger):
        r = await client.get(f"/v1/tenants/acme/users/{lee['id']}/export", headers=headers)
        assert r.status_code == 403, r.text
    r = await client.get("/v1/tenants/acme/users/nobody/export", headers=admin)
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
