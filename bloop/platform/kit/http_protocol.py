"""uvicorn's httptools protocol with the limits it lacks before a request reaches the app: its
request line and headers must arrive within a time (`BLOOP_HTTP_HEADER_TIMEOUT_S`) and a size
(`BLOOP_HTTP_MAX_HEADER_BYTES`, `MAX_HEADERS` lines), and one peer may hold only so many
connections (`BLOOP_HTTP_MAX_CONNECTIONS_PER_CLIENT`). uvicorn starts no timer before the first
response, and httptools keeps whatever headers come (an idle connection or a header trickled
a byte at a time stayed open for ever; 100 MB of headers were read into memory).

An answer its client does not take is given up too: the connection is aborted once what is
waiting to be sent to it made no progress for `BLOOP_HTTP_SEND_IDLE_TIMEOUT_S` (uvicorn held
the whole answer, however large, for as long as the client stayed connected), and a connection
closed with some of it unsent is aborted unless it drains (uvicorn's `transport.close()` waits
for the client to read it all, so a client that never reads held the socket for ever)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import math
import socket
import struct
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from bloop.platform.kit.errors import CLIENT_CLOSED
from bloop.platform.kit.middleware import count_as
from bloop.platform.kit.settings import HttpSettings

log = logging.getLogger("bloop.http")

MAX_HEADERS = 200
TOO_LARGE = "Request header fields too large."
BUSY_RETRY_AFTER_S = 5
WARN_EVERY_S = 60.0
_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s
CLOSE_GRACE_S = 5.0
"""How long a closed connection's unsent answer may go without draining before the connection
is aborted (at most the send idle timeout)."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class Limits:
    """The limits of one server, and the connections it has open by peer address."""

    header_timeout_s: float
    max_header_bytes: int
    max_connections_per_client: int
    exempt: tuple[Network, ...] | None
    """The peers whose connections are not counted (the trusted proxies); None: every peer."""
    send_idle_s: float = 60.0
    """How long what waits to be sent may make no progress before the connection is aborted."""
    max_headers: int = MAX_HEADERS
    open: Counter[str] = field(default_factory=Counter)
    warned_at: float = -math.inf

    @classmethod
    def of(cls, http: HttpSettings) -> Limits:
        proxies = http.forwarded_allow_ips
        exempt = None if "*" in proxies else tuple(
            ipaddress.ip_network(p, strict=False) for p in proxies)
        return cls(http.header_timeout_s, http.max_header_bytes,
                   http.max_connections_per_client, exempt, http.send_idle_timeout_s)

    def exempts(self, host: str) -> bool:
        if self.exempt is None:
            return True
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.exempt)

    def admit(self, host: str) -> bool:
        """Counts a new connection from `host`, if it may have one more."""
        if self.open[host] >= self.max_connections_per_client:
            now = time.monotonic()
            if now - self.warned_at >= WARN_EVERY_S:
                self.warned_at = now
                log.warning("refused connections from %s: it has %d open "
                            "(BLOOP_HTTP_MAX_CONNECTIONS_PER_CLIENT; logged once a minute)",
                            host, self.open[host])
            return False
        self.open[host] += 1
        return True

    def release(self, host: str) -> None:
        self.open[host] -= 1
        if self.open[host] <= 0:
            del self.open[host]


class _TooManyHeaders(Exception):
    pass


