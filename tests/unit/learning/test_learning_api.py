"""learning's routes through the real app (embedded stores and bus), as an educator editing the
graph and a learner following a path. Content's lessons and graded attempts arrive as content's
events on the bus, exactly as content publishes them."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import math
import threading
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fsrs.scheduler import DEFAULT_PARAMETERS

from bloop.ai.jobs.events import Card as AiCard
from bloop.ai.jobs.events import FlashcardsGenerated
from bloop.platform.content.attempts.events import QuestionGraded, QuizAttemptGraded
from bloop.platform.content.events import (
    CoursePublished,
    LessonDeleted,
    LessonPublished,
    LessonUpdated,
)
from bloop.platform.identity.bootstrap import operator
from bloop.platform.identity.events import UserDeleted, UserTimeZoneChanged
from bloop.platform.identity.service import IdentityService
from bloop.platform.kit.errors import Conflict, Problem, StoreUnavailable
from bloop.platform.kit.events.bus.embedded import EmbeddedEventBus
from bloop.platform.kit.events.bus.port import Message, Subscription
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.types import type_of
from bloop.platform.kit.pagination import cursor
from bloop.platform.learning import bkt
from bloop.platform.learning import graphql as learning_graphql
from bloop.platform.learning import review as fsrs_review
from bloop.platform.learning import service as learning_service
from bloop.platform.learning.consumers import USER_DELETED, ZONES_GROUP
from bloop.platform.learning.model import (
    BktParams,
    Card,
    CardState,
    LearnerSettings,
    NewCard,
    NewConcept,
    NewReview,
    ReviewLog,
    SchedulerParams,
    ZoneSaved,
)
from bloop.platform.learning.ports import StaleVersion
from bloop.platform.learning.service import LearningService
from tests.support import (
    NESTED_CURSOR,
    PASSWORD,
    count_calls,
    embedded_app,
    eventually,
    graphql_pages,
    member,
    start_up_announced,
)
from tests.unit.learning.test_bkt import generate
from tests.unit.learning.test_review import simulate

BASE = "/v1/tenants/acme/learning"
Json = dict[str, Any]
AT = datetime(2025, 5, 1, tzinfo=UTC)


@pytest.fixture
async def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[
        tuple[FastAPI, httpx.AsyncClient]]:
    async with embedded_app(tmp_path, monkeypatch, ["identity", "learning"]) as (app, c):
        c.headers.update(await member(app, c, "acme", ["educator"]))
        yield app, c


async def learner(app: FastAPI, client: httpx.AsyncClient, tenant: str = "acme") -> dict[str, str]:
    return await member(app, client, tenant, ["learner"])


def service(app: FastAPI) -> LearningService:
    svc: LearningService = app.state.learning.state["service"]
    return svc


async def deliver(app: FastAPI, *envelopes: Envelope, topic: str = "content.events") -> None:
    bus = app.state.platform.bus
    assert isinstance(bus, EmbeddedEventBus)
    await bus.publish([Message.of(e, topic) for e in envelopes])

    async def done() -> bool:
        return bool(await bus.drained("learning")) and bool(await bus.drained(ZONES_GROUP))

    await eventually(done, timeout_s=15, what="learning consumed its events")


def lesson_event(lid: str, teaches: list[str], requires: Sequence[str] = (), minutes: int = 10,
                 position: int = 0, course: str = "py", version: int = 1,
                 tenant: str = "acme", module: str | None = None, **extra: Any) -> Envelope:
    env = type_of(LessonPublished).envelope(LessonPublished(
        lesson_id=lid, course_id=course, course_version=1, lesson_version=version,
        position=position, title=lid.replace("-", " ").title(), estimated_minutes=minutes,
        teaches=teaches, requires=list(requires), published_at=AT, module=module),
        tenant=tenant, subject=lid)
    if extra:
        env = dataclasses.replace(env, data={**env.data, **extra})  # fields added later
    return env


def course_event(lesson_ids: list[str], course: str = "py", tenant: str = "acme") -> Envelope:
    return type_of(CoursePublished).envelope(CoursePublished(
        course_id=course, version=1, title="Python", summary="", language="en",
        level="beginner", tags=[], lesson_ids=lesson_ids, published_at=AT),
        tenant=tenant, subject=course)


def attempt_event(user_id: str, concepts: list[str], answers: list[bool | None],
                  at: datetime = AT, attempt_id: str | None = None) -> Envelope:
    """An attempt answering its questions `answers` (None: left unanswered)."""
    return type_of(QuizAttemptGraded).envelope(QuizAttemptGraded(
        attempt_id=attempt_id or uuid.uuid4().hex, user_id=user_id, lesson_id="l", lesson_version=1,
        course_id="py", quiz_id="q", concepts=concepts, attempt_number=1,
        score=sum(bool(a) for a in answers), max_score=len(answers),
        questions=[QuestionGraded(question_id=f"q{i}", correct=bool(a),
                                  outcome="unanswered" if a is None else
                                  "correct" if a else "incorrect", score=float(bool(a)),
                                  max_score=1.0) for i, a in enumerate(answers)],
        graded_at=at), tenant="acme", subject="l")


async def me(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    r = await client.get("/v1/tenants/acme/me", headers=headers)
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


async def python_course(app: FastAPI, client: httpx.AsyncClient) -> None:
    """variables ← expressions ← functions ← recursion, one lesson each, published."""
    await deliver(app,
                  lesson_event("names", ["variables"], minutes=10, position=0),
                  lesson_event("exprs", ["expressions"], ["variables"], minutes=12, position=1),
                  lesson_event("funcs", ["functions"], ["variables", "expressions"], 15, 2),
                  lesson_event("recur", ["recursion"], ["functions"], minutes=15, position=3),
                  course_event(["names", "exprs", "funcs", "recur"]))
    for concept, requires in (("expressions", "variables"), ("functions", "expressions"),
                              ("recursion", "functions")):
        r = await client.post(f"{BASE}/edges", json={"concept": concept, "requires": requires})
        assert r.status_code == 201, r.text


async def enrolled_in_every_concept(app: FastAPI, client: httpx.AsyncClient
                                    ) -> tuple[dict[str, str], list[str]]:
    """A learner enrolled in each concept of `python_course` as a goal, and those goals."""
    await python_course(app, client)
    pupil = await learner(app, client)
    goals = ["variables", "expressions", "functions", "recursion"]
    for goal in goals:
        r = await client.post(f"{BASE}/me/enrolments", json={"goal_concept": goal},
                              headers=pupil)
        assert r.status_code == 201, r.text
    return pupil, goals


async def test_the_graph_is_edited_and_refuses_what_would_corrupt_it(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    app, client = running
    for cid in ("a", "b", "c"):
        assert (await client.post(f"{BASE}/concepts", json={"id": cid, "name": cid})).status_code == 201
    assert (await client.post(f"{BASE}/concepts", json={"id": "a", "name": "A"})).status_code == 409
    assert (await client.post(f"{BASE}/edges", json={"concept": "b", "requires": "a"})).status_code == 201
    assert (await client.post(f"{BASE}/edges", json={"concept": "c", "requires": "b"})).status_code == 201
    r = await client.post(f"{BASE}/edges", json={"concept": "a", "requires": "c"})
    assert r.status_code == 409
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "cycle"
    assert r.json()["cycle"] == ["a", "c", "b", "a"]
    assert "a → c → b → a" in r.json()["detail"]
    r = await client.post(f"{BASE}/edges", json={"concept": "a", "requires": "a"})
    assert r.status_code == 422
    assert "cannot require itself" in r.text
    r = await client.post(f"{BASE}/edges", json={"concept": "a", "requires": "ghost"})
    assert r.status_code == 422
    assert r.json()["concepts"] == ["ghost"]
    r = await client.post(f"{BASE}/edges", json={"concept": "c", "requires": "a",
                                                 "kind": "sometimes"})
    assert r.status_code == 422
    r = await client.post(f"{BASE}/edges", json={"concept": "c", "requires": "b",
                                                 "kind": "recommended"})
    assert r.status_code == 200  # existed: it takes the new kind
    edges = (await client.get(f"{BASE}/edges")).json()["items"]
    assert edges == [{"concept": "b", "requires": "a", "kind": "required"},
                     {"concept": "c", "requires": "b", "kind": "recommended"}]

    exported = (await client.get(f"{BASE}/graph")).json()
    assert [c["id"] for c in exported["concepts"]] == ["a", "b", "c"]
    other = await member(app, client, "beta", ["educator"])
    r = await client.put("/v1/tenants/beta/learning/graph", json=exported, headers=other)
    assert r.status_code == 200, r.text
    assert r.json() == exported
    bad = {"concepts": [], "edges": [*exported["edges"], {"concept": "a", "requires": "c"}]}
    r = await client.put("/v1/tenants/beta/learning/graph", json=bad, headers=other)
    assert r.status_code == 409
    assert r.json()["code"] == "cycle"
    assert (await client.get("/v1/tenants/beta/learning/edges", headers=other)).json()[
        "items"] == exported["edges"]
    assert (await client.delete(f"{BASE}/edges/c/b")).status_code == 204
    assert (await client.delete(f"{BASE}/edges/c/b")).status_code == 404

    pupil = await learner(app, client)
    assert (await client.get(f"{BASE}/edges", headers=pupil)).status_code == 200
    r = await client.post(f"{BASE}/edges", json={"concept": "c", "requires": "a"}, headers=pupil)
    assert r.status_code == 403


async def test_a_learner_follows_a_path_that_shrinks_with_mastery(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    app, client = running
    await python_course(app, client)
    pupil = await learner(app, client)
    uid = await me(client, pupil)

    r = await client.post(f"{BASE}/me/enrolments", json={"course_id": "py"}, headers=pupil)
    assert r.status_code == 201, r.text
    assert (await client.post(f"{BASE}/me/enrolments", json={"course_id": "py"},
                              headers=pupil)).status_code == 200
    [path] = (await client.get(f"{BASE}/me/paths", headers=pupil)).json()["items"]
    assert path["goal"] == "course:py"
    assert [s["lesson_id"] for s in path["steps"]] == ["names", "exprs", "funcs", "recur"]

    # leaving a goal (before, there was no way to) takes it from the paths, and comes back
    r = await client.post(f"{BASE}/me/enrolments", json={"goal_concept": "recursion"},
                          headers=pupil)
    assert r.status_code == 201, r.text
    leave = f"{BASE}/me/enrolments"
    for bad in ({}, {"course_id": "py", "goal_concept": "recursion"}, {"course_id": "Not A Slug"}):
        r = await client.delete(leave, params=bad, headers=pupil)
        assert (r.status_code, r.json()["code"]) == (422, "validation_failed"), bad
    r = await client.delete(leave, params={"goal_concept": "recursion"}, headers=pupil)
    assert r.status_code == 204, r.text
    r = await client.delete(leave, params={"goal_concept": "recursion"}, headers=pupil)
    assert (r.status_code, r.json()["code"]) == (404, "not_enrolled")
    assert [e["course_id"] for e in (await client.get(leave, headers=pupil)).json()["items"]] == [
        "py"]
    assert [p["goal"] for p in (await client.get(f"{BASE}/me/paths", headers=pupil)).json()[
        "items"]] == ["course:py"]
    bus = app.state.platform.bus
    values = [p.message.value for p in await service(app).repo.outbox.pending(500)]
    values += [m.value for m in await bus.read("learning.events")]
    assert "bloop.learning.unenrolled.v1" in {
        json.loads(v)["type"] for v in values}
    assert [s["blocked_by"] for s in path["steps"]] == [[], ["variables"], ["expressions"],
                                                        ["functions"]]
    nxt = (await client.get(f"{BASE}/me/next", headers=pupil)).json()
    assert nxt["kind"] == "lesson"
    assert nxt["lesson"]["lesson_id"] == "names"

    r = await client.post(f"{BASE}/me/lessons/names/progress",
                          json={"status": "started", "seconds": 120}, headers=pupil)
    assert r.status_code == 200
    r = await client.post(f"{BASE}/me/lessons/names/progress",
                          json={"status": "completed", "seconds": 45}, headers=pupil)
    assert r.json()["seconds"] == 165
    assert r.json()["completed_at"]
    assert (await client.post(f"{BASE}/me/lessons/ghost/progress", json={"status": "started"},
                              headers=pupil)).status_code == 404
    report = (await client.get(f"{BASE}/me/progress", headers=pupil)).json()
    assert report["courses"][0] == {"id": "py", "lessons": 4, "completed": 1, "modules": []}

    # Graded quiz answers on variables and expressions: both mastered, out of the path.
    for i in range(4):
        await deliver(app, attempt_event(uid, ["variables", "expressions"], [True, True, True],
                                         at=AT + timedelta(minutes=i)))
    mastery = {m["concept"]: m for m in (await client.get(f"{BASE}/me/mastery",
                                                          headers=pupil)).json()["items"]}
    assert mastery["variables"]["mastered"]
    assert mastery["variables"]["p_known"] >= 0.95
    [path] = (await client.get(f"{BASE}/me/paths", headers=pupil)).json()["items"]
    assert [s["lesson_id"] for s in path["steps"]] == ["funcs", "recur"]
    assert path["mastered"] == 2

    log = await app.state.platform.bus.read("learning.events")
    types = [dict(m.headers)["type"].decode() for m in log]
    assert "bloop.learning.enrolled.v1" in types
    assert "bloop.learning.lesson.completed.v1" in types
    assert types.count("bloop.learning.concept.mastered.v1") == 2
    assert types.count("bloop.learning.path.changed.v1") >= 2


async def test_no_cache_keeps_a_learner_s_own_reads(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    """A learner's enrolments, progress, mastery, paths and due reviews came back with no
    Cache-Control, storable, where identity's `…/me` answers no-store."""
    app, client = running
    await python_course(app, client)
    pupil = await learner(app, client)
    r = await client.post(f"{BASE}/me/enrolments", json={"course_id": "py"}, headers=pupil)
    assert r.status_code == 201, r.text
    reads = sorted(str(route.path).removeprefix("/v1/tenants/{tenant}/learning")
                   for route in iter_route_contexts(app.router.routes)
                   if "GET" in (route.methods or ()) and "/learning/me/" in str(route.path))
    assert reads == ["/me/enrolments", "/me/mastery", "/me/next", "/me/path", "/me/paths",
                     "/me/progress", "/me/reviews/due"]
    for read in reads:
        r = await client.get(f"{BASE}{read}", params={"course": "py"} if read == "/me/path"
                             else {}, headers=pupil)
        assert (r.status_code, r.headers.get("cache-control")) == (200, "no-store"), read
    # The tenant's graph is no one's data.
    r = await client.get(f"{BASE}/concepts", headers=pupil)
    assert (r.status_code, r.headers.get("cache-control")) == (200, None)


