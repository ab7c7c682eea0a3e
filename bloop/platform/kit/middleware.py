"""Request id, access log, metrics, the rate limit of requests without a credential, body-size
limit, body idle timeout, content-free 204s and the headers that keep pages from being framed or
sniffed, as one pure ASGI middleware."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

from fastapi.routing import RouteContext, iter_route_contexts
from starlette._utils import get_route_path
from starlette.requests import Request
from starlette.routing import Match, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bloop.platform.kit.errors import (
    BodyRefused,
    Problem,
    problem_response,
    store_outages,
    unexpected_response,
)
from bloop.platform.kit.ids import new_id
from bloop.platform.kit.logging import request_id_var
from bloop.platform.kit.metrics import Metrics

log = logging.getLogger("bloop.http")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_UNLOGGED = frozenset({"/healthz", "/metrics"})
"""Asked every few seconds by probes and scrapers; `/readyz` too, unless it is not ready."""
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_CONTENT_HEADERS = frozenset({b"content-type", b"content-length"})
"""What a 204 answer leaves out: it has no content (FastAPI's JSON answers name a type even
when they have no body)."""
_NOSNIFF = (b"x-content-type-options", b"nosniff")
_PAGE_HEADERS = ((b"content-security-policy", b"frame-ancestors 'none'"),
                 (b"x-frame-options", b"DENY"), (b"referrer-policy", b"no-referrer"))
"""A page (the landing page, GraphiQL's sign-in, the API docs' Authorize) is never framed by
another site, and GraphiQL's address, which holds the query, is not sent on."""
_ACCESS_FIELDS = "bloop.access_fields"
_COUNTED_STATUS = "bloop.counted_status"
_EARLY_ROUTE = "bloop.early_route"
"""The route template of a request the middleware answered itself, before routing."""


