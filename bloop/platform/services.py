"""The services one process can run. `bloop serve` mounts all of them; `bloop serve NAME` one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from fastapi import APIRouter
from pydantic_settings import BaseSettings

from bloop.platform.kit.events.bus.port import Subscription
from bloop.platform.kit.personal_data import PersonalData
from bloop.platform.kit.settings import GROUPS, read
from bloop.platform.kit.wiring import Platform


@dataclass
class Mounted:
    """What a service brings to a process. `setup` creates its tables, indexes and constraints;
    when a store is down at start-up the process starts anyway and keeps retrying `setup` (then
    `seed`) in the background, while routes needing that store answer 503."""

    setup: Callable[[], Awaitable[None]] | None = None
    subscriptions: Sequence[Subscription] = ()
    seed: Callable[[], Awaitable[None]] | None = None
    close: Callable[[], Awaitable[None]] | None = None
    personal_data: PersonalData | None = None
    state: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Service:
    name: str
    mount: Callable[[Platform], Awaitable[Mounted]]
    routers: Callable[[], Sequence[APIRouter]] = tuple
    large_bodies: Sequence[str] = ()
    """Path templates whose routes read and limit their own request bodies (uploads), exempt
    from `BLOOP_HTTP_MAX_BODY_BYTES`."""
    settings: Sequence[type[BaseSettings]] = ()
    """The service's own settings groups, beside the platform's: read before the process
    starts, so an invalid value stops it with one line."""


def available() -> dict[str, Service]:
    from bloop.ai.jobs.wiring import SERVICE as ai
    from bloop.platform.content.wiring import SERVICE as content
    from bloop.platform.identity.wiring import SERVICE as identity
    from bloop.platform.learning.wiring import SERVICE as learning

    return {s.name: s for s in (identity, content, ai, learning)}


def select(names: Sequence[str] | None) -> list[Service]:
    services = available()
    if not names:
        return list(services.values())
    unknown = [n for n in names if n not in services]
    if unknown:
        raise ValueError(f"unknown service {unknown[0]!r}; choose from {', '.join(services)}")
    return [services[n] for n in names]


def check_settings(services: Sequence[Service]) -> None:
    """Reads every settings group `services` have of their own; raises `SettingsError`."""
    for service in services:
        for group in service.settings:
            read(group)


def settings_groups() -> list[type[BaseSettings]]:
    """Every settings group a process may read: the platform's and each service's own."""
    return [*GROUPS, *(group for service in available().values() for group in service.settings)]
