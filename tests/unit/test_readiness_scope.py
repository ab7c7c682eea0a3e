"""`/readyz` checks the stores the services of this process use, not every store configured: an
identity process stays in its Service while Neo4j or InfluxDB is down. `/readyz?scope=process`,
the Helm chart's readiness probe, checks no store: a pod stays in its Service while a store is
down (its routes that need it answer 503) and leaves it once it drains for shutdown."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from bloop.platform.app import create_app
from bloop.platform.demo import data
from bloop.platform.kit.draining import start_draining
from bloop.platform.kit.settings import (
    InfluxSettings,
    Neo4jSettings,
    RuntimeSettings,
    Settings,
)
from tests.support import api_client, login


def closed_port() -> int:
    """A port nothing listens on (bound for a moment, then let go)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings(tmp_path: Path) -> Settings:
    return Settings(
        runtime=RuntimeSettings(data_dir=tmp_path, seed_demo=True),
        neo4j=Neo4jSettings(adapter="real", url=f"bolt://127.0.0.1:{closed_port()}"),
        influx=InfluxSettings(adapter="real", url=f"http://127.0.0.1:{closed_port()}"))


async def readiness(services: list[str], tmp_path: Path) -> tuple[int, dict[str, Any], int]:
    """/readyz's status and checks, and the status of a sign-in where identity runs."""
    app = create_app(settings(tmp_path), services=services, http_routes="identity" in services)
    async with app.router.lifespan_context(app), api_client(app) as client:
        ready = await client.get("/readyz")
        signed_in = 0
        if "identity" in services:
            ada = data.PEOPLE[0]
            await login(client, data.TENANT_ID, ada.email, ada.password)
            signed_in = 200
        return ready.status_code, ready.json()["checks"], signed_in


async def test_an_identity_process_is_ready_while_stores_it_does_not_use_are_down(
        tmp_path: Path) -> None:
    status, checks, signed_in = await readiness(["identity"], tmp_path)
    assert (status, signed_in) == (200, 200), checks
    assert "neo4j" not in checks
    assert "influxdb" not in checks
    assert checks["sqlite:identity"]["state"] == "up"


async def test_a_learning_worker_is_unready_while_its_neo4j_is_down(tmp_path: Path) -> None:
    status, checks, _ = await readiness(["learning"], tmp_path)
    assert status == 503
    assert checks["neo4j"]["state"] == "down"
    assert "influxdb" not in checks  # no service writes to it yet


async def test_a_process_serves_whatever_its_stores_until_it_drains(tmp_path: Path) -> None:
    app = create_app(settings(tmp_path), services=["learning"], http_routes=False)
    async with app.router.lifespan_context(app), api_client(app) as client:
        assert (await client.get("/readyz")).status_code == 503  # its Neo4j is down
        serving = await client.get("/readyz", params={"scope": "process"})
        assert (serving.status_code, serving.json()) == (200, {"status": "ready", "checks": {}})
        head = await client.head("/readyz", params={"scope": "process"})
        assert (head.status_code, head.content) == (200, b"")
        start_draining(app)
        drained = await client.get("/readyz", params={"scope": "process"})
        assert (drained.status_code, drained.json()["status"]) == (503, "unready")
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz", params={"scope": "all"})).status_code == 422
