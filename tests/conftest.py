from __future__ import annotations

import os
from pathlib import Path

import pytest

import tests.support  # noqa: F401  (registers the test event types)

# Tests choose their own adapters and data dirs; server addresses and credentials from the
# environment are kept, so the suite can run against servers elsewhere.
_CHOSEN_BY_TESTS = ("BLOOP_STORE", "BLOOP_DATA_DIR", "BLOOP_SEED_DEMO", "BLOOP_HTTP_")
for _key in [k for k in os.environ if k.startswith(_CHOSEN_BY_TESTS) or k.endswith("_ADAPTER")]:
    os.environ.pop(_key)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BLOOP_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"