class _WatchedTransport(asyncio.Transport):
    """The connection's transport, whose `close()` also tells the protocol (uvloop's transports
    take no attribute). Everything else is the transport's own bound methods: no extra call."""

    _PASSED = ("write", "writelines", "is_closing", "get_extra_info", "pause_reading",
               "resume_reading", "is_reading", "get_write_buffer_size", "abort",
               "set_write_buffer_limits", "get_write_buffer_limits", "can_write_eof",
               "write_eof", "set_protocol", "get_protocol")

    def __init__(self, transport: asyncio.Transport, on_close: LimitedHttpToolsProtocol
                 ) -> None:
        super().__init__()
        self.real, self._on_close = transport, on_close
        for name in self._PASSED:
            setattr(self, name, getattr(transport, name))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def close(self) -> None:
        self.real.close()
        self._on_close.closed()


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """The request line and headers must arrive within `header_timeout_s` of the connection's
    opening or of the end of the previous response on it (uvicorn's keep-alive timeout, 5 s
    to the next request's first byte, applies too); past it the connection is closed (408 if
    part of a request came). Over `max_header_bytes` or `max_headers` they get 431 and the
    connection is closed, the rest unread."""

    limits: Limits

    _counted: str | None = None
    _header_timer: asyncio.TimerHandle | None = None
    _in_head = True
    _head_bytes = 0
    _header_count = 0
    _refusing = False
    _refused = False
    _completed = 0
    _stall_timer: asyncio.TimerHandle | None = None
    _closed = False
    _lost = False
    _unsent = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = _WatchedTransport(transport, self)
        host = self.client[0] if self.client else None
        if host is not None and not self.limits.exempts(host):
            if not self.limits.admit(host):
                self._answer(503, "Too many connections from this address; try again shortly.",
                             b"retry-after: %d\r\n" % BUSY_RETRY_AFTER_S)
                return
            self._counted = host
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._cancel_header_timer()
        self._cancel_stall_timer()
        self._release()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        self._release()  # the WebSocket protocol takes the connection, and its loss
        if isinstance(self.transport, _WatchedTransport):
            self.transport = self.transport.real
        super().handle_websocket_upgrade()

    def pause_writing(self) -> None:
        super().pause_writing()
        self._arm_stall_timer(self.limits.send_idle_s)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._cancel_stall_timer()
        if self._closed:
            self._arm_stall_timer(self._grace_s)

    def closed(self) -> None:
        """The transport was closed: what it has left to send must drain, or it is aborted."""
        self._closed = True
        if not self._lost:
            self._arm_stall_timer(self._grace_s)

    @property
    def _grace_s(self) -> float:
        return min(CLOSE_GRACE_S, self.limits.send_idle_s)

    def _arm_stall_timer(self, delay_s: float) -> None:
        self._cancel_stall_timer()
        self._unsent = self.transport.get_write_buffer_size()
        self._stall_timer = self.loop.call_later(delay_s, self._stalled)

    def _cancel_stall_timer(self) -> None:
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None

    def _stalled(self) -> None:
        self._stall_timer = None
        if self._lost:
            return
        unsent = self.transport.get_write_buffer_size()
        if unsent < self._unsent:  # the client took some: it reads, however slowly
            self._arm_stall_timer(self._grace_s if self._closed else self.limits.send_idle_s)
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            count_as(cycle.scope, CLIENT_CLOSED)  # type: ignore[arg-type]
        log.info("aborted a connection whose client took none of its answer for %g s",
                 self._grace_s if self._closed else self.limits.send_idle_s,
                 extra={"client": self.client[0] if self.client else None,
                        "unsent_bytes": unsent})
        sock = self.transport.get_extra_info("socket")
        if sock is not None:  # a reset: the kernel drops what it holds too, not sends it on
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
        self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # its 431 waits for the answers before it
        if not self._in_head:
            super().data_received(data)
            return
        room = self.limits.max_header_bytes - self._head_bytes
        if len(data) <= room:
            self._head_bytes += len(data)
            super().data_received(data)
            return
        # Its head ends within `room` bytes, or it is too large: the rest is not parsed.
        self._head_bytes += room
        completed = self._completed
        if room > 0:
            super().data_received(data[:room])
        if self.transport.is_closing() or self._refused:
            return
        if self._in_head and self._completed == completed:
            self._refuse_head()
            return
        # A request ended within them (pipelined): the next one's head is counted on from here.
        self.data_received(data[room:])

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_count = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            self._refusing = True
            raise _TooManyHeaders  # httptools stops parsing, and uvicorn answers 400: 431 here
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_header_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_head, self._head_bytes = True, 0
        self._completed += 1
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._refused:
            if not self._answering():
                self._answer(431, TOO_LARGE)
        elif self.timeout_keep_alive_task is not None:  # no pipelined request: one may come
            self._arm_header_timer()

    def send_400_response(self, msg: str) -> None:
        if self._refusing:
            self._refuse_head()
        else:
            super().send_400_response(msg)

    def _refuse_head(self) -> None:
        """431, once the answers to the requests before it on the connection are sent."""
        self._cancel_header_timer()
        self._refused = True
        if not self._answering():
            self._answer(431, TOO_LARGE)

    def _answering(self) -> bool:
        return bool(self.pipeline) or (self.cycle is not None
                                       and not self.cycle.response_complete)

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self._in_head and self._head_bytes > 0:
            self._answer(408, "The request's headers took too long.")
        else:
            self.transport.close()

    def _answer(self, status: int, msg: str, headers: bytes = b"") -> None:
        body = msg.encode("ascii")
        self.transport.write(b"".join([
            STATUS_LINE[status], b"content-type: text/plain; charset=utf-8\r\n", headers,
            b"content-length: %d\r\n" % len(body), b"connection: close\r\n\r\n", body]))
        self.transport.close()

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.limits.header_timeout_s,
                                                  self._header_timeout)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _release(self) -> None:
        if self._counted is not None:
            self.limits.release(self._counted)
            self._counted = None


def protocol(http: HttpSettings) -> type[LimitedHttpToolsProtocol]:
    """The protocol class of one server, with its own limits and count of connections."""
    class Protocol(LimitedHttpToolsProtocol):
        limits = Limits.of(http)

    return Protocol
