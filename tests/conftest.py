from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import tests.support  # noqa: F401  (registers the test event types)

for _key in [k for k in os.environ if k.startswith("BLOOP_") and k != "BLOOP_INFRA_CACHE"
             and k != "BLOOP_INFRA_RUN"]:
    os.environ.pop(_key)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("BLOOP_DATA_DIR", str(tmp_path / "data"))
    yield tmp_path / "data"
