"""Log lines carry the request id and the fields a record was given, in both formats."""

from __future__ import annotations

import json
import logging

import pytest
from aiokafka.errors import UnknownMemberIdError

from bloop.platform.kit.logging import (
    GroupRejoins,
    JsonFormatter,
    OncePer,
    PlainFormatter,
    configure_logging,
    fields,
    request_id_var,
)


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


def aiokafka_error(name: str, node: int, created: float) -> logging.LogRecord:
    made = logging.LogRecord(name, logging.ERROR, __file__, 1,
                             "Unable connect to node with id %s: %s", (node, "refused"), None)
    made.created = created
    return made


def test_aiokafka_repeats_are_let_through_once_per_period_and_counted() -> None:
    once = OncePer("aiokafka", period_s=10)
    passed = [once.filter(aiokafka_error("aiokafka.client", n, 100 + n / 100)) for n in range(500)]
    assert passed == [True] + [False] * 499
    assert once.filter(aiokafka_error("aiokafka", 1, 101))  # another logger, its own count
    later = aiokafka_error("aiokafka.client", 7, 110.5)
    assert once.filter(later)
    assert later.suppressed == 499  # type: ignore[attr-defined]
    assert fields(later) == {"suppressed": 499}
    again = aiokafka_error("aiokafka.client", 7, 121)
    assert once.filter(again)
    assert "suppressed" not in vars(again)


def test_other_loggers_are_left_alone() -> None:
    once = OncePer("aiokafka", period_s=10)
    for name in ("bloop.outbox", "aiokafkaish", "kafka"):
        assert all(once.filter(aiokafka_error(name, 1, 100)) for _ in range(5))


def test_configured_logging_holds_back_aiokafka_repeats(capsys: pytest.CaptureFixture[str]) -> None:
    root, kafka = logging.getLogger(), logging.getLogger("aiokafka")
    saved = root.handlers[:], root.level, kafka.level
    try:
        configure_logging("INFO", json_format=True)
        for _ in range(50):
            logging.getLogger("aiokafka.conn").error("Unable to update metadata from %s", 1)
            logging.getLogger("bloop.outbox").warning("outbox relay cannot publish yet")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        kafka.setLevel(saved[2])
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["logger"] for line in lines].count("aiokafka.conn") == 1
    assert [line["logger"] for line in lines].count("bloop.outbox") == 50


COORDINATOR = "aiokafka.consumer.group_coordinator"


def rebalancing_and_rejoining() -> None:
    """What aiokafka 0.14 logs (its own format strings) as a group of several workers
    rebalances, and as a member whose session lapsed (a paused process) rejoins it."""
    log = logging.getLogger(COORDINATOR)
    log.warning("Heartbeat failed for group %s because it is rebalancing", "learning")
    log.warning("Heartbeat failed for group %s: generation id is not  current.", "learning")
    log.warning("Heartbeat failed: local member_id was not recognized;"
                " resetting and re-joining group")
    log.error("Heartbeat session expired - marking coordinator dead")
    log.warning("Marking the coordinator dead (node %s)for group %s.", 1, "learning")
    log.error("OffsetCommit failed for group %s due to group"
              " error (%s), will rejoin", "learning", UnknownMemberIdError("learning"))


def faults() -> None:
    """What aiokafka logs when something is wrong, rather than a group finding its members."""
    log = logging.getLogger(COORDINATOR)
    log.error("Heartbeat send request failed: %s. Will retry.", "RequestTimedOutError")
    log.error("OffsetCommit failed for group %s on partition %s"
              " with offset %s: %s", "learning", "content.events-0", 7, "UnknownError")
    log.warning("Heartbeat failed for group %s: coordinator (node %s)"
                " is either not started or not valid", "learning", 1)


def test_a_group_rebalancing_is_logged_at_info(caplog: pytest.LogCaptureFixture) -> None:
    """Each member logged a WARNING at every rebalance, and a rejoining member two ERRORs."""
    caplog.handler.addFilter(GroupRejoins())
    caplog.set_level(logging.INFO, logger="aiokafka")
    rebalancing_and_rejoining()
    assert len(caplog.records) == 6
    assert {(r.levelno, r.levelname) for r in caplog.records} == {(logging.INFO, "INFO")}
    assert "UnknownMemberIdError" in caplog.records[-1].getMessage()
    caplog.clear()
    faults()
    assert [r.levelname for r in caplog.records] == ["ERROR", "ERROR", "WARNING"]


def test_configured_logging_shows_faults_but_not_rebalancing(
        capsys: pytest.CaptureFixture[str]) -> None:
    root, kafka = logging.getLogger(), logging.getLogger("aiokafka")
    saved = root.handlers[:], root.level, kafka.level
    try:
        configure_logging("INFO", json_format=True)
        rebalancing_and_rejoining()
        faults()
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        kafka.setLevel(saved[2])
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["level"], line["msg"].split(" ")[:3]) for line in lines] == [
        ("ERROR", ["Heartbeat", "send", "request"]), ("ERROR", ["OffsetCommit", "failed", "for"]),
        ("WARNING", ["Heartbeat", "failed", "for"])]


def test_a_plain_line_cannot_be_broken_or_recoloured_by_a_value() -> None:
    """A path with a line break wrote a forged `ERROR` line of its own, with a terminal colour."""
    forged = record()
    forged.path = "/v1/x\n2026-12-06 23:00:00,000 ERROR bloop.auth \x1b[31mforged\u2028"
    line = PlainFormatter().format(forged)
    assert "\n" not in line
    assert "\x1b" not in line
    assert "\u2028" not in line
    assert "path=/v1/x\\x0a2026-12-06 23:00:00,000 ERROR bloop.auth \\x1b[31mforged\\u2028" in line


def test_a_plain_line_is_not_shown_reordered_by_a_value() -> None:
    """A right-to-left override (U+202E) in a path made a terminal show the line's end first."""
    turned = record()
    turned.path = "/v1/\u202egnp.txt\u2066x\u2069\u200f"
    line = PlainFormatter().format(turned)
    assert "path=/v1/\\u202egnp.txt\\u2066x\\u2069\\u200f" in line

