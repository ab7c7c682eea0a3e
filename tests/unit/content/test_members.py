"""Where content looks up a tenant's users: identity's service in one process, identity's HTTP
API in another. Both give the same roles, the same "no such user", and refuse the same callers."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from bloop.platform.content.members import TenantMembers
from bloop.platform.kit.auth import Principal, Role
from bloop.platform.kit.errors import Problem, StoreUnavailable, install_error_handlers
from bloop.platform.kit.metrics import Metrics
from tests.support import embedded_app, member


class Rig:
    def __init__(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        self.app, self.client = app, client
        self.in_process = TenantMembers(lambda: app.state.identity.state, None)
        self.over_http = TenantMembers(lambda: None, "http://bloop.test/", client=client)

    async def person(self, *roles: Role) -> tuple[str, dict[str, str], Principal]:
        """A new user of acme: their id, credential and principal."""
        headers = await member(self.app, self.client, "acme", roles)
        r = await self.client.get("/v1/auth/principal", headers=headers)
        assert r.status_code == 200, r.text
        view = r.json()
        principal = Principal(user_id=view["user_id"], tenant=view["tenant"],
                              roles=frozenset(view["roles"]), scopes=frozenset(view["scopes"]),
                              token_id=view["token_id"], session_id=view["session_id"],
                              expires_at=view["expires_at"])
        return view["user_id"], headers, principal


@pytest.fixture
async def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Rig]:
    async with embedded_app(tmp_path, monkeypatch, ["identity"]) as (app, client):
        yield Rig(app, client)


async def test_both_ways_tell_a_users_roles_and_an_unknown_user(rig: Rig) -> None:
    _, headers, me = await rig.person("educator")
    teacher, _, _ = await rig.person("educator", "learner")
    for members in (rig.in_process, rig.over_http):
        roles = await members.roles("acme", teacher, me, headers)
        assert roles == frozenset({"educator", "learner"})
        assert await members.roles("acme", "no-such-user", me, headers) is None


async def test_both_ways_refuse_a_caller_who_may_not_look_users_up(rig: Rig) -> None:
    teacher, _, _ = await rig.person("educator")
    _, headers, learner = await rig.person("learner")
    for members in (rig.in_process, rig.over_http):
        with pytest.raises(Problem) as refused:
            await members.roles("acme", teacher, learner, headers)
        assert (refused.value.status, refused.value.code) == (403, "identity_forbidden")
        assert "missing_role" not in refused.value.detail
        assert "educator" in refused.value.detail
    with pytest.raises(Problem) as refused:
        await rig.over_http.roles("acme", teacher, None, {})
    assert refused.value.code == "identity_forbidden"


async def test_identity_out_of_reach_or_unnamed_is_a_503_naming_the_setting(rig: Rig) -> None:
    teacher, headers, me = await rig.person("educator")
    with socket.socket() as held:  # bound and never listening: every connection is refused
        held.bind(("127.0.0.1", 0))
        down = TenantMembers(lambda: None, f"http://127.0.0.1:{held.getsockname()[1]}")
        try:
            with pytest.raises(StoreUnavailable):
                await down.roles("acme", teacher, me, headers)
        finally:
            await down.close()
    nowhere = TenantMembers(lambda: None, None)
    try:
        with pytest.raises(StoreUnavailable) as unnamed:
            await nowhere.roles("acme", teacher, me, headers)
        assert "BLOOP_AUTH_IDENTITY_URL" in str(unnamed.value.detail)
    finally:
        await nowhere.close()


async def test_identity_limiting_the_caller_is_passed_on_as_429(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLOOP_AUTH_RATE_LIMIT", "3")
    async with embedded_app(tmp_path, monkeypatch, ["identity"]) as (app, client):
        rig = Rig(app, client)
        teacher, headers, me = await rig.person("educator")
        answers: list[int] = []
        for _ in range(10):
            try:
                await rig.over_http.roles("acme", teacher, me, headers)
                answers.append(200)
            except Problem as refused:
                answers.append(refused.status)
                limited = refused
        assert answers[0] == 200
        assert answers[-1] == 429, answers
        assert (limited.code, "Retry-After" in limited.headers) == ("rate_limited", True)


async def test_identitys_429_passed_on_is_counted_apart_from_this_process_limits(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Identity counts its refusal under its limiter; the process passing it on counted it
    again as `rate_limited`, so a split deployment's sum counted each refusal twice."""
    monkeypatch.setenv("BLOOP_AUTH_RATE_LIMIT", "3")
    async with embedded_app(tmp_path, monkeypatch, ["identity"]) as (app, client):
        rig = Rig(app, client)
        teacher, headers, me = await rig.person("educator")
        caller = FastAPI()
        install_error_handlers(caller)
        caller.state.platform = SimpleNamespace(metrics=Metrics())

        @caller.get("/roles")
        async def roles() -> list[str]:
            return sorted(await rig.over_http.roles("acme", teacher, me, headers) or [])

        transport = httpx.ASGITransport(app=caller)
        async with httpx.AsyncClient(transport=transport, base_url="http://caller.test") as c:
            answers = [(await c.get("/roles")).status_code for _ in range(10)]
        assert answers[-1] == 429, answers
        counted = caller.state.platform.metrics.registry.get_sample_value
        assert counted("bloop_rate_limited_total", {"limit": "peer", "route": "/roles"}) == (
            answers.count(429))
        assert counted("bloop_rate_limited_total",
                       {"limit": "rate_limited", "route": "/roles"}) is None
