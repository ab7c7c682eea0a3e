"""The app factory: one FastAPI app for all services or for a chosen few."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI

from bloop.platform import services as service_registry
from bloop.platform.kit.errors import install_error_handlers
from bloop.platform.kit.health import ops_router
from bloop.platform.kit.middleware import RequestContextMiddleware
from bloop.platform.kit.settings import Settings
from bloop.platform.kit.wiring import Platform

log = logging.getLogger("bloop.app")


def create_app(settings: Settings | None = None, services: Sequence[str] | None = None, *,
               http_routes: bool = True, seed: bool | None = None) -> FastAPI:
    """`services` picks which services this process runs (all when empty). With
    `http_routes=False` (a worker) only the ops routes are served, beside consumers and relays."""
    settings = settings or Settings()
    chosen = service_registry.select(services)
    do_seed = settings.runtime.seed_demo if seed is None else seed

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        platform = Platform(settings)
        app.state.platform = platform
        mounted = []
        try:
            for service in chosen:
                m = await service.mount(platform)
                mounted.append(m)
                setattr(app.state, service.name, m)
                for sub in m.subscriptions:
                    platform.bus.subscribe(sub)
            await platform.start()
            if do_seed:
                for m in mounted:
                    if m.seed is not None:
                        await m.seed()
            log.info("started", extra={"services": [s.name for s in chosen],
                                       "store": settings.runtime.store})
            yield
        finally:
            for m in reversed(mounted):
                if m.close is not None:
                    await m.close()
            await platform.close()

    app = FastAPI(title="Bloop", version="0.1.0", lifespan=lifespan,
                  description="An open-source learning platform.")
    install_error_handlers(app)
    app.include_router(ops_router())
    if http_routes:
        for service in chosen:
            for router in service.routers():
                app.include_router(router)
    metrics_holder = _LazyMetrics(app)
    app.add_middleware(RequestContextMiddleware, metrics=metrics_holder,
                       max_body_bytes=settings.http.max_body_bytes)
    return app


class _LazyMetrics:
    """The middleware is built before the lifespan creates the platform's metrics."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app

    def __getattr__(self, name: str) -> object:
        return getattr(self._app.state.platform.metrics, name)
