"""Log lines carry the request id and the fields a record was given, in both formats."""

from __future__ import annotations

import json
import logging

from bloop.platform.kit.logging import JsonFormatter, PlainFormatter, request_id_var


def record() -> logging.LogRecord:
    made = logging.LogRecord("bloop.http", logging.INFO, __file__, 1, "request", None, None)
    made.status, made.route = 404, "/v1/tenants/{tenant}/courses/{course}"
    return made


def test_plain_lines_keep_the_fields_json_lines_have() -> None:
    token = request_id_var.set("r-1")
    try:
        plain = PlainFormatter().format(record())
        structured = json.loads(JsonFormatter().format(record()))
    finally:
        request_id_var.reset(token)
    assert plain.endswith(" INFO bloop.http request request_id=r-1 status=404 "
                          "route=/v1/tenants/{tenant}/courses/{course}")
    assert structured["request_id"] == "r-1"
    assert (structured["status"], structured["msg"]) == (404, "request")
