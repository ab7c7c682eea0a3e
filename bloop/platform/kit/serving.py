"""Runs an app under uvicorn: its shutdown tells the app's long-lived responses to end before
uvicorn waits for the open connections, and waits for those at most `shutdown_timeout_s`
before it cancels them and runs the app's lifespan shutdown."""

from __future__ import annotations

import contextlib
import socket
import sys

import uvicorn
from fastapi import FastAPI

from bloop.platform.kit.draining import start_draining

STARTUP_FAILURE = 3  # uvicorn's


class Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        start_draining(self.app)
        await super().shutdown(sockets)


def serve(app: FastAPI, host: str, port: int, shutdown_timeout_s: int) -> None:
    """As `uvicorn.run` does for one process: exits 3 when the server did not start."""
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                            lifespan="on", timeout_graceful_shutdown=shutdown_timeout_s)
    server = Server(config, app)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
