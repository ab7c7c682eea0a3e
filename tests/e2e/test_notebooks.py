"""The notebooks run top to bottom as a person opens them: on a simulated cohort and throwaway
embedded stores (each checks its own findings against the simulation), and on a tenant's data in
the stores the settings name, embedded or the real servers. They are committed run."""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from bloop.analysis import embedded_settings, opened
from bloop.infra import servers
from bloop.platform.identity.model import NewTenant, NewUser, ProfileEdit
from bloop.platform.identity.service import IdentityService
from bloop.platform.kit.settings import RuntimeSettings, Settings
from bloop.platform.learning.model import NewCard, NewConcept, NewReview
from bloop.platform.learning.service import LearningService
from tests.support import require_server

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))
NAMED = {p.stem: p for p in NOTEBOOKS}


def read(path: Path) -> Any:
    return nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]


def test_there_are_notebooks() -> None:
    assert list(NAMED) == ["engagement", "mastery", "scheduling"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebook_is_committed_run_top_to_bottom(path: Path) -> None:
    notebook = read(path)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for c in code for o in c.outputs)


def run(path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> str:
    """Runs the notebook in a kernel of its own with `env`; what its cells printed."""
    for var in [v for v in os.environ if v.startswith(("BLOOP_", "NOTEBOOK_"))]:
        monkeypatch.delenv(var)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    notebook = read(path)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    # Matplotlib's first import on a machine says on stderr that it builds its font cache.
    assert not [o.text for o in outputs if o.output_type == "stream" and o.name == "stderr"
                and "building the font cache" not in o.text]
    return "".join(o.text for o in outputs if o.output_type == "stream")


@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebook_runs_on_its_simulation(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    printed = run(path, monkeypatch, {})
    assert "again" in printed or "move towards it" in printed


async def a_school(settings: Settings, tenant: str) -> int:
    """A tenant with three learners: answers on a concept from 30 (ids only, as the learning
    service knows them), one learner with enough reviews for a fit of their own, and one in
    Kiribati (UTC+14) who reviews twice on one evening of theirs, across midnight UTC. The
    number of days the learners studied, each on their own calendar."""
    async with opened("identity", IdentityService, settings) as identity:
        await identity.create_tenant(NewTenant(id=tenant, name="School"))
        people = [await identity.register_user(tenant, NewUser(
            email=f"learner{n}@school.org", display_name=f"Learner {n}")) for n in range(3)]
        await identity.update_profile(tenant, people[1].id,
                                      ProfileEdit(time_zone="Pacific/Kiritimati"))
    rng = random.Random(1)
    start = datetime.now(UTC) + timedelta(hours=1)
    async with opened("learning", LearningService, settings) as learning:
        await learning.add_concept(tenant, NewConcept(id="fractions", name="Fractions"))
        for n in range(30):
            for k in range(5):
                await learning.apply_attempt(tenant, f"pupil-{n}", f"a-{n}-{k}", ["fractions"],
                                             [rng.random() < 0.3 + 0.1 * k], start + timedelta(days=k))
        cards = [await learning.add_card(tenant, "fractions", NewCard(front=f"{i}/8 + {i}/8?",
                                                                      back=f"{i}/4"))
                 for i in range(25)]
        reviewer = people[0].id
        for card in cards:
            await learning.study(tenant, reviewer, card.id)
        days = 0
        for day in range(90):
            due = await learning.due(tenant, reviewer, start + timedelta(days=day))
            days += bool(due)
            for view in due:
                await learning.review(tenant, reviewer, NewReview(
                    card_id=view.card_id, rating=1 if rng.random() < 0.3 else 3),
                    at=start + timedelta(days=day))
        evening = (start + timedelta(days=85)).replace(hour=23, minute=30)  # 13:30 in Kiribati
        await learning.study(tenant, people[1].id, cards[0].id)
        for at in (evening, evening + timedelta(hours=2)):
            await learning.review(tenant, people[1].id, NewReview(card_id=cards[0].id, rating=3),
                                  at=at)
    return days + 1


@pytest.mark.timeout(600)
@pytest.mark.parametrize("store", ["embedded", "real"])
def test_the_notebooks_read_a_tenant_on_the_configured_stores(
        store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tenant = f"school-{uuid.uuid4().hex[:8]}"  # the real servers outlive a test
    env = {"BLOOP_DATA_DIR": str(tmp_path), "NOTEBOOK_TENANT": tenant,
           "NOTEBOOK_CONCEPT": "fractions"}
    settings = embedded_settings(tmp_path)
    if store == "real":
        for name in servers():
            require_server(name)
        env["BLOOP_STORE"] = "real"
        settings = Settings(runtime=RuntimeSettings(store="real", data_dir=tmp_path,
                                                    seed_demo=False))
    days = asyncio.run(a_school(settings, tenant))  # nbclient runs its own loop: this test must not be in one
    mastery = run(NAMED["mastery"], monkeypatch, env)
    assert "30 learners, 150 answers" in mastery
    assert "simulated" not in mastery
    scheduling = run(NAMED["scheduling"], monkeypatch, env)
    assert "2 learners with reviews" in scheduling
    assert "1 learners fitted" in scheduling
    engagement = run(NAMED["engagement"], monkeypatch, env)
    assert f"2 learners studied on {days} days in all" in engagement
    assert "0 have stopped (no review in 14 days), 2 still studying" in engagement
    assert "simulated" not in engagement
