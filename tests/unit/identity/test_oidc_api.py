"""Sign-in through external providers, end to end: the real app, its real HTTP client code
(authlib, httpx) and a stand-in provider on 127.0.0.1 (tests/oidc_provider.py). Each refusal is a
clear 4xx and signs nobody in."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from joserfc import jws
from joserfc.jwk import RSAKey

from bloop.platform.app import create_app
from bloop.platform.identity.oidc.service import OidcService, state_key
from bloop.platform.identity.service import IdentityService
from bloop.platform.kit.settings import OidcSettings, RuntimeSettings, Settings
from tests.oidc_provider import (
    CLIENT_ID,
    CLIENT_SECRET,
    GITHUB_CLIENT_ID,
    GITHUB_CLIENT_SECRET,
    Person,
    StandInProvider,
    serve,
)
from tests.support import PASSWORD, api_client, member

PROVIDERS = "/v1/tenants/acme/oidc/providers"


@pytest.fixture(scope="module")
async def idp() -> AsyncIterator[StandInProvider]:
    async with serve(StandInProvider()) as provider:
        yield provider


@pytest.fixture
async def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FastAPI]:
    for var in ("BLOOP_STORE", "BLOOP_MONGO_ADAPTER", "BLOOP_KAFKA_ADAPTER", "BLOOP_REDIS_ADAPTER"):
        monkeypatch.delenv(var, raising=False)
    settings = Settings(runtime=RuntimeSettings(data_dir=tmp_path, seed_demo=False),
                        oidc=OidcSettings(allow_http_loopback=True))
    application = create_app(settings, services=["identity"])
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(app) as c:
        yield c


@pytest.fixture
async def admin(app: FastAPI, client: httpx.AsyncClient) -> dict[str, str]:
    return await member(app, client, "acme", ["tenant_admin"], email="admin@acme.dev")


def oidc_config(idp: StandInProvider, **extra: Any) -> dict[str, Any]:
    return {"issuer": idp.issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "create_users": True, **extra}


def github_config(idp: StandInProvider, **extra: Any) -> dict[str, Any]:
    return {"preset": "github", "client_id": GITHUB_CLIENT_ID,
            "client_secret": GITHUB_CLIENT_SECRET, "create_users": True,
            "authorization_endpoint": f"{idp.base_url}/login/oauth/authorize",
            "token_endpoint": f"{idp.base_url}/login/oauth/access_token",
            "api_url": f"{idp.base_url}/api", **extra}


async def configure(client: httpx.AsyncClient, admin: dict[str, str], name: str,
                    body: dict[str, Any], tenant: str = "acme") -> dict[str, Any]:
    r = await client.put(f"/v1/tenants/{tenant}/oidc/providers/{name}", json=body, headers=admin)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


async def to_provider_and_back(client: httpx.AsyncClient, tenant: str = "acme",
                               name: str = "google") -> str:
    """What the browser does: starts the sign-in, follows the redirect to the provider, and
    returns the callback URL the provider sends it back to."""
    start = await client.get(f"/v1/tenants/{tenant}/oidc/{name}/login")
    assert start.status_code == 302, start.text
    async with httpx.AsyncClient() as browser:
        at_provider = await browser.get(start.headers["location"])
    assert at_provider.status_code == 302, at_provider.text
    back: str = at_provider.headers["location"]
    assert back.startswith(f"http://bloop.test/v1/tenants/{tenant}/oidc/{name}/callback?")
    return back


async def sign_in(client: httpx.AsyncClient, tenant: str = "acme",
                  name: str = "google") -> httpx.Response:
    return await client.get(await to_provider_and_back(client, tenant, name))


def bearer(grant: httpx.Response) -> dict[str, str]:
    return {"Authorization": f"Bearer {grant.json()['access_token']}"}


async def user_count(app: FastAPI, tenant: str = "acme") -> int:
    service: IdentityService = app.state.identity.state["service"]
    return len(await service.repo.list_users(tenant, limit=200))


def refused(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == code, r.text
    assert "access_token" not in r.json()


# configuration


async def test_a_tenant_admin_configures_providers_and_the_secret_never_comes_back(
        client: httpx.AsyncClient, admin: dict[str, str], app: FastAPI) -> None:
    google = await configure(client, admin, "google", {
        "preset": "google", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "allowed_email_domains": ["Acme.dev"]})
    assert google["issuer"] == "https://accounts.google.com"
    assert google["discovery_url"] == "https://accounts.google.com/.well-known/openid-configuration"
    assert google["scopes"] == ["openid", "email", "profile"]
    assert google["allowed_email_domains"] == ["acme.dev"]
    assert google["create_users"] is False
    microsoft = await configure(client, admin, "microsoft", {
        "preset": "microsoft", "microsoft_tenant": "acme.onmicrosoft.com", "client_id": "c1",
        "client_secret": "s1"})
    assert microsoft["issuer"] == "https://login.microsoftonline.com/acme.onmicrosoft.com/v2.0"
    github = await configure(client, admin, "github", {
        "preset": "github", "client_id": "Iv1.x", "client_secret": "s2"})
    assert (github["kind"], github["authorization_endpoint"], github["token_endpoint"],
            github["api_url"], github["scopes"]) == (
        "github", "https://github.com/login/oauth/authorize",
        "https://github.com/login/oauth/access_token", "https://api.github.com",
        ["read:user", "user:email"])

    listed = (await client.get(PROVIDERS, headers=admin)).json()
    assert [p["name"] for p in listed] == ["github", "google", "microsoft"]
    shown = await client.get(f"{PROVIDERS}/google", headers=admin)
    for body in (google, microsoft, github, shown.json(), *listed):
        assert "client_secret" not in body
        assert CLIENT_SECRET not in json.dumps(body)
        assert body["has_client_secret"] is True

    # A replacement may leave the secret out: the stored one stays.
    again = await configure(client, admin, "google", {"preset": "google", "client_id": CLIENT_ID,
                                                      "create_users": True})
    assert again["create_users"] is True
    oidc: OidcService = app.state.identity.state["oidc"]
    assert (await oidc.provider("acme", "google")).client_secret == CLIENT_SECRET

    assert (await client.delete(f"{PROVIDERS}/microsoft", headers=admin)).status_code == 204
    refused(await client.get(f"{PROVIDERS}/microsoft", headers=admin), 404,
            "oidc_provider_not_found")
    refused(await client.delete(f"{PROVIDERS}/microsoft", headers=admin), 404,
            "oidc_provider_not_found")


@pytest.mark.parametrize(("body", "code"), [
    ({"preset": "google", "client_id": "c"}, "oidc_secret_missing"),
    ({"client_id": "c", "client_secret": "s"}, "oidc_config_invalid"),
    ({"issuer": "http://idp.example", "client_id": "c", "client_secret": "s"},
     "oidc_config_invalid"),
    ({"discovery_url": "ftp://idp.example/x", "client_id": "c", "client_secret": "s"},
     "oidc_config_invalid"),
    ({"issuer": "https://idp\x1f.example", "client_id": "c", "client_secret": "s"},
     "oidc_config_invalid"),
    # hosts whose `xn--` (punycode) does not decode: were a 500
    ({"issuer": "https://xn--.com", "client_id": "c", "client_secret": "s"},
     "oidc_config_invalid"),
    ({"issuer": "https://xn--a.com", "client_id": "c", "client_secret": "s"},
     "oidc_config_invalid"),
    ({"discovery_url": "https://xn--ls8h.la/x", "client_id": "c", "client_secret": "s"},
     "oidc_config_invalid"),
    ({"discovery_url": "https://idp.example:70000/x", "client_id": "c", "client_secret": "s"},
     "oidc_config_invalid"),
    ({"preset": "github", "api_url": "https://api.git hub.com", "client_id": "c",
      "client_secret": "s"}, "oidc_config_invalid"),
    ({"preset": "github", "issuer": "https://github.com", "client_id": "c",
      "client_secret": "s"}, "oidc_config_invalid"),
    ({"preset": "google", "api_url": "https://api.github.com", "client_id": "c",
      "client_secret": "s"}, "oidc_config_invalid"),
    ({"preset": "google", "microsoft_tenant": "x", "client_id": "c", "client_secret": "s"},
     "oidc_config_invalid"),
    ({"preset": "okta", "client_id": "c", "client_secret": "s"}, "validation_failed"),
    ({"preset": "google", "client_id": "c", "client_secret": "s", "scopes": ["a b"]},
     "validation_failed"),
    ({"preset": "google", "client_id": "c", "client_secret": "s",
      "allowed_email_domains": ["not a domain"]}, "validation_failed"),
    ({"preset": "google", "client_id": "c", "client_secret": "s", "admin": True},
     "validation_failed"),
])
async def test_a_bad_configuration_is_refused_and_stores_nothing(
        client: httpx.AsyncClient, admin: dict[str, str], body: dict[str, Any],
        code: str) -> None:
    r = await client.put(f"{PROVIDERS}/google", json=body, headers=admin)
    refused(r, 422, code)
    assert (await client.get(f"{PROVIDERS}/google", headers=admin)).status_code == 404


async def test_reserved_and_malformed_names_are_refused(
        client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    body = {"preset": "google", "client_id": "c", "client_secret": "s"}
    refused(await client.put(f"{PROVIDERS}/providers", json=body, headers=admin), 422,
            "oidc_config_invalid")
    refused(await client.put(f"{PROVIDERS}/Google_1", json=body, headers=admin), 422,
            "validation_failed")
    assert (await client.get(PROVIDERS, headers=admin)).json() == []


async def test_only_a_tenant_admin_of_the_tenant_configures(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    body = {"preset": "google", "client_id": "c", "client_secret": "s"}
    educator = await member(app, client, "acme", ["educator"])
    other_admin = await member(app, client, "beta", ["tenant_admin"])
    refused(await client.put(f"{PROVIDERS}/google", json=body, headers=educator), 403,
            "missing_role")
    refused(await client.put(f"{PROVIDERS}/google", json=body, headers=other_admin), 403,
            "wrong_tenant")
    refused(await client.put(f"{PROVIDERS}/google", json=body), 401, "unauthenticated")
    assert (await client.get(PROVIDERS, headers=admin)).json() == []


# the sign-in


async def test_login_redirects_with_state_nonce_and_pkce(
        client: httpx.AsyncClient, admin: dict[str, str], idp: StandInProvider) -> None:
    await configure(client, admin, "google", oidc_config(idp))
    r = await client.get("/v1/tenants/acme/oidc/google/login")
    assert r.status_code == 302
    assert r.headers["cache-control"] == "no-store"
    url = urlsplit(r.headers["location"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{idp.base_url}/o/oauth2/v2/auth"
    q = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert q["response_type"] == "code"
    assert q["client_id"] == CLIENT_ID
    assert q["redirect_uri"] == "http://bloop.test/v1/tenants/acme/oidc/google/callback"
    assert q["scope"] == "openid email profile"
    assert q["code_challenge_method"] == "S256"
    assert len(q["code_challenge"]) == 43
    assert len(q["state"]) >= 32
    assert len(q["nonce"]) >= 32
    again = await client.get("/v1/tenants/acme/oidc/google/login")
    q2 = parse_qs(urlsplit(again.headers["location"]).query)
    assert q2["state"][0] != q["state"]
    assert q2["nonce"][0] != q["nonce"]
    assert q2["code_challenge"][0] != q["code_challenge"]
    refused(await client.get("/v1/tenants/acme/oidc/nope/login"), 404, "oidc_provider_not_found")


async def test_a_first_sign_in_creates_a_learner_whose_tokens_work(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str],
        idp: StandInProvider) -> None:
    await configure(client, admin, "google", oidc_config(idp))
    idp.reset(Person(email="Grace@Acme.dev", name="Grace Hopper"))
    before = await user_count(app)
    r = await sign_in(client)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    grant = r.json()
    assert grant["token_type"] == "bearer"
    assert grant["refresh_token"]
    assert await user_count(app) == before + 1
    me = await client.get("/v1/tenants/acme/me", headers=bearer(r))
    assert me.status_code == 200, me.text
    assert (me.json()["email"], me.json()["display_name"], me.json()["roles"]) == (
        "grace@acme.dev", "Grace Hopper", ["learner"])
    # the stand-in checked our client's credentials (basic auth), redirect URI and PKCE verifier
    last = idp.token_requests[-1]
    assert last["grant_type"] == "authorization_code"
    assert 43 <= len(last["code_verifier"]) <= 128
    assert "client_secret" not in last

    refreshed = await client.post("/v1/auth/token", data={
        "grant_type": "refresh_token", "tenant": "acme", "refresh_token": grant["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text

    # signing in again finds the same account
    second = await sign_in(client)
    assert second.status_code == 200, second.text
    again = await client.get("/v1/tenants/acme/me", headers=bearer(second))
    assert again.json()["id"] == me.json()["id"]
    assert await user_count(app) == before + 1


async def test_a_provider_sign_in_remembers_its_address_for_the_account(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str],
        idp: StandInProvider) -> None:
    """A provider sign-in left no mark of its address, so guesses at the account's password
    from elsewhere locked its owner out where they had just signed in through the provider."""
    await configure(client, admin, "google", oidc_config(idp))
    idp.reset(Person(email="Grace@Acme.dev", name="Grace Hopper"))
    throttle = app.state.identity.state["auth"].throttle
    mark = await throttle._known("acme", "grace@acme.dev", "127.0.0.1")
    assert await throttle.cache.get(mark) is None
    assert (await sign_in(client)).status_code == 200
    assert await throttle.cache.get(mark) == b"1"


async def test_a_sign_in_links_to_the_existing_account_of_that_email(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str],
        idp: StandInProvider) -> None:
    await configure(client, admin, "google", oidc_config(idp, create_users=False))
    staff = await member(app, client, "acme", ["educator"], email="ada@acme.dev")
    known = (await client.get("/v1/tenants/acme/me", headers=staff)).json()
    before = await user_count(app)
    idp.reset(Person(email="ADA@acme.dev", name="Someone Else"))
    r = await sign_in(client)
    assert r.status_code == 200, r.text
    me = (await client.get("/v1/tenants/acme/me", headers=bearer(r))).json()
    assert (me["id"], me["roles"], me["display_name"]) == (known["id"], ["educator"],
                                                          known["display_name"])
    users = await client.get("/v1/tenants/acme/users", headers=bearer(r))
    assert users.status_code == 200  # an educator's token, so a staff route answers
    assert await user_count(app) == before


async def test_a_sign_in_does_not_join_an_account_a_sign_up_made(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str],
        idp: StandInProvider) -> None:
    """Anyone could sign up with someone's school address and a password of their own, and
    then share the account the address's owner came into through the provider. A self
    sign-up's email is unverified and a provider's sign-in refuses to join it; an invitation
    accepted (its token reached the address) makes a verified account, which it joins."""
    await configure(client, admin, "google", oidc_config(idp))
    r = await client.patch("/v1/tenants/acme/settings", headers=admin,
                           json={"allowed_signup_domains": ["acme.dev"]})
    assert r.status_code == 200, r.text
    r = await client.post("/v1/tenants/acme/signup", json={
        "email": "ada@acme.dev", "display_name": "Not Ada", "password": PASSWORD})
    assert (r.status_code, r.json()["email_verified"]) == (201, False), r.text
    before = await user_count(app)
    idp.reset(Person(email="ada@acme.dev", name="Ada"))
    refused(await sign_in(client), 409, "email_unverified")
    assert await user_count(app) == before

    r = await client.post("/v1/tenants/acme/invitations", headers=admin,
                          json={"email": "bea@acme.dev", "roles": ["learner"]})
    assert r.status_code == 201, r.text
    r = await client.post("/v1/tenants/acme/invitations/accept", json={
        "token": r.json()["token"], "display_name": "Bea", "password": PASSWORD})
    assert (r.status_code, r.json()["email_verified"]) == (201, True), r.text
    idp.reset(Person(email="bea@acme.dev"))
    grant = await sign_in(client)
    assert grant.status_code == 200, grant.text
    me = (await client.get("/v1/tenants/acme/me", headers=bearer(grant))).json()
    assert (me["id"], me["email_verified"]) == (r.json()["id"], True)


async def test_a_provider_cannot_sign_a_platform_admin_in(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str],
        idp: StandInProvider) -> None:
    """A tenant admin configures the provider, and the provider vouches for any address: a
    platform admin's account is out of its reach, as it is out of a tenant admin's."""
    await configure(client, admin, "google", oidc_config(idp, create_users=False))
    await member(app, client, "acme", ["platform_admin"], email="root@acme.dev")
    idp.reset(Person(email="root@acme.dev"))
    refused(await sign_in(client), 403, "oidc_platform_admin")


async def test_github_signs_in_with_the_primary_verified_email(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str],
        idp: StandInProvider) -> None:
    await configure(client, admin, "github", github_config(idp))
    idp.reset(Person(email="octo@acme.dev", name="Mona Octocat"))
    r = await sign_in(client, name="github")
    assert r.status_code == 200, r.text
    me = (await client.get("/v1/tenants/acme/me", headers=bearer(r))).json()
    assert (me["email"], me["display_name"], me["roles"]) == (
        "octo@acme.dev", "Mona Octocat", ["learner"])
    assert idp.token_requests[-1]["client_id"] == GITHUB_CLIENT_ID  # sent in the body

    idp.reset(Person(email="unverified@acme.dev", verified=False))
    before = await user_count(app)
    refused(await sign_in(client, name="github"), 403, "oidc_email_unverified")
    idp.reset(Person(email="nobody@acme.dev"))
    idp.github_emails = [{"email": "x@acme.dev", "primary": False, "verified": True,
                          "visibility": None}]
    refused(await sign_in(client, name="github"), 403, "oidc_email_missing")
    assert await user_count(app) == before


# refusals: the state


async def test_a_replayed_callback_is_refused(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str],
        idp: StandInProvider) -> None:
    await configure(client, admin, "google", oidc_config(idp))
    idp.reset(Person(email="replay@acme.dev"))
    back = await to_provider_and_back(client)
    assert (await client.get(back)).status_code == 200
    before = await user_count(app)
    refused(await client.get(back), 400, "oidc_state_invalid")
    assert await user_count(app) == before


async def test_unknown_missing_and_expired_states_are_refused(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str],
        idp: StandInProvider) -> None:
    await configure(client, admin, "google", oidc_config(idp))
    idp.reset(Person(email="late@acme.dev"))
    callback = "/v1/tenants/acme/oidc/google/callback"
    refused(await client.get(callback, params={"code": "abc", "state": "made-up"}), 400,
            "oidc_state_invalid")
    refused(await client.get(callback, params={"code": "abc"}), 400, "oidc_state_invalid")

    back = await to_provider_and_back(client)
    state = parse_qs(urlsplit(back).query)["state"][0]
    cache = app.state.platform.cache
    record = await cache.get(state_key(state))
    assert record is not None
    await cache.set(state_key(state), record, ttl_s=0.05)  # as if the user took too long
    await asyncio.sleep(0.1)
    refused(await client.get(back), 400, "oidc_state_invalid")
    assert await user_count(app) == 1  # the admin alone


async def test_a_state_of_another_tenant_is_refused_and_stays_usable(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str],
        idp: StandInProvider) -> None:
    beta_admin = await member(app, client, "beta", ["tenant_admin"])
    await configure(client, admin, "google", oidc_config(idp))
    await configure(client, beta_admin, "google", oidc_config(idp), tenant="beta")
    idp.reset(Person(email="mallory@acme.dev"))
    back = await to_provider_and_back(client, "acme")
    elsewhere = back.replace("/tenants/acme/", "/tenants/beta/")
    refused(await client.get(elsewhere), 400, "oidc_state_invalid")
    assert await user_count(app, "beta") == 1
    other_provider = back.replace("/oidc/google/", "/oidc/github/")
    refused(await client.get(other_provider), 400, "oidc_state_invalid")
    assert (await client.get(back)).status_code == 200


async def test_a_provider_error_is_refused(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str],
        idp: StandInProvider) -> None:
    await configure(client, admin, "google", oidc_config(idp))
    idp.reset(Person(email="shy@acme.dev"))
    idp.deny_with = "access_denied"
    back = await to_provider_and_back(client)
    assert "error=access_denied" in back
    r = await client.get(back)
    refused(r, 400, "oidc_provider_error")
    assert "access_denied" in r.json()["detail"]
    assert await user_count(app) == 1


async def test_a_code_the_provider_refuses_is_refused(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str],
        idp: StandInProvider) -> None:
    await configure(client, admin, "google", oidc_config(idp))
    idp.reset(Person(email="forged@acme.dev"))
    back = await to_provider_and_back(client)
    forged = back.replace("code=", "code=forged")
    refused(await client.get(forged), 400, "oidc_code_refused")
    assert await user_count(app) == 1


# refusals: the ID token


@pytest.mark.parametrize(("tamper", "why"), [
    ({"sign_with_impostor": True}, "signature"),
    ({"iss": "https://accounts.google.com"}, "iss"),
    ({"aud": "someone-else.apps.googleusercontent.com"}, "aud"),
    ({"aud": [CLIENT_ID, "someone-else"], "azp": "someone-else"}, "audiences"),
    ({"nonce": "an-old-nonce-replayed-from-another-sign-in"}, "nonce"),
    ({"exp": 1_700_000_000, "iat": 1_699_996_400}, "expired"),
    ({"nonce": None}, "nonce"),
])
async def test_a_bad_id_token_is_refused(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str], idp: StandInProvider,
        tamper: dict[str, Any], why: str) -> None:
    await configure(client, admin, "google", oidc_config(idp))
    idp.reset(Person(email="eve@acme.dev"))
    if tamper.pop("sign_with_impostor", False):
        idp.sign_with_impostor = True
    idp.claims_override = tamper
    r = await sign_in(client)
    refused(r, 401, "oidc_id_token_invalid")
    assert why in r.json()["detail"]
    assert await user_count(app) == 1


async def test_an_id_token_nested_too_deeply_to_parse_is_refused(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str],
        idp: StandInProvider) -> None:
    """Its header, then its signed claims, `[[[…` deeper than Python's JSON parser recurses:
    were a 500 (RecursionError)."""
    await configure(client, admin, "google", oidc_config(idp))
    deep = base64.urlsafe_b64encode(b"[" * 1100).decode().rstrip("=")
    signed = jws.serialize_compact({"alg": "RS256", "kid": idp.key.kid}, b"[" * 1100, idp.key)
    for id_token in (f"{deep}.e30.x", signed):
        idp.reset(Person(email="eve@acme.dev"))
        idp.id_token_override = id_token
        refused(await sign_in(client), 401, "oidc_id_token_invalid")
    assert await user_count(app) == 1


# refusals: the person


async def test_an_unverified_email_is_refused(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str],
        idp: StandInProvider) -> None:
    await configure(client, admin, "google", oidc_config(idp))
    await member(app, client, "acme", ["learner"], email="taken@acme.dev")
    before = await user_count(app)
    for email in ("new@acme.dev", "taken@acme.dev"):  # nobody new, and no account takeover
        idp.reset(Person(email=email, verified=False))
        refused(await sign_in(client), 403, "oidc_email_unverified")
    assert await user_count(app) == before


async def test_a_domain_the_provider_may_not_bring_is_refused(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str],
        idp: StandInProvider) -> None:
    await configure(client, admin, "google", oidc_config(idp, allowed_email_domains=["acme.dev"]))
    await member(app, client, "acme", ["learner"], email="outsider@gmail.test")
    before = await user_count(app)
    for email in ("someone@gmail.test", "outsider@gmail.test", "x@evil-acme.dev"):
        idp.reset(Person(email=email))
        refused(await sign_in(client), 403, "oidc_domain_not_allowed")
    assert await user_count(app) == before
    idp.reset(Person(email="insider@acme.dev"))
    assert (await sign_in(client)).status_code == 200


async def test_an_unknown_email_is_refused_when_the_provider_creates_nobody(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str],
        idp: StandInProvider) -> None:
    await configure(client, admin, "google", oidc_config(idp, create_users=False))
    idp.reset(Person(email="stranger@acme.dev"))
    refused(await sign_in(client), 403, "oidc_no_account")
    assert await user_count(app) == 1


async def test_a_provider_removed_mid_sign_in_is_refused(
        client: httpx.AsyncClient, admin: dict[str, str], idp: StandInProvider) -> None:
    await configure(client, admin, "google", oidc_config(idp))
    idp.reset(Person(email="slow@acme.dev"))
    back = await to_provider_and_back(client)
    assert (await client.delete(f"{PROVIDERS}/google", headers=admin)).status_code == 204
    refused(await client.get(back), 404, "oidc_provider_not_found")


async def test_an_unreachable_provider_is_a_502_and_nothing_is_stored(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    await configure(client, admin, "gone", oidc_config_at(f"http://127.0.0.1:{port}"))
    cache = app.state.platform.cache
    r = await client.get("/v1/tenants/acme/oidc/gone/login")
    refused(r, 502, "oidc_provider_unavailable")
    assert await cache.delete_prefix("oidc:state:") == 0


async def test_a_provider_inside_the_network_is_refused(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str],
        idp: StandInProvider) -> None:
    """A provider's addresses were only checked to be https, and the public login route
    fetched them: a tenant admin could point it at the cloud's metadata service or a private
    network. Addresses given (422) and those a discovery document names (502) must be public;
    this test's app allows only loopback, where its stand-in provider runs."""
    for address in ("https://169.254.169.254", "https://10.1.2.3/realms/x"):
        r = await client.put(f"{PROVIDERS}/inside", headers=admin,
                             json=oidc_config_at(address))
        refused(r, 422, "private_address")
    await configure(client, admin, "google", oidc_config(idp))
    r = await login_while_discovery_names(client, idp, "https://192.168.1.1/auth")
    refused(r, 502, "private_address")


