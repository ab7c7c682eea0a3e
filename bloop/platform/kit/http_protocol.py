"""uvicorn's httptools protocol with the limits it lacks before a request reaches the app: its
request line and headers must arrive within a time (`BLOOP_HTTP_HEADER_TIMEOUT_S`) and a size
(`BLOOP_HTTP_MAX_HEADER_BYTES`, `MAX_HEADERS` lines), and one peer may hold only so many
connections (`BLOOP_HTTP_MAX_CONNECTIONS_PER_CLIENT`). uvicorn starts no timer before the first
response, and httptools keeps whatever headers come (an idle connection or a header trickled
a byte at a time stayed open for ever; 100 MB of headers were read into memory)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from bloop.platform.kit.settings import HttpSettings

log = logging.getLogger("bloop.http")

MAX_HEADERS = 200
WARN_EVERY_S = 60.0

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class Limits:
    """The limits of one server, and the connections it has open by peer address."""

    header_timeout_s: float
    max_header_bytes: int
    max_connections_per_client: int
    exempt: tuple[Network, ...] | None
    """The peers whose connections are not counted (the trusted proxies); None: every peer."""
    max_headers: int = MAX_HEADERS
    open: Counter[str] = field(default_factory=Counter)
    warned_at: float = -math.inf

    @classmethod
    def of(cls, http: HttpSettings) -> Limits:
        proxies = http.forwarded_allow_ips
        exempt = None if "*" in proxies else tuple(
            ipaddress.ip_network(p, strict=False) for p in proxies)
        return cls(http.header_timeout_s, http.max_header_bytes,
                   http.max_connections_per_client, exempt)

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

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        host = self.client[0] if self.client else None
        if host is not None and not self.limits.exempts(host):
            if not self.limits.admit(host):
                transport.close()
                return
            self._counted = host
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        self._release()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        self._release()  # the WebSocket protocol takes the connection, and its loss
        super().handle_websocket_upgrade()

    def data_received(self, data: bytes) -> None:
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
        if room > 0:
            super().data_received(data[:room])
        if self.transport.is_closing():
            return
        if self._in_head:
            self._refuse_head()
            return
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
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.timeout_keep_alive_task is not None:  # no pipelined request: one may come
            self._arm_header_timer()

    def send_400_response(self, msg: str) -> None:
        if self._refusing:
            self._refuse_head()
        else:
            super().send_400_response(msg)

    def _refuse_head(self) -> None:
        self._cancel_header_timer()
        self._answer(431, "Request header fields too large.")

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self._in_head and self._head_bytes > 0:
            self._answer(408, "The request's headers took too long.")
        else:
            self.transport.close()

    def _answer(self, status: int, msg: str) -> None:
        body = msg.encode("ascii")
        self.transport.write(b"".join([
            STATUS_LINE[status], b"content-type: text/plain; charset=utf-8\r\n",
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
