"""Bloop's services outside a server, for the notebooks and for scripts: a service's use cases
on the stores the `BLOOP_*` settings name (the app's lifespan, without HTTP), or on throwaway
embedded stores for a simulation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

from fastapi import FastAPI

from bloop.platform.app import create_app
from bloop.platform.kit.settings import (
    InfluxSettings,
    KafkaSettings,
    MongoSettings,
    Neo4jSettings,
    RedisSettings,
    RuntimeSettings,
    Settings,
)

S = TypeVar("S")


def embedded_settings(data_dir: Path) -> Settings:
    """Every store embedded, its files under `data_dir`, whatever the environment says."""
    return Settings(
        runtime=RuntimeSettings(store="embedded", data_dir=data_dir, seed_demo=False),
        kafka=KafkaSettings(adapter="embedded"), mongo=MongoSettings(adapter="embedded"),
        neo4j=Neo4jSettings(adapter="embedded"), redis=RedisSettings(adapter="embedded"),
        influx=InfluxSettings(adapter="embedded"))


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[FastAPI]:
    """The app's lifespan around some work; the events the work stored are published before
    it ends."""
    async with app.router.lifespan_context(app):
        yield app
        for relay in app.state.platform.relays:
            await relay.flush()


@asynccontextmanager
async def opened(name: str, kind: type[S], settings: Settings | None = None) -> AsyncIterator[S]:
    """The use cases of service `name` (a `kind`), with its stores set up and its consumers
    running; the events it stored are published before it closes."""
    async with running(create_app(settings or Settings(), [name], http_routes=False,
                                  seed=False)) as app:
        service = getattr(app.state, name).state["service"]
        if not isinstance(service, kind):
            raise TypeError(f"the {name} service is a {type(service).__name__}, not {kind.__name__}")
        yield service


async def user_ids(tenant: str, settings: Settings | None = None) -> list[str]:
    """The ids of every user of `tenant`, from the identity service on the stores `settings`
    name (those of the `BLOOP_*` variables by default)."""
    return list(await time_zones(tenant, settings))


async def time_zones(tenant: str, settings: Settings | None = None) -> dict[str, str]:
    """Every user of `tenant` by id, with the time zone their profile names (their day is the
    calendar where they live), read as `user_ids` reads them."""
    from bloop.platform.identity.service import IdentityService
    from bloop.platform.kit.pagination import every

    async with opened("identity", IdentityService, settings) as identity:
        users = await every(lambda after: identity.users(tenant, after=after, limit=200))
    return {user.id: user.time_zone for user in users}