async def login_while_discovery_names(client: httpx.AsyncClient, idp: StandInProvider,
                                      authorization_endpoint: str) -> httpx.Response:
    """The provider's login, its discovery document naming `authorization_endpoint` meanwhile."""
    idp.discovery_override = {"authorization_endpoint": authorization_endpoint}
    try:
        return await client.get("/v1/tenants/acme/oidc/google/login")
    finally:
        idp.discovery_override = {}


async def test_a_provider_whose_host_does_not_resolve_is_unavailable_not_private(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str],
        idp: StandInProvider) -> None:
    """It answered 502 `private_address`, which sent the admin looking for a network rule."""
    await configure(client, admin, "google", oidc_config(idp))
    r = await login_while_discovery_names(client, idp, "https://idp.invalid/auth")
    refused(r, 502, "oidc_provider_unavailable")


@pytest.mark.parametrize(("endpoint", "address"), [
    ("authorization_endpoint", "https://idp.example/auth\x1f"),
    ("token_endpoint", "https://idp.example:99999/token"),
    ("jwks_uri", "https://idp example/certs"),
    ("authorization_endpoint", "https://xn--a.com/auth"),  # punycode that does not decode
    ("jwks_uri", "https://xn--.com/certs"),
])
async def test_a_discovery_document_naming_a_bad_address_is_a_502(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str], idp: StandInProvider,
        endpoint: str, address: str, caplog: pytest.LogCaptureFixture) -> None:
    await configure(client, admin, "google", oidc_config(idp))
    idp.reset(Person(email="grace@acme.dev"))
    idp.discovery_override = {endpoint: address}
    try:
        if endpoint == "authorization_endpoint":
            r = await client.get("/v1/tenants/acme/oidc/google/login")
        else:
            idp.discovery_override = {}
            back = await to_provider_and_back(client)
            idp.discovery_override = {endpoint: address}
            app.state.identity.state["oidc"]._documents.clear()  # as once the cached copy expires
            r = await client.get(back)
    finally:
        idp.discovery_override = {}
    refused(r, 502, "oidc_provider_unavailable")
    assert "'google'" in r.json()["detail"]
    assert address not in r.json()["detail"]
    assert endpoint in caplog.text  # for the admin
    assert await user_count(app, "acme") == 1, "only the admin"


