"""What clients send is refused with 422, naming the field, when free text holds a control
character (or, in a single line, a bidirectional override), or when a number or a yes/no is
sent as another type; a record kept before the rule still reads. Before, each example below
was accepted: a title of only U+0000 counted as not blank, `{"version": true}` rolled a course
back to version 1, and `?at=0.5` read as a time in 1970; a title of zero-width spaces or of a
Hangul filler was not blank, text held noncharacters, and `ada\u200b@acme.dev` signed up beside
`ada@acme.dev`."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import StringConstraints, TypeAdapter, ValidationError

from bloop.platform.content.model import Concept as ContentConcept
from bloop.platform.content.service import ContentService
from bloop.platform.identity.model import Invitation, Tenant, User, normalise_email
from bloop.platform.identity.service import IdentityService, token_hash
from bloop.platform.kit.read_back import STORED
from bloop.platform.kit.text import (
    INVISIBLE,
    Line,
    Lines,
    NonBlankLine,
    NonBlankLines,
    RawLine,
    RawLines,
    lookalike,
    visible,
)
from bloop.platform.learning.model import Concept as LearningConcept
from bloop.platform.learning.service import LearningService
from tests.support import PASSWORD, embedded_app, login, member

T = "/v1/tenants/acme"


@pytest.fixture
async def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                 ) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with embedded_app(tmp_path, monkeypatch,
                            ["identity", "content", "learning", "ai"]) as (app, c):
        c.headers.update(await member(app, c, "acme", ["platform_admin", "tenant_admin",
                                                       "educator", "learner"]))
        yield app, c


def refused(r: httpx.Response, *field: str) -> str:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["code"] == "validation_failed"
    assert any(e["loc"][-len(field):] == list(field) for e in body["errors"]), body
    return str(body["detail"])


async def test_control_characters_in_text_are_refused(
        client: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, c = client
    assert (await c.post(f"{T}/concepts", json={"id": "loops", "name": "Loops"})).status_code == 201
    assert (await c.post(f"{T}/learning/concepts", json={"id": "sets", "name": "Sets"})
            ).status_code == 201
    email = {"display_name": "Bell", "roles": ["learner"]}
    cases: list[tuple[str, str, dict[str, Any], tuple[str, ...]]] = [
        ("POST", f"{T}/courses", {"title": "Nul\u0000 course"}, ("title",)),
        ("POST", f"{T}/courses", {"title": "\u0000"}, ("title",)),
        ("POST", f"{T}/courses", {"title": "Read \u202eLTR"}, ("title",)),
        ("POST", f"{T}/courses", {"title": "Two\nlines"}, ("title",)),
        ("POST", f"{T}/courses", {"title": "T", "summary": "del\u007f"}, ("summary",)),
        ("POST", f"{T}/courses", {"title": "T", "tags": ["a\u0085b"]}, ("tags", "0")),
        ("POST", f"{T}/users", {"email": "\u0007bell\u001b[31m@demo.bloop.dev", **email},
         ("email",)),
        ("POST", f"{T}/users", {"email": "bell@demo.bloop.dev\u2066", **email}, ("email",)),
        ("POST", "/v1/tenants", {"id": "t2", "name": "\u0000"}, ("name",)),
        ("PATCH", f"{T}/learning/concepts/sets", {"name": "\u0000"}, ("name",)),
        ("PATCH", f"{T}/concepts/loops", {"description": "bell\u0007"}, ("description",)),
        ("PATCH", f"{T}/me", {"bio": "\u001b[31mred\u0000"}, ("bio",)),
        ("POST", f"{T}/invitations", {"email": "a\u0000b@demo.bloop.dev"}, ("email",)),
    ]
    for method, url, body, field in cases:
        detail = refused(await c.request(method, url, json=body), *field)
        assert "control character" in detail or "email" in detail, detail


async def test_multi_line_text_keeps_tabs_line_breaks_and_bidi(
        client: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, c = client
    r = await c.post(f"{T}/courses", json={"id": "rtl", "title": "  Loops\t",
                                           "summary": "one\r\n\ttwo \u2067\u05e9\u05dc\u05d5\u05dd\u2069"})
    assert r.status_code == 201, r.text
    assert r.json()["title"] == "Loops"
    assert r.json()["summary"] == "one\r\n\ttwo \u2067\u05e9\u05dc\u05d5\u05dd\u2069"
    r = await c.patch(f"{T}/me", json={"bio": "line one\nline two"})
    assert r.status_code == 200, r.text


async def test_text_kept_before_the_rule_still_reads(
        client: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, documented = client
    # a plain client: these answers break the pattern their schema documents for new text
    c = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bloop.test",
                          headers=documented.headers)
    identity: IdentityService = app.state.identity.state["service"]
    tenant = Tenant.model_validate({"id": "old", "name": "Old\u0000 school",
                                    "created_at": "2025-01-01T00:00:00Z"}, context=STORED)
    await identity.repo.add_tenant(tenant, [])
    content: ContentService = app.state.content.state["service"]
    await content.repo.add_concept(ContentConcept.model_validate(
        {"id": "nul", "tenant": "acme", "name": "Nul\u0000\u202e", "description": "\u001b[31m"},
        context=STORED))
    learning: LearningService = app.state.learning.state["service"]
    await learning.repo.add_concept(LearningConcept.model_validate(
        {"id": "bell", "tenant": "acme", "name": "Bell\u0007"}, context=STORED))

    r = await c.get("/v1/tenants/old")
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Old\u0000 school"
    r = await c.get(f"{T}/concepts")
    assert r.status_code == 200, r.text
    assert "Nul\u0000\u202e" in [x["name"] for x in r.json()["items"]]
    r = await c.get(f"{T}/learning/concepts/bell")
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Bell\u0007"
    r = await c.get(f"{T}/learning/graph")
    assert r.status_code == 200, r.text
    assert "Bell\u0007" in [x["name"] for x in r.json()["concepts"]]
    # and it can be corrected
    r = await c.patch(f"{T}/learning/concepts/bell", json={"name": "Bell"})
    assert r.status_code == 200, r.text
    await c.aclose()


async def test_numbers_and_yes_no_are_not_coerced(
        client: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, c = client
    assert (await c.post(f"{T}/learning/concepts", json={"id": "sets", "name": "Sets"})
            ).status_code == 201
    cases: list[tuple[str, str, dict[str, Any], tuple[str, ...]]] = [
        ("POST", f"{T}/courses/py/rollback", {"version": True}, ("version",)),
        ("POST", f"{T}/courses/py/rollback", {"version": "1"}, ("version",)),
        ("POST", f"{T}/courses/py/rollback", {"version": 1.0}, ("version",)),
        ("POST", f"{T}/learning/me/lessons/l1/progress",
         {"status": "started", "seconds": False}, ("seconds",)),
        ("PUT", f"{T}/learning/concepts/sets/bkt", {"fitted_on": False}, ("fitted_on",)),
        ("PUT", f"{T}/learning/concepts/sets/bkt", {"prior": "0.3"}, ("prior",)),
        ("PUT", f"{T}/ai/settings", {"price_input_per_mtok": False}, ("price_input_per_mtok",)),
    ]
    for method, url, body, field in cases:
        refused(await c.request(method, url, json=body), *field)
    r = await c.put(f"{T}/learning/concepts/sets/bkt", json={"prior": 1 / 2})
    assert r.status_code == 200, r.text
    # A JSON integer is still a number (no BKT parameter may be 0 or 1).
    r = await c.put(f"{T}/ai/settings", json={"price_input_per_mtok": 2})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("at", ["0.5", "99999999999", "1700000000", "-1"])
async def test_a_time_in_the_query_is_iso_only(client: tuple[FastAPI, httpx.AsyncClient],
                                               at: str) -> None:
    _, c = client
    detail = refused(await c.get(f"{T}/learning/me/reviews/due", params={"at": at}),
                     "query", "at")
    assert "ISO-8601" in detail
    r = await c.get(f"{T}/learning/me/reviews/due", params={"at": "2026-12-04T09:00:00+05:00"})
    assert r.status_code == 200, r.text


def test_an_email_holds_no_control_or_override() -> None:
    assert normalise_email(" Ada@Demo.Bloop.dev\n") == "ada@demo.bloop.dev"
    for bad in ("a\u0000b@x.dev", "a@x\u007f.dev", "a@x.de\u0085v", "\u202ea@x.dev"):
        with pytest.raises(ValueError, match="email"):
            normalise_email(bad)


S = Annotated[str, StringConstraints(strip_whitespace=True)]
S1 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
KINDS: list[Any] = [Line[S], NonBlankLine[S1], RawLine[str], Lines[S], NonBlankLines[S1],
                    RawLines[str]]


@pytest.mark.parametrize("kind", KINDS)
def test_the_documented_pattern_means_what_the_check_means(kind: Any) -> None:
    """Each character (up to U+3000, past the last one a rule names), alone, inside text and
    at its edges: a generated client refuses exactly what the server refuses."""
    adapter = TypeAdapter(kind)
    pattern = re.compile(adapter.json_schema()["pattern"])
    for code in [*range(0x3001), 0x3164, 0xE000, 0xF8FF, *range(0xFDCF, 0xFDF1), 0xFE00,
                 0xFE0F, 0xFEFF, 0xFFA0, *range(0xFFEF, 0x10000)]:
        for text in (chr(code), f"a{chr(code)}b", f" {chr(code)}", f"{chr(code)}a"):
            try:
                adapter.validate_python(text)
                accepted = True
            except ValidationError:
                accepted = False
            assert bool(pattern.fullmatch(text)) == accepted, (hex(code), text)
        adapter.validate_python(f"x{chr(code)}", context=STORED)  # read back, never refused


INVISIBLE_TEXTS = ["\u200b", "\u2060\u2060", "\ufeff", "\u3164", "\u115f", "\u1160", "\uffa0",
                   "\U000e0001", "\u00ad", "\ue000", "\U000f0000", " \u200b\ufe0f "]
NONCHARACTERS = ["\uffff", "\ufffe", "\ufdd0", "\ufdef", "\U0001fffe", "\U0010ffff"]


async def test_names_and_titles_hold_a_visible_character_and_no_text_a_noncharacter(
        client: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, c = client
    assert (await c.post(f"{T}/courses", json={"id": "py", "title": "Python"})).status_code == 201
    assert (await c.post(f"{T}/learning/concepts", json={"id": "sets", "name": "Sets"})
            ).status_code == 201
    module = f"{T}/courses/py/modules"
    lesson = f"{T}/courses/py/lessons"
    card = f"{T}/learning/concepts/sets/cards"
    for text in INVISIBLE_TEXTS + NONCHARACTERS:
        for url, body, field in [(f"{T}/courses", {"title": text}, "title"),
                                 (module, {"id": "m", "title": text}, "title"),
                                 (lesson, {"title": text}, "title"),
                                 (card, {"front": text, "back": "b"}, "front"),
                                 (f"{T}/learning/concepts", {"id": "c", "name": text}, "name")]:
            detail = refused(await c.post(url, json=body), field)
            assert ("visible character" if text in INVISIBLE_TEXTS else "noncharacter"
                    ) in detail, (text, url, detail)
    for text in NONCHARACTERS:  # anywhere, in multi-line text too
        refused(await c.post(f"{T}/courses", json={"title": f"T{text}"}), "title")
        refused(await c.post(f"{T}/courses", json={"title": "T", "summary": f"a{text}"}),
                "summary")
        refused(await c.post(card, json={"front": "f", "back": f"b{text}"}), "back")
    # an invisible character beside visible ones is kept (a joiner in an emoji sequence)
    r = await c.post(f"{T}/courses", json={"id": "e", "title": "Team \U0001f468\u200d\U0001f4bb"})
    assert r.status_code == 201, r.text
    r = await c.post(module, json={"id": "m", "title": "\u0378"})  # unassigned in Unicode 14
    assert r.status_code in (200, 201), r.text


def test_invisible_names_every_format_and_private_use_character() -> None:
    shown = re.compile(f"[^{INVISIBLE}]")
    for code in range(0x10000):
        if 0xD800 <= code <= 0xDFFF:
            continue
        if unicodedata.category(chr(code)) in ("Cf", "Co"):
            assert not shown.match(chr(code)), hex(code)
    for code in range(0x10000, 0x110000):
        if unicodedata.category(chr(code)) in ("Cf", "Co"):
            assert not visible(chr(code)), hex(code)
    assert visible("a")
    assert visible("\u0301")
    assert not visible("\u034f\u17b4\u180b\u2065\ufff0")


async def test_an_address_that_passes_for_another_is_refused(
        client: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, c = client
    r = await c.patch(f"{T}/settings", json={"allowed_signup_domains": ["acme.dev"]})
    assert r.status_code == 200, r.text
    signup = {"display_name": "Ada", "password": PASSWORD}
    r = await c.post(f"{T}/signup", json={"email": "ada@acme.dev", **signup})
    assert r.status_code == 201, r.text
    for email in ("ada\u200b@acme.dev", "ada\u00ad@acme.dev", "ada\u2060@acme.dev",
                  "ada\ufeff@acme.dev", "\uff41da@acme.dev", "ada\u3164@acme.dev",
                  "\u212aada@acme.dev", "ada@acme\u200b.dev"):
        detail = refused(await c.post(f"{T}/signup", json={"email": email, **signup}), "email")
        assert "usable email address" in detail or "domain name" in detail, (email, detail)
    new = {"display_name": "X", "roles": ["learner"]}
    for email in ("x\u200b@acme.dev", "\uff58@acme.dev", "x@fuzz..dev", "x@-fuzz.dev",
                  "x@fuzz-.dev", "x@[127.0.0.1]", "x@127.0.0.1", "x@.acme.dev", "x@acme.d3v",
                  "x@b\u00fccher.dev"):
        refused(await c.post(f"{T}/users", json={"email": email, **new}), "email")
        refused(await c.post(f"{T}/invitations", json={"email": email}), "email")
    r = await c.post(f"{T}/users", json={"email": "X@XN--Bcher-Kva.Dev", **new})
    assert r.status_code == 201, r.text
    assert r.json()["email"] == "x@xn--bcher-kva.dev"
    r = await c.post(f"{T}/invitations", json={"email": "\u00e4da@acme.dev"})
    assert r.status_code == 201, r.text


async def test_an_address_kept_before_the_rule_still_signs_in(
        client: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, documented = client
    c = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bloop.test")
    identity: IdentityService = app.state.identity.state["service"]
    for n, email in enumerate(["old\u200b@acme.dev", "old@[127.0.0.1]", "\uff4fld@acme.dev"]):
        assert lookalike(email) or "[" in email
        user = User.model_validate({"id": f"old-{n}", "tenant": "acme", "email": email,
                                    "display_name": "Old", "roles": ["learner"],
                                    "created_at": "2025-01-01T00:00:00Z"}, context=STORED)
        await identity.repo.add_user(user, [], await identity.hasher.hash(PASSWORD))
        me = await login(c, "acme", email.upper())
        r = await c.get(f"{T}/me", headers=me)
        assert r.status_code == 200, r.text
        assert r.json()["email"] == email
        r = await c.patch(f"{T}/me", headers=me, json={"display_name": "Older"})
        assert r.status_code == 200, r.text
    r = await c.get(f"{T}/users", headers=documented.headers)  # breaks the documented pattern
    assert r.status_code == 200, r.text
    assert len(r.json()["items"]) == 4
    await c.aclose()


async def test_an_invitation_to_an_address_kept_before_the_rule_is_refused_clearly(
        client: tuple[FastAPI, httpx.AsyncClient]) -> None:
    """Accepting it made a user of an address the rule refuses: a 500."""
    app, _ = client
    c = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bloop.test")
    identity: IdentityService = app.state.identity.state["service"]
    at = datetime.now(UTC)
    await identity.repo.add_invitation(Invitation.model_validate({
        "token_hash": token_hash("an-old-invitation-token"), "tenant": "acme", "email": "old\u200b@acme.dev",
        "roles": ["learner"], "invited_by": "someone", "created_at": at,
        "expires_at": at + timedelta(days=1)}, context=STORED))
    r = await c.post(f"{T}/invitations/accept", json={
        "token": "an-old-invitation-token", "display_name": "Old", "password": PASSWORD})
    assert (r.status_code, r.json()["code"]) == (409, "email_unusable"), r.text
    assert await identity.repo.get_invitation("acme", token_hash("an-old-invitation-token")) is not None
    await c.aclose()
