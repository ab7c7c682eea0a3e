"""The educators' writes over GraphQL: each does what its HTTP twin does to the graph, its BKT
parameters and cards, under the same roles and scope, and refuses what its twin refuses with
the same code."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from tests.support import member
from tests.unit.learning.test_learning_api import BASE, learner, running
from tests.unit.learning.test_learning_graphql_writes import refused, run

__all__ = ["running"]
Json = dict[str, Any]
Headers = dict[str, str]

CONCEPT = "{ id name description version bkt { prior learn guess slip fittedOn } }"
ADD_CONCEPT = f"""mutation($c: NewLearningConceptInput!) {{ addLearningConcept(tenant: "acme", concept: $c)
    {CONCEPT} }}"""
EDIT_CONCEPT = f"""mutation($id: Slug!, $e: LearningConceptEditInput!, $v: Int) {{
    editLearningConcept(tenant: "acme", id: $id, edit: $e, version: $v) {CONCEPT} }}"""
SET_BKT = f"""mutation($id: Slug!, $b: BktInput!) {{ setBkt(tenant: "acme", conceptId: $id,
    bkt: $b) {CONCEPT} }}"""
FIT_BKT = f'mutation($id: Slug!) {{ fitBkt(tenant: "acme", conceptId: $id) {CONCEPT} }}'
CARD = "{ id concept front back source version updatedAt lessonId heldUntilVersion }"
ADD_CARD = f"""mutation($id: Slug!, $c: NewCardInput!) {{ addCard(tenant: "acme",
    conceptId: $id, card: $c) {CARD} }}"""
EDIT_CARD = f"""mutation($id: Slug!, $card: String!, $e: CardEditInput!, $v: Int) {{
    editCard(tenant: "acme", conceptId: $id, id: $card, edit: $e, version: $v) {CARD} }}"""
RETIRE_CARD = """mutation($id: Slug!, $card: String!) {
    retireCard(tenant: "acme", conceptId: $id, id: $card) }"""
ADD_EDGE = """mutation($e: PrerequisiteInput!) { addPrerequisite(tenant: "acme", edge: $e) {
    created edge { concept requires kind } } }"""
REMOVE_EDGE = """mutation($c: Slug!, $r: Slug!) {
    removePrerequisite(tenant: "acme", concept: $c, requires: $r) }"""


def loc(body: Json) -> list[list[Any]]:
    return [e["loc"] for e in body["errors"][0]["extensions"]["errors"]]


async def rest_concept(client: httpx.AsyncClient, concept: str) -> Json:
    r = await client.get(f"{BASE}/concepts/{concept}")
    assert r.status_code == 200, r.text
    found: Json = r.json()
    return found


async def test_an_educator_edits_the_graph_over_graphql(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    _, client = running
    editor = dict(client.headers)
    added = await run(client, editor, ADD_CONCEPT, c={"id": "loops", "name": "Loops"})
    assert added["data"]["addLearningConcept"] == {
        "id": "loops", "name": "Loops", "description": "", "version": 1,
        "bkt": {"prior": 0.2, "learn": 0.15, "guess": 0.2, "slip": 0.1, "fittedOn": 0}}, added
    assert refused(await run(client, editor, ADD_CONCEPT, c={"id": "loops", "name": "Again"})
                   ) == (409, "concept_exists")
    await run(client, editor, ADD_CONCEPT, c={"id": "ifs", "name": "Ifs"})

    edited = await run(client, editor, EDIT_CONCEPT, id="loops",
                       e={"description": "for and while"}, v=1)
    assert edited["data"]["editLearningConcept"]["version"] == 2, edited
    rest = await rest_concept(client, "loops")
    assert (rest["name"], rest["description"], rest["version"]) == ("Loops", "for and while", 2)
    stale = await run(client, editor, EDIT_CONCEPT, id="loops", e={"name": "Iteration"}, v=1)
    assert stale["data"]["editLearningConcept"] is None
    assert refused(stale) == (409, "stale_version")
    assert (await rest_concept(client, "loops"))["name"] == "Loops"
    last_wins = await run(client, editor, EDIT_CONCEPT, id="loops", e={"name": "Iteration"})
    assert last_wins["data"]["editLearningConcept"]["name"] == "Iteration"

    bkt = await run(client, editor, SET_BKT, id="loops", b={"prior": 0.3, "slip": 0.05})
    assert bkt["data"]["setBkt"]["bkt"] == {"prior": 0.3, "learn": 0.15, "guess": 0.2,
                                            "slip": 0.05, "fittedOn": 0}, bkt
    assert (await rest_concept(client, "loops"))["bkt"]["prior"] == 0.3
    assert refused(await run(client, editor, FIT_BKT, id="loops")) == (422, "too_few_answers")

    edge = {"concept": "loops", "requires": "ifs"}
    first = await run(client, editor, ADD_EDGE, e=edge)
    assert first["data"]["addPrerequisite"] == {
        "created": True, "edge": {"concept": "loops", "requires": "ifs", "kind": "required"}}
    again = await run(client, editor, ADD_EDGE, e={**edge, "kind": "recommended"})
    assert again["data"]["addPrerequisite"]["created"] is False
    rest_edges = (await client.get(f"{BASE}/edges")).json()["items"]
    assert rest_edges == [{"concept": "loops", "requires": "ifs", "kind": "recommended"}]
    cycle = await run(client, editor, ADD_EDGE, e={"concept": "ifs", "requires": "loops"})
    assert refused(cycle) == (409, "cycle")
    assert cycle["errors"][0]["extensions"]["cycle"]
    assert refused(await run(client, editor, ADD_EDGE, e={"concept": "ifs", "requires": "ghost"})
                   ) == (422, "unknown_concepts")
    removed = await run(client, editor, REMOVE_EDGE, c="loops", r="ifs")
    assert removed["data"]["removePrerequisite"] is True
    assert (await client.get(f"{BASE}/edges")).json()["items"] == []
    assert refused(await run(client, editor, REMOVE_EDGE, c="loops", r="ifs")
                   ) == (404, "not_found")

    card = (await run(client, editor, ADD_CARD, id="loops",
                      c={"front": "What repeats?", "back": "A loop."}))["data"]["addCard"]
    assert (card["source"], card["version"], card["heldUntilVersion"]) == ("authored", 1, None)
    [listed] = (await client.get(f"{BASE}/concepts/loops/cards")).json()["items"]
    assert (listed["id"], listed["front"]) == (card["id"], "What repeats?")
    changed = await run(client, editor, EDIT_CARD, id="loops", card=card["id"],
                        e={"back": "A for or while loop."}, v=1)
    assert changed["data"]["editCard"]["version"] == 2, changed
    assert refused(await run(client, editor, EDIT_CARD, id="loops", card=card["id"],
                             e={"back": "Late."}, v=1)) == (409, "stale_version")
    [listed] = (await client.get(f"{BASE}/concepts/loops/cards")).json()["items"]
    assert (listed["back"], listed["version"]) == ("A for or while loop.", 2)
    retired = await run(client, editor, RETIRE_CARD, id="loops", card=card["id"])
    assert retired["data"]["retireCard"] is True
    assert (await client.get(f"{BASE}/concepts/loops/cards")).json()["items"] == []
    assert refused(await run(client, editor, RETIRE_CARD, id="ifs", card=card["id"]))[0] == 404


async def test_an_edit_refuses_its_input_as_its_http_twin_does(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    _, client = running
    editor = dict(client.headers)
    bad = await run(client, editor, ADD_CONCEPT, c={"id": "Not A Slug", "name": " "})
    assert refused(bad) == (422, "validation_failed")
    assert sorted(loc(bad)) == [["concept", "id"], ["concept", "name"]]
    await run(client, editor, ADD_CONCEPT, c={"id": "loops", "name": "Loops"})
    nothing = await run(client, editor, EDIT_CONCEPT, id="loops", e={})
    assert (refused(nothing), loc(nothing)) == ((422, "validation_failed"), [["edit"]])
    noiseless = await run(client, editor, SET_BKT, id="loops", b={"guess": 0.0})
    assert (refused(noiseless), loc(noiseless)) == ((422, "validation_failed"),
                                                    [["bkt", "guess"]])
    assert refused(await run(client, editor, SET_BKT, id="ghost", b={})) == (404, "not_found")
    self_edge = await run(client, editor, ADD_EDGE, e={"concept": "loops", "requires": "loops"})
    assert (refused(self_edge), loc(self_edge)) == ((422, "validation_failed"), [["edge"]])
    kind = await run(client, editor, ADD_EDGE, e={"concept": "loops", "requires": "ifs",
                                                  "kind": "optional"})
    assert loc(kind) == [["edge", "kind"]]
    blank = await run(client, editor, ADD_CARD, id="loops", c={"front": "", "back": "b"})
    assert (refused(blank), loc(blank)) == ((422, "validation_failed"), [["card", "front"]])
    card = (await run(client, editor, ADD_CARD, id="loops",
                      c={"front": "f", "back": "b"}))["data"]["addCard"]["id"]
    # a version below any (an `If-Match` of digits names none) is the argument's fault
    for negative in (await run(client, editor, EDIT_CONCEPT, id="loops", e={"name": "L"}, v=-5),
                     await run(client, editor, EDIT_CARD, id="loops", card=card,
                               e={"back": "c"}, v=-5)):
        assert refused(negative) == (422, "validation_failed")
        assert loc(negative) == [["version"]]
    assert (await client.delete(f"{BASE}/concepts/loops/cards/{card}")).status_code == 204
    long_id = await run(client, editor, RETIRE_CARD, id="loops", card="x" * 65)
    assert (refused(long_id), loc(long_id)) == ((422, "validation_failed"), [["id"]])
    assert refused(await run(client, editor, ADD_CARD, id="ghost",
                             c={"front": "f", "back": "b"})) == (404, "not_found")
    assert (await client.get(f"{BASE}/concepts/loops/cards")).json()["items"] == []
    assert (await client.get(f"{BASE}/edges")).json()["items"] == []


async def test_edits_need_an_editor_of_the_tenant_with_learning_write(running: tuple[
        FastAPI, httpx.AsyncClient]) -> None:
    app, client = running
    pupil: Headers = await learner(app, client)
    assert refused(await run(client, pupil, ADD_CONCEPT, c={"id": "loops", "name": "Loops"})
                   ) == (403, "missing_role")
    elsewhere = await member(app, client, "beta", ["educator"])
    assert refused(await run(client, elsewhere, ADD_CONCEPT, c={"id": "loops", "name": "L"})
                   ) == (403, "wrong_tenant")
    admin = await member(app, client, roles=["tenant_admin"])
    made = await run(client, admin, ADD_CONCEPT, c={"id": "loops", "name": "Loops"})
    assert made["data"]["addLearningConcept"]["id"] == "loops", made
    key = await client.post("/v1/tenants/acme/api-keys", headers=admin, json={
        "name": "reader", "scopes": ["learning:read"]})
    assert key.status_code == 201, key.text
    reader = {"Authorization": f"Bearer {key.json()['key']}"}
    twin = await client.put(f"{BASE}/concepts/loops/bkt", json={"prior": 0.5}, headers=reader)
    assert refused(await run(client, reader, SET_BKT, id="loops", b={"prior": 0.5})
                   ) == (twin.status_code, twin.json()["code"]) == (403, "missing_role")
    for who in (pupil, elsewhere):
        assert refused(await run(client, who, REMOVE_EDGE, c="loops", r="ifs"))[0] == 403
        assert refused(await run(client, who, FIT_BKT, id="loops"))[0] == 403
    assert (await rest_concept(client, "loops"))["bkt"]["prior"] == 0.2