def oidc_config_at(issuer: str) -> dict[str, Any]:
    return {"issuer": issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}


# a provider misbehaving: each is a prompt 502, and holds up no other sign-in


DISCOVERY = "/.well-known/openid-configuration"


def http_timeout(app: FastAPI, monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    oidc: OidcService = app.state.identity.state["oidc"]
    monkeypatch.setattr(oidc, "settings", oidc.settings.model_copy(
        update={"http_timeout_s": seconds}))


async def test_a_hanging_provider_of_one_tenant_does_not_hold_another_tenants_sign_in(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str], idp: StandInProvider,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    http_timeout(app, monkeypatch, 2)
    idp.reset(Person(email="grace@acme.dev"))
    await configure(client, admin, "google", oidc_config(idp))
    beta = await member(app, client, "beta", ["tenant_admin"], email="admin@beta.dev")
    await configure(client, beta, "slow", {
        "discovery_url": f"{idp.base_url}/beta{DISCOVERY}", "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET}, tenant="beta")
    idp.misbehaving = {f"/beta{DISCOVERY}": "hang"}
    hung = asyncio.create_task(client.get("/v1/tenants/beta/oidc/slow/login"))
    try:
        async with asyncio.timeout(2):
            await idp.misbehaved.wait()  # beta's download is under way
        async with asyncio.timeout(1):
            r = await client.get("/v1/tenants/acme/oidc/google/login")
        assert r.status_code == 302, r.text
        assert not hung.done()
        refused(await hung, 502, "oidc_provider_unavailable")
        assert "no answer within 2s" in caplog.text
    finally:
        idp.released.set()
        await asyncio.wait([hung])


async def test_concurrent_sign_ins_share_one_download_of_a_hanging_provider(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str], idp: StandInProvider,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    http_timeout(app, monkeypatch, 0.5)
    idp.reset(Person(email="grace@acme.dev"))
    await configure(client, admin, "google", oidc_config(idp))
    idp.misbehaving = {DISCOVERY: "hang"}
    started = asyncio.get_running_loop().time()
    answers = await asyncio.gather(*(client.get("/v1/tenants/acme/oidc/google/login")
                                     for _ in range(3)))
    for r in answers:
        refused(r, 502, "oidc_provider_unavailable")
        assert "no answer within 0.5s" in caplog.text
    assert idp.hits[DISCOVERY] == 1
    assert asyncio.get_running_loop().time() - started < 1.5


@pytest.mark.parametrize("path", [DISCOVERY, "/token"])
async def test_a_trickling_provider_is_cut_at_the_timeout_overall(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str], idp: StandInProvider,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, path: str) -> None:
    """A byte each 0.1 s keeps each of httpx's reads within its timeout, for ever."""
    http_timeout(app, monkeypatch, 0.5)
    idp.reset(Person(email="grace@acme.dev"))
    await configure(client, admin, "google", oidc_config(idp))
    back = None if path == DISCOVERY else await to_provider_and_back(client)
    idp.misbehaving = {path: "trickle"}
    started = asyncio.get_running_loop().time()
    r = await client.get(back or "/v1/tenants/acme/oidc/google/login")
    refused(r, 502, "oidc_provider_unavailable")
    assert "no answer within 0.5s" in caplog.text
    assert asyncio.get_running_loop().time() - started < 2
    assert await user_count(app) == 1


@pytest.mark.parametrize("how", ["huge", "huge_chunked"])
@pytest.mark.parametrize(("kind", "path"), [
    ("oidc", DISCOVERY), ("oidc", "/token"), ("github", "/login/oauth/access_token"),
    ("github", "/api/user/emails")])
async def test_an_oversized_answer_is_a_502_unread(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str], idp: StandInProvider,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, kind: str, path: str,
        how: Any) -> None:
    """`huge` declares 8 MiB and sends nothing: refused on its Content-Length alone (it would
    time out if read). `huge_chunked` streams 8 MiB of JSON whitespace, then `{}`."""
    http_timeout(app, monkeypatch, 2)
    idp.reset(Person(email="grace@acme.dev"))
    name = "google" if kind == "oidc" else "github"
    await configure(client, admin, name, oidc_config(idp) if kind == "oidc"
                    else github_config(idp))
    back = None if path == DISCOVERY else await to_provider_and_back(client, name=name)
    idp.misbehaving = {path: how}
    started = asyncio.get_running_loop().time()
    r = await client.get(back or "/v1/tenants/acme/oidc/google/login")
    refused(r, 502, "oidc_provider_unavailable")
    assert f"{path}: the answer is larger than 1024 KiB" in caplog.text
    assert asyncio.get_running_loop().time() - started < 1.5
    assert await user_count(app) == 1


@pytest.mark.parametrize(("kind", "path"), [
    ("oidc", DISCOVERY), ("oidc", "/token"), ("oidc", "/oauth2/v3/certs"),
    ("github", "/login/oauth/access_token"), ("github", "/api/user")])
async def test_an_answer_nested_too_deeply_to_parse_is_a_502(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str], idp: StandInProvider,
        caplog: pytest.LogCaptureFixture, kind: str, path: str) -> None:
    """JSON `[[[…` deeper than Python's parser recurses was a 500 (RecursionError)."""
    idp.reset(Person(email="grace@acme.dev"))
    name = "google" if kind == "oidc" else "github"
    await configure(client, admin, name, oidc_config(idp) if kind == "oidc"
                    else github_config(idp))
    back = None if path == DISCOVERY else await to_provider_and_back(client, name=name)
    app.state.identity.state["oidc"]._documents.clear()  # the JWKS is downloaded afresh
    idp.misbehaving = {path: "deep"}
    r = await client.get(back or "/v1/tenants/acme/oidc/google/login")
    refused(r, 502, "oidc_provider_unavailable")
    assert "RecursionError" in caplog.text
    assert await user_count(app) == 1


