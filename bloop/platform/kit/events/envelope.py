"""The envelope every Bloop event travels in (ARCHITECTURE.md §3)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

TYPE_PATTERN = r"^bloop\.[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+\.v[1-9][0-9]*$"


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: uuid.UUID
    type: str = Field(pattern=TYPE_PATTERN)
    source: str = Field(min_length=1, max_length=200)
    time: datetime
    tenant: str = Field(min_length=1, max_length=200)
    subject: str = Field(min_length=1, max_length=500)
    data: dict[str, Any]
    request_id: str | None = Field(default=None, max_length=200)

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))

    @property
    def key(self) -> bytes:
        """The Kafka key: the aggregate id, so one aggregate's events stay in order."""
        return self.subject.encode()


class MalformedEvent(Exception):
    """An event that cannot be consumed; `reason` says why, for the dead-letter topic."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def parse_envelope(raw: bytes) -> Envelope:
    try:
        return Envelope.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "envelope"
        raise MalformedEvent("bad_envelope", f"{where}: {first['msg']}") from None


def new_envelope(type_id: str, *, source: str, tenant: str, subject: str, data: dict[str, Any],
                 request_id: str | None = None, time: datetime | None = None) -> Envelope:
    return Envelope(
        id=uuid.uuid4(), type=type_id, source=source, time=time or datetime.now(UTC),
        tenant=tenant, subject=subject, data=data, request_id=request_id,
    )
