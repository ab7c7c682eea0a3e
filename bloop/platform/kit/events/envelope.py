"""The envelope every Bloop event travels in (ARCHITECTURE.md §3).

A plain frozen dataclass, cheap to build in process; pydantic validates envelopes that arrive as
bytes (`parse_envelope`) against the same field constraints.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from pydantic import AwareDatetime, ConfigDict, Field, TypeAdapter, ValidationError, with_config

from bloop.platform.kit.ids import new_id

TYPE_PATTERN = r"^bloop\.[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+\.v[1-9][0-9]*$"
Tenant = Annotated[str, Field(min_length=1, max_length=200)]
Subject = Annotated[str, Field(min_length=1, max_length=500)]


@with_config(ConfigDict(extra="ignore"))  # fields a later version adds are left aside
@dataclass(frozen=True, slots=True)
class Envelope:
    id: uuid.UUID
    type: Annotated[str, Field(pattern=TYPE_PATTERN)]
    source: Annotated[str, Field(min_length=1, max_length=200)]
    time: Annotated[AwareDatetime, Field(strict=True)]  # ISO 8601 with its zone, not a number
    tenant: Tenant
    subject: Subject
    data: dict[str, Any]
    request_id: Annotated[str | None, Field(max_length=200)] = None

    def to_bytes(self) -> bytes:
        # As a dict: orjson serialises a slotted dataclass several times slower.
        return orjson.dumps({"id": self.id, "type": self.type, "source": self.source,
                             "time": self.time, "tenant": self.tenant, "subject": self.subject,
                             "data": self.data, "request_id": self.request_id})

    @property
    def key(self) -> bytes:
        """The Kafka key: the aggregate id, so one aggregate's events stay in order."""
        return self.subject.encode()

    @classmethod
    def trusted(cls, *, type_id: str, source: str, tenant: str, subject: str,
                data: dict[str, Any], request_id: str | None, time: datetime | None) -> Envelope:
        """An envelope whose type and data come from a registered event type: only the
        caller-given strings are checked here."""
        if not 0 < len(tenant) <= 200:
            raise ValueError("envelope tenant must be 1..200 characters")
        if not 0 < len(subject) <= 500:
            raise ValueError("envelope subject must be 1..500 characters")
        if request_id is not None and len(request_id) > 200:
            request_id = request_id[:200]
        made: Envelope = _new(cls)
        _id(made, new_id())
        _type(made, type_id)
        _source(made, source)
        _time(made, time or datetime.now(UTC))
        _tenant(made, tenant)
        _subject(made, subject)
        _data(made, data)
        _request_id(made, request_id)
        return made


# What the frozen __init__ does through object.__setattr__, at a third of its cost: each slot's
# own setter, for the envelope of every event written.
_new = object.__new__
_setters = {f.name: Envelope.__dict__[f.name].__set__ for f in fields(Envelope)}
_id, _type, _source, _time, _tenant, _subject, _data, _request_id = (_setters[name] for name in (
    "id", "type", "source", "time", "tenant", "subject", "data", "request_id"))
_ADAPTER = TypeAdapter(Envelope)
# What _ADAPTER.validate_json does, without its per-call argument handling.
_validate_json = _ADAPTER.validator.validate_json
class MalformedEvent(Exception):
    """An event that cannot be consumed; `reason` says why, for the dead-letter topic."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def parse_envelope(raw: bytes) -> Envelope:
    try:
        envelope: Envelope = _validate_json(raw)
        return envelope
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "envelope"
        raise MalformedEvent("bad_envelope", f"{where}: {first['msg']}") from None
