"""Versioned event types, registered in code.

A type is a pydantic model of the event's `data`, declared with `@event_type(...)`. Its JSON
Schema is committed under the declaring package's `schemas/` folder; `tests/unit/test_event_schemas`
fails when the model drifts from that file in a way an older consumer could not read.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from bloop.platform.kit.events.envelope import Envelope, MalformedEvent
from bloop.platform.kit.logging import request_id_var

D = TypeVar("D", bound=BaseModel)


@dataclass(frozen=True)
class EventType(Generic[D]):
    name: str
    version: int
    topic: str
    model: type[D]

    @cached_property
    def type_id(self) -> str:
        return f"{self.name}.v{self.version}"

    @cached_property
    def source(self) -> str:
        return "bloop/" + self.name.split(".")[1]

    @property
    def schema_path(self) -> Path:
        package_dir = Path(sys.modules[self.model.__module__].__file__ or ".").parent
        return package_dir / "schemas" / f"{self.type_id}.json"

    def json_schema(self) -> dict[str, Any]:
        schema = self.model.model_json_schema()
        schema["$id"] = f"https://bloop.dev/events/{self.type_id}.json"
        schema["title"] = self.type_id
        return schema

    def envelope(self, data: D, *, tenant: str, subject: str,
                 time: datetime | None = None) -> Envelope:
        if not isinstance(data, self.model):
            raise TypeError(f"{self.type_id} carries {self.model.__name__}, not {type(data).__name__}")
        return Envelope.trusted(
            type_id=self.type_id, source=self.source, tenant=tenant, subject=subject,
            # What model_dump(mode="json") does, without its per-call argument handling.
            data=self.model.__pydantic_serializer__.to_python(data, mode="json"),
            request_id=request_id_var.get(), time=time,
        )

    def parse(self, envelope: Envelope) -> D:
        try:
            # What model_validate does, without its per-call argument handling.
            data: D = self.model.__pydantic_validator__.validate_python(envelope.data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "data"
            raise MalformedEvent("schema_violation", f"{self.type_id} {where}: {first['msg']}") from None
        return data


class EventRegistry:
    def __init__(self) -> None:
        self._types: dict[str, EventType[Any]] = {}

    def register(self, et: EventType[Any]) -> None:
        existing = self._types.get(et.type_id)
        if existing is not None and existing.model is not et.model:
            raise ValueError(f"event type {et.type_id} is registered twice")
        self._types[et.type_id] = et

    def get(self, type_id: str) -> EventType[Any]:
        try:
            return self._types[type_id]
        except KeyError:
            raise MalformedEvent("unknown_type", f"no event type {type_id!r} is registered") from None

    def checked(self, envelope: Envelope) -> EventType[Any]:
        """The envelope's registered type, once its data has been checked against it."""
        et = self.get(envelope.type)
        et.parse(envelope)
        return et

    def __iter__(self) -> Iterator[EventType[Any]]:
        return iter(sorted(self._types.values(), key=lambda t: t.type_id))

    def topics(self) -> set[str]:
        return {t.topic for t in self._types.values()}


registry = EventRegistry()


def event_type(name: str, version: int, topic: str) -> Callable[[type[D]], type[D]]:
    """Declares a pydantic model as the data of event type `name`.v`version` on `topic`."""

    def register(model: type[D]) -> type[D]:
        et = EventType(name=name, version=version, topic=topic, model=model)
        registry.register(et)
        model.event_type = et  # type: ignore[attr-defined]
        return model

    return register


def type_of(model: type[D]) -> EventType[D]:
    et: EventType[D] = model.event_type  # type: ignore[attr-defined]
    return et