@pytest.mark.parametrize("kind", ["oidc", "github"])
async def test_a_token_endpoint_refusing_connections_is_a_502(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str], idp: StandInProvider,
        kind: str, caplog: pytest.LogCaptureFixture) -> None:
    """authlib runs on the httpx2 fork, whose errors are not httpx's: they were a 500."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    token_endpoint = f"http://127.0.0.1:{closed.getsockname()[1]}/token"
    closed.close()  # nothing listens there now
    idp.reset(Person(email="grace@acme.dev"))
    if kind == "oidc":
        idp.discovery_override = {"token_endpoint": token_endpoint}
        await configure(client, admin, "google", oidc_config(idp))
    else:
        await configure(client, admin, "google",
                        github_config(idp, token_endpoint=token_endpoint))
    r = await sign_in(client)
    refused(r, 502, "oidc_provider_unavailable")
    assert "token endpoint: ConnectError" in caplog.text
    assert await user_count(app) == 1


async def test_id_tokens_naming_unknown_keys_download_the_jwks_again_once_a_minute(
        client: httpx.AsyncClient, admin: dict[str, str], idp: StandInProvider) -> None:
    await configure(client, admin, "google", oidc_config(idp))
    idp.reset(Person(email="grace@acme.dev"))
    assert (await sign_in(client)).status_code == 200
    assert idp.hits["/oauth2/v3/certs"] == 1
    old_key = idp.key
    idp.key = RSAKey.generate_key(2048, parameters={"kid": "rotated", "use": "sig",
                                                    "alg": "RS256"})
    try:
        assert (await sign_in(client)).status_code == 200  # the provider rotated its keys
        assert idp.hits["/oauth2/v3/certs"] == 2
        for n in range(10):
            idp.header_kid = f"unknown-{n}"
            refused(await sign_in(client), 401, "oidc_id_token_invalid")
    finally:
        idp.key = old_key
    assert idp.hits["/oauth2/v3/certs"] == 2
# links: a provider's account (its sub) and the Bloop account it came into


async def me_of(client: httpx.AsyncClient, grant: httpx.Response) -> dict[str, Any]:
    assert grant.status_code == 200, grant.text
    me: dict[str, Any] = (await client.get("/v1/tenants/acme/me", headers=bearer(grant))).json()
    return me


def links_url(user_id: str) -> str:
    return f"/v1/tenants/acme/users/{user_id}/oidc-links"


async def test_a_linked_account_refuses_another_sub_of_its_provider(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str],
        idp: StandInProvider) -> None:
    """A provider that gives the address to someone else (a recycled mailbox, a renamed user)
    does not hand them the account: it is the first sub's."""
    await configure(client, admin, "google", oidc_config(idp, create_users=False))
    root = (await client.get("/v1/tenants/acme/me", headers=admin)).json()
    idp.reset(Person(email="admin@acme.dev", sub="owner-sub"))
    assert (await me_of(client, await sign_in(client)))["id"] == root["id"]
    idp.reset(Person(email="ADMIN@acme.dev", sub="attacker-sub-1"))
    refused(await sign_in(client), 409, "oidc_linked_elsewhere")
    idp.reset(Person(email="admin@acme.dev", sub="owner-sub"))
    assert (await me_of(client, await sign_in(client)))["id"] == root["id"]


