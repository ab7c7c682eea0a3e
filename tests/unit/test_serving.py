"""The client address a request has as `bloop serve` serves it (uvicorn, configured by
`serving.config`), which the sign-in throttles count: behind a proxy of
`BLOOP_HTTP_FORWARDED_ALLOW_IPS`, the client its `X-Forwarded-For` names; else the peer's."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from bloop.platform.kit import http_protocol, serving
from bloop.platform.kit.http_protocol import Limits
from bloop.platform.kit.metrics import Metrics
from bloop.platform.kit.middleware import RequestContextMiddleware, client_ip
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
async def running(app: FastAPI, http: HttpSettings) -> AsyncIterator[tuple[serving.Server, int]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = serving.Server(serving.config(app, "127.0.0.1", 0, http), app)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield server, sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task
        sock.close()


@contextlib.asynccontextmanager
async def served(app: FastAPI, http: HttpSettings) -> AsyncIterator[str]:
    async with running(app, http) as (_, port):
        yield f"http://127.0.0.1:{port}"


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


# What comes before a request's body: uvicorn (httptools) set no time nor size to it, nor a
# number of connections to a peer.

GET = b"GET /whoami HTTP/1.1\r\nHost: bloop\r\n\r\n"


@contextlib.asynccontextmanager
async def raw(http: HttpSettings) -> AsyncIterator[int]:
    async with served(whoami_app(), http) as base:
        yield int(base.rsplit(":", 1)[1])


async def connect(port: int, peer: str = "127.0.0.1"
                  ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(peer, 0))


async def until_closed(reader: asyncio.StreamReader, within_s: float) -> bytes:
    """What the server sent before it closed the connection, which it must within `within_s`."""
    async with asyncio.timeout(within_s):
        try:
            return await reader.read()
        except ConnectionResetError:
            return b""


async def still_open(reader: asyncio.StreamReader) -> bool:
    try:
        async with asyncio.timeout(0.3):
            await reader.read(1)
    except TimeoutError:
        return True
    return False


async def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout() -> None:
    async with raw(HttpSettings(header_timeout_s=0.3)) as port:
        reader, writer = await connect(port)
        assert await still_open(reader)  # 0.3 s: not before its time
        assert await until_closed(reader, 2) == b""
        writer.close()


async def trickled(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """Starts a request and sends its headers a byte every 50 ms: what the server answered
    before it closed the connection, within 3 s."""
    writer.write(b"GET /whoami HTTP/1.1\r\n")

    async def trickle() -> None:
        with contextlib.suppress(ConnectionError):
            while not writer.is_closing():
                writer.write(b"X")
                await writer.drain()
                await asyncio.sleep(0.05)

    task = asyncio.create_task(trickle())
    try:
        return await until_closed(reader, 3)
    finally:
        task.cancel()
        writer.close()


async def test_headers_trickled_are_cut_off_at_the_header_timeout() -> None:
    async with raw(HttpSettings(header_timeout_s=0.5)) as port:
        answer = await trickled(*await connect(port))
    assert answer.startswith(b"HTTP/1.1 408 "), answer


async def test_the_next_request_on_a_connection_has_the_header_timeout_too() -> None:
    async with raw(HttpSettings(header_timeout_s=0.5)) as port:
        reader, writer = await connect(port)
        writer.write(GET)
        assert (await reader.readuntil(b'"127.0.0.1"')).startswith(b"HTTP/1.1 200 ")
        answer = await trickled(reader, writer)
    assert answer.startswith(b"HTTP/1.1 408 "), answer


@pytest.mark.parametrize("headers", [
    b"".join(b"X-Filler-%d: %s\r\n" % (i, b"v" * 90) for i in range(1000)),  # 100 KB of them
    b"Cookie: " + b"c" * 100_000 + b"\r\n",
    b"".join(b"X-%d: v\r\n" % i for i in range(201)),  # too many
])
async def test_too_large_headers_get_431_and_the_connection_closed(headers: bytes) -> None:
    async with raw(HttpSettings()) as port:
        reader, writer = await connect(port)
        writer.write(b"GET /whoami HTTP/1.1\r\nHost: bloop\r\n" + headers + b"\r\n")
        answer = await until_closed(reader, 3)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]


async def test_keep_alive_and_pipelined_requests_still_work() -> None:
    post = (b"POST /whoami HTTP/1.1\r\nHost: bloop\r\nContent-Length: 70000\r\n\r\n"
            + b"x" * 70_000)  # a body past the header limit, answered 405
    async with raw(HttpSettings(header_timeout_s=5, max_header_bytes=8192)) as port:
        reader, writer = await connect(port)
        writer.write(GET)
        first = await reader.readuntil(b'"127.0.0.1"')
        writer.write(GET + post + GET)  # pipelined
        rest = await reader.readuntil(b'"127.0.0.1"')
        rest += await reader.readuntil(b"HTTP/1.1 ")
        rest += await reader.readuntil(b'"127.0.0.1"')
        writer.close()
    assert first.startswith(b"HTTP/1.1 200 ")
    assert [a.split(b" ", 1)[0] for a in rest.split(b"HTTP/1.1 ")[1:]] == [b"200", b"405", b"200"]


async def test_a_pipelined_request_whose_head_crosses_the_limit_is_not_taken_for_too_large(
        ) -> None:
    """A request ending just before the header limit and the next one's head, sent at once,
    got a 431 in place of the first one's answer (the second head was counted as the first's)."""
    head = b"POST /whoami HTTP/1.1\r\nHost: bloop\r\nContent-Length: %d\r\n\r\n"
    size = 8192 - 10 - len(head % 8000)  # the request ends 10 bytes before the limit
    post = head % size + b"x" * size
    async with raw(HttpSettings(header_timeout_s=5, max_header_bytes=8192)) as port:
        reader, writer = await connect(port)
        writer.write(post + GET)
        answers = await reader.readuntil(b"HTTP/1.1 ")
        answers += await reader.readuntil(b'"127.0.0.1"')
        writer.close()
    assert [a.split(b" ", 1)[0] for a in answers.split(b"HTTP/1.1 ")[1:]] == [b"405", b"200"]


async def test_a_head_too_large_behind_a_pipelined_request_waits_for_its_answer() -> None:
    big = b"GET /whoami HTTP/1.1\r\nHost: bloop\r\nCookie: " + b"c" * 20_000 + b"\r\n\r\n"
    async with raw(HttpSettings(header_timeout_s=5, max_header_bytes=8192)) as port:
        reader, writer = await connect(port)
        writer.write(GET + big)
        answers = await until_closed(reader, 3)
        writer.close()
    assert [a.split(b" ", 1)[0] for a in answers.split(b"HTTP/1.1 ")[1:]] == [b"200", b"431"]


async def test_a_client_may_hold_only_so_many_connections_but_a_trusted_proxy_more() -> None:
    http = HttpSettings(max_connections_per_client=3, forwarded_allow_ips=[INGRESS])
    async with raw(http) as port:
        held = [await connect(port) for _ in range(3)]
        proxied = [await connect(port, INGRESS) for _ in range(5)]
        reader, writer = await connect(port)
        refused = await until_closed(reader, 2)
        writer.close()
        assert refused.startswith(b"HTTP/1.1 503 ")
        assert b"retry-after: 5\r\n" in refused
        for reader, _ in [*held, *proxied]:
            assert await still_open(reader)
        for reader, writer in proxied:
            writer.write(GET)
            assert (await reader.readuntil(b'"127.0.0.2"')).startswith(b"HTTP/1.1 200 ")
        held[0][1].close()
        await held[0][1].wait_closed()
        await asyncio.sleep(0.1)
        reader, writer = await connect(port)  # a place freed
        writer.write(GET)
        assert (await reader.readuntil(b'"127.0.0.1"')).startswith(b"HTTP/1.1 200 ")
        for _, w in [*held, *proxied, (reader, writer)]:
            w.close()


def test_the_trusted_proxies_connections_are_not_counted() -> None:
    limits = Limits.of(HttpSettings(forwarded_allow_ips=["10.0.0.0/8", "::1"]))
    assert [limits.exempts(h) for h in ("10.1.2.3", "::ffff:10.1.2.3", "::1")] == [True] * 3
    assert [limits.exempts(h) for h in ("127.0.0.1", "2001:db8::1", "unix")] == [False] * 3
    assert Limits.of(HttpSettings(forwarded_allow_ips=["*"])).exempts("203.0.113.7")
    assert not Limits.of(HttpSettings(forwarded_allow_ips=[])).exempts("127.0.0.1")


def test_without_httptools_nothing_is_served(monkeypatch: pytest.MonkeyPatch) -> None:
    """uvicorn then chose h11, and the header timeout, the cap of connections per client and
    the abort of stalled sends were silently off."""
    for name in ("httptools", "uvicorn.protocols.http.httptools_impl",
                 "bloop.platform.kit.http_protocol"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(serving.HttptoolsMissing, match="BLOOP_HTTP_HEADER_TIMEOUT_S"):
        serving.config(whoami_app(), "127.0.0.1", 0, HttpSettings())


def test_refused_connections_are_logged_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    limits = Limits.of(HttpSettings(max_connections_per_client=1))
    assert limits.admit("203.0.113.7")
    with caplog.at_level(logging.WARNING, "bloop.http"):
        assert not any([limits.admit("203.0.113.7") for _ in range(100)])
    assert len(caplog.records) == 1
    limits.release("203.0.113.7")
    assert limits.open == {}
    assert limits.admit("203.0.113.7")


# An answer its client does not take: uvicorn held it (all of it, for a single-message answer)
# and the socket for as long as the client stayed, and `transport.close()` waited for ever.

BIG = 4 * 1024 * 1024
CHUNK = 256 * 1024


def big_app(metrics: Metrics) -> FastAPI:
    app = FastAPI()
    app.add_middleware(RequestContextMiddleware, metrics=lambda: metrics, max_body_bytes=1024)

    @app.get("/big")
    async def big() -> Response:
        return Response(b"x" * BIG, media_type="application/octet-stream")

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(BIG // CHUNK):
                yield b"x" * CHUNK
        return StreamingResponse(chunks(), media_type="application/octet-stream")

    @app.get("/events")
    async def events() -> StreamingResponse:
        async def quiet() -> AsyncIterator[bytes]:
            yield b"data: one\n\n"
            await asyncio.sleep(1.0)  # idle by design: nothing waits to be sent
            yield b"data: two\n\n"
        return StreamingResponse(quiet(), media_type="text/event-stream")

    async def unfinished(scope: Scope, receive: Receive, send: Send) -> None:
        """As an export that gave up on its client: started, left unfinished."""
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(2 * BIG).encode())]})
        await send({"type": "http.response.body", "body": b"x" * BIG, "more_body": True})

    app.mount("/unfinished", unfinished)
    return app


def counted(metrics: Metrics, status: str) -> float:
    return sum(sample.value for m in metrics.registry.collect() for sample in m.samples
               if m.name == "bloop_http_requests" and sample.name.endswith("_total")
               and sample.labels["status"] == status)


def non_reader(port: int, path: str) -> socket.socket:
    """A client that asks for `path` and never reads, with a small receive buffer."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: bloop\r\n\r\n".encode())
    return sock


