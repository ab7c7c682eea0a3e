from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bloop.platform.kit.settings import Settings, SettingsError


def test_defaults_run_embedded_with_no_configuration() -> None:
    s = Settings()
    assert s.runtime.store == "embedded"
    assert s.mode("kafka") == "embedded"
    assert s.http.port == 8000


def test_one_store_can_be_switched_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLOOP_REDIS_ADAPTER", "real")
    s = Settings()
    assert s.mode("redis") == "real"
    assert s.mode("mongo") == "embedded"


@pytest.mark.parametrize(("var", "value"), [
    ("BLOOP_HTTP_PORT", "eighty"),
    ("BLOOP_HTTP_PORT", "70000"),
    ("BLOOP_STORE", "cloud"),
    ("BLOOP_KAFKA_MAX_ATTEMPTS", "0"),
    ("BLOOP_LOG_JSON", "perhaps"),
])
def test_an_invalid_setting_names_itself(monkeypatch: pytest.MonkeyPatch, var: str,
                                         value: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as err:
        Settings()
    message = str(err.value)
    assert var in message
    assert "\n" not in message


def test_serve_refuses_to_start_on_an_invalid_setting(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bloop.cli", "serve"], capture_output=True, text=True,
        env={"BLOOP_HTTP_PORT": "eighty", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        timeout=60, check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("bloop: invalid setting BLOOP_HTTP_PORT=")
