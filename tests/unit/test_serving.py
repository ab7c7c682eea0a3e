"""The client address a request has as `bloop serve` serves it (uvicorn, configured by
`serving.config`), which the sign-in throttles count: behind a proxy of
`BLOOP_HTTP_FORWARDED_ALLOW_IPS`, the client its `X-Forwarded-For` names; else the peer's."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request

from bloop.platform.kit import serving
from bloop.platform.kit.middleware import client_ip
from bloop.platform.kit.settings import HttpSettings, read

INGRESS = "127.0.0.2"
"""The proxy's address: loopback on Linux, but not one uvicorn trusts by default."""


def whoami_app() -> FastAPI:
    app = FastAPI()

    @app.get("/whoami")
    async def whoami(request: Request) -> str:
        return client_ip(request)

    return app


@contextlib.asynccontextmanager
async def served(app: FastAPI, http: HttpSettings) -> AsyncIterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = serving.Server(serving.config(app, "127.0.0.1", 0, http), app)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def seen(http: HttpSettings, peer: str, forwarded: str | None) -> str:
    transport = httpx.AsyncHTTPTransport(local_address=peer)
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    async with served(whoami_app(), http) as base, \
            httpx.AsyncClient(transport=transport, base_url=base) as client:
        r = await client.get("/whoami", headers=headers)
    assert r.status_code == 200, r.text
    return str(r.json())


@pytest.mark.parametrize(("trusted", "peer", "forwarded", "client"), [
    # uvicorn's default: loopback alone. Behind an ingress every client was the ingress.
    (None, INGRESS, "203.0.113.7", INGRESS),
    (None, "127.0.0.1", "203.0.113.7", "203.0.113.7"),
    (INGRESS, INGRESS, "203.0.113.7", "203.0.113.7"),
    ("127.0.0.0/8", INGRESS, "203.0.113.7", "203.0.113.7"),
    # The client wrote the left one itself; the proxy added the right one.
    (INGRESS, INGRESS, "198.51.100.9, 203.0.113.7", "203.0.113.7"),
    # Two proxies: the load balancer (10.1.2.3) in front of the ingress.
    (f"{INGRESS}, 10.0.0.0/8", INGRESS, "198.51.100.9, 203.0.113.7, 10.1.2.3", "203.0.113.7"),
    # A peer that is not a trusted proxy names itself whatever it sends.
    (INGRESS, "127.0.0.1", "203.0.113.7", "127.0.0.1"),
    ("", "127.0.0.1", "203.0.113.7", "127.0.0.1"),
    (INGRESS, INGRESS, None, INGRESS),
])
async def test_a_request_through_a_trusted_proxy_comes_from_the_client_it_forwards(
        monkeypatch: pytest.MonkeyPatch, trusted: str | None, peer: str, forwarded: str | None,
        client: str) -> None:
    if trusted is not None:
        monkeypatch.setenv("BLOOP_HTTP_FORWARDED_ALLOW_IPS", trusted)
    assert await seen(read(HttpSettings), peer, forwarded) == client
