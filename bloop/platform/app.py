"""The app factory: one FastAPI app for all services or for a chosen few."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, cast

from fastapi import FastAPI

from bloop.platform import services as service_registry
from bloop.platform.demo import data as demo
from bloop.platform.demo.sign_ins import DemoSignIns
from bloop.platform.kit.auth.deps import (
    ANONYMOUS_UNCOUNTED,
    NEVER_LIMITED,
    PUBLIC_ROUTES,
    document_security,
)
from bloop.platform.kit.cors import install_cors
from bloop.platform.kit.docs import install_docs
from bloop.platform.kit.draining import Draining
from bloop.platform.kit.errors import install_error_handlers, is_store_down
from bloop.platform.kit.events.outbox import OutboxRelay
from bloop.platform.kit.favicon import favicon_router
from bloop.platform.kit.fixed_paths import claim_fixed_paths
from bloop.platform.kit.health import ops_router
from bloop.platform.kit.idempotency.layer import install_idempotency, try_pending_once
from bloop.platform.kit.middleware import RequestContextMiddleware
from bloop.platform.kit.openapi_doc import serve_openapi
from bloop.platform.kit.personal_data import PersonalDataSources
from bloop.platform.kit.problem_docs import document_problems
from bloop.platform.kit.settings import Settings, SettingsError, unknown_names
from bloop.platform.kit.union_tags import document_union_tags
from bloop.platform.kit.waiting import stop_all
from bloop.platform.kit.wiring import Platform
from bloop.platform.services import Mounted
from bloop.platform.setup_watch import watch_stores

if TYPE_CHECKING:
    from bloop.platform.identity.service import IdentityService

log = logging.getLogger("bloop.app")


def create_app(settings: Settings | None = None, services: Sequence[str] | None = None, *,
               http_routes: bool = True, seed: bool | None = None,
               one_off: bool = False) -> FastAPI:
    """`services` picks which services this process runs (all when empty). With
    `http_routes=False` (a worker) only the ops routes are served, beside consumers and relays.
    `one_off` is for a command that runs to its end beside the servers (see `Platform`)."""
    settings = settings or Settings()
    chosen = service_registry.select(services)
    service_registry.check_settings(chosen)
    if unknown := unknown_names(service_registry.settings_groups(), os.environ):
        log.warning("unknown settings, left aside: " + ", ".join(
            name + (f" (did you mean {near}?)" if near else "") for name, near in unknown.items()),
            extra={"settings": list(unknown)})
    if http_routes and all(s.name != "identity" for s in chosen) and not settings.auth.jwks_url:
        raise SettingsError(
            "missing setting BLOOP_AUTH_JWKS_URL: a process that serves routes without identity "
            "verifies access tokens with the keys identity publishes; set it to identity's "
            "/.well-known/jwks.json")
    do_seed = settings.runtime.seed_demo if seed is None else seed

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.draining = Draining()
        platform = Platform(settings, one_off=one_off)
        app.state.platform = platform
        app.state.store_outages.metrics = platform.metrics
        mounted: list[Mounted] = []
        relays: list[list[OutboxRelay]] = []
        background: list[asyncio.Task[None]] = []
        ready: list[tuple[str, Mounted]] = []
        try:
            for service in chosen:
                before = len(platform.relays)
                m = await service.mount(platform)
                mounted.append(m)
                relays.append(platform.relays[before:])
                setattr(app.state, service.name, m)
                platform.services[service.name] = m.state
            app.state.personal_data = PersonalDataSources(
                exporters={s.name: m.personal_data for s, m in zip(chosen, mounted, strict=True)
                           if m.personal_data is not None},
                elsewhere=[n for n in service_registry.available()
                           if n not in {s.name for s in chosen}])
            await platform.start()
            for service, m, own in zip(chosen, mounted, relays, strict=True):
                if await _prepare(service.name, m, do_seed):
                    platform.activate(own, m.subscriptions)
                    ready.append((service.name, m))
                else:
                    background.append(asyncio.create_task(
                        _prepare_until_ready(platform, service.name, m, own, do_seed, ready),
                        name=f"setup:{service.name}"))
            background.append(asyncio.create_task(
                watch_stores(platform.probes, ready, settings.runtime.store_watch_s,
                             app.state.store_outages, platform.metrics),
                name="setup:watch"))
            log.info("started", extra={"services": [s.name for s in chosen],
                                       "stores": settings.modes()})
            yield
        finally:
            app.state.draining.start()
            await stop_all(background)
            await try_pending_once()  # Idempotency-Keys still to free or answer, store open
            await platform.stop_work()
            for m in reversed(mounted):
                if m.close is not None:
                    await m.close()
            await platform.close()
            log.info("stopped", extra={"services": [s.name for s in chosen]})

    app = FastAPI(title="Bloop", version="0.1.0", lifespan=lifespan,
                  description="An open-source learning platform.", docs_url=None, redoc_url=None)
    install_error_handlers(app)
    app.include_router(ops_router())
    app.include_router(favicon_router())
    if http_routes:
        signs_in_demo = do_seed and any(s.name == "identity" for s in chosen)
        install_docs(app, sign_in_tenant=demo.TENANT_ID if signs_in_demo else None)
        app.state.demo_sign_ins = DemoSignIns(lambda: _identity(app)) if signs_in_demo else None
        for service in chosen:
            for router in service.routers():
                app.include_router(router)
        from bloop.graphql.ide import install_graphiql
        from bloop.graphql.router import PATH, graphql_router

        graphql = graphql_router(chosen, settings.http.graphql_max_concurrent_per_caller)
        if graphql is not None:
            install_graphiql(app, PATH, demo_tenant=demo.TENANT_ID if do_seed else None,
                             demo_people=app.state.demo_sign_ins)
            app.include_router(graphql)
        claim_fixed_paths(app)
    document_security(app)
    document_problems(app, never_limited=NEVER_LIMITED)
    document_union_tags(app)
    if http_routes:
        install_idempotency(app, lambda: app.state.platform.idempotency, settings.http,
                            [p for s in chosen for p in s.large_bodies])
    serve_openapi(app)
    # The platform (and its metrics) is created by the lifespan, after the middleware.
    app.add_middleware(RequestContextMiddleware, metrics=lambda: app.state.platform.metrics,
                       max_body_bytes=settings.http.max_body_bytes,
                       body_idle_s=settings.http.body_idle_timeout_s,
                       body_min_rate=settings.http.body_min_rate_bytes_s,
                       own_limits=[p for s in chosen for p in s.large_bodies] if http_routes else [],
                       count_anonymous=lambda ip: app.state.platform.auth.count_anonymous(ip),
                       uncounted=sorted(ANONYMOUS_UNCOUNTED),
                       public_paths={p for _, p in PUBLIC_ROUTES if "{" not in p})
    if settings.http.cors_origins:
        install_cors(app, settings.http.cors_origins)
    return app


async def _prepare(name: str, m: Mounted, seed: bool) -> bool:
    """Sets a service's stores up (and seeds it); False when a store it needs is down."""
    try:
        if m.setup is not None:
            await m.setup()
        if seed and m.seed is not None:
            await m.seed()
    except Exception as exc:
        if not is_store_down(exc):
            raise
        log.warning("a store is down; the service starts degraded and retries its setup",
                    extra={"service": name, "error": repr(exc)})
        return False
    return True


async def _prepare_until_ready(platform: Platform, name: str, m: Mounted,
                               relays: Sequence[OutboxRelay], seed: bool,
                               ready: list[tuple[str, Mounted]]) -> None:
    delay = 1.0
    while not await _prepare(name, m, seed):
        await asyncio.sleep(delay)
        delay = min(delay * 2, 30.0)
    platform.activate(relays, m.subscriptions)
    ready.append((name, m))
    log.info("service ready", extra={"service": name})


def _identity(app: FastAPI) -> IdentityService | None:
    mounted: Mounted | None = getattr(app.state, "identity", None)
    return None if mounted is None else cast("IdentityService", mounted.state["service"])
