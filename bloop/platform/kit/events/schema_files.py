"""Checks every registered event type against the JSON Schema committed for it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from bloop.platform.kit.events.compat import breaking_changes
from bloop.platform.kit.events.envelope import Envelope
from bloop.platform.kit.events.types import EventType, registry

ENVELOPE_SCHEMA = Path(__file__).parent / "schemas" / "envelope.json"


def envelope_schema() -> dict[str, Any]:
    schema = TypeAdapter(Envelope).json_schema()
    schema["$id"] = "https://bloop.dev/events/envelope.json"
    schema["title"] = "Bloop event envelope"
    return schema


def load_all_types() -> None:
    """Imports every service's events module, which registers its types."""
    from bloop.platform import services

    for service in services.available().values():
        # Each service's package holds its wiring and its events (bloop.platform.content, bloop.ai.jobs).
        __import__(f"{service.mount.__module__.rpartition('.')[0]}.events")


def check(et: EventType[Any], write_missing: bool = False) -> list[str]:
    return _check(et.type_id, et.schema_path, et.json_schema(), write_missing)


def check_envelope(write_missing: bool = False) -> list[str]:
    return _check("envelope", ENVELOPE_SCHEMA, envelope_schema(), write_missing)


def _check(name: str, path: Path, current: dict[str, Any], write_missing: bool) -> list[str]:
    if not path.exists():
        if write_missing:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
            return []
        return [f"{name}: no committed schema at {path} (run `bloop events schemas --write`)"]
    committed = json.loads(path.read_text())
    return [f"{name}: {p}" for p in breaking_changes(committed, current)]


def check_all(write_missing: bool = False) -> list[str]:
    return check_envelope(write_missing) + [p for et in registry for p in check(et, write_missing)]