async def test_a_linked_account_refuses_a_second_provider(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str],
        idp: StandInProvider) -> None:
    await configure(client, admin, "google", oidc_config(idp, create_users=False))
    await configure(client, admin, "extra", oidc_config(idp, create_users=False))
    ada = await member(app, client, "acme", ["educator"], email="ada@acme.dev")
    known = (await client.get("/v1/tenants/acme/me", headers=ada)).json()
    idp.reset(Person(email="ada@acme.dev", sub="ada-sub"))
    assert (await me_of(client, await sign_in(client)))["id"] == known["id"]
    for sub in ("ada-sub", "another-sub"):  # the same value at another provider is no proof
        idp.reset(Person(email="ada@acme.dev", sub=sub))
        refused(await sign_in(client, name="extra"), 409, "oidc_linked_elsewhere")


async def test_the_linked_sub_signs_in_whatever_email_the_provider_names_now(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str],
        idp: StandInProvider) -> None:
    """The link decides: a renamed address still comes into the account, and one that now
    names another account does not lead into that one. The email must still be verified."""
    await configure(client, admin, "google", oidc_config(idp, create_users=False))
    ada = await member(app, client, "acme", ["educator"], email="ada@acme.dev")
    await member(app, client, "acme", ["learner"], email="bo@acme.dev")
    known = (await client.get("/v1/tenants/acme/me", headers=ada)).json()
    idp.reset(Person(email="ada@acme.dev", sub="ada-sub"))
    await me_of(client, await sign_in(client))
    before = await user_count(app)
    for email in ("ada.lovelace@acme.dev", "bo@acme.dev"):
        idp.reset(Person(email=email, sub="ada-sub"))
        me = await me_of(client, await sign_in(client))
        assert (me["id"], me["email"]) == (known["id"], "ada@acme.dev")
    idp.reset(Person(email="ada@acme.dev", sub="ada-sub", verified=False))
    refused(await sign_in(client), 403, "oidc_email_unverified")
    assert await user_count(app) == before


