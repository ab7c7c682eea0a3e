"""Runs an app under uvicorn: its shutdown tells the app's long-lived responses to end before
uvicorn waits for the open connections, and waits for those at most `shutdown_timeout_s`
before it cancels them and runs the app's lifespan shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys

import uvicorn
from fastapi import FastAPI

from bloop.platform.kit.draining import start_draining
from bloop.platform.kit.settings import HttpSettings

STARTUP_FAILURE = 3  # uvicorn's


class Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        start_draining(self.app)
        await super().shutdown(sockets)


class HttptoolsMissing(RuntimeError):
    """httptools cannot be imported: uvicorn would parse with h11, without Bloop's limits."""


def http_protocol(http: HttpSettings) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with Bloop's limits on request headers, connections per
    client and stalled sends (`kit.http_protocol`). httptools is a dependency (of
    `uvicorn[standard]`, with wheels wherever Bloop runs), so it missing is a broken install:
    raises `HttptoolsMissing` rather than serve under h11 without those limits."""
    try:
        from bloop.platform.kit.http_protocol import protocol
    except ImportError as exc:
        raise HttptoolsMissing(
            f"cannot serve without httptools ({exc}): uvicorn would parse with h11, without "
            "the header timeout (BLOOP_HTTP_HEADER_TIMEOUT_S), the cap of connections per "
            "client (BLOOP_HTTP_MAX_CONNECTIONS_PER_CLIENT) or the abort of stalled sends "
            "(BLOOP_HTTP_SEND_IDLE_TIMEOUT_S); install Bloop with its dependencies "
            "(pip install -c constraints.txt .)") from exc
    return protocol(http)


def config(app: FastAPI, host: str, port: int, http: HttpSettings) -> uvicorn.Config:
    """uvicorn's configuration for `app`: the client of a request from one of the proxies of
    `BLOOP_HTTP_FORWARDED_ALLOW_IPS` is the one its `X-Forwarded-For` names (uvicorn's own
    FORWARDED_ALLOW_IPS is not read)."""
    return uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                          lifespan="on", timeout_graceful_shutdown=http.shutdown_timeout_s,
                          proxy_headers=True, forwarded_allow_ips=list(http.forwarded_allow_ips),
                          http=http_protocol(http),
                          h11_max_incomplete_event_size=http.max_header_bytes)


def serve(app: FastAPI, host: str, port: int, http: HttpSettings) -> None:
    """As `uvicorn.run` does for one process: exits 3 when the server did not start."""
    server = Server(config(app, host, port, http), app)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
