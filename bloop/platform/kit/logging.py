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


class PlainFormatter(logging.Formatter):
    """One line a record, its fields as key=value after the message, then any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line = " ".join([self.formatTime(record), record.levelname, record.name,
                         record.getMessage(),
                         *(f"{key}={value}" for key, value in fields(record).items())])
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(level: str = "INFO", json_format: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
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
