"""Checks every registered event type against the JSON Schema committed for it."""

from __future__ import annotations

import json
from typing import Any

from bloop.platform.kit.events.compat import breaking_changes
from bloop.platform.kit.events.types import EventType, registry


def load_all_types() -> None:
    """Imports every service's events module, which registers its types."""
    from bloop.platform import services

    for name in services.available():
        __import__(f"bloop.platform.{name}.events")


def check(et: EventType[Any], write_missing: bool = False) -> list[str]:
    path = et.schema_path
    current = et.json_schema()
    if not path.exists():
        if write_missing:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
            return []
        return [f"{et.type_id}: no committed schema at {path} (run `bloop events schemas --write`)"]
    committed = json.loads(path.read_text())
    return [f"{et.type_id}: {p}" for p in breaking_changes(committed, current)]


def check_all(write_missing: bool = False) -> list[str]:
    return [p for et in registry for p in check(et, write_missing)]