def _safety(headers: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    names = {k.lower(): v for k, v in headers}
    extra = [] if b"x-content-type-options" in names else [_NOSNIFF]
    if names.get(b"content-type", b"").startswith(b"text/html"):
        extra += [h for h in _PAGE_HEADERS if h[0] not in names]
    return extra


LOGGED_PATH = 512  # characters of a request's path its log line keeps (a path may be 60 KB)


def _logged(path: str | None) -> str | None:
    if path is None or len(path) <= LOGGED_PATH:
        return path
    return f"{path[:LOGGED_PATH]}…(+{len(path) - LOGGED_PATH})"


def note_access(scope: Scope, **fields: str) -> None:
    """Adds `fields` to the access line of the request of `scope` (each a bounded value)."""
    scope.setdefault(_ACCESS_FIELDS, {}).update(fields)


def count_as(scope: Scope, status: int) -> None:
    """Counts and logs the request of `scope` under `status`, not the status its answer
    started with: an answer cut off part-way (499 when its client left or stopped reading)."""
    scope[_COUNTED_STATUS] = status


def client_ip(request: Request) -> str:
    """The address a request came from, as the sign-in throttles count it: from a proxy of
    `BLOOP_HTTP_FORWARDED_ALLOW_IPS`, the one its `X-Forwarded-For` names (`serving.config`)."""
    return request.client.host if request.client else "unknown"


def plain_route(scope: Scope, root_path: str) -> str | None:
    """The path of the Starlette route or mount that matches a request (the OpenAPI document,
    static files), which, unlike FastAPI's own routes, leave no `route` in the scope.
    `root_path`: the scope's as the request came in (a mount that matched lengthens it)."""
    bare = {"type": "http", "path": scope.get("path", ""), "root_path": root_path,
            "method": scope.get("method", "GET")}
    for route in getattr(getattr(scope.get("app"), "router", None), "routes", ()):
        if isinstance(route, Route | Mount) and route.matches(bare)[0] is Match.FULL:
            return route.path
    return None


def route_path(scope: Scope) -> str:
    """A request's path as its routes see it: without the root path the app is served under."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


_RouteIndex = tuple[int, list[RouteContext], "re.Pattern[str] | None"]
_INDEX = "_bloop_route_index"


def _route_index(router: Any) -> _RouteIndex:
    """`router`'s routes, included ones too, and one pattern of all their paths whose match
    names the first route the path can match (None if a route matches other than by its path
    pattern). Built again when the number of the router's routes changes."""
    routes = getattr(router, "routes", ())
    index: _RouteIndex | None = getattr(router, _INDEX, None)
    if index is not None and index[0] == len(routes):
        return index
    contexts = list(iter_route_contexts(routes))
    patterns = [getattr(c, "path_regex", None) if isinstance(c.original_route, Route | Mount)
                else None for c in contexts]
    whole = None if any(p is None for p in patterns) else re.compile("|".join(
        f"(?P<r{i}>{re.sub(r'[(][?]P<[^>]+>', '(?:', p.pattern)})"
        for i, p in enumerate(patterns) if p is not None))
    index = (len(routes), contexts, whole)
    setattr(router, _INDEX, index)
    return index


def route_template(scope: Scope, root_path: str | None = None) -> str:
    """The template of the route a request is bound for, before routing has found it or when it
    was answered without routing (FastAPI's included routes as well as `plain_route`'s).
    `root_path`: the scope's as the request came in, if a mount may have lengthened it since."""
    root = scope.get("root_path", "") if root_path is None else root_path
    bare = {"type": "http", "path": scope.get("path", ""), "root_path": root,
            "method": scope.get("method", "GET"), "headers": scope.get("headers", []),
            "query_string": scope.get("query_string", b"")}  # GraphiQL's page route reads them
    router = getattr(scope.get("app"), "router", None)
    if router is None:
        return "unmatched"
    _, contexts, whole = _route_index(router)
    first = 0
    if whole is not None:
        found = whole.match(get_route_path(bare))
        if found is None or found.lastgroup is None:
            return "unmatched"
        first = int(found.lastgroup[1:])
    for route in contexts[first:]:
        if route.matches(bare)[0] is Match.FULL:
            return str(route.path)
    return plain_route(scope, root) or "unmatched"


def paths_pattern(templates: Sequence[str]) -> re.Pattern[str] | None:
    """What matches the paths of the route templates (`/v1/tenants/{tenant}/media`), if any."""
    if not templates:
        return None
    return re.compile("|".join(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(p))
                               for p in templates))


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: Callable[[], Metrics], max_body_bytes: int,
                 own_limits: Sequence[str] = (), body_idle_s: float = 30.0,
                 body_min_rate: float = 0.0,
                 count_anonymous: Callable[[str], Awaitable[None]] | None = None,
                 uncounted: Sequence[str] = (), public_paths: Collection[str] = ()) -> None:
        """`own_limits`: path templates (`/v1/tenants/{tenant}/media`) whose routes limit their
        request bodies themselves, so the body-size limit here leaves them alone.
        `body_idle_s`: how long a request body may go without a byte arriving before the
        request is answered 408 (uvicorn itself waits for ever).
        `body_min_rate`: bytes a second a body must average once it has been waited for
        `body_idle_s` (0: any rate): as Apache's MinRate, each `body_min_rate` bytes received
        buy one more second of waiting, and a body behind that is answered 408 too. Only time
        spent waiting for the client counts, not time the app spent before reading on.
        `count_anonymous`: counts a request without a credential against its client address,
        raising its 429 past the address's limit; a request to a path of `uncounted` (path
        templates) is not counted, and one with a credential only when its path is one of
        `public_paths`, which do not look at the credential (a request with a credential the
        routes refuse is counted by `kit.auth.deps.Requirement`)."""
        self.app, self.metrics, self.max_body_bytes = app, metrics, max_body_bytes
        self.count_anonymous = count_anonymous
        self.uncounted = paths_pattern(uncounted)
        self.public_paths = frozenset(public_paths)
        self.body_idle_s, self.body_min_rate = body_idle_s, body_min_rate
        self.own_limits = paths_pattern(own_limits)

    async def _refused_anonymous(self, scope: Scope) -> ASGIApp | None:
        path = scope.get("path", "")
        if self.count_anonymous is None or (
                self.uncounted is not None and self.uncounted.fullmatch(route_path(scope))):
            return None
        try:
            await self.count_anonymous(client_ip(Request(scope)))
        except Problem as exc:
            limit = str(getattr(exc, "limit", exc.code))
            scope[_EARLY_ROUTE] = route_template(scope)
            self.metrics().rate_limited.labels(limit, scope[_EARLY_ROUTE]).inc()
            return problem_response(exc.status, exc.code, exc.detail, instance=path,
                                    extra=exc.extra, headers=exc.headers)
        return None

    @property
    def too_large(self) -> str:
        return f"the request body is larger than {self.max_body_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        root_path = scope.get("root_path", "")
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        rid = given if _VALID_ID.match(given) else new_id().hex
        token = request_id_var.set(rid)
        start = time.perf_counter()
        status = 500
        declared = headers.get(b"content-length")
        received = 0
        # A refusal sent before the body was read closes the connection: the server would
        # otherwise read and drop the rest of the body (all of a huge upload), or, from a
        # client that declared more than it sent, take its next request for that body.
        unread = declared not in (None, b"0") or b"transfer-encoding" in headers
        answered = False  # once the response has started, a body is no longer waited for
        waited = 0.0  # seconds spent waiting for the body's bytes
        arrived = 0  # bytes of the body received so far

        async def tracked_receive() -> Message:
            nonlocal unread, waited, arrived
            if not unread or answered:
                return await receive()
            wait_s, too_slow = self.body_idle_s, False
            if self.body_min_rate > 0:
                allowed = self.body_idle_s + arrived / self.body_min_rate - waited
                if allowed < wait_s:
                    wait_s, too_slow = max(allowed, 0.0), True
            began = time.monotonic()
            try:
                async with asyncio.timeout(wait_s):
                    message = await receive()
            except TimeoutError:
                detail = (f"the request body came slower than {self.body_min_rate:g} bytes/s"
                          if too_slow else "no part of the request body arrived for "
                          f"{self.body_idle_s:g} s")
                raise BodyRefused(408, "request_timeout", detail) from None
            waited += time.monotonic() - began
            if message["type"] == "http.request":
                arrived += len(message.get("body", b""))
                if not message.get("more_body", False):
                    unread = False
            return message

        async def limited_receive() -> Message:
            nonlocal received
            message = await tracked_receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyRefused(413, "payload_too_large", self.too_large)
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status, answered = message["status"], True
                extra = [(b"x-request-id", rid.encode())]
                if unread and status >= 400:
                    extra.append((b"connection", b"close"))
                headers = message.get("headers", ())
                if status == 204:
                    headers = [(k, v) for k, v in headers if k.lower() not in _CONTENT_HEADERS]
                message["headers"] = [*headers, *extra, *_safety(headers)]
            await send(message)

        try:
            if self.count_anonymous is not None and (
                    (b"authorization" not in headers and b"x-api-key" not in headers)
                    or route_path(scope) in self.public_paths):
                refused = await self._refused_anonymous(scope)
                if refused is not None:
                    await refused(scope, receive, send_with_id)
                    return
            if self.own_limits is not None and self.own_limits.fullmatch(scope.get("path", "")):
                await self.app(scope, tracked_receive, send_with_id)
                return
            if declared and declared.isdigit() and int(declared) > self.max_body_bytes:
                scope[_EARLY_ROUTE] = route_template(scope)
                await problem_response(413, "payload_too_large", self.too_large,
                                       instance=scope.get("path"))(scope, receive, send_with_id)
                return
            await self.app(scope, limited_receive, send_with_id)
        except Exception as exc:
            if answered:
                raise
            await unexpected_response(exc, scope.get("path", ""), store_outages(scope.get("app"))
                                      )(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            status = scope.get(_COUNTED_STATUS, status)
            route: Any = scope.get("route")
            template = (getattr(route, "path", None) or scope.get(_EARLY_ROUTE)
                        or plain_route(scope, root_path) or "unmatched")
            method = scope.get("method", "GET")
            counted = method if method in _METHODS else "other"
            metrics = self.metrics()
            metrics.requests.labels(counted, template, str(status)).inc()
            metrics.latency.labels(counted, template).observe(elapsed)
            if template not in _UNLOGGED and not (template == "/readyz" and status == 200):
                log.info("request", extra={"method": method, "path": _logged(scope.get("path")),
                                           "route": template, "status": status,
                                           "ms": round(elapsed * 1000, 2),
                                           **scope.get(_ACCESS_FIELDS, {})})
            request_id_var.reset(token)
