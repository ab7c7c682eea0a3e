"""Liveness and readiness: `/healthz` says the process runs, `/readyz` checks each dependency."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from bloop.platform.kit.metrics import CONTENT_TYPE_LATEST
from bloop.platform.kit.waiting import forget


@dataclass(frozen=True)
class Probe:
    """A dependency to check: `check` raises when it is not usable."""

    name: str
    check: Callable[[], Awaitable[object]]
    timeout_s: float = 2.0


@dataclass(frozen=True)
class ProbeResult:
    name: str
    up: bool
    latency_ms: float
    error: str | None = None


async def run_probe(probe: Probe) -> ProbeResult:
    """Answers within the probe's timeout whatever the check does: a check still running then is
    cancelled and left behind, not awaited, since a client library that swallows the
    cancellation (or cleans up against a dead server) would otherwise hold up `/readyz` too."""
    start = time.perf_counter()
    task = asyncio.ensure_future(probe.check())
    try:
        await asyncio.wait({task}, timeout=probe.timeout_s)
    finally:
        if not task.done():
            task.cancel()
            forget(task)
    if not task.done() or task.cancelled():
        return ProbeResult(probe.name, False, _ms(start),
                           f"TimeoutError: no answer within {probe.timeout_s:g}s")
    if (exc := task.exception()) is not None:
        detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return ProbeResult(probe.name, False, _ms(start), f"{type(exc).__name__}: {detail}")
    return ProbeResult(probe.name, True, _ms(start))


class Check(BaseModel):
    state: Literal["up", "down"]
    latency_ms: float
    error: str | None = Field(default=None, description="why it is down")


class Readiness(BaseModel):
    """Each dependency's state; 503 while any is down."""

    status: Literal["ready", "unready"]
    checks: dict[str, Check]


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


def ops_router() -> APIRouter:
    router = APIRouter(tags=["ops"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", response_model=Readiness, responses={
        503: {"model": Readiness, "description": "a dependency is down"}})
    async def readyz(request: Request) -> JSONResponse:
        probes: list[Probe] = request.app.state.platform.probes
        results = await asyncio.gather(*(run_probe(p) for p in probes))
        ready = all(r.up for r in results)
        body = Readiness(status="ready" if ready else "unready", checks={
            r.name: Check(state="up" if r.up else "down", latency_ms=r.latency_ms, error=r.error)
            for r in results})
        return JSONResponse(body.model_dump(exclude_none=True), status_code=200 if ready else 503)

    @router.get("/metrics", response_class=Response, responses={200: {
        "description": "the Prometheus text exposition format",
        "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}})
    async def metrics(request: Request) -> Response:
        return Response(request.app.state.platform.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return router
