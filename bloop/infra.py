"""Real servers for development and tests, started from `infra/<server>.sh` without Docker.

A server already reachable at its configured URL is reused as it is; only servers started here
are stopped by `down`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bloop.platform.kit.settings import Settings

INFRA_DIR = Path(__file__).resolve().parents[1] / "infra"


@dataclass(frozen=True)
class Server:
    name: str
    script: str
    url: str
    port_env: str

    @property
    def address(self) -> tuple[str, int]:
        parts = urlsplit(self.url if "://" in self.url else f"tcp://{self.url}")
        return parts.hostname or "127.0.0.1", parts.port or 0

    def reachable(self, timeout_s: float = 0.5) -> bool:
        try:
            with socket.create_connection(self.address, timeout=timeout_s):
                return True
        except OSError:
            return False

    def run(self, action: str, timeout_s: float = 3600) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, self.port_env: str(self.address[1])}
        return subprocess.run(["bash", str(INFRA_DIR / self.script), action], env=env,
                              text=True, capture_output=True, timeout=timeout_s, check=False)

    def managed(self) -> bool:
        """Started by us (so ours to stop and restart)."""
        return self.run("status", 30).returncode == 0


def servers(settings: Settings | None = None) -> dict[str, Server]:
    s = settings or Settings()
    return {
        "redis": Server("redis", "redis.sh", s.redis.url, "BLOOP_REDIS_PORT"),
        "kafka": Server("kafka", "kafka.sh", s.kafka.bootstrap.split(",")[0], "BLOOP_KAFKA_PORT"),
        "neo4j": Server("neo4j", "neo4j.sh", s.neo4j.url, "BLOOP_NEO4J_BOLT_PORT"),
        "mongo": Server("mongo", "ferretdb.sh", s.mongo.url, "BLOOP_MONGO_PORT"),
        "influxdb": Server("influxdb", "influxdb.sh", s.influx.url, "BLOOP_INFLUX_PORT"),
    }


class InfraError(RuntimeError):
    pass


def _checked(server: Server, action: str) -> None:
    result = server.run(action)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-25:])
        raise InfraError(f"{server.name}: `{server.script} {action}` failed:\n{tail}")


def up(names: list[str] | None = None, report: bool = True, fresh: bool = False) -> dict[str, str]:
    """Starts the servers not already reachable; with `fresh`, those it starts begin with empty
    data (a server found running elsewhere is never touched)."""
    chosen = [servers()[n] for n in (names or list(servers()))]
    states: dict[str, str] = {}
    to_start = []
    for server in chosen:
        if server.reachable() and not server.managed():
            states[server.name] = "reused"
        else:
            to_start.append(server)
    for server in to_start:  # builds share two cores: one at a time
        t = time.monotonic()
        _checked(server, "install")
        if report:
            print(f"{server.name}: installed ({time.monotonic() - t:.1f}s)", flush=True)
    if fresh:
        for server in to_start:
            _checked(server, "wipe")
    with ThreadPoolExecutor(max_workers=max(len(to_start), 1)) as pool:
        futures = {s.name: pool.submit(_timed_start, s) for s in to_start}
        for name, future in futures.items():
            states[name] = f"started ({future.result():.1f}s)"
    if report:
        for name, state in states.items():
            print(f"{name}: {state}", flush=True)
    return states


def _timed_start(server: Server) -> float:
    t = time.monotonic()
    _checked(server, "start")
    return time.monotonic() - t


def down(names: list[str] | None = None) -> None:
    for server in [servers()[n] for n in (names or list(servers()))]:
        server.run("stop", 120)


def stop(name: str) -> None:
    server = servers()[name]
    if not server.managed():
        raise InfraError(f"{name} was not started by bloop infra, so it cannot be stopped here")
    _checked(server, "stop")


def start(name: str) -> None:
    _checked(servers()[name], "start")


def status() -> dict[str, str]:
    out = {}
    for name, server in servers().items():
        managed = server.managed()
        up_now = server.reachable()
        out[name] = ("up" if up_now else "down") + (" (managed)" if managed else "") + \
            f" at {server.address[0]}:{server.address[1]}"
    return out