async def test_graded_attempts_are_idempotent_and_order_free(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    app, client = running
    await python_course(app, client)
    pupil = await learner(app, client)
    uid = await me(client, pupil)
    early = attempt_event(uid, ["functions"], [False, False], at=AT, attempt_id="a1")
    late = attempt_event(uid, ["functions"], [True, True, True], at=AT + timedelta(hours=1),
                         attempt_id="a2")
    await deliver(app, late, early)  # out of order
    in_order = (await client.get(f"{BASE}/me/mastery", headers=pupil)).json()["items"][0]
    # The same attempt again, under a new event id (a producer retry): nothing changes.
    again = attempt_event(uid, ["functions"], [True, True, True], at=AT + timedelta(hours=1),
                          attempt_id="a2")
    await deliver(app, again)
    after = (await client.get(f"{BASE}/me/mastery", headers=pupil)).json()["items"][0]
    assert after == in_order
    assert [a for _, a in after["observations"]] == [0, 0, 1, 1, 1]
    assert after["attempt_ids"] == ["a2", "a1"]

    other = await learner(app, client)
    other_id = await me(client, other)
    await deliver(app, early, late)
    await deliver(app, attempt_event(other_id, ["functions"], [False, False], at=AT,
                                     attempt_id="b1"),
                  attempt_event(other_id, ["functions"], [True, True, True],
                                at=AT + timedelta(hours=1), attempt_id="b2"))
    theirs = (await client.get(f"{BASE}/me/mastery", headers=other)).json()["items"][0]
    assert theirs["p_known"] == pytest.approx(in_order["p_known"])


async def test_placement_skips_what_the_learner_knows(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    app, client = running
    chain = [f"step-{i}" for i in range(10)]
    events = [lesson_event(f"l{i}", [c], minutes=5, position=i) for i, c in enumerate(chain)]
    await deliver(app, *events, course_event([f"l{i}" for i in range(10)]))
    for lower, upper in itertools.pairwise(chain):
        await client.post(f"{BASE}/edges", json={"concept": upper, "requires": lower})
    pupil = await learner(app, client)
    knows = set(chain[:6])

    r = await client.post(f"{BASE}/me/placements", json={"goal_concept": "step-9"}, headers=pupil)
    assert r.status_code == 201, r.text
    view = r.json()
    export = (await client.get("/v1/tenants/acme/me/export", headers=pupil)).json()
    assert [p["id"] for p in export["services"]["learning"]["placements"]] == [view["id"]]
    r = await client.post(f"{BASE}/me/placements/{view['id']}/answers",
                          json={"concept": "step-0", "correct": True}, headers=pupil)
    assert r.status_code == 409
    assert r.json()["code"] == "wrong_question"
    while not view["done"]:
        r = await client.post(f"{BASE}/me/placements/{view['id']}/answers", headers=pupil,
                              json={"concept": view["question"],
                                    "correct": view["question"] in knows})
        assert r.status_code == 200, r.text
        view = r.json()
    assert view["asked"] <= math.ceil(math.log2(10)) + 2
    assert set(view["known"]) == knows
    r = await client.get(f"{BASE}/me/path", params={"concept": "step-9"}, headers=pupil)
    assert [s["lesson_id"] for s in r.json()["steps"]] == ["l6", "l7", "l8", "l9"]
    assert (await client.post(f"{BASE}/me/placements/nope/answers", headers=pupil,
                              json={"concept": "step-0", "correct": True})).status_code == 404


async def test_a_placement_question_shows_a_card_of_its_concept_both_sides(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    """Before, a question gave the card's front only: an app could not show the answer before
    the learner says whether they knew it."""
    app, client = running
    await python_course(app, client)
    for concept in ("variables", "expressions", "functions"):
        r = await client.post(f"{BASE}/concepts/{concept}/cards",
                              json={"front": f"What are {concept}?", "back": f"{concept} are…"})
        assert r.status_code == 201, r.text
    pupil = await learner(app, client)
    r = await client.post(f"{BASE}/me/placements", json={"course_id": "py"}, headers=pupil)
    view = r.json()
    seen = []
    while not view["done"]:
        question = view["question"]
        seen.append(question)
        shown = (view["card_front"], view["card_back"])
        assert shown == ((f"What are {question}?", f"{question} are…")
                         if question != "recursion" else (None, None)), view
        r = await client.post(f"{BASE}/me/placements/{view['id']}/answers", headers=pupil,
                              json={"concept": question, "correct": False})
        view = r.json()
    assert seen
    assert (view["card_front"], view["card_back"]) == (None, None)


async def test_a_lesson_comes_after_the_lessons_teaching_what_it_needs(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    """x teaches a (nothing before it) and c (deep: c needs d, d needs e); y teaches b, which
    needs a. Ordered by their deepest concept, y came before x, whose a it needs."""
    app, client = running
    await deliver(app, lesson_event("x", ["a", "c"], position=0),
                  lesson_event("y", ["b"], position=1), lesson_event("w", ["e", "d"], position=2),
                  course_event(["x", "y", "w"]))
    for concept, requires in (("b", "a"), ("c", "d"), ("d", "e")):
        r = await client.post(f"{BASE}/edges", json={"concept": concept, "requires": requires})
        assert r.status_code == 201, r.text
    pupil = await learner(app, client)
    r = await client.post(f"{BASE}/me/enrolments", json={"course_id": "py"}, headers=pupil)
    assert r.status_code == 201, r.text
    [path] = (await client.get(f"{BASE}/me/paths", headers=pupil)).json()["items"]
    assert [s["lesson_id"] for s in path["steps"]] == ["w", "x", "y"]


async def test_lessons_that_need_each_other_still_give_a_next_lesson(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    """x teaches a and c, y teaches b; b requires a, c requires b: each lesson waits for the
    other, and the learner was told there was nothing to do."""
    app, client = running
    await deliver(app, lesson_event("x", ["a", "c"], position=0),
                  lesson_event("y", ["b"], position=1), course_event(["x", "y"]))
    for concept, requires in (("b", "a"), ("c", "b")):
        r = await client.post(f"{BASE}/edges", json={"concept": concept, "requires": requires})
        assert r.status_code == 201, r.text
    pupil = await learner(app, client)
    r = await client.post(f"{BASE}/me/enrolments", json={"course_id": "py"}, headers=pupil)
    assert r.status_code == 201, r.text
    [path] = (await client.get(f"{BASE}/me/paths", headers=pupil)).json()["items"]
    assert all(s["blocked_by"] for s in path["steps"])
    nxt = (await client.get(f"{BASE}/me/next", headers=pupil)).json()
    assert nxt["kind"] == "lesson"
    assert nxt["lesson"]["lesson_id"] == path["steps"][0]["lesson_id"]


async def test_placement_spreads_an_answer_along_required_edges_only(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    """m recommends a (not requires): knowing m says nothing of a, so a is asked for itself."""
    app, client = running
    await deliver(app, *(lesson_event(f"l-{c}", [c], position=i)
                         for i, c in enumerate(("a", "m", "z"))), course_event(["l-a", "l-m", "l-z"]))
    for concept, requires, kind in (("m", "a", "recommended"), ("z", "m", "required")):
        r = await client.post(f"{BASE}/edges", json={"concept": concept, "requires": requires,
                                                     "kind": kind})
        assert r.status_code == 201, r.text
    pupil = await learner(app, client)
    r = await client.post(f"{BASE}/me/placements", json={"goal_concept": "z"}, headers=pupil)
    assert r.status_code == 201, r.text
    view, asked = r.json(), []
    while not view["done"]:
        asked.append(view["question"])
        view = (await client.post(f"{BASE}/me/placements/{view['id']}/answers", headers=pupil,
                                  json={"concept": view["question"],
                                        "correct": view["question"] != "a"})).json()
    assert "a" in asked
    assert "a" not in view["known"]
    assert "m" in view["known"]


async def test_answers_before_a_placement_are_not_held_against_the_learner(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    """Four wrong answers, then a placement finding the concept known, then a right answer:
    the right answer replayed the four wrong ones from the placement's baseline and took the
    mastery away."""
    app, client = running
    await python_course(app, client)
    pupil = await learner(app, client)
    uid = await me(client, pupil)
    await deliver(app, attempt_event(uid, ["variables"], [False, False, False, False]))
    r = await client.post(f"{BASE}/me/placements", json={"goal_concept": "variables"},
                          headers=pupil)
    assert r.status_code == 201, r.text
    view = r.json()
    while not view["done"]:
        view = (await client.post(f"{BASE}/me/placements/{view['id']}/answers", headers=pupil,
                                  json={"concept": view["question"], "correct": True})).json()
    await deliver(app, attempt_event(uid, ["variables"], [True], at=datetime.now(UTC)))
    mastery = {m["concept"]: m for m in (await client.get(f"{BASE}/me/mastery",
                                                          headers=pupil)).json()["items"]}
    assert mastery["variables"]["mastered"], mastery["variables"]


async def test_questions_left_unanswered_are_no_evidence_of_mastery(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    """Each unanswered question counted as a wrong answer: a learner who answered one
    question of five, rightly, came out less likely to know the concept than before."""
    app, client = running
    await python_course(app, client)
    answered, skipped, idle = [await learner(app, client) for _ in range(3)]
    ids = [await me(client, h) for h in (answered, skipped, idle)]
    await deliver(app, attempt_event(ids[0], ["variables"], [True]),
                  attempt_event(ids[1], ["variables"], [True, None, None, None, None]),
                  attempt_event(ids[2], ["variables"], [None, None]))

    async def mastery(h: dict[str, str]) -> list[tuple[str, float]]:
        page = (await client.get(f"{BASE}/me/mastery", headers=h)).json()["items"]
        return [(m["concept"], m["p_known"]) for m in page]

    assert await mastery(skipped) == await mastery(answered) != []
    assert await mastery(idle) == []


async def test_answers_are_replayed_in_time_order_whatever_their_offset(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    """The same two answers, the earlier one's time given in UTC or at +05:30, give the same
    mastery (they were ordered as text, so 15:30+05:30 came after 11:00+00:00, though it is
    earlier)."""
    app, client = running
    await python_course(app, client)
    india = timezone(timedelta(hours=5, minutes=30))
    results = []
    for zone in (UTC, india):
        uid = await me(client, await learner(app, client))
        wrong, right = AT.replace(hour=10), AT.replace(hour=11)
        await deliver(app, attempt_event(uid, ["variables"], [True, True], at=right),
                      attempt_event(uid, ["variables"], [False, False], at=wrong.astimezone(zone)))
        [m] = await service(app).repo.get_mastery("acme", uid, ["variables"])
        results.append(round(m.p_known, 6))
    assert results[0] == results[1]


async def test_an_attempt_time_without_a_zone_is_dead_lettered_not_guessed(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    """On a server at +05:30, 10:30 without a zone was read as local time (05:00 UTC), so an
    attempt graded after another was replayed before it; read as UTC, it was a guess all the
    same: the event's schema asks for a zone, and the event is set aside to be sent again."""
    app, client = running
    await python_course(app, client)
    uid = await me(client, await learner(app, client))
    earlier = attempt_event(uid, ["variables"], [True], at=AT.replace(hour=10, minute=15))
    later = attempt_event(uid, ["variables"], [False])
    later = dataclasses.replace(later, data={**later.data, "graded_at": "2025-05-01T10:30:00"})
    await deliver(app, earlier, later)
    [m] = await service(app).repo.get_mastery("acme", uid, ["variables"])
    assert m.observations == [("2025-05-01T10:15:00+00:00", 1)]
    bus = app.state.platform.bus
    [dead] = [d for d in await bus.dead_letters("content.events") if d.key == later.key
              and json.loads(d.value)["id"] == str(later.id)]
    assert dict(dead.headers)["dlq.reason"] == b"schema_violation"


async def test_one_placement_question_answered_twice_at_once_counts_once(running: tuple[
        FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch) -> None:
    """A double click (or "know" then "don't know") on one question: one answer stands, the
    other is told the question moved on. A finished placement whose mastery write failed
    records it when answered again."""
    app, client = running
    chain = [f"step-{i}" for i in range(4)]
    await deliver(app, *[lesson_event(f"l{i}", [c], minutes=5, position=i)
                         for i, c in enumerate(chain)], course_event([f"l{i}" for i in range(4)]))
    for lower, upper in itertools.pairwise(chain):
        await client.post(f"{BASE}/edges", json={"concept": upper, "requires": lower})
    pupil = await learner(app, client)
    view = (await client.post(f"{BASE}/me/placements", json={"goal_concept": "step-3"},
                              headers=pupil)).json()
    url = f"{BASE}/me/placements/{view['id']}/answers"
    answers = await asyncio.gather(*(
        client.post(url, json={"concept": view["question"], "correct": correct}, headers=pupil)
        for correct in (True, False)))
    assert sorted(r.status_code for r in answers) == [200, 409]
    [kept] = [r.json() for r in answers if r.status_code == 200]
    refused = next(r.json() for r in answers if r.status_code == 409)
    assert (refused["code"], refused["question"]) == ("wrong_question", kept["question"])

    repo = service(app).repo
    saving = repo.save_mastery

    async def down(*args: object) -> None:
        raise StoreUnavailable("neo4j", "gone for a moment")

    monkeypatch.setattr(repo, "save_mastery", down)
    view = kept
    while not view["done"]:
        r = await client.post(url, json={"concept": view["question"], "correct": True},
                              headers=pupil)
        if r.status_code == 503:
            break
        view = r.json()
    assert r.status_code == 503
    monkeypatch.setattr(repo, "save_mastery", saving)
    assert (await client.get(f"{BASE}/me/mastery", headers=pupil)).json()["items"] == []
    again = await client.post(url, json={"concept": "step-0", "correct": True}, headers=pupil)
    assert again.status_code == 409
    mastered = (await client.get(f"{BASE}/me/mastery", headers=pupil)).json()["items"]
    assert mastered
    assert all(m["mastered"] for m in mastered)
    # Once recorded, answering it again changes no mastery.
    again = await client.post(url, json={"concept": "step-0", "correct": True}, headers=pupil)
    assert again.status_code == 409
    assert (await client.get(f"{BASE}/me/mastery", headers=pupil)).json()["items"] == mastered


async def test_concepts_take_the_names_content_published(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    app, client = running
    await deliver(app, lesson_event("arr", ["arrays"], ["basics"], concept_names={
        "arrays": "Arrays & lists", "basics": "The basics"}))
    graph = (await client.get(f"{BASE}/graph")).json()
    assert {c["id"]: c["name"] for c in graph["concepts"]} == {
        "arrays": "Arrays & lists", "basics": "The basics"}
    await deliver(app, lesson_event("arr", ["arrays"], version=2))  # an event of before
    assert (await client.get(f"{BASE}/concepts/arrays")).json()["name"] == "Arrays & lists"


async def test_a_course_of_lessons_teaching_no_concept_has_them_on_its_path(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    """Paths were made of concepts alone: a course whose lessons teach none had an empty path
    and "nothing" next, while its progress counted the lessons as not done."""
    app, client = running
    await deliver(app, lesson_event("welcome", [], position=0, course="tour"),
                  lesson_event("pictures", [], position=1, course="tour"),
                  course_event(["welcome", "pictures"], course="tour"))
    pupil = await learner(app, client)
    r = await client.post(f"{BASE}/me/enrolments", json={"course_id": "tour"}, headers=pupil)
    assert r.status_code == 201, r.text
    export = (await client.get("/v1/tenants/acme/me/export", headers=pupil)).json()
    assert export["services"]["learning"]["paths_last_announced"] == {
        "course:tour": ["welcome", "pictures"]}
    for expected in (["welcome", "pictures"], ["pictures"], []):
        path = (await client.get(f"{BASE}/me/path", params={"course": "tour"},
                                 headers=pupil)).json()
        assert [s["lesson_id"] for s in path["steps"]] == expected
        nxt = (await client.get(f"{BASE}/me/next", headers=pupil)).json()
        if not expected:
            assert nxt["kind"] == "nothing"
            break
        assert (nxt["kind"], nxt["lesson"]["lesson_id"]) == ("lesson", expected[0])
        r = await client.post(f"{BASE}/me/lessons/{expected[0]}/progress",
                              json={"status": "completed"}, headers=pupil)
        assert r.status_code == 200, r.text


async def test_a_placement_in_a_course_teaching_no_concept_is_finished_at_once(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    """It answered 404 "no course" while the course's path answered with its lessons."""
    app, client = running
    await deliver(app, lesson_event("welcome", [], course="tour"),
                  course_event(["welcome"], course="tour"))
    pupil = await learner(app, client)
    r = await client.post(f"{BASE}/me/placements", json={"course_id": "tour"}, headers=pupil)
    assert r.status_code == 201, r.text
    view = r.json()
    assert view["goal"] == "course:tour"
    assert (view["done"], view["question"], view["asked"], view["max_questions"]) == (
        True, None, 0, 0)
    assert (view["known"], view["unknown"]) == ([], [])
    r = await client.post(f"{BASE}/me/placements/{view['id']}/answers",
                          json={"concept": "welcome", "correct": True}, headers=pupil)
    assert (r.status_code, r.json()["code"]) == (409, "wrong_question")
    r = await client.get(f"{BASE}/me/path", params={"course": "tour"}, headers=pupil)
    assert [s["lesson_id"] for s in r.json()["steps"]] == ["welcome"]
    for body in ({"course_id": "nope"}, {"goal_concept": "nope"}):
        r = await client.post(f"{BASE}/me/placements", json=body, headers=pupil)
        assert r.status_code == 404, body


async def test_due_reviews_come_a_page_at_a_time(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    """A page short of the cards due said `next: null`, so a client took it for all of them."""
    app, client = running
    await python_course(app, client)
    made = set()
    for n in range(5):
        r = await client.post(f"{BASE}/concepts/variables/cards",
                              json={"front": f"Question {n}?", "back": f"Answer {n}."})
        made.add(r.json()["id"])
    pupil = await learner(app, client)
    await client.post(f"{BASE}/me/lessons/names/progress", json={"status": "completed"},
                      headers=pupil)
    at = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    seen: list[str] = []
    params: dict[str, str | int] = {"limit": 2, "at": at}
    while True:
        page = (await client.get(f"{BASE}/me/reviews/due", params=params, headers=pupil)).json()
        seen += [c["card_id"] for c in page["items"]]
        if page["next"] is None:
            break
        params["after"] = page["next"]
    assert sorted(seen) == sorted(made)
    r = await client.get(f"{BASE}/me/reviews/due", params={"after": "bm90IGEgY3Vyc29y"},
                         headers=pupil)
    assert (r.status_code, r.json()["code"]) == (422, "bad_cursor")


async def pupil_with_cards_due(app: FastAPI, client: httpx.AsyncClient,
                               count: int) -> dict[str, str]:
    """A learner's headers, with `count` cards of a lesson they completed due."""
    await python_course(app, client)
    for n in range(count):
        r = await client.post(f"{BASE}/concepts/variables/cards",
                              json={"front": f"Question {n}?", "back": f"Answer {n}."})
        assert r.status_code == 201, r.text
    pupil = await learner(app, client)
    await client.post(f"{BASE}/me/lessons/names/progress", json={"status": "completed"},
                      headers=pupil)
    return pupil


def zone_event(uid: str, zone: str, at: datetime) -> Envelope:
    return type_of(UserTimeZoneChanged).envelope(
        UserTimeZoneChanged(user_id=uid, time_zone=zone, changed_at=at), tenant="acme",
        subject=uid)


async def due_ids(client: httpx.AsyncClient, pupil: dict[str, str], at: datetime) -> list[str]:
    """The cards due at `at`, by REST, checked against GraphQL's list and `…/me/next`."""
    r = await client.get(f"{BASE}/me/reviews/due", params={"at": at.isoformat()}, headers=pupil)
    assert r.status_code == 200, r.text
    body = (await client.post("/graphql", headers=pupil, json={
        "query": "query ($at: DateTime) { myDueReviews(tenant: \"acme\", at: $at) "
                 "{ items { cardId } } }", "variables": {"at": at.isoformat()}})).json()
    assert "errors" not in body, body
    ids = [c["card_id"] for c in r.json()["items"]]
    assert [c["cardId"] for c in body["data"]["myDueReviews"]["items"]] == ids
    return ids


async def test_a_learners_day_starts_at_0400_in_the_zone_identity_gives(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    """Reviewed at 21:40 with a day or more to wait, a card was due at 21:40, after the
    learner's morning reviews: it is due from 04:00 of its day, in the zone the learner set in
    their profile (learning hears it from identity's `user.time_zone_changed`)."""
    app, client = running
    pupil = await pupil_with_cards_due(app, client, 1)
    uid = await me(client, pupil)
    svc = service(app)
    [card] = await due_ids(client, pupil, datetime.now(UTC))
    assert (await svc.repo.learner_settings("acme", uid)).time_zone is None  # UTC until identity says
    r = await client.patch("/v1/tenants/acme/me", headers=pupil,
                           json={"time_zone": "America/Los_Angeles"})
    assert r.status_code == 200, r.text

    async def heard() -> bool:
        return (await svc.repo.learner_settings("acme", uid)).time_zone == "America/Los_Angeles"

    await eventually(heard, timeout_s=15, what="learning heard of the time zone")
    la = ZoneInfo("America/Los_Angeles")
    at = (datetime.now(la) + timedelta(days=1)).replace(hour=21, minute=40, second=0,
                                                         microsecond=0).astimezone(UTC)
    done = await svc.review("acme", uid, NewReview(card_id=card, rating=4), at=at)
    morning = done.next_due.astimezone(la)
    assert morning.time() == time(4)
    assert morning.date() > at.astimezone(la).date()
    assert done.interval_days == round((done.next_due - at).total_seconds() / 86_400, 4)
    # the REST and GraphQL lists (and `…/me/next`'s card) agree, from 04:00 on
    assert await due_ids(client, pupil, done.next_due - timedelta(seconds=1)) == []
    assert await due_ids(client, pupil, done.next_due) == [card]
    assert (await svc.next_item("acme", uid, done.next_due)).kind == "review"
    assert (await svc.next_item("acme", uid, done.next_due - timedelta(seconds=1))).kind != "review"

    # a later change of zone moves the next review's day; an older one, arriving late, does not
    await deliver(app, zone_event(uid, "Pacific/Kiritimati", datetime.now(UTC)),
                  zone_event(uid, "America/St_Johns", datetime.now(UTC) - timedelta(hours=1)),
                  topic="user.events")
    assert (await svc.repo.learner_settings("acme", uid)).time_zone == "Pacific/Kiritimati"
    again = await svc.review("acme", uid, NewReview(card_id=card, rating=3), at=done.next_due)
    assert again.next_due.astimezone(ZoneInfo("Pacific/Kiritimati")).time() == time(4)
    assert await due_ids(client, pupil, again.next_due) == [card]

    # erasure forgets the zone, and news of it arriving after does not bring it back
    await deliver(app, type_of(UserDeleted).envelope(UserDeleted(
        user_id=uid, deleted_by="x", deleted_at=AT), tenant="acme", subject=uid),
        zone_event(uid, "Asia/Tokyo", datetime.now(UTC) + timedelta(minutes=1)),
        topic="user.events")
    assert (await svc.repo.learner_settings("acme", uid)).time_zone is None
    assert (await svc.personal_data("acme", uid))["time_zone"] is None


async def zones_announced(app: FastAPI) -> list[tuple[str, str, str]]:
    """The (user, zone, changed_at) of every `user.time_zone_changed` on the bus, once
    identity's start-up announcement has ended and learning has read them."""
    await start_up_announced()
    bus = app.state.platform.bus
    assert isinstance(bus, EmbeddedEventBus)

    async def sent() -> bool:
        return not await identity_service(app).repo.outbox.pending(1) and bool(
            await bus.drained("learning")) and bool(await bus.drained(ZONES_GROUP))

    await eventually(sent, timeout_s=15, what="identity's events sent and read by learning")
    return [(e["data"]["user_id"], e["data"]["time_zone"], e["data"]["changed_at"])
            for e in (json.loads(m.value) for m in await bus.read("user.events"))
            if e["type"] == "bloop.identity.user.time_zone_changed.v1"]


def identity_service(app: FastAPI) -> IdentityService:
    svc: IdentityService = app.state.identity.state["service"]
    return svc


async def test_zones_set_before_identity_announced_them_reach_learning_at_its_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A zone set before identity announced zones was UTC to learning until set again (a
    learner in Tokyo got reviews due at 13:00): identity's start announces each once, an erased
    user's never, and a zone announced as it was set not again."""
    async with embedded_app(tmp_path, monkeypatch, ["identity", "learning"]) as (app, client):
        assert await zones_announced(app) == []  # (with no one to announce, before them)
        pupil, gone, later = [await learner(app, client) for _ in range(3)]
        uid, gone_id, later_id = [await me(client, h) for h in (pupil, gone, later)]
        repo = identity_service(app).repo
        users = [await identity_service(app).user("acme", who) for who in (uid, gone_id)]
        for user in users:  # as a version before the event wrote it: no event
            await repo.replace_user(user.model_copy(update={"time_zone": "Asia/Tokyo"}), [],
                                    fields=["time_zone"])
        await identity_service(app).delete_user("acme", gone_id, operator("acme"))
        r = await client.patch("/v1/tenants/acme/me", headers=later,
                               json={"time_zone": "America/Lima"})
        assert r.status_code == 200, r.text
        [(who, zone, _)] = await zones_announced(app)
        assert (who, zone) == (later_id, "America/Lima")
        assert (await service(app).repo.learner_settings("acme", uid)).time_zone is None
    async with embedded_app(tmp_path, monkeypatch, ["identity", "learning"]) as (app, client):
        first = await zones_announced(app)
        # the zone changed, it says, when the user was made: any change announced as it was
        # made is later, and learning keeps that one whichever comes first
        assert [(who, zone) for who, zone, _ in first] == [(later_id, "America/Lima"),
                                                           (uid, "Asia/Tokyo")]
        assert datetime.fromisoformat(first[1][2]) == users[0].created_at
        assert (await service(app).repo.learner_settings("acme", uid)).time_zone == "Asia/Tokyo"
        assert (await service(app).repo.learner_settings("acme", later_id)).time_zone == "America/Lima"
        assert (await service(app).repo.learner_settings("acme", gone_id)).time_zone is None
    async with embedded_app(tmp_path, monkeypatch, ["identity", "learning"]) as (app, client):
        assert await zones_announced(app) == first


async def test_zones_reach_learning_past_a_member_of_an_earlier_version(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """During a rolling upgrade a learning process of the version before zones were announced
    is a member of group `learning`: it skips the event, unknown to it, and commits past it.
    Learning reads zones in a group of its own, which no earlier version has, so they reach it
    all the same: the zones identity's start announces, one set before zones were announced
    and one an identity of the earlier version wrote over a zone announced (no event)."""
    async with embedded_app(tmp_path, monkeypatch, ["identity", "learning"]) as (app, client):
        pupil, elder = [await learner(app, client) for _ in range(2)]
        uid, elder_id = [await me(client, h) for h in (pupil, elder)]
        r = await client.patch("/v1/tenants/acme/me", headers=pupil,
                               json={"time_zone": "Europe/Paris"})
        assert r.status_code == 200, r.text
        await zones_announced(app)
        assert (await service(app).repo.learner_settings("acme", uid)).time_zone == "Europe/Paris"
        repo = identity_service(app).repo
        for who, zone in ((uid, "America/Lima"), (elder_id, "Asia/Tokyo")):  # the earlier version
            user = await identity_service(app).user("acme", who)
            await repo.replace_user(user.model_copy(update={"time_zone": zone}), [],
                                    fields=["time_zone"])
    async with embedded_app(tmp_path, monkeypatch, ["identity"]) as (app, client):
        await start_up_announced()
        bus = app.state.platform.bus
        assert isinstance(bus, EmbeddedEventBus)
        skipped: list[str] = []

        async def earlier_member(envelope: Envelope) -> None:
            skipped.append(envelope.type)

        bus.subscribe(Subscription("learning", ("user.events",), earlier_member,
                                   types=frozenset({USER_DELETED})))

        async def skipped_past() -> bool:
            return not await identity_service(app).repo.outbox.pending(1) and bool(
                await bus.drained("learning"))

        await eventually(skipped_past, timeout_s=15, what="the earlier member past the zones")
        assert skipped == []
    async with embedded_app(tmp_path, monkeypatch, ["identity", "learning"]) as (app, client):
        zones = {(who, zone) for who, zone, _ in await zones_announced(app)}
        assert {(uid, "America/Lima"), (elder_id, "Asia/Tokyo")} <= zones
        settings = service(app).repo.learner_settings
        assert (await settings("acme", uid)).time_zone == "America/Lima"
        assert (await settings("acme", elder_id)).time_zone == "Asia/Tokyo"


async def test_a_graph_listing_a_concept_or_an_edge_twice_is_refused_whole(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    """The first concept and the last edge's kind silently won."""
    _, client = running
    doc: Json = {"concepts": [{"id": "a", "name": "A"}, {"id": "b", "name": "B"},
                              {"id": "a", "name": "Another A"}],
                 "edges": [{"concept": "b", "requires": "a"},
                           {"concept": "b", "requires": "a", "kind": "recommended"}]}
    r = await client.put(f"{BASE}/graph", json=doc)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "validation_failed"
    assert [e["loc"] for e in r.json()["errors"]] == [["body", "concepts", "2", "id"],
                                                      ["body", "edges", "1"]]
    assert r.json()["detail"] == "body.concepts.2.id: the concept 'a' is listed twice (first at 0)"
    assert "b → a is listed twice" in r.json()["errors"][1]["msg"]
    assert (await client.get(f"{BASE}/graph")).json() == {"concepts": [], "edges": []}
    once = {"concepts": doc["concepts"][:2], "edges": doc["edges"][1:]}
    r = await client.put(f"{BASE}/graph", json=once)
    assert r.status_code == 200, r.text
    assert r.json()["edges"] == [{"concept": "b", "requires": "a", "kind": "recommended"}]


async def test_graphql_due_reviews_come_a_page_at_a_time(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    """Before, `myDueReviews` answered the 50 most overdue cards and no more, with no cursor."""
    app, client = running
    pupil = await pupil_with_cards_due(app, client, 7)
    due = (await client.get(f"{BASE}/me/reviews/due", headers=pupil)).json()["items"]
    text = """query ($after: String) {
        myDueReviews(tenant: "acme", first: 3, after: $after) { items { cardId version } next }
    }"""
    pages = await graphql_pages(client, pupil, text, "myDueReviews", "cardId")
    ids = [c["card_id"] for c in due]
    assert len(ids) == 7
    assert pages == [ids[:3], ids[3:6], ids[6:]]
    for bad, code in (("first: 0", "validation_failed"), ('after: "bm90IGEgY3Vyc29y"',
                                                          "bad_cursor"),
                      (f'after: "{NESTED_CURSOR}"', "bad_cursor")):
        r = await client.post("/graphql", json={
            "query": f'{{ myDueReviews(tenant: "acme", {bad}) {{ next }} }}'}, headers=pupil)
        assert r.json()["errors"][0]["extensions"]["code"] == code, bad


async def test_graphql_due_reviews_take_the_at_of_their_http_twin(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    """Before, `myDueReviews` had no `at`: it looked from now, and a cursor sent later met
    other cards than the page it came from (REST says to send the same `at` with it)."""
    app, client = running
    pupil = await pupil_with_cards_due(app, client, 3)
    text = """query ($at: DateTime, $after: String) {
        myDueReviews(tenant: "acme", first: 2, at: $at, after: $after) { items { cardId } next }
    }"""
    for at in ((datetime.now(UTC) - timedelta(days=1)).isoformat(),
               (datetime.now(UTC) + timedelta(days=400)).isoformat()):
        r = await client.get(f"{BASE}/me/reviews/due", params={"at": at, "limit": 2},
                             headers=pupil)
        body = (await client.post("/graphql", headers=pupil, json={
            "query": text, "variables": {"at": at}})).json()
        assert "errors" not in body, body
        assert [c["cardId"] for c in body["data"]["myDueReviews"]["items"]] == [
            c["card_id"] for c in r.json()["items"]]
        assert len(r.json()["items"]) == (0 if at < datetime.now(UTC).isoformat() else 2)
    for at in ("2026-12-04T09:00:00", "9999-12-31T23:00:00-05:00"):
        r = await client.get(f"{BASE}/me/reviews/due", params={"at": at}, headers=pupil)
        body = (await client.post("/graphql", headers=pupil, json={
            "query": text, "variables": {"at": at}})).json()
        [error] = body["errors"]
        assert (error["extensions"]["code"], error["extensions"]["status"]) == (
            r.json()["code"], r.status_code) == ("validation_failed", 422), at
        assert [e["loc"] for e in error["extensions"]["errors"]] == [["at"]], at


async def test_an_empty_after_is_the_first_page_of_due_reviews_as_of_every_list(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    """Before, `…/me/reviews/due?after=` and `myDueReviews(after: "")` were 422 `bad_cursor`,
    where every other list answered its first page."""
    app, client = running
    pupil = await pupil_with_cards_due(app, client, 3)
    first = (await client.get(f"{BASE}/me/reviews/due", params={"limit": 2},
                              headers=pupil)).json()
    assert len(first["items"]) == 2
    r = await client.get(f"{BASE}/me/reviews/due", params={"limit": 2, "after": ""},
                         headers=pupil)
    assert (r.status_code, r.json()) == (200, first)
    r = await client.get(f"{BASE}/me/enrolments?after=", headers=pupil)
    assert r.status_code == 200, r.text
    r = await client.post("/graphql", json={"query": """{
        myDueReviews(tenant: "acme", first: 2, after: "") { items { cardId } next }
        myMastery(tenant: "acme", after: "") { next } }"""}, headers=pupil)
    assert "errors" not in r.json(), r.json()
    page = r.json()["data"]["myDueReviews"]
    assert ([c["cardId"] for c in page["items"]], page["next"]) == (
        [c["card_id"] for c in first["items"]], first["next"])


async def test_a_due_list_time_that_utc_cannot_hold_is_refused(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    """The last hour of year 9999 behind UTC, or the first of year 1 ahead of it, as `at` or
    in a cursor, answered 500."""
    app, client = running
    pupil = await learner(app, client)
    url = f"{BASE}/me/reviews/due"
    for at in ("9999-12-31T23:00:00-05:00", "0001-01-01T00:30:00+05:00"):
        r = await client.get(url, params={"at": at}, headers=pupil)
        assert (r.status_code, r.json()["code"]) == (422, "validation_failed"), at
        r = await client.get(url, params={"after": cursor(at, "c")}, headers=pupil)
        assert (r.status_code, r.json()["code"]) == (422, "bad_cursor"), at
    r = await client.get(url, params={"at": "9999-12-31T23:00:00+00:00",
                                      "after": cursor("9999-12-31T23:00:00+00:00", "c")},
                         headers=pupil)
    assert (r.status_code, r.json()["items"]) == (200, [])


async def test_an_at_out_of_utcs_range_is_refused_naming_the_range_however_its_plus_is_sent(
        running: tuple[FastAPI, httpx.AsyncClient]) -> None:
    """A `+` not sent as %2B arrives as a space: the first hours of year 1 ahead of UTC were
    refused as "unexpected extra characters", in range ones such as 09:00+05:00 too."""
    app, client = running
    pupil = await learner(app, client)
    url = f"{BASE}/me/reviews/due"
    for at in ("0001-01-01T00:00:00+05:00", "0001-01-01T00:00:00%2B05:00",
               "9999-12-31T23:59:59-05:00"):
        r = await client.get(f"{url}?at={at}", headers=pupil)
        assert (r.status_code, r.json()["code"]) == (422, "validation_failed"), at
        assert "out of range in UTC, which runs from 0001-01-01T00:00:00Z to " \
            "9999-12-31T23:59:59.999999Z" in r.text, at
    for at in ("2026-12-04T09:00:00+05:00", "9999-12-31T23:59:59+05:00"):
        r = await client.get(f"{url}?at={at}", headers=pupil)
        assert (r.status_code, r.json()["items"]) == (200, []), at


async def test_spaced_review_of_a_completed_lessons_cards(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    app, client = running
    await python_course(app, client)
    r = await client.post(f"{BASE}/concepts/variables/cards",
                          json={"front": "What is a name?", "back": "A reference to a value."})
    assert r.status_code == 201, r.text
    card = r.json()
    assert (await client.post(f"{BASE}/concepts/ghost/cards",
                              json={"front": "x", "back": "y"})).status_code == 404
    pupil = await learner(app, client)
    assert (await client.get(f"{BASE}/me/reviews/due", headers=pupil)).json()["items"] == []
    await client.post(f"{BASE}/me/lessons/names/progress", json={"status": "completed"},
                      headers=pupil)
    [due] = (await client.get(f"{BASE}/me/reviews/due", headers=pupil)).json()["items"]
    assert due["card_id"] == card["id"]
    assert due["front"] == "What is a name?"
    # `at` names an instant: with its zone offset, any offset; a time without one is refused.
    later = (datetime.now(UTC) + timedelta(minutes=1)).astimezone(timezone(timedelta(hours=-7)))
    r = await client.get(f"{BASE}/me/reviews/due", params={"at": later.isoformat()}, headers=pupil)
    assert [c["card_id"] for c in r.json()["items"]] == [card["id"]]
    earlier = datetime.now(UTC) - timedelta(days=1)
    r = await client.get(f"{BASE}/me/reviews/due", params={"at": earlier.isoformat()}, headers=pupil)
    assert r.json()["items"] == []
    r = await client.get(f"{BASE}/me/reviews/due", params={"at": "2030-01-01T09:00:00"},
                         headers=pupil)
    assert (r.status_code, r.json()["code"]) == (422, "validation_failed")
    nxt = (await client.get(f"{BASE}/me/next", headers=pupil)).json()
    assert nxt["kind"] == "review"

    for rating in (0, 5):
        r = await client.post(f"{BASE}/me/reviews", json={"card_id": card["id"], "rating": rating},
                              headers=pupil)
        assert r.status_code == 422
        assert r.json()["code"] == "bad_rating"
    # a rating out of range is refused as such before the card is looked for
    for wrong in ({"card_id": "nope", "rating": 9}, {"card_id": card["id"], "rating": 9,
                                                     "version": 7}):
        r = await client.post(f"{BASE}/me/reviews", json=wrong, headers=pupil)
        assert (r.status_code, r.json()["code"]) == (422, "bad_rating"), wrong
    for loose in (True, 3.0, "3"):  # true was taken for 1 ("again"), resetting the schedule
        r = await client.post(f"{BASE}/me/reviews", json={"card_id": card["id"], "rating": loose},
                              headers=pupil)
        assert (r.status_code, r.json()["code"]) == (422, "validation_failed"), loose
    documented = (await client.get("/openapi.json")).json()["components"]["schemas"]
    assert documented["NewReview"]["properties"]["rating"] | {"minimum": 1, "maximum": 4} == \
        documented["NewReview"]["properties"]["rating"]
    r = await client.post(f"{BASE}/me/reviews", json={"card_id": card["id"], "rating": 3},
                          headers=pupil)
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["was_due"]
    assert first["interval_days"] > 0
    # Not due yet: allowed, and scheduled from the little time that passed.
    r = await client.post(f"{BASE}/me/reviews", json={"card_id": card["id"], "rating": 4},
                          headers=pupil)
    assert r.status_code == 200
    assert not r.json()["was_due"]
    assert r.json()["version"] == 2
    assert (await client.post(f"{BASE}/me/reviews", json={"card_id": "ghost", "rating": 3},
                              headers=pupil)).status_code == 404
    r = await client.post(f"{BASE}/me/reviews/optimise", headers=pupil)
    assert r.status_code == 422
    assert r.json()["code"] == "too_few_reviews"

    uid = await me(client, pupil)
    export = await client.get("/v1/tenants/acme/me/export", headers=pupil)
    assert export.status_code == 200, export.text
    mine = export.json()["services"]["learning"]
    assert len(mine["review_logs"]) == 2
    assert len(mine["cards"]) == 1
    assert mine["progress"][0]["lesson_id"] == "names"
    # A card taken out of the deck keeps its schedule to come back with: it is theirs too.
    assert (await client.delete(f"{BASE}/me/cards/{card['id']}", headers=pupil)).status_code == 204
    mine = (await client.get("/v1/tenants/acme/me/export", headers=pupil)).json()[
        "services"]["learning"]
    assert (len(mine["cards"]), len(mine["cards_taken_out"])) == (0, 1)
    assert mine["cards_taken_out"][0]["version"] == 2  # with both reviews

    deleted = type_of(UserDeleted).envelope(UserDeleted(user_id=uid, deleted_by="x",
                                                        deleted_at=AT), tenant="acme", subject=uid)
    await deliver(app, deleted, topic="user.events")
    erased: Json = {"enrolments": [], "paths_last_announced": {}, "placements": [],
                    "progress": [], "mastery": [], "cards": [], "cards_taken_out": [],
                    "review_logs": [], "scheduler_parameters": None, "time_zone": None}
    assert await service(app).personal_data("acme", uid) == erased
    # A quiz graded before the erasure, whose event comes after it (another topic), brings
    # nothing back.
    await deliver(app, attempt_event(uid, ["variables"], [True, True]))
    assert await service(app).personal_data("acme", uid) == erased


async def test_an_attempt_applied_while_its_learner_is_erased_leaves_nothing(running: tuple[
        FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch) -> None:
    app, client = running
    await python_course(app, client)
    svc = service(app)
    fit = svc._maybe_fit

    async def erased_meanwhile(tenant: str, *args: Any) -> Any:
        await svc.erase(tenant, "u-gone")  # the user.deleted consumer, between two writes
        return await fit(tenant, *args)

    monkeypatch.setattr(svc, "_maybe_fit", erased_meanwhile)
    assert await svc.apply_attempt("acme", "u-gone", "a1", ["variables"], [True, True], AT) == []
    assert (await svc.personal_data("acme", "u-gone"))["mastery"] == []


async def test_progress_sent_at_once_all_counts_and_completes_once(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    app, client = running
    await python_course(app, client)
    pupil = await learner(app, client)
    url = f"{BASE}/me/lessons/names/progress"
    answers = await asyncio.gather(
        *(client.post(url, json={"status": "started", "seconds": 10}, headers=pupil)
          for _ in range(18)),
        client.post(url, json={"status": "completed", "seconds": 5}, headers=pupil),
        client.post(url, json={"status": "completed"}, headers=pupil))
    # more at once than a writer's tries: some were refused 409 busy
    assert [r.status_code for r in answers] == [200] * 20
    [names] = (await client.get(f"{BASE}/me/progress", headers=pupil)).json()["lessons"]
    assert (names["status"], names["seconds"], names["version"]) == ("completed", 185, 20)
    assert len(service(app)._progress_turns) == 0
    bus = app.state.platform.bus
    values = [p.message.value for p in await service(app).repo.outbox.pending(500)]
    values += [m.value for m in await bus.read("learning.events")]
    assert [json.loads(v)["type"] for v in values].count("bloop.learning.lesson.completed.v1") == 1


async def test_progress_adds_at_most_the_time_since_the_update_before(running: tuple[
        FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch) -> None:
    """A day's seconds sent again and again within minutes made weeks: the first update counts
    whole (the lesson may have been open long before), each later one at most the time since
    the update before, and a minute."""
    app, client = running
    await python_course(app, client)
    pupil = await learner(app, client)
    clock = [AT]
    monkeypatch.setattr(learning_service, "now", lambda: clock[0])

    async def spent(seconds: int, after_s: int, status: str = "completed") -> int:
        clock[0] += timedelta(seconds=after_s)
        r = await client.post(f"{BASE}/me/lessons/names/progress",
                              json={"status": status, "seconds": seconds}, headers=pupil)
        assert r.status_code == 200, r.text
        total: int = r.json()["seconds"]
        return total

    assert await spent(3_600, 0, "started") == 3_600
    assert await spent(86_400, 5) == 3_600 + 65
    assert await spent(86_400, 0) == 3_665 + 60
    assert await spent(86_400, 0) == 3_725 + 60
    assert await spent(600, 1_200) == 3_785 + 600  # less than the time since: all of it
    assert await spent(5_000, 1_200) == 4_385 + 1_260
    [names] = (await client.get(f"{BASE}/me/progress", headers=pupil)).json()["lessons"]
    assert (names["status"], names["seconds"], names["version"]) == ("completed", 5_645, 6)
    assert names["updated_at"] == clock[0].isoformat().replace("+00:00", "Z")


async def test_a_completion_retried_after_a_failure_still_fills_the_deck(
        running: tuple[FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch) -> None:
    """The completion was stored, then the deck's write failed: the client's retry adds the
    lesson's cards though the lesson is already completed."""
    app, client = running
    await python_course(app, client)
    r = await client.post(f"{BASE}/concepts/variables/cards",
                          json={"front": "What is a name?", "back": "A reference to a value."})
    pupil = await learner(app, client)
    repo = service(app).repo
    adding = repo.add_card_states

    async def down(*args: object) -> None:
        raise StoreUnavailable("neo4j", "gone for a moment")

    monkeypatch.setattr(repo, "add_card_states", down)
    url = f"{BASE}/me/lessons/names/progress"
    assert (await client.post(url, json={"status": "completed"}, headers=pupil)).status_code == 503
    monkeypatch.setattr(repo, "add_card_states", adding)
    assert (await client.get(f"{BASE}/me/reviews/due", headers=pupil)).json()["items"] == []
    assert (await client.post(url, json={"status": "completed"}, headers=pupil)).status_code == 200
    [due] = (await client.get(f"{BASE}/me/reviews/due", headers=pupil)).json()["items"]
    assert due["card_id"] == r.json()["id"]


async def test_a_double_tap_on_a_review_counts_once(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    """Two reviews naming the version the card was shown at, sent at once: one applies, the
    other is told the card was reviewed since; the schedule moved once."""
    app, client = running
    await python_course(app, client)
    await client.post(f"{BASE}/concepts/variables/cards",
                      json={"front": "What is a name?", "back": "A reference to a value."})
    pupil = await learner(app, client)
    await client.post(f"{BASE}/me/lessons/names/progress", json={"status": "completed"},
                      headers=pupil)
    [shown] = (await client.get(f"{BASE}/me/reviews/due", headers=pupil)).json()["items"]
    assert shown["version"] == 0
    tap = {"card_id": shown["card_id"], "rating": 3, "version": shown["version"]}
    answers = await asyncio.gather(*(client.post(f"{BASE}/me/reviews", json=tap, headers=pupil)
                                     for _ in range(2)))
    assert sorted(r.status_code for r in answers) == [200, 409]
    refused = next(r for r in answers if r.status_code == 409).json()
    assert (refused["code"], refused["current_version"]) == ("already_reviewed", 1)
    assert refused["detail"] == "the card is at version 1, not 0"
    applied = next(r.json() for r in answers if r.status_code == 200)
    assert refused["next_due"] == applied["next_due"]  # one form of time across the API
    export = (await client.get("/v1/tenants/acme/me/export", headers=pupil)).json()
    assert len(export["services"]["learning"]["review_logs"]) == 1
    # A later review naming the version it was shown at applies.
    r = await client.post(f"{BASE}/me/reviews", json=tap | {"version": 1}, headers=pupil)
    assert (r.status_code, r.json()["version"]) == (200, 2)


async def test_reviews_of_one_card_naming_no_version_all_apply_however_many_at_once(
        running: tuple[FastAPI, httpx.AsyncClient]) -> None:
    """Before, each was tried five times against the others, one of which won each round: of
    ten at once, some were refused 409 busy, though a review naming no version always applies."""
    app, client = running
    pupil = await pupil_with_cards_due(app, client, 1)
    [shown] = (await client.get(f"{BASE}/me/reviews/due", headers=pupil)).json()["items"]
    answers = await asyncio.gather(*(client.post(
        f"{BASE}/me/reviews", json={"card_id": shown["card_id"], "rating": 3}, headers=pupil)
        for _ in range(16)))
    assert [r.status_code for r in answers] == [200] * 16, [r.text for r in answers]
    assert sorted(r.json()["version"] for r in answers) == list(range(1, 17))
    export = (await client.get("/v1/tenants/acme/me/export", headers=pupil)).json()
    assert len(export["services"]["learning"]["review_logs"]) == 16
    assert len(service(app)._review_turns) == 0


async def test_paths_refreshed_at_once_announce_a_change_once(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    app, client = running
    await python_course(app, client)
    pupil = await learner(app, client)
    await client.post(f"{BASE}/me/enrolments", json={"course_id": "py"}, headers=pupil)
    bus = app.state.platform.bus

    async def announced() -> int:
        values = [p.message.value for p in await service(app).repo.outbox.pending(500)]
        values += [m.value for m in await bus.read("learning.events")]
        return [json.loads(v)["type"] for v in values].count("bloop.learning.path.changed.v1")

    repo = service(app).repo
    uid = await me(client, pupil)
    shown = await repo.path_snapshot("acme", uid, "course:py")
    assert shown is not None
    # What was last announced differs from the path now (as after an edit not yet announced):
    # each refresh below finds the change; one announces it.
    assert await repo.save_path_snapshot("acme", uid, "course:py", ["gone"], [], previous=shown)
    before = await announced()
    answers = await asyncio.gather(*(client.get(f"{BASE}/me/paths", headers=pupil)
                                     for _ in range(4)))
    assert {r.status_code for r in answers} == {200}
    assert await announced() == before + 1
    assert await repo.path_snapshot("acme", uid, "course:py") == shown


async def test_goals_and_events_are_kept_inside_their_tenant(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    app, client = running
    await deliver(app, lesson_event("b-intro", ["secret"], tenant="beta"),
                  course_event(["b-intro"], course="bpy", tenant="beta"))
    pupil = await learner(app, client)
    for body in ({"course_id": "bpy"}, {"goal_concept": "secret"}):
        r = await client.post(f"{BASE}/me/enrolments", json=body, headers=pupil)
        assert r.status_code == 404, r.text
    assert (await client.get(f"{BASE}/me/path", params={"concept": "secret"},
                             headers=pupil)).status_code == 404
    assert (await client.get("/v1/tenants/beta/learning/me/paths", headers=pupil)).status_code == 403
    assert (await client.post(f"{BASE}/me/enrolments", json={"course_id": "bpy", "goal_concept": "x"},
                              headers=pupil)).status_code == 422
    assert await service(app).concepts("acme") == []


async def test_a_concept_first_met_in_a_lesson_is_named_later(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    """Before, a concept named after its id stayed so: nothing could rename it."""
    app, client = running
    await deliver(app, lesson_event("l1", ["big-o"]))
    url = f"{BASE}/concepts/big-o"
    assert (await client.get(url)).json()["name"] == "Big o"
    r = await client.patch(url, json={"name": "Big-O notation"})
    assert r.status_code == 200, r.text
    assert (r.json()["name"], r.json()["description"]) == ("Big-O notation", "")
    r = await client.patch(url, json={"description": "How cost grows with input."})
    assert (r.json()["name"], r.json()["description"]) == (
        "Big-O notation", "How cost grows with input.")
    assert (await client.get(url)).json()["name"] == "Big-O notation"
    for bad in ({}, {"name": ""}, {"id": "other"}, {"name": "x" * 201}):
        r = await client.patch(url, json=bad)
        assert (r.status_code, r.json()["code"]) == (422, "validation_failed"), bad
    r = await client.patch(f"{BASE}/concepts/ghost", json={"name": "G"})
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
    pupil = await learner(app, client)
    assert (await client.patch(url, json={"name": "Mine"}, headers=pupil)).status_code == 403


async def test_two_educators_renaming_one_concept_lose_no_edit_unknowingly(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    """Learning's concepts had no version: a rename naming the version read (`If-Match`)
    after another rename had landed answered 200, and the first rename was lost unknowingly."""
    app, client = running
    r = await client.post(f"{BASE}/concepts", json={"id": "loops", "name": "Loops"})
    assert (r.status_code, r.json()["version"], r.headers["etag"]) == (201, 1, '"1"')
    url = f"{BASE}/concepts/loops"
    r = await client.get(url)
    assert (r.json()["version"], r.headers["etag"]) == (1, '"1"')
    seen = {"If-Match": r.headers["etag"]}
    r = await client.patch(url, json={"name": "Loops and ranges"}, headers=seen)
    assert (r.status_code, r.json()["version"], r.headers["etag"]) == (200, 2, '"2"')
    r = await client.patch(url, json={"name": "Iteration"}, headers=seen)
    assert (r.status_code, r.json()["code"], r.json()["current_version"]) == (
        409, "stale_version", 2)
    assert (await client.get(url)).json()["name"] == "Loops and ranges"
    r = await client.patch(url, json={"description": "Repeating."})  # without: it applies
    assert (r.status_code, r.json()["version"]) == (200, 3)
    r = await client.patch(url, json={"name": "X"}, headers={"If-Match": '"three"'})
    assert (r.status_code, r.json()["code"]) == (400, "bad_if_match")
    # a lesson's publication naming it otherwise renames it, as content names it
    await deliver(app, lesson_event("l1", ["loops"], concept_names={"loops": "For loops"}))
    r = await client.patch(url, json={"name": "Mine"}, headers={"If-Match": '"3"'})
    assert (r.status_code, r.json()["current_version"]) == (409, 4)
    r = await client.patch(url, json={"name": "Mine"}, headers={"If-Match": '"4"'})
    assert (r.status_code, r.json()["name"], r.headers["etag"]) == (200, "Mine", '"5"')
    listed = (await client.get(f"{BASE}/concepts")).json()["items"]
    assert [(c["id"], c["version"]) for c in listed] == [("loops", 5)]
    r = await client.post("/graphql", json={
        "query": '{ prerequisiteGraph(tenant: "acme") { concepts { id name version } } }'})
    assert r.json()["data"]["prerequisiteGraph"]["concepts"] == [
        {"id": "loops", "name": "Mine", "version": 5}]


async def test_content_events_are_read_tolerantly(running: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, client = running
    newer = lesson_event("l1", ["loops"], module="m1", difficulty="easy", version=3)
    older = lesson_event("l1", ["sets"], version=2)
    await deliver(app, newer, older, newer)
    stored = await service(app).repo.get_lesson("acme", "l1")
    assert stored is not None
    assert (stored.teaches, stored.module_id, stored.version) == (["loops"], "m1", 3)
    await deliver(app, course_event(["l1"]))
    pupil = await learner(app, client)
    await client.post(f"{BASE}/me/enrolments", json={"course_id": "py"}, headers=pupil)
    await client.post(f"{BASE}/me/lessons/l1/progress", json={"status": "completed"}, headers=pupil)
    report = (await client.get(f"{BASE}/me/progress", headers=pupil)).json()
    assert report["courses"][0]["modules"] == [{"id": "m1", "lessons": 1, "completed": 1}]


async def test_a_draft_edit_reaches_learners_at_the_next_publication(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    app, client = running
    await python_course(app, client)
    pupil = await learner(app, client)
    await client.post(f"{BASE}/me/enrolments", json={"course_id": "py"}, headers=pupil)

    async def steps() -> list[tuple[str, str, list[str]]]:
        [path] = (await client.get(f"{BASE}/me/paths", headers=pupil)).json()["items"]
        return [(s["lesson_id"], s["title"], s["blocked_by"]) for s in path["steps"]]

    before = await steps()
    # An author rewrites "funcs" in the draft: it now also requires recursion, under a new title.
    draft = type_of(LessonUpdated).envelope(LessonUpdated(
        lesson_id="funcs", course_id="py", lesson_version=2, title="Functions, rewritten",
        estimated_minutes=40, teaches=["functions"], requires=["variables", "recursion"],
        updated_at=AT), tenant="acme", subject="funcs")
    await deliver(app, draft)
    assert await steps() == before
    stored = await service(app).repo.get_lesson("acme", "funcs")
    assert stored is not None
    assert (stored.version, stored.title) == (1, "Funcs")

    await deliver(app, lesson_event("funcs", ["functions"], ["variables", "recursion"], 40, 2,
                                    version=2, title="Functions, rewritten"))
    stored = await service(app).repo.get_lesson("acme", "funcs")
    assert stored is not None
    assert (stored.version, stored.title, stored.requires) == (
        2, "Functions, rewritten", ["variables", "recursion"])
    assert ("funcs", "Functions, rewritten") in [(lid, title) for lid, title, _ in await steps()]


def flashcards(job: str, lesson: str, cards: list[AiCard], version: int = 1) -> Envelope:
    """What the AI service announces when a job made `cards` from `version` of `lesson` of
    course py."""
    return type_of(FlashcardsGenerated).envelope(FlashcardsGenerated(
        job_id=job, lesson_id=lesson, lesson_version=version, course_id="py",
        concept_ids=["recursion"], source="offline", cards=cards), tenant="acme", subject=job)


async def test_flashcards_the_ai_service_generates_become_review_cards(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    app, client = running
    await python_course(app, client)
    generated = flashcards("job-1", "funcs", [
        AiCard(front="What calls itself?", back="A recursive function.", concept_id="recursion"),
        AiCard(front="What does `def` make?", back="A function.", concept_id=None),
        AiCard(front="What is a closure?", back="A function with its scope.",
               concept_id="closures")])
    await deliver(app, generated, generated, topic="video.events")  # a redelivery adds nothing
    cards = {}
    for concept in ("recursion", "functions", "closures"):
        r = await client.get(f"{BASE}/concepts/{concept}/cards")
        assert r.status_code == 200, r.text
        [card] = r.json()["items"]
        cards[concept] = card
    assert cards["recursion"]["front"] == "What calls itself?"
    assert cards["functions"]["back"] == "A function."  # the lesson's concept
    assert {c["source"] for c in cards.values()} == {"ai"}

    pupil = await learner(app, client)
    r = await client.post(f"{BASE}/me/cards/{cards['recursion']['id']}", headers=pupil)
    assert r.status_code == 201, r.text
    [due] = (await client.get(f"{BASE}/me/reviews/due", headers=pupil)).json()["items"]
    assert due["front"] == "What calls itself?"


async def test_flashcards_of_an_unpublished_lesson_reach_learners_once_it_is_published(
        running: tuple[FastAPI, httpx.AsyncClient]) -> None:
    """Flashcards generated from a draft (a lesson never published, or a draft of a published
    one) went straight into the decks of the learners who had studied their concept, and any
    learner read them in the concept's cards: text content never showed them."""
    app, client = running
    await python_course(app, client)
    pupil = await learner(app, client)
    r = await client.post(f"{BASE}/me/lessons/recur/progress", json={"status": "completed"},
                          headers=pupil)
    assert r.status_code == 200, r.text
    secret = flashcards("job-draft", "exam", [
        AiCard(front="What is the exam password?", back="Swordfish.", concept_id="recursion")])
    ahead = flashcards("job-ahead", "recur", [
        AiCard(front="What is tail recursion?", back="A last call to itself.",
               concept_id="recursion")], version=3)
    await deliver(app, secret, ahead, topic="video.events")
    await service(app).settled()
    url = f"{BASE}/concepts/recursion/cards"

    async def seen(who: dict[str, str]) -> tuple[list[str], list[str]]:
        """The backs of the concept's cards as `who` lists them, and of their due cards."""
        listed = (await client.get(url, headers=who)).json()["items"]
        due = (await client.get(f"{BASE}/me/reviews/due", headers=who)).json()["items"]
        return sorted(c["back"] for c in listed), sorted(c["back"] for c in due)

    assert await seen(pupil) == ([], [])
    # an educator who may not read every draft sees no held card either; the admins do
    assert sorted(c["back"] for c in (await client.get(url)).json()["items"]) == []
    admin = await member(app, client, "acme", ["tenant_admin"])
    staff = {c["back"]: c for c in (await client.get(url, headers=admin)).json()["items"]}
    assert {back: c["held_until"] for back, c in staff.items()} == {
        "Swordfish.": {"lesson_id": "exam", "lesson_version": 1},
        "A last call to itself.": {"lesson_id": "recur", "lesson_version": 3}}
    held = staff["Swordfish."]["id"]
    r = await client.post(f"{BASE}/me/cards/{held}", headers=pupil)
    assert r.status_code == 404, r.text
    assert (await client.get(f"{BASE}/me/next", headers=pupil)).json()["kind"] == "nothing"
    r = await client.patch(f"{url}/{held}", json={"back": "Swordfish, for now."})
    assert (r.status_code, r.json()["held_until"]) == (
        200, {"lesson_id": "exam", "lesson_version": 1})

    await deliver(app, lesson_event("recur", ["recursion"], version=2, position=3))
    await service(app).settled()
    assert await seen(pupil) == ([], [])
    await deliver(app, lesson_event("recur", ["recursion"], version=3, position=3))
    await service(app).settled()
    assert await seen(pupil) == (["A last call to itself."], ["A last call to itself."])
    await deliver(app, lesson_event("exam", ["recursion"], course="prep"))
    await service(app).settled()
    both = sorted(["A last call to itself.", "Swordfish, for now."])
    assert await seen(pupil) == (both, both)
    assert [c["held_until"] for c in (await client.get(url)).json()["items"]] == [None, None]


async def test_flashcards_of_a_draft_never_published_as_such_stay_held(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    """Cards were released by any later version's publication, a rollback to the old text
    included: the abandoned draft's text reached learners' decks."""
    app, client = running
    await python_course(app, client)
    pupil = await learner(app, client)
    r = await client.post(f"{BASE}/me/lessons/recur/progress", json={"status": "completed"},
                          headers=pupil)
    assert r.status_code == 200, r.text
    abandoned = flashcards("job-v2", "recur", [
        AiCard(front="What did the abandoned draft say?", back="Nothing learners read.",
               concept_id="recursion")], version=2)
    await deliver(app, abandoned, topic="video.events")
    await service(app).settled()
    # the course rolled back: v1's text published again as v3
    await deliver(app, lesson_event("recur", ["recursion"], version=3, position=3))
    await service(app).settled()
    url = f"{BASE}/concepts/recursion/cards"
    assert (await client.get(url, headers=pupil)).json()["items"] == []
    assert (await client.get(f"{BASE}/me/reviews/due", headers=pupil)).json()["items"] == []


async def test_flashcards_made_again_from_the_version_published_reach_learners(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    """A draft's flashcards, held, then the draft edited again and published (the same text):
    flashcards asked for the version published made the same cards, skipped as duplicates of
    the held ones, which stayed held for good. A retired one stays retired."""
    app, client = running
    await python_course(app, client)
    pupil = await learner(app, client)
    r = await client.post(f"{BASE}/me/lessons/recur/progress", json={"status": "completed"},
                          headers=pupil)
    assert r.status_code == 200, r.text
    made = [AiCard(front="Complete: The zanzibar _____ excites electrons.",
                   back="light reaction", concept_id="recursion"),
            AiCard(front="What was retired?", back="This card.", concept_id="recursion")]
    await deliver(app, flashcards("job-v11", "recur", made, version=11), topic="video.events")
    await service(app).settled()
    url = f"{BASE}/concepts/recursion/cards"
    admin = await member(app, client, "acme", ["tenant_admin"])
    staff = {c["back"]: c for c in (await client.get(url, headers=admin)).json()["items"]}
    assert {b: c["held_until"] for b, c in staff.items()} == {
        "light reaction": {"lesson_id": "recur", "lesson_version": 11},
        "This card.": {"lesson_id": "recur", "lesson_version": 11}}
    r = await client.delete(f"{url}/{staff['This card.']['id']}")
    assert r.status_code == 204, r.text
    await deliver(app, lesson_event("recur", ["recursion"], version=12, position=3))
    await deliver(app, flashcards("job-v12", "recur", made, version=12), topic="video.events")
    await service(app).settled()

    listed = (await client.get(url, headers=admin)).json()["items"]
    assert [(c["id"], c["back"], c["held_until"]) for c in listed] == [
        (staff["light reaction"]["id"], "light reaction", None)]
    due = (await client.get(f"{BASE}/me/reviews/due", headers=pupil)).json()["items"]
    assert [c["back"] for c in due] == ["light reaction"]


async def test_educators_fix_or_retire_cards_and_learners_drop_them(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    """Before, a wrong card stayed in every deck for good, and a learner could not drop one."""
    app, client = running
    await python_course(app, client)
    generated = flashcards("job-2", "recur", [
        AiCard(front="What calls itself?", back="A loop.", concept_id="recursion"),
        AiCard(front="What stops it?", back="A base case.", concept_id="recursion")])
    await deliver(app, generated, topic="video.events")
    url = f"{BASE}/concepts/recursion/cards"
    fronts = {c["front"]: c for c in (await client.get(url)).json()["items"]}
    wrong, kept = fronts["What calls itself?"], fronts["What stops it?"]
    pupil, other = await learner(app, client), await learner(app, client)
    for who in (pupil, other):
        r = await client.post(f"{BASE}/me/lessons/recur/progress", json={"status": "completed"},
                              headers=who)
        assert r.status_code == 200, r.text

    async def due(who: dict[str, str]) -> list[str]:
        r = await client.get(f"{BASE}/me/reviews/due", headers=who)
        assert r.status_code == 200, r.text
        return sorted(x["back"] for x in r.json()["items"])

    assert await due(pupil) == ["A base case.", "A loop."]
    r = await client.patch(f"{url}/{wrong['id']}", json={"back": "A recursive function."})
    assert (r.status_code, r.json()["back"], r.json()["front"]) == (
        200, "A recursive function.", "What calls itself?")
    assert await due(pupil) == ["A base case.", "A recursive function."]
    # two fixes at once, each to one side: both stay
    fixes = await asyncio.gather(
        client.patch(f"{url}/{wrong['id']}", json={"front": "What calls itself, then?"}),
        client.patch(f"{url}/{wrong['id']}", json={"back": "A recursive function."}))
    assert [f.status_code for f in fixes] == [200, 200]
    r = await client.get(url)
    assert [(c["front"], c["back"]) for c in r.json()["items"] if c["id"] == wrong["id"]] == [
        ("What calls itself, then?", "A recursive function.")]
    # two editors who read version 4 and each rewrite the back: the second is told, not lost
    card_url, seen = f"{url}/{wrong['id']}", {"If-Match": '"4"'}
    assert [c["version"] for c in r.json()["items"] if c["id"] == wrong["id"]] == [4]
    rivals = await asyncio.gather(*(client.patch(card_url, json={"back": b}, headers=seen)
                                    for b in ("A function that calls itself.", "Recursion.")))
    assert sorted(f.status_code for f in rivals) == [200, 409]
    [won] = [f for f in rivals if f.status_code == 200]
    [lost] = [f.json() for f in rivals if f.status_code == 409]
    assert (won.json()["version"], won.headers["ETag"]) == (5, '"5"')
    assert (lost["code"], lost["current_version"]) == ("stale_version", 5)
    r = await client.get(url)
    assert [c["back"] for c in r.json()["items"] if c["id"] == wrong["id"]] == [won.json()["back"]]
    for tag in ('"4", "5"', "*", "five"):
        r = await client.patch(card_url, json={"back": "x"}, headers={"If-Match": tag})
        assert (r.status_code, r.json()["code"]) == (400, "bad_if_match"), tag
    r = await client.patch(card_url, json={"back": "A recursive function."},
                           headers={"If-Match": "5"})
    assert (r.status_code, r.json()["version"]) == (200, 6)
    for bad, status in (({}, 422), ({"back": ""}, 422), ({"back": "x", "id": "y"}, 422)):
        assert (await client.patch(f"{url}/{wrong['id']}", json=bad)).status_code == status, bad
    r = await client.patch(f"{BASE}/concepts/functions/cards/{wrong['id']}", json={"back": "x"})
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
    assert (await client.patch(f"{url}/{wrong['id']}", json={"back": "x"},
                               headers=pupil)).status_code == 403

    # a learner drops a card: it is not due, completing the lesson again does not bring it back
    r = await client.delete(f"{BASE}/me/cards/{kept['id']}", headers=pupil)
    assert r.status_code == 204, r.text
    r = await client.delete(f"{BASE}/me/cards/{kept['id']}", headers=pupil)  # not there now
    assert (r.status_code, r.json()["code"]) == (404, "not_in_deck")
    assert await due(pupil) == ["A recursive function."]
    await client.post(f"{BASE}/me/lessons/recur/progress", json={"status": "completed"},
                      headers=pupil)
    assert await due(pupil) == ["A recursive function."]
    assert await due(other) == ["A base case.", "A recursive function."]
    r = await client.post(f"{BASE}/me/reviews", json={"card_id": kept["id"], "rating": 3},
                          headers=pupil)
    assert (r.status_code, r.json()["code"]) == (404, "not_in_deck"), r.text
    r = await client.delete(f"{BASE}/me/cards/ghost", headers=pupil)
    assert (r.status_code, r.json()["code"]) == (404, "not_in_deck")
    assert (await client.post(f"{BASE}/me/cards/{kept['id']}", headers=pupil)).status_code == 201
    assert await due(pupil) == ["A base case.", "A recursive function."]

    # an educator retires a card: it leaves every deck, and generating it again adds nothing
    assert (await client.delete(f"{url}/{wrong['id']}", headers=pupil)).status_code == 403
    assert (await client.delete(f"{url}/{wrong['id']}")).status_code == 204
    assert (await client.delete(f"{url}/{wrong['id']}")).status_code == 404
    await deliver(app, generated, topic="video.events")
    regenerated = flashcards("job-3", "recur", [  # another job making the same cards
        AiCard(front="What calls itself?", back="A loop.", concept_id="recursion"),
        AiCard(front="What stops it?", back="A base case.", concept_id="recursion")])
    await deliver(app, regenerated, topic="video.events")
    assert [c["id"] for c in (await client.get(url)).json()["items"]] == [kept["id"]]
    for who in (pupil, other):
        assert await due(who) == ["A base case."]
    assert (await client.post(f"{BASE}/me/cards/{wrong['id']}", headers=pupil)).status_code == 404


def lesson_deleted(lid: str, version: int = 1) -> Envelope:
    return type_of(LessonDeleted).envelope(LessonDeleted(
        lesson_id=lid, course_id="py", lesson_version=version, deleted_at=AT),
        tenant="acme", subject=lid)


async def test_a_deleted_lessons_ai_cards_leave_every_deck(running: tuple[
        FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch) -> None:
    """AI cards kept no lesson: those of a deleted lesson stayed in learners' decks for good,
    drilling text that no longer exists."""
    monkeypatch.setattr(learning_service, "RETIRE_CARDS", 2)  # a few writes, not one
    app, client = running
    await python_course(app, client)
    url = f"{BASE}/concepts/recursion/cards"
    r = await client.post(url, json={"front": "Who wrote this?", "back": "An educator."})
    assert r.status_code == 201, r.text
    made = [AiCard(front=f"Recursion {n}?", back=f"Lesson recur {n}.", concept_id="recursion")
            for n in range(3)]
    await deliver(app, flashcards("job-r", "recur", made),
                  flashcards("job-draft", "recur", [AiCard(
                      front="Draft?", back="Held.", concept_id="recursion")], version=2),
                  flashcards("job-f", "funcs", [AiCard(
                      front="From funcs?", back="Lesson funcs.", concept_id="recursion")]),
                  topic="video.events")
    pupil = await learner(app, client)
    r = await client.post(f"{BASE}/me/lessons/recur/progress", json={"status": "completed"},
                          headers=pupil)
    assert r.status_code == 200, r.text
    await service(app).settled()
    admin = await member(app, client, "acme", ["tenant_admin"])

    async def listed() -> dict[str, str | None]:
        r = await client.get(url, headers=admin)
        assert r.status_code == 200, r.text
        return {c["back"]: c["lesson_id"] for c in r.json()["items"]}

    async def due() -> list[str]:
        r = await client.get(f"{BASE}/me/reviews/due", headers=pupil)
        assert r.status_code == 200, r.text
        return sorted(c["back"] for c in r.json()["items"])

    recur = [f"Lesson recur {n}." for n in range(3)]
    assert await listed() == {"An educator.": None, "Held.": "recur", "Lesson funcs.": "funcs",
                              **dict.fromkeys(recur, "recur")}
    assert await due() == sorted(["An educator.", "Lesson funcs.", *recur])
    [reviewed] = [c for c in (await client.get(f"{BASE}/me/reviews/due", headers=pupil)).json()[
        "items"] if c["back"] == recur[0]]
    r = await client.post(f"{BASE}/me/reviews", json={"card_id": reviewed["card_id"], "rating": 3},
                          headers=pupil)
    assert r.status_code == 200, r.text

    deleted = lesson_deleted("recur")
    again = dataclasses.replace(deleted, id=uuid.uuid4())  # the same deletion, sent twice
    for envelopes in ((deleted,), (deleted, again)):
        await deliver(app, *envelopes)
        await service(app).settled()
        assert await listed() == {"An educator.": None, "Lesson funcs.": "funcs"}
        assert await due() == ["An educator.", "Lesson funcs."]
    r = await client.post(f"{BASE}/me/reviews", json={"card_id": reviewed["card_id"], "rating": 3},
                          headers=pupil)
    assert (r.status_code, r.json()["code"]) == (404, "not_in_deck")
    r = await client.post(f"{BASE}/me/cards/{reviewed['card_id']}", headers=pupil)
    assert r.status_code == 404, r.text
    export = (await client.get("/v1/tenants/acme/me/export", headers=pupil)).json()
    assert len(export["services"]["learning"]["review_logs"]) == 1  # their history stays
    await deliver(app, flashcards("job-again", "recur", made), topic="video.events")  # retired
    await service(app).settled()
    assert await due() == ["An educator.", "Lesson funcs."]


async def test_cards_stored_as_their_lesson_is_deleted_are_retired(running: tuple[
        FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch) -> None:
    """Flashcards and the lesson's deletion arrive on two topics: cards stored after the
    deletion's sweep, from the lesson read before it, would stay."""
    app, client = running
    await python_course(app, client)
    svc = service(app)
    add_card = svc.repo.add_card
    deleting: list[bool] = []

    async def deleted_meanwhile(card: Card) -> bool:
        if not deleting:
            deleting.append(True)
            assert await svc.forget_lesson("acme", "recur", 1)
        return await add_card(card)

    monkeypatch.setattr(svc.repo, "add_card", deleted_meanwhile)
    await deliver(app, flashcards("job-r", "recur", [
        AiCard(front="Late?", back="Yes.", concept_id="recursion")]), topic="video.events")
    assert deleting
    assert await svc.repo.cards_of("acme", ["recursion"]) == []


async def deck(app: FastAPI, uid: str) -> dict[str, int]:
    """The learner's cards (front: version of its schedule)."""
    svc = service(app)
    states = await svc.repo.card_states("acme", uid)
    cards = {c.id: c.front for c in await svc.repo.get_cards("acme", [s.card_id for s in states])}
    return {cards[s.card_id]: s.version for s in states}


async def test_cards_made_later_join_the_decks_of_those_who_completed_the_lesson(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    """Cards of a concept joined a deck only when its lesson was completed, so an educator's
    card or flashcards generated afterwards reached no one who had completed it already."""
    app, client = running
    await python_course(app, client)
    done, started, elsewhere, gone = [await learner(app, client) for _ in range(4)]
    for who, lesson, status in ((done, "names", "completed"), (started, "names", "started"),
                                (elsewhere, "exprs", "completed"), (gone, "names", "completed")):
        r = await client.post(f"{BASE}/me/lessons/{lesson}/progress", json={"status": status},
                              headers=who)
        assert r.status_code == 200, r.text
    uid = {name: await me(client, who) for name, who in (
        ("done", done), ("started", started), ("elsewhere", elsewhere), ("gone", gone))}
    await service(app).erase("acme", uid["gone"])

    r = await client.post(f"{BASE}/concepts/variables/cards",
                          json={"front": "What is a name?", "back": "A reference to a value."})
    assert r.status_code == 201, r.text
    await service(app).settled()
    [due] = (await client.get(f"{BASE}/me/reviews/due", headers=done)).json()["items"]
    assert due["front"] == "What is a name?"
    generated = flashcards("job-late", "names", [
        AiCard(front="What does `=` do?", back="Binds a name.", concept_id="variables"),
        AiCard(front="Can a name change?", back="It can be bound again.", concept_id=None),
        AiCard(front="What is `1 + 2`?", back="An expression.", concept_id="expressions")])
    await deliver(app, generated, topic="video.events")
    await service(app).settled()
    assert await deck(app, uid["done"]) == {
        "What is a name?": 0, "What does `=` do?": 0, "Can a name change?": 0}
    assert await deck(app, uid["elsewhere"]) == {"What is `1 + 2`?": 0}
    assert await deck(app, uid["started"]) == {}
    assert await deck(app, uid["gone"]) == {}

    # The event again: a schedule stays, a dropped or retired card does not come back.
    cards = {c["front"]: c["id"] for c in (await client.get(
        f"{BASE}/concepts/variables/cards")).json()["items"]}
    r = await client.post(f"{BASE}/me/reviews", json={
        "card_id": cards["What does `=` do?"], "rating": 3}, headers=done)
    assert r.status_code == 200, r.text
    r = await client.delete(f"{BASE}/me/cards/{cards['Can a name change?']}", headers=done)
    assert r.status_code == 204, r.text
    r = await client.delete(f"{BASE}/concepts/variables/cards/{cards['What is a name?']}")
    assert r.status_code == 204, r.text
    await deliver(app, generated, topic="video.events")
    await service(app).settled()
    assert await deck(app, uid["done"]) == {"What does `=` do?": 1}
    assert await deck(app, uid["gone"]) == {}


async def test_a_republished_lesson_brings_the_cards_of_what_it_now_teaches(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    """A lesson republished teaching another concept left that concept's cards out of the
    decks of the learners who had completed it."""
    app, client = running
    await python_course(app, client)
    for front in ("What does `def` make?", "What does `return` do?"):
        r = await client.post(f"{BASE}/concepts/functions/cards", json={"front": front,
                                                                         "back": "..."})
        assert r.status_code == 201, r.text
    done, other = await learner(app, client), await learner(app, client)
    for who, lesson in ((done, "names"), (other, "exprs")):
        r = await client.post(f"{BASE}/me/lessons/{lesson}/progress",
                              json={"status": "completed"}, headers=who)
        assert r.status_code == 200, r.text
    uid, other_id = await me(client, done), await me(client, other)
    assert await deck(app, uid) == {}

    republished = lesson_event("names", ["variables", "functions"], version=2)
    await deliver(app, republished)
    await service(app).settled()
    assert await deck(app, uid) == {"What does `def` make?": 0, "What does `return` do?": 0}
    assert await deck(app, other_id) == {}
    [first, second] = (await client.get(f"{BASE}/concepts/functions/cards")).json()["items"]
    r = await client.post(f"{BASE}/me/reviews", json={"card_id": first["id"], "rating": 3},
                          headers=done)
    assert r.status_code == 200, r.text
    await client.delete(f"{BASE}/me/cards/{second['id']}", headers=done)
    await deliver(app, republished, lesson_event("names", ["functions"], version=3),
                  lesson_event("names", ["variables", "functions"], version=4))
    await service(app).settled()
    assert await deck(app, uid) == {"What does `def` make?": 1}


async def test_new_cards_join_decks_after_the_request_answers(running: tuple[
        FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch) -> None:
    app, client = running
    await python_course(app, client)
    pupil = await learner(app, client)
    await client.post(f"{BASE}/me/lessons/names/progress", json={"status": "completed"},
                      headers=pupil)
    repo = service(app).repo
    adding = repo.add_to_decks
    release = asyncio.Event()

    async def slow(*args: Any) -> None:
        await release.wait()
        await adding(*args)

    monkeypatch.setattr(repo, "add_to_decks", slow)
    for n in range(2):  # the second joins the dealing under way
        r = await asyncio.wait_for(client.post(f"{BASE}/concepts/variables/cards", json={
            "front": f"Question {n}?", "back": "Answer."}), 1)
        assert r.status_code == 201, r.text
    assert (await client.get(f"{BASE}/me/reviews/due", headers=pupil)).json()["items"] == []
    release.set()
    await service(app).settled()
    items = (await client.get(f"{BASE}/me/reviews/due", headers=pupil)).json()["items"]
    assert sorted(c["front"] for c in items) == ["Question 0?", "Question 1?"]

    release.clear()
    r = await client.post(f"{BASE}/concepts/variables/cards", json={"front": "Late?",
                                                                    "back": "Yes."})
    assert r.status_code == 201, r.text
    await service(app).close(wait_s=0.1)  # a shutdown stops it; the next completion adds it
    assert not service(app)._dealing.running()
    monkeypatch.setattr(repo, "add_to_decks", adding)
    await client.post(f"{BASE}/me/lessons/names/progress", json={"status": "completed"},
                      headers=pupil)
    items = (await client.get(f"{BASE}/me/reviews/due", headers=pupil)).json()["items"]
    assert len(items) == 3


async def test_graphql_reads_the_graph_and_the_learners_path(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    app, client = running
    await python_course(app, client)
    pupil = await learner(app, client)
    await client.post(f"{BASE}/me/enrolments", json={"course_id": "py"}, headers=pupil)
    r = await client.post("/graphql", json={"query": GRAPH})  # an educator
    assert {"concept": "recursion", "requires": "functions", "kind": "required"} in r.json()[
        "data"]["prerequisiteGraph"]["edges"]
    text = """{ myPaths(tenant: "acme") { items { goal steps { lessonId blockedBy } } next }
                myNext(tenant: "acme") { kind lesson { lessonId } }
                myPath(tenant: "acme", concept: "ghost") { goal } }"""
    r = await client.post("/graphql", json={"query": text}, headers=pupil)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    [path] = data["myPaths"]["items"]
    assert (path["goal"], data["myPaths"]["next"]) == ("course:py", None)
    assert [s["lessonId"] for s in path["steps"]] == ["names", "exprs", "funcs", "recur"]
    assert data["myNext"] == {"kind": "lesson", "lesson": {"lessonId": "names"}}
    assert data["myPath"] is None
    r = await client.post("/graphql", json={"query": '{ myPaths(tenant: "beta") { next } }'},
                          headers=pupil)
    assert r.json()["errors"]
    # names completed, variables not mastered: names stays, completed, and is not next.
    r = await client.post(f"{BASE}/me/lessons/names/progress", json={"status": "completed"},
                          headers=pupil)
    assert r.status_code == 200, r.text
    text = """{ myPaths(tenant: "acme") { items { steps { lessonId status blockedBy }
                                                   concepts mastered uncovered } }
                myNext(tenant: "acme") { lesson { lessonId status } } }"""
    data = (await client.post("/graphql", json={"query": text}, headers=pupil)).json()["data"]
    [path] = data["myPaths"]["items"]
    assert [(s["lessonId"], s["status"], s["blockedBy"]) for s in path["steps"]] == [
        ("names", "completed", []), ("exprs", "todo", ["variables"]),
        ("funcs", "todo", ["expressions"]), ("recur", "todo", ["functions"])]
    assert (path["concepts"], path["mastered"], path["uncovered"]) == (4, 0, [])
    assert data["myNext"] == {"lesson": {"lessonId": "exprs", "status": "todo"}}


GRAPH = """{ prerequisiteGraph(tenant: "acme") { concepts { id } edges { concept requires kind } }
             }"""


async def test_graphql_graph_is_for_those_who_may_export_it(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    """Before, any member read the whole graph, which `GET …/graph` refuses learners."""
    app, client = running
    await python_course(app, client)
    pupil = await learner(app, client)
    body = (await client.post("/graphql", json={"query": GRAPH}, headers=pupil)).json()
    assert body["data"] == {"prerequisiteGraph": None}
    [error] = body["errors"]
    r = await client.get(f"{BASE}/graph", headers=pupil)
    assert (error["extensions"]["code"], error["extensions"]["status"]) == (
        r.json()["code"], r.status_code) == ("missing_role", 403)
    admin = await member(app, client, "acme", ["tenant_admin"])
    for headers in ({}, admin):  # an educator, an admin
        body = (await client.post("/graphql", json={"query": GRAPH}, headers=headers)).json()
        assert len(body["data"]["prerequisiteGraph"]["edges"]) == 3, body


async def test_reading_the_whole_graph_needs_learning_read_over_http_as_over_graphql(
        running: tuple[FastAPI, httpx.AsyncClient]) -> None:
    """Before, `GET …/learning/graph` needed `learning:write`, and `prerequisiteGraph`, which
    says it works as it does, `learning:read`: an educator's read-only token got one only."""
    app, client = running
    await python_course(app, client)
    await member(app, client, "acme", ["educator"], email="reader@acme.test")
    for scopes, code in (("learning:read", None), ("learning:write", "insufficient_scope")):
        r = await client.post("/v1/auth/token", data={
            "grant_type": "password", "tenant": "acme", "username": "reader@acme.test",
            "password": PASSWORD, "scope": scopes})
        assert r.status_code == 200, r.text
        token = {"Authorization": f"Bearer {r.json()['access_token']}"}
        r = await client.get(f"{BASE}/graph", headers=token)
        body = (await client.post("/graphql", json={"query": GRAPH}, headers=token)).json()
        if code is None:
            assert r.status_code == 200, r.text
            assert ({e["concept"] for e in body["data"]["prerequisiteGraph"]["edges"]}
                    == {e["concept"] for e in r.json()["edges"]}), body
        else:
            [error] = body["errors"]
            assert (r.status_code, r.json()["code"]) == (403, code), scopes
            assert error["extensions"]["code"] == code, scopes


async def test_graphql_graph_is_read_once_and_written_out_so_many_times(running: tuple[
        FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, each alias read the whole graph again, and a request could have it written out
    a hundred times (29 s on a graph of 5,000 concepts and 10,000 edges)."""
    app, client = running
    await python_course(app, client)
    calls = count_calls(service(app).repo, monkeypatch)
    items = len((await client.get(f"{BASE}/concepts")).json()["items"]) + 3
    monkeypatch.setattr(learning_graphql, "MAX_GRAPH_ITEMS", 2 * items)
    one = 'prerequisiteGraph(tenant: "acme") { concepts { id } edges { concept } }'
    calls.clear()
    body = (await client.post("/graphql", json={
        "query": "{ " + " ".join(f"g{i}: {one}" for i in range(3)) + " }"})).json()
    assert (calls["list_concepts"], calls["list_edges"]) == (1, 1)
    assert [body["data"][f"g{i}"] is None for i in range(3)] == [False, False, True], body
    [error] = body["errors"]
    assert (error["path"], error["extensions"]["code"], error["extensions"]["status"]) == (
        ["g2"], "query_too_large", 422)


async def test_graphql_counts_the_paths_it_works_out(running: tuple[
        FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, aliases asking for pages of different sizes each worked theirs out, without
    end (100 aliases: 1.5 s)."""
    app, client = running
    pupil, _ = await enrolled_in_every_concept(app, client)
    monkeypatch.setattr(learning_graphql, "MAX_PATHS", 6)

    async def ask(*pages: str) -> dict[str, Any]:
        text = "{ " + " ".join(f'p{i}: myPaths(tenant: "acme"{page}) {{ items {{ goal }} }}'
                               for i, page in enumerate(pages)) + " }"
        body: dict[str, Any] = (await client.post("/graphql", json={"query": text},
                                                  headers=pupil)).json()
        return body

    body = await ask(", first: 3", ", first: 3", ", first: 2", ", first: 1")
    assert [len(body["data"][f"p{i}"]["items"]) for i in range(4)] == [3, 3, 2, 1]
    assert "errors" not in body
    body = await ask(", first: 3", ", first: 2", ", first: 2")  # the same page again: shared
    assert "errors" not in body
    body = await ask(", first: 4", ", first: 2", ", first: 1")
    assert body["data"]["p2"] is None
    assert [(e["path"], e["extensions"]["code"]) for e in body["errors"]] == [
        (["p2"], "query_too_large")]


async def test_graphql_path_needs_a_course_or_a_concept(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    """Before, `myPath` with neither or both answered null, as for a path there is not."""
    app, client = running
    await python_course(app, client)
    pupil = await learner(app, client)
    for args, params in (("", {}), (', course: "py", concept: "variables"',
                                    {"course": "py", "concept": "variables"})):
        text = (f'{{ myPath(tenant: "acme"{args}) {{ goal }} '
                'b: myPath(tenant: "acme", course: "py") { goal } }')
        body = (await client.post("/graphql", json={"query": text}, headers=pupil)).json()
        assert body["data"] == {"myPath": None, "b": {"goal": "course:py"}}, args
        [error] = body["errors"]
        r = await client.get(f"{BASE}/me/path", params=params, headers=pupil)
        assert (error["path"], error["extensions"]["code"], error["extensions"]["status"]) == (
            ["myPath"], r.json()["code"], r.status_code) == (
            ["myPath"], "validation_failed", 422), args
        # the arguments it is about, by their names in the schema
        assert [(e["loc"], e["type"]) for e in error["extensions"]["errors"]] == [
            (["course"], "value_error"), (["concept"], "value_error")], args


async def test_graphql_works_a_learners_paths_out_once_however_many_fields_ask(
        running: tuple[FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch) -> None:
    app, client = running
    await python_course(app, client)
    pupil = await learner(app, client)
    await client.post(f"{BASE}/me/enrolments", json={"course_id": "py"}, headers=pupil)
    await client.post(f"{BASE}/me/enrolments", json={"goal_concept": "functions"},
                      headers=pupil)
    repo = service(app).repo
    planned = repo.learning_path
    plans: list[object] = []

    async def counted(*args: Any, **kwargs: Any) -> Any:
        plans.append(args)
        return await planned(*args, **kwargs)

    monkeypatch.setattr(repo, "learning_path", counted)
    aliases = " ".join(f'p{i}: myPaths(tenant: "acme") {{ items {{ goal }} }}' for i in range(20))
    text = f"""{{ {aliases} myNext(tenant: "acme") {{ kind lesson {{ lessonId }} }}
                  n2: myNext(tenant: "acme") {{ kind }}
                  a: myPath(tenant: "acme", course: "py") {{ goal }}
                  b: myPath(tenant: "acme", course: "py") {{ goal }} }}"""
    r = await client.post("/graphql", json={"query": text}, headers=pupil)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert [p["goal"] for p in data["p19"]["items"]] == ["course:py", "concept:functions"]
    assert data["myNext"] == {"kind": "lesson", "lesson": {"lessonId": "names"}}
    assert data["a"] == data["b"] == {"goal": "course:py"}
    # the two enrolments' paths, myNext's first (it has a lesson to take), and myPath's
    assert len(plans) == 4


async def test_graphql_paths_and_mastery_come_a_page_at_a_time(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    """Before, `myPaths` worked out the path to every goal the learner enrolled in (one graph
    query each) and `myMastery` read every concept, in one answer."""
    app, client = running
    pupil, goals = await enrolled_in_every_concept(app, client)
    await deliver(app, attempt_event(await me(client, pupil), goals, [True, False]))
    for field, key, rest in (("myPaths", "goal", "me/paths"),
                             ("myMastery", "concept", "me/mastery")):
        text = f"""query ($after: String) {{
            {field}(tenant: "acme", first: 3, after: $after) {{ items {{ {key} }} next }} }}"""
        pages = await graphql_pages(client, pupil, text, field, key)
        listed = (await client.get(f"{BASE}/{rest}", headers=pupil)).json()["items"]
        assert [x for p in pages for x in p] == [item[key] for item in listed], field
        assert [len(p) for p in pages] == [3, 1], field
        for bad, code in (("first: 0", "validation_failed"), ("first: 201", "validation_failed"),
                          ('after: "bm90IGEgY3Vyc29y"', "bad_cursor"),
                          (f'after: "{NESTED_CURSOR}"', "bad_cursor")):
            r = await client.post("/graphql", json={
                "query": f'{{ {field}(tenant: "acme", {bad}) {{ next }} }}'}, headers=pupil)
            assert r.json()["errors"][0]["extensions"]["code"] == code, (field, bad)


async def test_educators_set_a_concepts_bkt_and_it_is_fitted_to_the_answers(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    app, client = running
    url = f"{BASE}/concepts/loops"
    assert (await client.post(f"{BASE}/concepts", json={"id": "loops", "name": "Loops"})
            ).status_code == 201
    hand = {"prior": 0.3, "learn": 0.2, "guess": 0.1, "slip": 0.05}
    r = await client.put(f"{url}/bkt", json={**hand, "fitted_on": 999})
    assert r.status_code == 200, r.text
    assert r.json()["bkt"] == {**hand, "fitted_on": 0}
    assert (await client.get(url)).json()["bkt"] == {**hand, "fitted_on": 0}
    # A guess of 0: one right answer, then three wrong of four, read as mastered (0.999996).
    for bad in ({"prior": 1.5}, {"guess": 0.7}, {"slip": -0.1}, {"prior": "high"},
                {"prior": 0.3, "decay": 0.1}, {**hand, "guess": 0.0}, {**hand, "slip": 0.005}):
        r = await client.put(f"{url}/bkt", json=bad)
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["code"] == "validation_failed"
    assert (await client.put(f"{BASE}/concepts/ghost/bkt", json=hand)).status_code == 404
    assert (await client.post(f"{BASE}/concepts/ghost/bkt/fit")).status_code == 404
    pupil = await learner(app, client)
    for r in (await client.put(f"{url}/bkt", json=hand, headers=pupil),
              await client.post(f"{url}/bkt/fit", headers=pupil)):
        assert r.status_code == 403, r.text
    r = await client.post(f"{url}/bkt/fit")
    assert r.status_code == 422, r.text
    assert (r.json()["code"], r.json()["answers"], r.json()["needed"]) == ("too_few_answers", 0, 100)

    # Twelve learners answer ten questions each. The service refits by itself once the answers
    # reach 100 (the tenth learner); an educator's fit then uses all 120.
    answers = generate(BktParams(prior=0.2, learn=0.25, guess=0.2, slip=0.1), 12, 10, seed=5)
    for n, seq in enumerate(answers):
        await deliver(app, attempt_event(f"learner-{n}", ["loops"], [bool(a) for a in seq],
                                         at=AT + timedelta(minutes=n)))
    auto = (await client.get(url)).json()["bkt"]
    expected = bkt.fit(answers[:10]).params
    assert auto["fitted_on"] == 100
    for name in hand:
        assert auto[name] == pytest.approx(getattr(expected, name), abs=1e-6)

    r = await client.post(f"{url}/bkt/fit")
    assert r.status_code == 200, r.text
    fitted = r.json()["bkt"]
    expected = bkt.fit(answers).params
    assert fitted["fitted_on"] == 120
    for name in hand:
        assert fitted[name] == pytest.approx(getattr(expected, name), abs=1e-6)
    assert fitted != auto


async def test_a_schedule_fit_reads_the_latest_reviews_one_fit_at_a_time(
        running: tuple[FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch) -> None:
    """A learner may review as often as they like, and a fit's work grows with the reviews:
    it reads the latest `OPTIMISE_REVIEWS`, and a second fit meanwhile is refused."""
    app, _ = running
    svc = service(app)
    logs = [ReviewLog(id=f"r{i}", card_id=f"c{i % 7}", concept="x", rating=3,
                      reviewed_at=AT + timedelta(hours=i), was_due=AT, next_due=AT)
            for i in range(learning_service.OPTIMISE_REVIEWS + 500)]

    async def review_logs(tenant: str, learner: str) -> list[ReviewLog]:
        return logs

    fitting, release = threading.Event(), threading.Event()
    fitted: list[int] = []

    def fit_checked(histories: Sequence[Sequence[object]], start: object,
                    zone: object = None) -> SchedulerParams:
        fitted.append(sum(len(h) for h in histories))
        fitting.set()
        release.wait(10)
        return SchedulerParams(parameters=[0.5] * 21, fitted_on=fitted[-1], loss_before=1.0,
                               loss_after=2.0)

    monkeypatch.setattr(svc.repo, "review_logs", review_logs)
    monkeypatch.setattr(fsrs_review, "fit_checked", fit_checked)
    first = asyncio.create_task(svc.optimise("acme", "u1"))
    assert await asyncio.to_thread(fitting.wait, 10)
    with pytest.raises(Conflict) as busy:
        await svc.optimise("acme", "u1")
    assert busy.value.code == "busy"
    release.set()
    assert (await first).fitted_on == learning_service.OPTIMISE_REVIEWS
    await svc.optimise("acme", "u1")  # done: the next may run
    assert fitted == [learning_service.OPTIMISE_REVIEWS] * 2
    # Both fits predicted the history worse than the parameters in use: neither is kept.
    assert (await svc.repo.learner_settings("acme", "u1")).parameters is None


async def test_a_review_tried_again_after_a_conflict_is_timed_when_applied(
        running: tuple[FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch) -> None:
    """Four reviews of one card at once: one applied after another's (a version conflict, tried
    again) kept the time it was first tried, before that one's, so the card's last review went
    back in time and a fit replayed the two in the other order."""
    app, _ = running
    svc = service(app)
    state = fsrs_review.new_state("c1", "x", AT)
    times = iter(AT + timedelta(seconds=n) for n in range(1, 10))
    monkeypatch.setattr(learning_service, "now", lambda: next(times))
    saved: list[ReviewLog] = []

    async def card_states(tenant: str, learner: str, ids: Sequence[str]) -> list[CardState]:
        return [state]

    async def save_review(tenant: str, learner: str, after: CardState, log: ReviewLog,
                          events: Sequence[Envelope], zone: str | None) -> None:
        saved.append(log)
        if len(saved) == 1:
            raise StaleVersion

    monkeypatch.setattr(svc.repo, "card_states", card_states)
    monkeypatch.setattr(svc.repo, "save_review", save_review)
    result = await svc.review("acme", "u1", NewReview(card_id="c1", rating=3))
    assert [log.reviewed_at for log in saved] == [AT + timedelta(seconds=1),
                                                  AT + timedelta(seconds=2)]
    assert result.next_due == saved[-1].next_due


async def test_a_schedule_fit_that_only_follows_the_noise_is_not_kept(
        running: tuple[FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch) -> None:
    """A learner whose memory follows the default parameters, 160 reviews: the fit predicted
    that history better and the learner's next reviews worse, and was kept."""
    app, _ = running
    svc = service(app)
    logs = [ReviewLog(id=f"r{c}-{i}", card_id=f"c{c}", concept="x", rating=rating,
                      reviewed_at=at, was_due=at, next_due=at)
            for c, history in enumerate(simulate(list(DEFAULT_PARAMETERS), 20, seed=0))
            for i, (at, rating) in enumerate(history)]

    async def review_logs(tenant: str, learner: str) -> list[ReviewLog]:
        return logs

    monkeypatch.setattr(svc.repo, "review_logs", review_logs)
    fitted = await svc.optimise("acme", "u1")
    assert fitted.checked_on > 0
    assert not fitted.better
    assert (await svc.repo.learner_settings("acme", "u1")).parameters is None


async def test_a_schedule_fit_counts_in_the_learners_days(
        running: tuple[FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch) -> None:
    """Cards learnt at 21:00 in Tokyo and reviewed at 07:00 the next morning: the fit left
    those reviews out (under 24 hours), though the schedule counted each a day old."""
    app, _ = running
    svc = service(app)
    tokyo = ZoneInfo("Asia/Tokyo")
    logs = []
    for c in range(8):
        learnt = datetime(2025, 5, 1 + c, 21, tzinfo=tokyo).astimezone(UTC)
        for i, (at, rating) in enumerate([(learnt, 3), (learnt + timedelta(minutes=10), 3),
                                          (learnt + timedelta(hours=10), 3 if c % 3 else 1)]):
            logs.append(ReviewLog(id=f"r{c}-{i}", card_id=f"c{c}", concept="x", rating=rating,
                                  reviewed_at=at, was_due=at, next_due=at))

    async def review_logs(tenant: str, learner: str) -> list[ReviewLog]:
        return logs

    monkeypatch.setattr(svc.repo, "review_logs", review_logs)
    assert await svc.set_time_zone("acme", "u1", "Asia/Tokyo", AT)
    fitted = await svc.optimise("acme", "u1", minimum=1)
    assert (fitted.fitted_on, fitted.checked_on) == (6, 2)


async def test_a_learner_who_moves_to_another_time_zone_keeps_their_cards_learner_days(
        running: tuple[FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch) -> None:
    """Moved from Berlin to New York, a learner's cards stayed due at 04:00 Berlin time, 22:00
    the evening before in New York. Each card due a day or more after its last review is due
    as many learner's days after it in the new zone, from 04:00 there; shorter steps stay."""
    app, _ = running
    svc = service(app)
    repo = svc.repo
    await svc.add_concept("acme", NewConcept(id="x", name="X"))
    cards = [Card.create("acme", "x", NewCard(front=f"Q{n}?", back="A"), at=AT) for n in range(5)]
    for card in cards:
        await repo.add_card(card)
    await repo.add_card_states("acme", "u1", [fsrs_review.new_state(c.id, "x", AT) for c in cards])
    assert await svc.set_time_zone("acme", "u1", "Europe/Berlin", AT)
    evening = datetime(2025, 5, 1, 21, 40, tzinfo=ZoneInfo("Europe/Berlin")).astimezone(UTC)
    for n, card in enumerate(cards[:3]):  # Good twice: due days later
        first = await svc.review("acme", "u1", NewReview(card_id=card.id, rating=3),
                                 at=evening + timedelta(minutes=n))
        await svc.review("acme", "u1", NewReview(card_id=card.id, rating=3), at=first.next_due)
    await svc.review("acme", "u1", NewReview(card_id=cards[3].id, rating=1), at=evening)
    await svc.drop_card("acme", "u1", cards[2].id)  # kept to bring back: moves too

    async def schedules() -> dict[str, CardState]:
        return {s.card_id: s for s in [*await repo.card_states("acme", "u1"),
                                       *await repo.taken_out_cards("acme", "u1")]}

    def days_on(state: CardState, zone: str) -> int:
        tz = ZoneInfo(zone)
        last = datetime.fromisoformat(str(state.fsrs["last_review"]))
        return (fsrs_review.learner_day(state.due, tz).date()
                - fsrs_review.learner_day(last, tz).date()).days

    writes: list[int] = []
    reschedule = repo.reschedule_cards

    async def counted(tenant: str, learner: str, states: Sequence[CardState], zone: str,
                      at: datetime) -> int:
        writes.append(len(states))
        return await reschedule(tenant, learner, states, zone, at)

    monkeypatch.setattr(repo, "reschedule_cards", counted)
    monkeypatch.setattr(learning_service, "RESCHEDULE_ROWS", 2)
    before = await schedules()
    assert await svc.set_time_zone("acme", "u1", "America/New_York", AT + timedelta(days=1))
    after = await schedules()
    assert writes == [2, 1]
    for card in cards[:3]:
        was, now_ = before[card.id], after[card.id]
        assert days_on(was, "Europe/Berlin") >= 2
        assert days_on(now_, "America/New_York") == days_on(was, "Europe/Berlin")
        assert now_.due.astimezone(ZoneInfo("America/New_York")).time() == time(4)
        assert now_ == was.model_copy(update={"due": now_.due})  # its version and FSRS state
    assert [after[c.id] for c in cards[3:]] == [before[c.id] for c in cards[3:]]

    # The same news again, older news, and the same zone told again move nothing.
    writes.clear()
    assert not await svc.set_time_zone("acme", "u1", "America/New_York", AT + timedelta(days=1))
    assert not await svc.set_time_zone("acme", "u1", "Asia/Tokyo", AT)
    assert await svc.set_time_zone("acme", "u1", "America/New_York", AT + timedelta(days=2))
    assert writes == []
    assert await schedules() == after

    # Moving stopped part-way (the store failed) is finished when the news is told again.
    async def failing(tenant: str, learner: str, states: Sequence[CardState], zone: str,
                      at: datetime) -> int:
        raise StoreUnavailable("neo4j")

    monkeypatch.setattr(repo, "reschedule_cards", failing)
    with pytest.raises(StoreUnavailable):
        await svc.set_time_zone("acme", "u1", "Asia/Tokyo", AT + timedelta(days=3))
    assert await schedules() == after
    monkeypatch.setattr(repo, "reschedule_cards", counted)
    assert not await svc.set_time_zone("acme", "u1", "Asia/Tokyo", AT + timedelta(days=3))
    moved = await schedules()
    for card in cards[:3]:
        # 21:40 in Berlin was 04:40 the next morning in Tokyo: a day later there
        assert days_on(moved[card.id], "Asia/Tokyo") == days_on(before[card.id], "Europe/Berlin")
        assert moved[card.id].due.astimezone(ZoneInfo("Asia/Tokyo")).time() == time(4)
        assert moved[card.id].due - after[card.id].due == timedelta(hours=24 - 13)
    # the card is reviewed at the version it was shown at
    shown = moved[cards[0].id]
    done = await svc.review("acme", "u1", NewReview(card_id=cards[0].id, rating=3,
                                                    version=shown.version), at=shown.due)
    assert done.version == shown.version + 1


async def _a_card_reviewed_twice(svc: LearningService) -> CardState:
    """A card of u1's reviewed Good twice (due days after its last review), in the zone kept."""
    await svc.add_concept("acme", NewConcept(id="x", name="X"))
    card = Card.create("acme", "x", NewCard(front="Q?", back="A"), at=AT)
    await svc.repo.add_card(card)
    await svc.repo.add_card_states("acme", "u1", [fsrs_review.new_state(card.id, "x", AT)])
    first = await svc.review("acme", "u1", NewReview(card_id=card.id, rating=3),
                             at=AT + timedelta(hours=20))
    await svc.review("acme", "u1", NewReview(card_id=card.id, rating=3), at=first.next_due)
    [state] = await svc.repo.card_states("acme", "u1", [card.id])
    return state


async def test_a_review_that_read_the_zone_before_a_move_is_scheduled_in_the_new_zone(
        running: tuple[FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch) -> None:
    """A review read the learner's zone (Berlin), then they moved to New York and their cards
    were moved: the review stored a due at 04:00 Berlin time over the move, for good."""
    app, _ = running
    svc = service(app)
    repo = svc.repo
    assert await svc.set_time_zone("acme", "u1", "Europe/Berlin", AT)
    state = await _a_card_reviewed_twice(svc)
    real = repo.learner_settings
    moved = False

    async def settings(tenant: str, learner: str) -> LearnerSettings:
        nonlocal moved
        read = await real(tenant, learner)
        if not moved:
            moved = True
            assert await svc.set_time_zone("acme", "u1", "America/New_York", state.due)
        return read

    monkeypatch.setattr(repo, "learner_settings", settings)
    done = await svc.review("acme", "u1", NewReview(card_id=state.card_id, rating=3),
                            at=state.due)
    [after] = await repo.card_states("acme", "u1", [state.card_id])
    assert after.version == done.version == state.version + 1
    assert after.due == done.next_due
    assert after.due.astimezone(ZoneInfo("America/New_York")).time() == time(4)


async def test_an_older_zones_move_read_before_a_newer_ones_writes_nothing(
        running: tuple[FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch) -> None:
    """News of a move to Berlin read the learner's cards, then newer news (New York, handled by
    another consumer) was stored and moved them: the Berlin dues were written over New York's."""
    app, _ = running
    svc = service(app)
    repo = svc.repo
    state = await _a_card_reviewed_twice(svc)
    real = repo.card_states
    read, go_on = asyncio.Event(), asyncio.Event()

    async def slow(tenant: str, learner: str,
                   ids: Sequence[str] | None = None) -> list[CardState]:
        got = await real(tenant, learner, ids)
        if ids is None and not read.is_set():
            read.set()
            await go_on.wait()
        return got

    monkeypatch.setattr(repo, "card_states", slow)
    older = asyncio.create_task(svc.set_time_zone("acme", "u1", "Europe/Berlin",
                                                  AT + timedelta(days=3)))
    await read.wait()
    assert await svc.set_time_zone("acme", "u1", "America/New_York", AT + timedelta(days=4))
    go_on.set()
    assert await older
    assert (await repo.learner_settings("acme", "u1")).time_zone == "America/New_York"
    [after] = await real("acme", "u1", [state.card_id])
    assert after.version == state.version
    assert after.due.astimezone(ZoneInfo("America/New_York")).time() == time(4)


async def test_older_news_naming_the_zone_kept_reads_no_deck(
        running: tuple[FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch) -> None:
    """Older news (a redelivery) naming the zone kept read the learner's whole deck again, as
    only the news kept told again (a move cut short) should."""
    app, _ = running
    svc = service(app)
    repo = svc.repo
    await _a_card_reviewed_twice(svc)
    assert await svc.set_time_zone("acme", "u1", "Asia/Tokyo", AT + timedelta(days=2))
    real = repo.card_states
    decks: list[str] = []

    async def counted(tenant: str, learner: str,
                      ids: Sequence[str] | None = None) -> list[CardState]:
        if ids is None:
            decks.append(learner)
        return await real(tenant, learner, ids)

    monkeypatch.setattr(repo, "card_states", counted)
    assert not await svc.set_time_zone("acme", "u1", "Asia/Tokyo", AT + timedelta(days=1))
    assert decks == []
    assert not await svc.set_time_zone("acme", "u1", "Asia/Tokyo", AT + timedelta(days=2))
    assert decks == ["u1"]


async def test_news_of_the_zone_read_before_an_older_ones_move_moves_the_cards_back(
        running: tuple[FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch) -> None:
    """News of Tokyo (the zone kept) read the zone before older news of Paris moved the cards,
    then was stored and, finding the zone it read its own, moved nothing: the cards stayed at
    04:00 in Paris while the learner's zone was Tokyo."""
    app, _ = running
    svc = service(app)
    repo = svc.repo
    await _a_card_reviewed_twice(svc)
    assert await svc.set_time_zone("acme", "u1", "Asia/Tokyo", AT + timedelta(days=1))
    real = repo.save_time_zone
    older: list[bool] = []

    async def after_an_older_one(tenant: str, learner: str, zone: str,
                                 at: datetime) -> ZoneSaved:
        if zone == "Asia/Tokyo" and not older:  # Paris's news handled whole meanwhile
            older.append(await svc.set_time_zone("acme", "u1", "Europe/Paris",
                                                 AT + timedelta(days=2)))
        return await real(tenant, learner, zone, at)

    monkeypatch.setattr(repo, "save_time_zone", after_an_older_one)
    assert await svc.set_time_zone("acme", "u1", "Asia/Tokyo", AT + timedelta(days=3))
    assert older == [True]
    [state] = await repo.card_states("acme", "u1")
    assert state.due.astimezone(ZoneInfo("Asia/Tokyo")).time() == time(4)


async def test_a_schedule_fit_replays_each_card_from_its_first_review(
        running: tuple[FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch) -> None:
    """Cut at the latest reviews, a card's history started part-way and was replayed as a new
    card's: a review a month after the one before looked like a first one, and the fit
    stretched a new card's first interval from days to weeks. The fit reads whole histories,
    of the cards started last."""
    app, _ = running
    svc = service(app)
    cards = 40
    reviews = learning_service.OPTIMISE_REVIEWS * 3
    logs = sorted((ReviewLog(id=f"r{i}", card_id=f"c{i % cards}", concept="x", rating=3,
                             reviewed_at=AT + timedelta(days=i // cards, minutes=i % cards),
                             was_due=AT, next_due=AT) for i in range(reviews)),
                  key=lambda log: log.reviewed_at)
    whole: dict[str, list[tuple[datetime, int]]] = {}
    for log in logs:
        whole.setdefault(log.card_id, []).append((log.reviewed_at, log.rating))
    card_at = {log.reviewed_at: log.card_id for log in logs}

    async def review_logs(tenant: str, learner: str) -> list[ReviewLog]:
        return logs

    seen: list[list[tuple[datetime, int]]] = []
    fit = fsrs_review.fit_checked

    def fit_checked(histories: Sequence[list[tuple[datetime, int]]], start: object,
                    zone: ZoneInfo = fsrs_review.UTC_ZONE) -> SchedulerParams:
        seen.extend(histories)
        return fit(histories, sweeps=0, zone=zone)

    monkeypatch.setattr(svc.repo, "review_logs", review_logs)
    monkeypatch.setattr(fsrs_review, "fit_checked", fit_checked)
    await svc.optimise("acme", "u1")
    assert sum(len(h) for h in seen) == learning_service.OPTIMISE_REVIEWS
    for history in seen:
        assert history == whole[card_at[history[0][0]]][:len(history)], "replayed from part-way"
    started = sorted((h[0][0] for h in whole.values()), reverse=True)
    assert [h[0][0] for h in seen] == started[:len(seen)]


async def test_paths_and_exports_read_what_was_announced_at_once(running: tuple[
        FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch) -> None:
    """A learner's paths (and their export) read the paths last announced in one read, however
    many goals they have: one path query a goal beside it."""
    app, client = running
    pupil, goals = await enrolled_in_every_concept(app, client)
    calls = count_calls(service(app).repo, monkeypatch)
    r = await client.get(f"{BASE}/me/paths", headers=pupil)
    assert r.status_code == 200, r.text
    assert len(r.json()["items"]) == len(goals)
    assert calls == {"page_enrolments": 1, "path_snapshots": 1, "learning_path": len(goals)}
    first = (await client.get(f"{BASE}/me/paths", params={"limit": 3}, headers=pupil)).json()
    rest = (await client.get(f"{BASE}/me/paths", params={"after": first["next"]},
                             headers=pupil)).json()
    assert [p["goal"] for p in first["items"] + rest["items"]] == [f"concept:{c}" for c in goals]
    assert rest["next"] is None

    calls.clear()
    export = await client.get("/v1/tenants/acme/me/export", headers=pupil)
    assert export.status_code == 200, export.text
    announced = export.json()["services"]["learning"]["paths_last_announced"]
    assert sorted(announced) == [f"concept:{c}" for c in sorted(goals)]
    assert announced["concept:recursion"] == ["names", "exprs", "funcs", "recur"]
    assert calls["path_snapshots"] == 1
    assert calls["path_snapshot"] == 0


async def test_a_progress_report_reads_the_enrolled_courses_at_once(running: tuple[
        FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch) -> None:
    app, client = running
    courses = [f"course-{n}" for n in range(4)]
    for course in courses:
        lessons = [f"{course}-l{i}" for i in range(3)]
        await deliver(app, *(lesson_event(lid, [f"{lid}-idea"], position=i, course=course)
                             for i, lid in enumerate(lessons)),
                      course_event(lessons, course=course))
    pupil = await learner(app, client)
    for course in courses:
        r = await client.post(f"{BASE}/me/enrolments", json={"course_id": course}, headers=pupil)
        assert r.status_code == 201, r.text
    r = await client.post(f"{BASE}/me/lessons/course-2-l1/progress",
                          json={"status": "completed"}, headers=pupil)
    assert r.status_code == 200, r.text
    await service(app).settled()
    calls = count_calls(service(app).repo, monkeypatch)
    report = await client.get(f"{BASE}/me/progress", headers=pupil)
    assert report.status_code == 200, report.text
    assert [(c["id"], c["lessons"], c["completed"]) for c in report.json()["courses"]] == [
        ("course-0", 3, 0), ("course-1", 3, 0), ("course-2", 3, 1), ("course-3", 3, 0)]
    assert calls == {"get_progress": 1, "enrolments": 1, "courses_with_lessons": 1}


async def test_a_schedule_fit_needs_its_minimum_of_reviews_and_keeps_a_better_fit(
        running: tuple[FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch) -> None:
    app, _ = running
    svc = service(app)
    needed = fsrs_review.MIN_REVIEWS_TO_OPTIMISE
    logs = [ReviewLog(id=f"r{i}", card_id=f"c{i % 7}", concept="x", rating=3,
                      reviewed_at=AT + timedelta(hours=i), was_due=AT, next_due=AT)
            for i in range(needed)]
    shown: list[ReviewLog] = []

    async def review_logs(tenant: str, learner: str) -> list[ReviewLog]:
        return shown

    def fit_checked(histories: Sequence[Sequence[object]], start: object,
                    zone: object = None) -> SchedulerParams:
        return SchedulerParams(parameters=[0.5] * 21, fitted_on=sum(map(len, histories)),
                               loss_before=2.0, loss_after=1.0, better=True)

    monkeypatch.setattr(svc.repo, "review_logs", review_logs)
    monkeypatch.setattr(fsrs_review, "fit_checked", fit_checked)
    shown[:] = logs[:-1]
    with pytest.raises(Problem) as few:
        await svc.optimise("acme", "u7")
    assert (few.value.status, few.value.code) == (422, "too_few_reviews")
    assert few.value.extra == {"reviews": needed - 1, "needed": needed}
    shown[:] = logs
    assert (await svc.optimise("acme", "u7")).fitted_on == needed
    assert (await svc.repo.learner_settings("acme", "u7")).parameters == [0.5] * 21


async def test_an_api_key_has_no_learning_of_its_own(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    """A key with `learning:write` enrolled, recorded progress and got mastery and paths as
    `apikey:acme.…`: learning nobody could export or erase."""
    app, client = running
    await python_course(app, client)
    admin = await member(app, client, roles=["tenant_admin"])
    r = await client.post("/v1/tenants/acme/api-keys", headers=admin, json={
        "name": "gradebook", "scopes": ["learning:write", "learning:read"]})
    assert r.status_code == 201, r.text
    key = {"Authorization": f"Bearer {r.json()['key']}"}
    for method, path, body in (("POST", "/me/enrolments", {"course_id": "py"}),
                               ("POST", "/me/lessons/names/progress", {"status": "completed"}),
                               ("GET", "/me/mastery", None), ("GET", "/me/next", None),
                               ("GET", "/me/reviews/due", None)):
        r = await client.request(method, f"{BASE}{path}", headers=key, json=body)
        assert (r.status_code, r.json()["code"]) == (403, "not_a_person"), (path, r.text)
    r = await client.post("/graphql", headers=key, json={
        "query": '{ myMastery(tenant: "acme") { items { concept } } }'})
    assert r.json()["errors"][0]["extensions"]["code"] == "not_a_person"
    assert (await client.get(f"{BASE}/concepts", headers=key)).status_code == 200
