"""The embedded learning store opens a database written before cards could be retired or taken
out of a deck, and keeps what it holds."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from bloop.platform.kit.events.types import registry
from bloop.platform.kit.sqlite import SqliteDB
from bloop.platform.learning import review
from bloop.platform.learning.model import Card, NewCard
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
