"""Liveness and readiness: `/healthz` says the process runs, `/readyz` checks each dependency
(or, with `?scope=process`, only that the process serves: started and not draining)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from bloop.platform.kit.draining import draining
from bloop.platform.kit.metrics import CONTENT_TYPE_LATEST, Metrics
from bloop.platform.kit.waiting import forget


@dataclass
class Probe:
    """A dependency to check: `check` raises when it is not usable. One check runs at a time:
    asked again while the last one still runs, the probe waits for that one instead.

    `cancellable=False` for a client that must not be cancelled mid-call: a pymongo
    operation cancelled while it waits in server selection can leave the topology's lock held
    (Python 3.11), and the client then never reaches the server again. Such a check must end
    by itself (the driver's own timeouts), and is left to run past `timeout_s`."""

    name: str
    check: Callable[[], Awaitable[object]]
    timeout_s: float = 2.0
    cancellable: bool = True
    running: asyncio.Task[object] | None = field(default=None, init=False, repr=False,
                                                 compare=False)

    def started(self) -> asyncio.Task[object]:
        """The check in flight, started if none is."""
        if self.running is None or self.running.done():
            self.running = asyncio.ensure_future(self.check())
            forget(self.running)
        return self.running


@dataclass(frozen=True)
class ProbeResult:
    name: str
    up: bool
    latency_ms: float
    error: str | None = None


async def run_probe(probe: Probe) -> ProbeResult:
    """Answers within the probe's timeout whatever the check does: a check still running then
    is cancelled (unless the probe is not `cancellable`) and left behind, not awaited, since a
    client library that swallows the cancellation (or cleans up against a dead server) would
    otherwise hold up `/readyz` too. The store is down until a check answers."""
    start = time.perf_counter()
    task = probe.started()
    try:
        await asyncio.wait({task}, timeout=probe.timeout_s)
    finally:
        if not task.done() and probe.cancellable:
            task.cancel()
    if not task.done() or task.cancelled():
        return ProbeResult(probe.name, False, _ms(start),
                           f"TimeoutError: no answer within {probe.timeout_s:g}s")
    if (exc := task.exception()) is not None:
        detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return ProbeResult(probe.name, False, _ms(start), f"{type(exc).__name__}: {detail}")
    return ProbeResult(probe.name, True, _ms(start))


def record(metrics: Metrics, results: Iterable[ProbeResult]) -> None:
    """Each checked store's state in `bloop_store_up`."""
    for r in results:
        metrics.store_up.labels(r.name).set(int(r.up))


class Check(BaseModel):
    state: Literal["up", "down"]
    latency_ms: float
    error: str | None = Field(default=None, description="why it is down")


ReadinessScope = Annotated[Literal["stores", "process"], Query(description=(
    "`stores`: each dependency this process uses, 503 while one is down (for monitoring); "
    "`process`: only whether this process serves, 503 once it drains for shutdown, whatever "
    "its stores (for a load balancer: routes that need a store that is down answer 503 alone)"))]


class Readiness(BaseModel):
    """Each dependency's state; 503 while any is down."""

    status: Literal["ready", "unready"]
    checks: dict[str, Check]


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


def ops_router() -> APIRouter:
    """`/healthz`, `/readyz` and `/metrics`, for GET and for HEAD (some probes ask with HEAD)."""
    router = APIRouter(tags=["ops"])

    @router.head("/healthz", response_model=dict[str, str], operation_id="healthz_head")
    @router.get("/healthz", response_model=dict[str, str])
    async def healthz(request: Request) -> Response:
        return _answer(request, JSONResponse({"status": "ok"}))

    @router.head("/readyz", response_model=Readiness, responses=_UNREADY,
                 operation_id="readyz_head")
    @router.get("/readyz", response_model=Readiness, responses=_UNREADY)
    async def readyz(request: Request, scope: ReadinessScope = "stores") -> Response:
        if scope == "process":
            serving = not draining(request.app).started
            body = Readiness(status="ready" if serving else "unready", checks={})
            return _answer(request, JSONResponse(body.model_dump(),
                                                 status_code=200 if serving else 503))
        probes: list[Probe] = request.app.state.platform.probes
        results = await asyncio.gather(*(run_probe(p) for p in probes))
        record(request.app.state.platform.metrics, results)
        ready = all(r.up for r in results)
        body = Readiness(status="ready" if ready else "unready", checks={
            r.name: Check(state="up" if r.up else "down", latency_ms=r.latency_ms, error=r.error)
            for r in results})
        return _answer(request, JSONResponse(body.model_dump(exclude_none=True),
                                             status_code=200 if ready else 503))

    @router.head("/metrics", response_class=Response, responses=_METRICS,
                 operation_id="metrics_head")
    @router.get("/metrics", response_class=Response, responses=_METRICS)
    async def metrics(request: Request) -> Response:
        return _answer(request, Response(request.app.state.platform.metrics.render(),
                                         media_type=CONTENT_TYPE_LATEST))

    return router


_UNREADY: dict[int | str, dict[str, Any]] = {
    503: {"model": Readiness,
          "description": "a dependency is down (with `scope=process`: the process drains)"}}
_METRICS: dict[int | str, dict[str, Any]] = {200: {
    "description": "the Prometheus text exposition format",
    "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}}


def _answer(request: Request, response: Response) -> Response:
    """`response`, without its body for a HEAD (its headers, Content-Length too, stay)."""
    if request.method != "HEAD":
        return response
    return Response(status_code=response.status_code, headers=dict(response.headers))
