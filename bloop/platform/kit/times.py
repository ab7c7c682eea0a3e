"""Times as records' JSON keeps them (what `model_dump(mode="json")` writes), for stores that
compare or set them in place."""

from __future__ import annotations

from datetime import datetime

from pydantic import TypeAdapter

_TIME: TypeAdapter[datetime] = TypeAdapter(datetime)


def json_time(at: datetime) -> str:
    value: str = _TIME.dump_python(at, mode="json")
    return value
