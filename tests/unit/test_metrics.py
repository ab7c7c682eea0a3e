"""What /metrics shows beside Bloop's own series: the process's memory, files, CPU, start time
and garbage collection; no `_created` series; latency buckets up to a minute."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from bloop.platform.app import create_app
from bloop.platform.kit.metrics import Metrics
from bloop.platform.kit.settings import RuntimeSettings, Settings
from tests.unit.test_docs import client_of


async def test_metrics_show_the_process_and_no_created_series(tmp_path: Path) -> None:
    app = create_app(Settings(runtime=RuntimeSettings(data_dir=tmp_path)), services=["identity"],
                     seed=False)
    async for c in client_of(app):
        await c.get("/openapi.json")
        text = (await c.get("/metrics")).text
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines()
             if line and not line.startswith("#")}
    assert "python_gc_objects_collected_total" in names
    assert "python_info" in names
    if sys.platform == "linux":
        assert {"process_resident_memory_bytes", "process_open_fds",
                "process_start_time_seconds", "process_cpu_seconds_total"} <= names
    assert not [line for line in text.splitlines() if re.match(r"\w+_created\b", line)]
    assert "bloop_http_requests_total{" in text


def test_latency_buckets_reach_a_minute() -> None:
    metrics = Metrics()
    for seconds in (7, 20, 45, 90):
        metrics.latency.labels("POST", "/v1/media").observe(seconds)
    text = metrics.render().decode()

    def bucket(le: str) -> str:
        line = f'bloop_http_request_duration_seconds_bucket{{le="{le}",method="POST",route="/v1/media"}} '
        [found] = [x for x in text.splitlines() if x.startswith(line)]
        return found.removeprefix(line)

    assert [bucket(le) for le in ("5.0", "10.0", "30.0", "60.0", "+Inf")] == [
        "0.0", "1.0", "2.0", "3.0", "4.0"]
