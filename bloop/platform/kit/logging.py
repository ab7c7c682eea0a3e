"""Structured JSON logs; every line carries the request id of the work it belongs to."""

from __future__ import annotations

import contextvars
import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "bloop_request_id", default=None
)

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The request id a record was logged under, then the `extra` it was given."""
    rid = request_id_var.get()
    found: dict[str, Any] = {"request_id": rid} if rid else {}
    for key, value in vars(record).items():
        if key not in _STANDARD and not key.startswith("_"):
            found[key] = value
    return found


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            **fields(record),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


# Line breaks and terminal controls a client can put in a logged value (a path, a header):
# written as they are, they would start a forged line or recolour the terminal.
# Bidirectional marks and overrides (U+202E) would show a line's text in another order.
_CONTROLS = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7f, 0xa0)]} | {
    c: f"\\u{c:04x}" for c in [0x061C, 0x200E, 0x200F, 0x2028, 0x2029, *range(0x202A, 0x202F),
                                *range(0x2066, 0x206A)]}


def one_line(value: object) -> str:
    """`value` as text with its control characters escaped, so it stays on its line."""
    return str(value).translate(_CONTROLS)


class PlainFormatter(logging.Formatter):
    """One line a record, its fields as key=value after the message, then any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line = " ".join([self.formatTime(record), record.levelname, record.name,
                         one_line(record.getMessage()),
                         *(f"{key}={one_line(value)}" for key, value in fields(record).items())])
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class OncePer(logging.Filter):
    """Lets each message template of the loggers under `prefix` through at most once every
    `period_s`; the next one let through carries how many were held back (`suppressed`). While
    Kafka is away aiokafka logs the same few errors hundreds of times a second."""

    def __init__(self, prefix: str, period_s: float = 10.0, remembered: int = 1000) -> None:
        super().__init__()
        self.prefix, self.period_s, self.remembered = prefix, period_s, remembered
        self._last: dict[tuple[str, int, str], float] = {}
        self._held: dict[tuple[str, int, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not (record.name == self.prefix or record.name.startswith(self.prefix + ".")):
            return True
        key = (record.name, record.levelno, str(record.msg))
        last = self._last.get(key)
        if last is not None and record.created - last < self.period_s:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        if len(self._last) >= self.remembered:
            self._last.clear()
            self._held.clear()
        self._last[key] = record.created
        if held := self._held.pop(key, 0):
            record.suppressed = held
        return True


# What aiokafka logs at WARNING or ERROR as a consumer group rebalances, or a member whose
# session lapsed (a paused process) rejoins it: the group recovers by itself, so these are news,
# not faults. A coordinator Kafka cannot reach still shows in aiokafka's own errors about it.
_REJOINING = frozenset({
    "Heartbeat failed for group %s because it is rebalancing",
    "Heartbeat failed for group %s: generation id is not  current.",
    "Heartbeat failed: local member_id was not recognized; resetting and re-joining group",
    "Heartbeat session expired - marking coordinator dead",
    "Marking the coordinator dead (node %s)for group %s.",
    "OffsetCommit failed for group %s due to group error (%s), will rejoin",
})


class GroupRejoins(logging.Filter):
    """Lowers aiokafka's records of a consumer group's ordinary rebalancing to INFO, which its
    loggers then let through only when set to INFO or below."""

    def filter(self, record: logging.LogRecord) -> bool:
        if (record.levelno <= logging.INFO or str(record.msg) not in _REJOINING
                or not (record.name == "aiokafka" or record.name.startswith("aiokafka."))):
            return True
        record.levelno, record.levelname = logging.INFO, "INFO"
        return logging.getLogger(record.name).isEnabledFor(logging.INFO)


def configure_logging(level: str = "INFO", json_format: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(GroupRejoins())
    handler.addFilter(OncePer("aiokafka"))
    if json_format:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(PlainFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The HTTP clients log every request at INFO with its full address, a user name and
    # password in it included ("HTTP Request: POST http://user:secret@…"), and `openai` at
    # DEBUG its requests' bodies; httpx2 and httpcore2 are the forks the `openai` package uses.
    for noisy in ("aiokafka", "kafka", "neo4j", "pymongo", "uvicorn.access", "httpx", "httpx2",
                  "httpcore", "httpcore2", "openai"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
