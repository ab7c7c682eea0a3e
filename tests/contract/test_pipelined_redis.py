"""The cache's pipelined Redis connection: many commands in one write, replies in order, each
error its own; a late reply or a lost connection fails what waits with redis-py's errors (503 to
the API), and the next command connects again."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bloop.platform.kit import stores
from bloop.platform.kit.cache import RedisCache
from bloop.platform.kit.cache.resp import PipelinedConnection
from bloop.platform.kit.settings import RedisSettings
from tests.support import require_server


@pytest.fixture
async def client() -> AsyncIterator[Redis]:
    require_server("redis")
    redis = stores.redis_client(RedisSettings())
    yield redis
    await redis.aclose()


async def test_replies_come_back_to_their_commands(client: Redis) -> None:
    ns = f"test:{uuid.uuid4().hex[:8]}:"
    pipe = PipelinedConnection(client)
    try:
        await client.mset({f"{ns}k{i}": str(i) for i in range(50)})
        await client.rpush(ns + "a-list", "x")
        got = await asyncio.gather(
            *(pipe.call("GET", f"{ns}k{i}") for i in range(50)),
            pipe.call("GET", ns + "a-list"), pipe.call("MGET", ns + "k7", ns + "none"),
            pipe.call("EVALSHA", "0" * 40, 0), pipe.call("INCRBY", ns + "n", 3),
            return_exceptions=True)
        assert got[:50] == [str(i).encode() for i in range(50)]
        assert isinstance(got[50], ResponseError)
        assert "WRONGTYPE" in str(got[50])
        assert got[51] == [b"7", None]
        assert isinstance(got[52], NoScriptError)
        assert got[53] == 3
    finally:
        await client.delete(*(await client.keys(ns + "*")))
        pipe.close()


async def test_it_selects_the_clients_database(client: Redis) -> None:
    other = Redis(host="127.0.0.1", port=int(client.connection_pool.connection_kwargs["port"]),
                  db=3)
    pipe = PipelinedConnection(other)
    key = f"test:{uuid.uuid4().hex[:8]}"
    try:
        await pipe.call("SET", key, "in-3")
        assert await other.get(key) == b"in-3"
        assert await client.get(key) is None
    finally:
        await other.delete(key)
        await other.aclose()
        pipe.close()


async def silent_server(close_after_s: float | None) -> tuple[asyncio.Server, int]:
    """A server that reads and never answers; it closes each connection after `close_after_s`."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if close_after_s is None:
            await reader.read(-1)
        else:
            await asyncio.sleep(close_after_s)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_a_busy_loop_is_not_taken_for_a_late_reply(client: Redis) -> None:
    pipe = PipelinedConnection(Redis(
        host="127.0.0.1", port=int(client.connection_pool.connection_kwargs["port"]),
        socket_timeout=0.2))
    try:
        await pipe.call("PING")
        reply = asyncio.ensure_future(pipe.call("PING"))
        await asyncio.sleep(0)
        time.sleep(0.4)  # noqa: ASYNC251  (the loop blocked past the timeout; the reply is in)
        assert await reply == b"PONG"
    finally:
        pipe.close()


async def test_a_late_reply_fails_what_waits_with_a_timeout() -> None:
    server, port = await silent_server(None)
    pipe = PipelinedConnection(Redis(host="127.0.0.1", port=port, socket_timeout=0.3))
    try:
        got = await asyncio.gather(pipe.call("GET", "a"), pipe.call("GET", "b"),
                                   return_exceptions=True)
        assert all(isinstance(g, RedisTimeoutError) for g in got)
    finally:
        pipe.close()
        server.close()


async def test_a_lost_connection_fails_what_waits_and_the_next_call_reconnects(
        client: Redis) -> None:
    server, port = await silent_server(0.1)
    pipe = PipelinedConnection(Redis(host="127.0.0.1", port=port, socket_timeout=5))
    try:
        with pytest.raises(RedisConnectionError):
            await pipe.call("GET", "a")
        server.close()
        await server.wait_closed()
        with pytest.raises(RedisConnectionError):  # nothing listens there any more
            await pipe.call("GET", "a")
    finally:
        pipe.close()
    # a real server, after its connection was killed
    pipe = PipelinedConnection(client)
    try:
        await pipe.call("SET", "test:pipe-reconnect", "1")
        connection = await pipe.call("CLIENT", "ID")
        waiting = asyncio.ensure_future(pipe.call("BLPOP", "test:pipe-nothing", 0.8))
        await asyncio.sleep(0.1)
        await client.client_kill_filter(_id=connection)
        with pytest.raises(RedisConnectionError):
            await asyncio.wait_for(waiting, 2)
        assert await pipe.call("GET", "test:pipe-reconnect") == b"1"
    finally:
        await client.delete("test:pipe-reconnect")
        pipe.close()


async def test_the_cache_uses_it_on_plain_tcp(client: Redis) -> None:
    cache = RedisCache(client, namespace=f"test:{uuid.uuid4().hex[:8]}")
    assert cache._pipe is not None
    await cache.set("k", b"v")
    assert await cache.get_many(["k", "x"]) == [b"v", None]
    await cache.delete_prefix("")
    cache.close()