def leftover(sock: socket.socket) -> int:
    """What the client can still read before the end (the server aborted: reset or EOF)."""
    sock.settimeout(2)
    got = 0
    with contextlib.suppress(ConnectionResetError):
        while data := sock.recv(1 << 20):
            got += len(data)
    return got


async def cut_off(server: serving.Server, port: int, path: str) -> None:
    """A client that does not read `path` has its connection aborted within 4 s (0.5 s
    stalled, with room for a loaded machine): the server holds it no more, and the client
    gets no more than part of the answer before the end."""
    sock = await asyncio.to_thread(non_reader, port, path)
    try:
        while not server.server_state.connections:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        async with asyncio.timeout(4):
            while server.server_state.connections:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert await asyncio.to_thread(leftover, sock) < BIG
    finally:
        sock.close()


@pytest.mark.parametrize("path", ["/big", "/stream"])
async def test_a_client_that_does_not_read_its_answer_has_its_connection_aborted(
        path: str) -> None:
    metrics = Metrics()
    async with running(big_app(metrics), HttpSettings(send_idle_timeout_s=0.5)) as (server, port):
        await cut_off(server, port, path)
        await asyncio.sleep(0.1)
    if path == "/stream":  # cut off part-way: a client that left
        assert (counted(metrics, "499"), counted(metrics, "200")) == (1, 0)