async def test_an_admin_lists_and_removes_links_and_the_next_sign_in_links_again(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str],
        idp: StandInProvider) -> None:
    await configure(client, admin, "google", oidc_config(idp, create_users=False))
    ada = await member(app, client, "acme", ["educator"], email="ada@acme.dev")
    ada_id = (await client.get("/v1/tenants/acme/me", headers=ada)).json()["id"]
    assert (await client.get(links_url(ada_id), headers=admin)).json() == []
    idp.reset(Person(email="ada@acme.dev", sub="old-sub"))
    await me_of(client, await sign_in(client))
    listed = await client.get(links_url(ada_id), headers=admin)
    assert listed.status_code == 200, listed.text
    assert [(x["provider"], x["subject"], x["email"], x["user_id"]) for x in listed.json()] == [
        ("google", "old-sub", "ada@acme.dev", ada_id)]
    # A person's accounts elsewhere, as identity's other answers about people: no cache keeps
    # them (they came back storable).
    assert listed.headers["cache-control"] == "no-store"
    # only a tenant admin sees or removes them
    assert (await client.get(links_url(ada_id), headers=ada)).status_code == 403
    assert (await client.delete(f"{links_url(ada_id)}/google", headers=ada)).status_code == 403
    idp.reset(Person(email="ada@acme.dev", sub="new-sub"))
    refused(await sign_in(client), 409, "oidc_linked_elsewhere")

    assert (await client.delete(f"{links_url(ada_id)}/google", headers=admin)).status_code == 204
    refused(await client.delete(f"{links_url(ada_id)}/google", headers=admin), 404,
            "oidc_link_not_found")
    refused(await client.get(links_url("nobody"), headers=admin), 404, "not_found")
    assert (await me_of(client, await sign_in(client)))["id"] == ada_id
    assert [x["subject"] for x in (await client.get(links_url(ada_id), headers=admin)).json()] \
        == ["new-sub"]


async def test_a_removed_provider_takes_its_links_along(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str],
        idp: StandInProvider) -> None:
    await configure(client, admin, "google", oidc_config(idp, create_users=False))
    ada = await member(app, client, "acme", ["educator"], email="ada@acme.dev")
    ada_id = (await client.get("/v1/tenants/acme/me", headers=ada)).json()["id"]
    idp.reset(Person(email="ada@acme.dev", sub="ada-sub"))
    await me_of(client, await sign_in(client))
    assert (await client.delete(f"{PROVIDERS}/google", headers=admin)).status_code == 204
    assert (await client.get(links_url(ada_id), headers=admin)).json() == []
    # configured again (perhaps at another issuer), it links afresh
    await configure(client, admin, "google", oidc_config(idp, create_users=False))
    idp.reset(Person(email="ada@acme.dev", sub="another-sub"))
    assert (await me_of(client, await sign_in(client)))["id"] == ada_id


async def test_a_provider_put_at_another_issuer_or_app_drops_its_links(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str],
        idp: StandInProvider) -> None:
    """A `sub` is someone only at its issuer (and, at Microsoft, for its app): kept across a
    new client_id, a link led another's account into this one, or locked everyone out."""
    await configure(client, admin, "google", oidc_config(idp, create_users=False))
    ada = await member(app, client, "acme", ["educator"], email="ada@acme.dev")
    ada_id = (await client.get("/v1/tenants/acme/me", headers=ada)).json()["id"]
    idp.reset(Person(email="ada@acme.dev", sub="ada-sub"))
    await me_of(client, await sign_in(client))
    unchanged = {k: v for k, v in oidc_config(idp, create_users=True).items()
                 if k != "client_secret"}
    await configure(client, admin, "google", unchanged)
    assert [x["subject"] for x in (await client.get(links_url(ada_id), headers=admin)).json()] \
        == ["ada-sub"]
    await configure(client, admin, "google", {**unchanged, "client_id": "another-app"})
    assert (await client.get(links_url(ada_id), headers=admin)).json() == []


