"""A learner's mastery can be rebuilt from learning's events: reaching it is announced
(`concept.mastered`), and so is falling below it again (`concept.unmastered`), once a fall."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bloop.platform.learning.model import MASTERED
from bloop.platform.learning.service import LearningService
from tests.unit.learning import embedded_learning

T = "acme"
AT = datetime(2025, 1, 1, tzinfo=UTC)
MASTERY_TYPES = ("bloop.learning.concept.mastered.v1", "bloop.learning.concept.unmastered.v1")


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[LearningService]:
    async with embedded_learning(tmp_path) as service:
        yield service


async def mastery_events(service: LearningService) -> list[tuple[str, dict[str, Any]]]:
    """(type, data) of each mastery event waiting in the outbox, oldest first."""
    out = []
    for p in await service.repo.outbox.pending(1000):
        kind = dict(p.message.headers)["type"].decode()
        if kind in MASTERY_TYPES:
            out.append((kind.split(".")[3], json.loads(p.message.value)["data"]))
    return out


async def test_a_fall_below_mastery_is_announced_once(service: LearningService) -> None:
    """p_known went 0.996 (mastered) → 0.971 → 0.837 → 0.483 → 0.999: the log held two
    `concept.mastered` and nothing between, so a consumer could not tell it was lost."""
    answers = {"a1": [True] * 4, "a2": [False], "a3": [False], "a4": [False],
               "a5": [True] * 4}
    states = []
    for i, (attempt, given) in enumerate(answers.items()):
        [m] = await service.apply_attempt(T, "ada", attempt, ["ev-c"], given,
                                          AT + timedelta(minutes=i))
        states.append(m.mastered)
    assert states == [True, True, False, False, True]

    events = await mastery_events(service)
    assert [kind for kind, _ in events] == ["mastered", "unmastered", "mastered"]
    fall = events[1][1]
    assert {k: v for k, v in fall.items() if k != "unmastered_at"} == {
        "learner_id": "ada", "concept_id": "ev-c", "p_known": pytest.approx(0.837315, abs=1e-6),
        "attempt_id": "a3"}
    assert fall["p_known"] < MASTERED
    pending = {p.message.key for p in await service.repo.outbox.pending(1000)}
    assert pending == {b"ada"}  # keyed by the learner, as `concept.mastered`


async def test_a_fall_from_what_placement_found_known_is_announced(
        service: LearningService) -> None:
    await service._place(T, "ada", ["c"])
    after = datetime.now(UTC) + timedelta(minutes=1)  # answers before placement count for none
    [m] = await service.apply_attempt(T, "ada", "q1", ["c"], [False] * 2, after)
    assert not m.mastered
    events = await mastery_events(service)
    assert [(kind, data.get("source"), data.get("attempt_id")) for kind, data in events] == [
        ("mastered", "placement", None), ("unmastered", None, "q1")]
    # The same attempt again (a redelivery) changes nothing and announces nothing.
    assert await service.apply_attempt(T, "ada", "q1", ["c"], [False] * 2, after) == []
    assert len(await mastery_events(service)) == 2
