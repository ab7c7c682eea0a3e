"""A store that is down at start-up degrades the routes that need it, not the process."""

from __future__ import annotations

import logging
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from bloop.platform.app import create_app
from bloop.platform.kit.settings import MongoSettings, RuntimeSettings, Settings
from tests.support import api_client


async def test_the_platform_starts_and_serves_with_mongodb_unreachable(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(
        runtime=RuntimeSettings(data_dir=tmp_path),
        mongo=MongoSettings(adapter="real", url="mongodb://127.0.0.1:9", timeout_ms=200),
    )
    app = create_app(settings)
    caplog.set_level(logging.INFO, "bloop.app")
    async with app.router.lifespan_context(app), api_client(app) as client:
        [started] = [r for r in caplog.records if r.getMessage() == "started"]
        assert started.stores == {"kafka": "embedded", "mongo": "real",  # type: ignore[attr-defined]
                                  "neo4j": "embedded", "redis": "embedded",
                                  "influx": "embedded"}
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        checks = ready.json()["checks"]
        assert checks["mongodb"]["state"] == "down"
        assert checks["sqlite:events"]["state"] == "up"
        anonymous = await client.get("/v1/tenants/demo/courses")
        assert anonymous.status_code == 401
        # Checking a token reads the signing keys from identity's store: down too.
        intruder = ed25519.Ed25519PrivateKey.generate()
        token = jwt.encode({"sub": "someone"}, intruder, algorithm="EdDSA",
                           headers={"kid": "k1", "typ": "at+jwt"})
        courses = await client.get("/v1/tenants/demo/courses",
                                   headers={"Authorization": f"Bearer {token}"})
        assert courses.status_code == 503
        assert courses.headers["content-type"] == "application/problem+json"
        assert courses.json()["code"] == "store_unavailable"
        assert courses.json()["store"] == "mongodb"
        assert courses.headers["retry-after"] == "5"
