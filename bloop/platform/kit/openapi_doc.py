"""`/openapi.json`, made once per app: the document wrappers (`document_security`,
`document_problems`, ...) run on its first build only, and each root path's JSON is kept as
bytes with an `ETag`, so a request costs no work on the event loop and `If-None-Match` gets 304.
The first build (about a second for every service) runs in a thread, off the event loop."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bloop.platform.kit.preconditions import entity_tags

CACHE_CONTROL = "no-cache"
MAX_ROOT_PATHS = 8
"""Root paths (`uvicorn --root-path`, or a mount in another app) whose JSON is kept; a process
has one, or a few."""


class OpenAPIDocument:
    """The app's document, built once by `build` (the composed `app.openapi`)."""

    def __init__(self, build: Callable[[], dict[str, Any]], root_path_in_servers: bool) -> None:
        self._build, self._root_path_in_servers = build, root_path_in_servers
        self._doc: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._building: asyncio.Lock | None = None
        self._served: dict[str, tuple[bytes, str]] = {}

    def document(self) -> dict[str, Any]:
        with self._lock:
            if self._doc is None:
                self._doc = self._build()
            return self._doc

    async def served(self, root_path: str) -> tuple[bytes, str]:
        """The JSON for `root_path` and its ETag."""
        if (kept := self._served.get(root_path)) is not None:
            return kept
        if self._doc is None:
            self._building = self._building or asyncio.Lock()
            async with self._building:  # one thread builds; the other requests wait for it
                await asyncio.to_thread(self.document)
        doc = self.document()
        if root_path and self._root_path_in_servers:  # as FastAPI's own route does
            servers = doc.get("servers", [])
            if root_path not in {s.get("url") for s in servers}:
                doc = {**doc, "servers": [{"url": root_path}, *servers]}
        body = json.dumps(doc, ensure_ascii=False, allow_nan=False, indent=None,
                          separators=(",", ":")).encode("utf-8")  # as JSONResponse renders
        kept = (body, '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"')
        if len(self._served) < MAX_ROOT_PATHS:
            self._served[root_path] = kept
        return kept


def serve_openapi(app: FastAPI) -> None:
    """Call last, once every wrapper of `app.openapi` is in place: `app.openapi` then gives
    the one document, and the route at `app.openapi_url` serves it."""
    if not app.openapi_url:
        return
    doc = OpenAPIDocument(app.openapi, app.root_path_in_servers)
    app.openapi = doc.document  # type: ignore[method-assign]

    async def openapi(request: Request) -> Response:
        body, etag = await doc.served(request.scope.get("root_path", "").rstrip("/"))
        headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
        tags = entity_tags(request.headers.get("if-none-match"))
        if etag in tags or "*" in tags:
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    routes = app.router.routes
    for i, route in enumerate(routes):
        if isinstance(route, Route) and route.path == app.openapi_url:
            routes[i] = Route(app.openapi_url, openapi, include_in_schema=False)
            return
    raise LookupError(f"no route at {app.openapi_url}")  # pragma: no cover