async def test_a_users_links_are_in_their_export_and_erased_with_them(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str],
        idp: StandInProvider) -> None:
    await configure(client, admin, "google", oidc_config(idp))
    idp.reset(Person(email="lee@acme.dev", sub="lee-sub"))
    grant = await sign_in(client)
    lee_id = (await me_of(client, grant))["id"]
    export = await client.get("/v1/tenants/acme/me/export", headers=bearer(grant))
    assert export.status_code == 200, export.text
    assert [(x["provider"], x["subject"], x["email"]) for x in
            export.json()["services"]["identity"]["sign_in_links"]] == [
        ("google", "lee-sub", "lee@acme.dev")]
    r = await client.delete(f"/v1/tenants/acme/users/{lee_id}", headers=admin)
    assert r.status_code == 204, r.text
    oidc: OidcService = app.state.identity.state["oidc"]
    assert await oidc.store.links_of("acme", lee_id) == []
    assert await oidc.store.get_link("acme", "google", "lee-sub") is None
    # the provider's account comes back as a new learner, not into the deleted one's id
    again = await me_of(client, await sign_in(client))
    assert again["id"] != lee_id


@pytest.mark.parametrize("email", [
    "\u212aim@acme.dev",  # KELVIN SIGN: .lower() makes it kim@acme.dev
    "\uff4bim@acme.dev",  # FULLWIDTH k, which NFKC makes a k
    "root@acme.dev\u200b",  # ZERO WIDTH SPACE
    "ro\u00adot@acme.dev",  # SOFT HYPHEN
    "root@acme.dev\u00ad",
    "root\u202e@acme.dev",  # RIGHT-TO-LEFT OVERRIDE
])
async def test_an_email_that_reads_as_another_is_refused(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str], idp: StandInProvider,
        email: str) -> None:
    await configure(client, admin, "google", oidc_config(idp))  # creates users
    await member(app, client, "acme", ["tenant_admin"], email="root@acme.dev")
    await member(app, client, "acme", ["learner"], email="kim@acme.dev")
    before = await user_count(app)
    idp.reset(Person(email=email))
    refused(await sign_in(client), 403, "oidc_email_unusable")
    assert await user_count(app) == before


async def test_provider_sign_ins_and_refusals_go_to_the_security_log(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str], idp: StandInProvider,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "bloop.security")
    await configure(client, admin, "google", oidc_config(idp, create_users=False))
    root = (await client.get("/v1/tenants/acme/me", headers=admin)).json()
    await member(app, client, "acme", ["platform_admin"], email="boss@acme.dev")
    idp.reset(Person(email="admin@acme.dev", sub="owner-sub-123"))
    await me_of(client, await sign_in(client))
    idp.reset(Person(email="admin@acme.dev", sub="attacker-sub-1"))
    refused(await sign_in(client), 409, "oidc_linked_elsewhere")
    idp.reset(Person(email="boss@acme.dev", sub="boss-sub"))
    refused(await sign_in(client), 403, "oidc_platform_admin")
    idp.reset(Person(email="admin@acme.dev", sub="owner-sub-123"))
    idp.sign_with_impostor = True
    refused(await sign_in(client), 401, "oidc_id_token_invalid")

    seen = [r for r in caplog.records if r.name == "bloop.security"]
    assert [(r.getMessage(), r.__dict__.get("code")) for r in seen] == [
        ("provider sign-in", None),
        ("provider sign-in refused", "oidc_linked_elsewhere"),
        ("provider sign-in refused", "oidc_platform_admin"),
        ("provider sign-in refused", "oidc_id_token_invalid")]
    assert [r.levelname for r in seen] == ["INFO", "WARNING", "WARNING", "WARNING"]
    assert all((r.__dict__["tenant"], r.__dict__["provider"]) == ("acme", "google") for r in seen)
    assert seen[0].__dict__["user_id"] == seen[1].__dict__["user_id"] == root["id"]
    assert seen[2].__dict__["user_id"] not in (None, root["id"])
    assert seen[0].__dict__["subject"] != seen[1].__dict__["subject"]  # two people at the provider
    assert seen[0].__dict__["account"] == seen[1].__dict__["account"]  # one address
    assert all(r.__dict__["client_ip"] for r in seen)
    for raw in ("owner-sub-123", "attacker-sub-1", "admin@", "boss@"):
        assert raw not in caplog.text
        assert all(raw not in str(v) for r in seen for v in r.__dict__.values())


# the callback address


FORGED = {"Host": "evil.example", "X-Forwarded-Host": "evil.example",
          "X-Forwarded-Proto": "https", "Forwarded": "host=evil.example;proto=https"}
CALLBACK = "http://bloop.test/v1/tenants/acme/oidc/google/callback"


def redirect_uri(login: httpx.Response) -> str:
    assert login.status_code == 302, login.text
    uri: str = parse_qs(urlsplit(login.headers["location"]).query)["redirect_uri"][0]
    return uri


async def test_the_callback_is_pinned_whatever_the_login_request_says(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str],
        idp: StandInProvider) -> None:
    """The login route is anyone's, and so are its Host and X-Forwarded-* headers: a callback
    taken from them sent the victim's code to the attacker's host, who redeemed it at the real
    callback (the state kept the forged address, which the token exchange repeated). The
    callback is the one pinned by the admin's configuration."""
    shown = await configure(client, admin, "google", oidc_config(idp))
    assert redirect_uri(await client.get("/v1/tenants/acme/oidc/google/login",
                                         headers=FORGED)) == CALLBACK
    assert shown["callback_url"] == CALLBACK
    assert (await client.get(f"{PROVIDERS}/google", headers=admin)).json()["callback_url"] == \
        CALLBACK
    idp.reset(Person(email="victim@acme.dev"))
    start = await client.get("/v1/tenants/acme/oidc/google/login", headers=FORGED)
    async with httpx.AsyncClient() as browser:
        back = (await browser.get(start.headers["location"])).headers["location"]
    assert back.startswith(CALLBACK + "?")
    assert (await client.get(back)).status_code == 200

    pinned = "https://learn.acme.dev/api/v1/tenants/acme/oidc/google/callback"
    shown = await configure(client, admin, "google", oidc_config(idp, callback_url=pinned))
    assert shown["callback_url"] == pinned
    assert redirect_uri(await client.get("/v1/tenants/acme/oidc/google/login",
                                         headers=FORGED)) == pinned

    # The operator's public URL wins over what any configuration pinned.
    oidc: OidcService = app.state.identity.state["oidc"]
    oidc.settings = oidc.settings.model_copy(update={"public_url": "https://bloop.example/"})
    public = "https://bloop.example/v1/tenants/acme/oidc/google/callback"
    assert redirect_uri(await client.get("/v1/tenants/acme/oidc/google/login",
                                         headers=FORGED)) == public
    assert (await client.get(f"{PROVIDERS}/google", headers=admin)).json()["callback_url"] == \
        public
    github = await configure(client, admin, "github", github_config(idp))
    assert github["callback_url"] == "https://bloop.example/v1/tenants/acme/oidc/github/callback"
    assert (await oidc.provider("acme", "github")).callback_url == github["callback_url"]


