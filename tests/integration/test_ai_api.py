"""The AI service in one process with content and identity on real servers (MongoDB-wire, Kafka,
Redis): an educator asks for flashcards over HTTP, the job goes through Kafka's `ai.jobs` to the
in-process worker, the server-sent event stream follows it to its end, and the flashcards reach
`video.events` for the learning service."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from bloop.platform.app import create_app
from bloop.platform.kit.settings import AiSettings, RuntimeSettings, Settings
from tests.integration.test_ai_worker import events_of
from tests.support import api_client, eventually, member, require_server
from tests.unit.ai.test_ai_api import follow_at, lesson_at


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    for server in ("mongo", "kafka", "redis"):
        require_server(server)
    run = uuid.uuid4().hex[:10]
    settings = Settings(
        runtime=RuntimeSettings(store="real", data_dir=tmp_path, seed_demo=False),
        ai=AiSettings(database=f"ai_it_{run}", worker_group=f"ai-api-{run}"))
    application = create_app(settings, services=["identity", "content", "ai"])
    async with application.router.lifespan_context(application):
        yield application
        client = application.state.platform.mongo
        await client.drop_database(f"ai_it_{run}")


async def test_flashcards_through_kafka_to_the_learning_service(app: FastAPI) -> None:
    tenant = f"ai-{uuid.uuid4().hex[:8]}"
    async with api_client(app) as client:
        client.headers.update(await member(app, client, tenant, ["educator"]))
        les: dict[str, Any] = await lesson_at(client, f"/v1/tenants/{tenant}")
        r = await client.post(f"/v1/tenants/{tenant}/ai/jobs",
                              json={"kind": "flashcards", "lesson_id": les["id"],
                                    "params": {"count": 3}})
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        events = await follow_at(client, f"/v1/tenants/{tenant}", job_id)
    final = events[-1][1]
    assert final["status"] == "succeeded", final
    assert final["result"]["source"] == "offline"
    published = await events_of(job_id, want=1)
    cards = [e for e in published if e["type"] == "bloop.ai.flashcards.generated.v1"]
    assert cards, [e["type"] for e in published]
    data = cards[0]["data"]
    assert isinstance(data, dict)
    assert data["lesson_id"] == les["id"]
    assert data["concept_ids"] == ["variables"]
    assert cards[0]["tenant"] == tenant
    assert json.dumps(data["cards"]) == json.dumps(final["result"]["cards"])


async def test_export_and_erasure_through_kafka(app: FastAPI) -> None:
    tenant = f"ai-{uuid.uuid4().hex[:8]}"
    base = f"/v1/tenants/{tenant}"
    async with api_client(app) as client:
        client.headers.update(await member(app, client, tenant, ["educator"]))
        les: dict[str, Any] = await lesson_at(client, base)
        r = await client.post(f"{base}/ai/jobs", json={
            "kind": "summary", "lesson_id": les["id"],
            "params": {"instructions": "Use my name, Ada Lovelace."}})
        assert r.status_code == 201, r.text
        job_id, user_id = r.json()["id"], r.json()["requested_by"]
        export = await client.get(f"{base}/me/export")
        assert export.status_code == 200, export.text
        assert [j["id"] for j in export.json()["services"]["ai"]["jobs_requested"]] == [job_id]

        r = await client.delete(f"{base}/me")
        assert r.status_code == 204, r.text
    service = app.state.ai.state["service"]

    async def anonymised() -> bool:
        return bool((await service.job(tenant, job_id)).requested_by == "deleted-user")

    await eventually(anonymised, timeout_s=60, interval_s=0.2,
                     what="user.deleted to reach the AI service through Kafka")
    job = await service.job(tenant, job_id)
    assert job.params.instructions == ""
    assert "Ada" not in job.model_dump_json()
    assert await service.personal_data(tenant, user_id) == {"jobs_requested": []}
