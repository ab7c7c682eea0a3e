"""A process without identity checks API keys with identity's `GET /v1/auth/principal`: here
`RemoteApiKeys` asks a running identity app, through the same HTTP a second process would."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from starlette.datastructures import Headers

from bloop.platform.kit.auth import ApiKeyCredential, Unauthenticated, credentials, parse_api_key
from bloop.platform.kit.auth.remote_keys import RemoteApiKeys
from bloop.platform.kit.errors import StoreUnavailable
from tests.support import embedded_app, member

URL = "http://bloop.test/v1/auth/principal"


class Identity:
    def __init__(self, app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
        self.app, self.client, self.admin = app, client, admin
        self.asked = 0

    def remote(self, keep_s: float = 30) -> RemoteApiKeys:
        """Keys checked over HTTP against this app, counting the calls."""

        async def count(_: httpx.Request) -> None:
            self.asked += 1

        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app),
                                   event_hooks={"request": [count]})
        return RemoteApiKeys(URL, keep_s, client=client)

    async def new_key(self, **body: object) -> ApiKeyCredential:
        r = await self.client.post("/v1/tenants/acme/api-keys", headers=self.admin, json={
            "name": "gradebook", "scopes": ["content:read", "learning:read"], **body})
        assert r.status_code == 201, r.text
        key = parse_api_key(r.json()["key"])
        assert key is not None
        return key


@pytest.fixture
async def identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Identity]:
    async with embedded_app(tmp_path, monkeypatch, ["identity"]) as (app, client):
        yield Identity(app, client, await member(app, client, "acme", ["tenant_admin"]))


async def test_a_key_acts_as_the_principal_identity_names(identity: Identity) -> None:
    key = await identity.new_key(roles=["educator"])
    remote = identity.remote()
    try:
        principal = await remote.authenticate(key)
        assert (principal.kind, principal.tenant, principal.user_id) == (
            "api_key", "acme", f"apikey:acme.{key.key_id}")
        assert principal.roles == {"educator"}
        assert principal.scopes == {"content:read", "learning:read"}
        assert await remote.authenticate(key) == principal
        assert identity.asked == 1
    finally:
        await remote.close()


async def test_identitys_refusals_are_kept_and_passed_on(identity: Identity) -> None:
    key = await identity.new_key()
    wrong = ApiKeyCredential(key.tenant, key.key_id, "0" * 64)
    unknown = ApiKeyCredential("acme", "0123456789ab", key.secret)
    remote = identity.remote()
    try:
        for bad in (wrong, unknown):
            for _ in range(2):
                with pytest.raises(Unauthenticated) as refused:
                    await remote.authenticate(bad)
                assert (refused.value.code, refused.value.detail) == (
                    "invalid_token", "the API key is unknown")
        assert identity.asked == 2
    finally:
        await remote.close()


async def test_concurrent_requests_with_a_new_key_ask_identity_once(identity: Identity) -> None:
    key = await identity.new_key()
    remote = identity.remote()
    try:
        principals = await asyncio.gather(*(remote.authenticate(key) for _ in range(20)))
        assert len(set(principals)) == 1
        assert identity.asked == 1
    finally:
        await remote.close()


async def test_a_revoked_key_is_refused_once_its_answer_is_no_longer_kept(
        identity: Identity) -> None:
    key = await identity.new_key()
    kept, fresh = identity.remote(keep_s=3600), identity.remote(keep_s=0)
    try:
        await kept.authenticate(key)
        await fresh.authenticate(key)
        r = await identity.client.delete(f"/v1/tenants/acme/api-keys/{key.key_id}",
                                         headers=identity.admin)
        assert r.status_code == 204, r.text
        with pytest.raises(Unauthenticated) as refused:
            await fresh.authenticate(key)
        assert refused.value.code == "token_revoked"
        # Kept here; `require()` refuses it all the same wherever revocation marks are shared.
        assert (await kept.authenticate(key)).tenant == "acme"
    finally:
        await kept.close()
        await fresh.close()


async def test_identity_out_of_reach_is_a_503_and_nothing_is_kept(identity: Identity) -> None:
    key = await identity.new_key()
    with socket.socket() as held:  # bound and never listening: every connection is refused
        held.bind(("127.0.0.1", 0))
        remote = RemoteApiKeys(f"http://127.0.0.1:{held.getsockname()[1]}/v1/auth/principal", 30)
        try:
            for _ in range(2):
                with pytest.raises(StoreUnavailable) as down:
                    await remote.authenticate(key)
                assert down.value.status == 503
                assert down.value.extra == {"store": "identity"}
        finally:
            await remote.close()


async def test_the_principal_route_answers_for_any_credential(identity: Identity) -> None:
    client = identity.client
    learner = await member(identity.app, client, "acme", ["learner"])
    r = await client.get("/v1/auth/principal", headers=learner)
    assert r.status_code == 200, r.text
    assert (r.json()["kind"], r.json()["tenant"], r.json()["roles"]) == (
        "user", "acme", ["learner"])
    # who a credential is (its user, session and token), as `…/me`: no cache keeps it
    assert r.headers["cache-control"] == "no-store"
    r = await client.get("/v1/auth/principal")
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"


async def test_without_identity_or_its_address_keys_are_refused_saying_why(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLOOP_AUTH_JWKS_URL", "http://identity.internal/.well-known/jwks.json")
    async with embedded_app(tmp_path, monkeypatch, ["content"]) as (_, client):
        key = ApiKeyCredential.new("acme")
        r = await client.get("/v1/tenants/acme/courses", headers={"X-API-Key": str(key)})
        assert r.status_code == 401, r.text
        assert "BLOOP_AUTH_API_KEYS_URL is unset" in r.json()["detail"]


def test_a_call_made_for_the_caller_carries_its_credential_and_nothing_else() -> None:
    sent = Headers(raw=[(b"authorization", b"Bearer t"), (b"x-api-key", b"bloop_k"),
                        (b"cookie", b"session=s"), (b"x-request-id", b"r")])
    assert credentials(sent) == {"Authorization": "Bearer t", "X-API-Key": "bloop_k"}
    assert credentials(Headers(raw=[(b"x-api-key", b"bloop_k")])) == {"X-API-Key": "bloop_k"}
    assert credentials(Headers()) == {}