@pytest.mark.parametrize("callback", [
    "https://learn.acme.dev/v1/tenants/acme/oidc/github/callback",  # another provider's
    "https://learn.acme.dev/v1/tenants/beta/oidc/google/callback",  # another tenant's
    "https://learn.acme.dev/v1/tenants/acme/oidc/google/login",
    "https://learn.acme.dev/v1/tenants/acme/oidc/google/callback/x",
    "https://learn.acme.dev/v1/tenants/acme/oidc/google/callback?next=https://evil.example",
    "https://learn.acme.dev/v1/tenants/acme/oidc/google/callback#x",
    "http://learn.acme.dev/v1/tenants/acme/oidc/google/callback",  # plain http off loopback
    "ftp://learn.acme.dev/v1/tenants/acme/oidc/google/callback",
    "https://learn acme.dev/v1/tenants/acme/oidc/google/callback",
    "/v1/tenants/acme/oidc/google/callback",
])
async def test_a_callback_url_that_is_not_the_providers_callback_is_refused(
        client: httpx.AsyncClient, admin: dict[str, str], idp: StandInProvider,
        callback: str) -> None:
    r = await client.put(f"{PROVIDERS}/google", headers=admin,
                         json=oidc_config(idp, callback_url=callback))
    refused(r, 422, "oidc_config_invalid")
    assert (await client.get(f"{PROVIDERS}/google", headers=admin)).status_code == 404


async def test_a_loopback_callback_may_be_http_when_the_operator_allows_it(
        client: httpx.AsyncClient, admin: dict[str, str], idp: StandInProvider) -> None:
    local = "http://127.0.0.1:8000/v1/tenants/acme/oidc/google/callback"
    shown = await configure(client, admin, "google", oidc_config(idp, callback_url=local))
    assert shown["callback_url"] == local
    assert redirect_uri(await client.get("/v1/tenants/acme/oidc/google/login")) == local


async def test_a_provider_stored_before_callbacks_were_pinned_signs_nobody_in(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str],
        idp: StandInProvider) -> None:
    """Its sign-ins answer a clear 409 rather than fall back on the request's Host, until an
    admin configures it again or the operator sets BLOOP_OIDC_PUBLIC_URL."""
    await configure(client, admin, "google", oidc_config(idp))
    oidc: OidcService = app.state.identity.state["oidc"]
    old = (await oidc.provider("acme", "google")).model_copy(update={"callback_url": None})
    await oidc.store.put_provider(old)
    assert (await client.get(f"{PROVIDERS}/google", headers=admin)).json()["callback_url"] is None
    cache = app.state.platform.cache
    r = await client.get("/v1/tenants/acme/oidc/google/login", headers=FORGED)
    refused(r, 409, "oidc_callback_unset")
    assert "PUT /v1/tenants/acme/oidc/providers/google" in r.json()["detail"]
    assert "BLOOP_OIDC_PUBLIC_URL" in r.json()["detail"]
    assert await cache.delete_prefix("oidc:state:") == 0

    again = {k: v for k, v in oidc_config(idp).items() if k != "client_secret"}
    await configure(client, admin, "google", again)
    assert redirect_uri(await client.get("/v1/tenants/acme/oidc/google/login",
                                         headers=FORGED)) == CALLBACK
    await oidc.store.put_provider(old)
    oidc.settings = oidc.settings.model_copy(update={"public_url": "https://bloop.example"})
    assert redirect_uri(await client.get("/v1/tenants/acme/oidc/google/login")) == \
        "https://bloop.example/v1/tenants/acme/oidc/google/callback"


# addresses holding credentials


@pytest.mark.parametrize(("field", "extra"), [
    ("issuer", {"issuer": "http://pw-user:topsecretpw@127.0.0.1:18421"}),
    ("issuer", {"issuer": "https://pw-user:topsecretpw@idp.example"}),
    ("issuer", {"issuer": "https://topsecretpw@idp.example"}),
    ("discovery_url", {"discovery_url": "https://pw-user:topsecretpw@idp.example/.well-known/x"}),
    ("callback_url", {"callback_url": "https://pw-user:topsecretpw@learn.acme.dev/v1/tenants/"
                                      "acme/oidc/google/callback"}),
    ("token_endpoint", {"preset": "github", "issuer": None,
                        "token_endpoint": "https://pw-user:topsecretpw@ghe.example/token"}),
    ("api_url", {"preset": "github", "issuer": None,
                 "api_url": "https://pw-user:topsecretpw@ghe.example/api"}),
    ("authorization_endpoint", {"preset": "github", "issuer": None,
                                "authorization_endpoint": "https://topsecretpw:@ghe.example/a"}),
])
async def test_a_provider_address_holding_a_user_name_or_password_is_refused(
        client: httpx.AsyncClient, admin: dict[str, str], idp: StandInProvider, field: str,
        extra: dict[str, Any]) -> None:
    body = {k: v for k, v in oidc_config(idp, **extra).items() if v is not None}
    r = await client.put(f"{PROVIDERS}/google", headers=admin, json=body)
    refused(r, 422, "credentials_in_url")
    assert r.json()["field"] == field
    assert "topsecretpw" not in r.text
    assert (await client.get(f"{PROVIDERS}/google", headers=admin)).status_code == 404


async def test_a_failing_sign_in_names_the_provider_never_its_addresses(
        app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str],
        caplog: pytest.LogCaptureFixture) -> None:
    """Anyone may start a sign-in: what they are told when the provider fails names it, and
    the admin finds its addresses in the log."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    issuer = f"http://127.0.0.1:{port}/realms/private-realm"
    await configure(client, admin, "gone", oidc_config_at(issuer))
    r = await client.get("/v1/tenants/acme/oidc/gone/login")
    refused(r, 502, "oidc_provider_unavailable")
    assert "'gone'" in r.json()["detail"]
    for part in ("127.0.0.1", str(port), "private-realm", "http"):
        assert part not in r.json()["detail"], part
    assert issuer in caplog.text

    # One stored before user names and passwords were refused is not used, nor shown.
    oidc: OidcService = app.state.identity.state["oidc"]
    with_password = f"http://pw-user:topsecretpw@127.0.0.1:{port}"
    await oidc.store.put_provider((await oidc.provider("acme", "gone")).model_copy(update={
        "issuer": with_password, "discovery_url": f"{with_password}/.well-known/x"}))
    r = await client.get("/v1/tenants/acme/oidc/gone/login")
    refused(r, 502, "credentials_in_url")
    assert "topsecretpw" not in r.text
    shown = (await client.get(f"{PROVIDERS}/gone", headers=admin)).json()
    assert shown["issuer"] == f"http://***@127.0.0.1:{port}"
    assert "topsecretpw" not in json.dumps(shown)


async def test_a_provider_put_again_keeps_its_callback(
        client: httpx.AsyncClient, admin: dict[str, str], idp: StandInProvider) -> None:
    """As its secret: a PUT to rotate it, sent past the TLS proxy or through a port-forward,
    pinned the address it came by (plain http, or localhost) for every sign-in."""
    pinned = "https://learn.acme.dev/v1/tenants/acme/oidc/google/callback"
    await configure(client, admin, "google", oidc_config(idp, callback_url=pinned))
    again = {k: v for k, v in oidc_config(idp).items() if k != "client_secret"}
    assert (await configure(client, admin, "google", again))["callback_url"] == pinned
    assert (await configure(client, admin, "google", oidc_config(idp)))["callback_url"] == pinned
    other = "https://lms.acme.dev/bloop/v1/tenants/acme/oidc/google/callback"
    assert (await configure(client, admin, "google", {**again, "callback_url": other}))[
        "callback_url"] == other