async def test_a_connection_closed_with_its_answer_unsent_is_aborted_soon(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """uvicorn's `transport.close()` of an answer left unfinished waits for the client to
    read it all: one that never reads held the socket for ever."""
    monkeypatch.setattr(http_protocol, "CLOSE_GRACE_S", 0.3, raising=False)
    http = HttpSettings(send_idle_timeout_s=60)
    async with running(big_app(Metrics()), http) as (server, port):
        await cut_off(server, port, "/unfinished/zip")


async def test_a_slow_client_that_reads_and_a_quiet_event_stream_are_not_cut_off() -> None:
    metrics = Metrics()
    async with running(big_app(metrics), HttpSettings(send_idle_timeout_s=0.5)) as (_, port):
        for path in ("/big", "/stream"):
            reader, writer = await connect(port)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: bloop\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 ")
            got = 0
            while got < BIG:  # 4 MB at about 20 MB/s, stopping every 64 KB
                data = await reader.read(64 * 1024)
                assert data
                got += len(data)
                await asyncio.sleep(0.003)
            writer.close()
        reader, writer = await connect(port)
        writer.write(b"GET /events HTTP/1.1\r\nHost: bloop\r\n\r\n")
        assert b"data: two" in await until_closed_or(reader, b"data: two", 5)
        writer.close()
        await asyncio.sleep(0.1)
    assert counted(metrics, "499") == 0


async def until_closed_or(reader: asyncio.StreamReader, end: bytes, within_s: float) -> bytes:
    async with asyncio.timeout(within_s):
        return await reader.readuntil(end)
