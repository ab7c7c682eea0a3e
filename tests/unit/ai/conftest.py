from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.ai.fake_openai import FakeOpenAI


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ai(**settings): AiSettings fields a test's rig uses")
