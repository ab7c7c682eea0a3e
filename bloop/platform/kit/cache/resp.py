"""A pipelined Redis connection for the cache's hottest commands (GET, MGET, the count-and-read
script): the commands issued in one turn of the event loop leave in one write, and replies are
matched to them in order as hiredis parses them.

redis-py spends, per command or per pipeline, more than the round trip itself on a busy
process; this path asks nothing of it but its exception types. It connects on first use with
the client's host, port, database and credentials, and again after a failure. A reply late by
more than the client's socket timeout fails every command waiting on the connection
(TimeoutError), which is then closed; a lost connection fails them with ConnectionError: both
redis-py's, which the API turns into 503."""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any, cast

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError


class _Protocol(asyncio.Protocol):
    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.reader = hiredis.Reader(replyError=ResponseError)
        # each command's future, and when it was written (0 until then)
        self.waiting: collections.deque[list[Any]] = collections.deque()
        self.out: list[bytes] = []
        self.transport: asyncio.Transport | None = None
        self.lost: BaseException | None = None
        self._watch: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def call(self, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self.lost is not None:
            future.set_exception(RedisConnectionError(f"Redis connection lost: {self.lost}"))
            return future
        if not self.out:
            loop.call_soon(self._write)
        self.out.append(hiredis.pack_command(args))
        self.waiting.append([future, 0.0])
        return future

    def _write(self) -> None:
        if self.transport is not None and self.lost is None:
            self.transport.write(b"".join(self.out))
            now = time.monotonic()
            for i in range(len(self.waiting) - len(self.out), len(self.waiting)):
                self.waiting[i][1] = now
            if self._watch is None:
                self._watch = asyncio.get_running_loop().call_later(self.timeout_s, self._check)
        self.out = []

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            future = self.waiting.popleft()[0]
            if future.done():
                continue
            if isinstance(reply, ResponseError):
                future.set_exception(NoScriptError(str(reply)) if str(reply).startswith(
                    "NOSCRIPT") else reply)
            else:
                future.set_result(reply)

    def _check(self) -> None:
        self._watch = None
        if not self.waiting or not self.waiting[0][1]:
            return  # nothing waits, or nothing written yet: the next write watches again
        loop = asyncio.get_running_loop()
        late = time.monotonic() - self.waiting[0][1]
        if late < self.timeout_s:
            self._watch = loop.call_later(self.timeout_s - late, self._check)
            return
        # A loop that was busy may not have read a reply that came in time: look again after
        # the loop's next look at the socket.
        self._watch = loop.call_later(0, self._expire, self.waiting[0][0])

    def _expire(self, oldest: asyncio.Future[Any]) -> None:
        self._watch = None
        if not self.waiting or self.waiting[0][0] is not oldest:
            self._check()
            return
        self._fail(RedisTimeoutError(f"Redis did not answer in {self.timeout_s} s"))
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RedisConnectionError(f"Redis closed the connection: {exc or 'EOF'}"))

    def _fail(self, exc: BaseException) -> None:
        self.lost = self.lost or exc
        while self.waiting:
            future = self.waiting.popleft()[0]
            if not future.done():
                future.set_exception(exc)
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None


class PipelinedConnection:
    """Sends commands over one pipelined connection made from `redis`'s settings."""

    def __init__(self, redis: Redis) -> None:
        kwargs = redis.connection_pool.connection_kwargs
        self.host: str = kwargs.get("host", "127.0.0.1")
        self.port: int = int(kwargs.get("port", 6379))
        self.db: int = int(kwargs.get("db", 0) or 0)
        self.username: str | None = kwargs.get("username")
        self.password: str | None = kwargs.get("password")
        self.timeout_s: float = float(kwargs.get("socket_timeout") or 5.0)
        self.connect_timeout_s: float = float(kwargs.get("socket_connect_timeout")
                                              or self.timeout_s)
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None

    @staticmethod
    def supports(redis: Redis) -> bool:
        """Plain TCP connections only (TLS and Unix sockets stay with redis-py)."""
        return redis.connection_pool.connection_class is Connection

    async def call(self, *args: Any) -> Any:
        protocol = self._protocol
        if protocol is None or protocol.lost is not None:
            protocol = await self._connect()
        return await protocol.call(args)

    async def _connect(self) -> _Protocol:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._protocol is not None and self._protocol.lost is None:
                return self._protocol
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(self.connect_timeout_s):
                    _, protocol = await loop.create_connection(
                        lambda: _Protocol(self.timeout_s), self.host, self.port)
            except (OSError, TimeoutError) as exc:
                raise RedisConnectionError(
                    f"cannot connect to Redis at {self.host}:{self.port}: {exc}") from exc
            try:
                if self.password is not None:
                    credentials = ((self.username, self.password) if self.username
                                   else (self.password,))
                    await protocol.call(("AUTH", *credentials))
                if self.db:
                    await protocol.call(("SELECT", self.db))
            except BaseException:
                if protocol.transport is not None:
                    protocol.transport.close()
                raise
            self._protocol = protocol
            return protocol

    def close(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._protocol = None
