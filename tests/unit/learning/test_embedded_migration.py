"""The embedded learning store opens a database written before cards could be retired or taken
out of a deck, before AI cards kept their lesson, or before learners had time zones, and keeps
what it holds."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from bloop.platform.kit.events.types import registry
from bloop.platform.kit.sqlite import SqliteDB
from bloop.platform.learning import review
from bloop.platform.learning.model import Card, HeldUntil, LessonVersion, NewCard
from bloop.platform.learning.stores.embedded import EmbeddedLearningStore

BEFORE = """
CREATE TABLE cards (
  tenant TEXT NOT NULL, id TEXT NOT NULL, concept TEXT NOT NULL, at TEXT NOT NULL,
  doc TEXT NOT NULL, PRIMARY KEY (tenant, id));
CREATE TABLE card_states (
  tenant TEXT NOT NULL, learner TEXT NOT NULL, card TEXT NOT NULL, due TEXT NOT NULL,
  version INTEGER NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (tenant, learner, card));
"""
T0 = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


async def test_cards_and_decks_written_before_survive_the_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "learning.sqlite3"
    card = Card.create("acme", "loops", NewCard(front="for?", back="repeats"), at=T0)
    state = review.new_state(card.id, "loops", T0)
    with sqlite3.connect(path) as c:
        c.executescript(BEFORE)
        c.execute("INSERT INTO cards VALUES (?, ?, ?, ?, ?)",
                  ("acme", card.id, "loops", T0.isoformat(), card.model_dump_json()))
        c.execute("INSERT INTO card_states VALUES (?, ?, ?, ?, ?, ?)",
                  ("acme", "u1", card.id, T0.isoformat(), 0, state.model_dump_json()))
    c.close()
    db = SqliteDB(path)
    store = EmbeddedLearningStore(db, registry)
    try:
        await store.setup()
        await store.setup()  # a second start finds nothing to do
        assert await store.get_card("acme", card.id) == card
        assert await store.due("acme", "u1", T0, 10) == [state]
        assert await store.keep_in_deck("acme", "u1", card.id, False)
        assert await store.card_states("acme", "u1") == []
        assert await store.retire_card("acme", card.id)
        assert await store.get_card("acme", card.id) is None
    finally:
        await db.close()


BEFORE_LESSONS = """
CREATE TABLE cards (
  tenant TEXT NOT NULL, id TEXT NOT NULL, concept TEXT NOT NULL, at TEXT NOT NULL,
  doc TEXT NOT NULL, retired INTEGER NOT NULL DEFAULT 0, held_lesson TEXT, held_version INTEGER,
  PRIMARY KEY (tenant, id));
"""


async def test_cards_written_before_they_kept_their_lesson_survive_the_upgrade(
        tmp_path: Path) -> None:
    """Their records have no lesson: they read as cards of none, and a held one is still
    retired with the lesson it waits for."""
    path = tmp_path / "learning.sqlite3"
    ai = NewCard(front="for?", back="repeats", source="ai")
    live = Card.create("acme", "loops", ai, at=T0, card_id="live")
    held = Card.create("acme", "loops", ai, at=T0, card_id="held",
                       held_until=HeldUntil(lesson_id="L1", lesson_version=2))
    with sqlite3.connect(path) as c:
        c.executescript(BEFORE_LESSONS)
        for card in (live, held):
            doc = card.model_dump(mode="json")
            del doc["lesson_id"], doc["lesson_version"]
            c.execute("INSERT INTO cards VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
                      ("acme", card.id, "loops", T0.isoformat(), json.dumps(doc),
                       card.held_until and "L1", card.held_until and 2))
    c.close()
    db = SqliteDB(path)
    store = EmbeddedLearningStore(db, registry)
    try:
        await store.setup()
        await store.setup()
        assert await store.get_card("acme", "live") == live
        assert await store.get_card("acme", "held", held=True) == held
        await store.ensure_concepts("acme", ["loops"])
        made = Card.create("acme", "loops", ai.model_copy(update={"front": "new"}), at=T0,
                           made_from=LessonVersion(lesson_id="L1", lesson_version=1))
        await store.add_card(made)
        assert await store.retire_lesson_cards("acme", "L1", 10) == 2
        assert await store.get_card("acme", "live") == live
        assert await store.get_card("acme", made.id) is None
        assert await store.get_card("acme", "held", held=True) is None
    finally:
        await db.close()


async def test_learners_stored_before_time_zones_keep_their_parameters_and_gain_a_zone(
        tmp_path: Path) -> None:
    path = tmp_path / "learning.sqlite3"
    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE learners (tenant TEXT NOT NULL, id TEXT NOT NULL, fsrs TEXT,"
                  " PRIMARY KEY (tenant, id))")
        c.execute("INSERT INTO learners VALUES (?, ?, ?)", ("acme", "u1", json.dumps([0.5] * 21)))
    c.close()
    db = SqliteDB(path)
    store = EmbeddedLearningStore(db, registry)
    try:
        await store.setup()
        await store.setup()
        assert (await store.learner_settings("acme", "u1")).time_zone is None
        assert await store.save_time_zone("acme", "u1", "Asia/Kolkata", T0) == "stored"
        assert (await store.learner_settings("acme", "u1")).time_zone == "Asia/Kolkata"
        assert (await store.learner_settings("acme", "u1")).parameters == [0.5] * 21
    finally:
        await db.close()
