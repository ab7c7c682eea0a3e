"""RFC 9457 problem+json for every error, and 503 + Retry-After when a store is down."""

from __future__ import annotations

import errno
import logging
import os
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect, HTTPConnection
from starlette.routing import Match

from bloop.platform.kit.logging import request_id_var
from bloop.platform.kit.outages import StoreOutages

log = logging.getLogger("bloop.errors")
CLIENT_CLOSED = 499

PROBLEM_JSON = "application/problem+json"
STANDARD_MEMBERS = frozenset({"type", "title", "status", "detail", "code", "instance"})


class Problem(Exception):
    """An error a caller can act on. `code` is stable and machine-readable."""

    status = 400
    code = "bad_request"

    def __init__(self, detail: str, *, status: int | None = None, code: str | None = None,
                 extra: Mapping[str, Any] | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.extra = dict(extra or {})
        if clash := STANDARD_MEMBERS & self.extra.keys():
            raise ValueError(f"a problem's own members cannot be extra: {sorted(clash)}")
        self.headers = dict(headers or {})


class BodyRefused(StarletteHTTPException):
    """A request body refused while it is read: raised from `receive`, where FastAPI's body
    parsing lets only HTTP exceptions through (anything else becomes a 400)."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(status, detail)
        self.code = code


class NotFound(Problem):
    status, code = 404, "not_found"


class Conflict(Problem):
    status, code = 409, "conflict"


class StoreUnavailable(Problem):
    """A store a route needs is down; the rest of the platform keeps serving."""

    status, code = 503, "store_unavailable"

    def __init__(self, store: str, reason: str = "", retry_after_s: int = 5) -> None:
        self.reason = reason
        super().__init__(
            f"the {store} store is unavailable, try again shortly"
            + (f" ({reason})" if reason else ""),
            extra={"store": store}, headers={"Retry-After": str(retry_after_s)},
        )


class Invalid(Problem):
    """A request that does not fit: `errors` lists each field that does not (as pydantic's
    errors, `loc` from the request's root, such as ("query", "course")), and `detail` tells
    the first. What a request that fails its schema gets, also for rules the schema cannot say."""

    status, code = 422, "validation_failed"

    def __init__(self, errors: Iterable[Mapping[str, Any]]) -> None:
        listed = [{"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg"),
                   "type": e.get("type")} for e in errors]
        first = listed[0] if listed else {"loc": [], "msg": "invalid request"}
        super().__init__(f"{'.'.join(first['loc'])}: {first['msg']}" if first["loc"]
                         else str(first["msg"]), extra={"errors": listed})

    @classmethod
    def of(cls, detail: str, *loc: str) -> Invalid:
        """One rule broken by the fields at `loc` together."""
        return cls([{"loc": loc, "msg": detail, "type": "value_error"}])

    @property
    def errors(self) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = self.extra["errors"]
        return listed

    def under(self, *prefix: str) -> Invalid:
        """These errors, their `loc` from `prefix` on."""
        return Invalid({**e, "loc": (*prefix, *e["loc"])} for e in self.errors)


class InvalidBody(Invalid):
    """A body found to break a rule only once applied to what it changes, `loc` from the body's
    root: its caller says where the body was (`under`: the HTTP API's `body`, a GraphQL
    argument)."""


def status_code_name(status: int) -> str:
    """The `code` of a problem that has no code of its own: its status, as in 'not_found'."""
    return HTTPStatus(status).phrase.lower().replace(" ", "_")


def problem_body(status: int, code: str, detail: str, *, instance: str | None = None,
                 extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"https://bloop.dev/problems/{code}",
        "title": "Client Closed Request" if status == CLIENT_CLOSED else HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    body.update(extra or {})
    return body


def problem_response(status: int, code: str, detail: str, *, instance: str | None = None,
                     extra: Mapping[str, Any] | None = None,
                     headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(problem_body(status, code, detail, instance=instance, extra=extra),
                        status_code=status, media_type=PROBLEM_JSON, headers=dict(headers or {}))


def store_errors() -> dict[type[Exception], str]:
    """The drivers' "cannot reach the server" exceptions, and the store each one means."""
    import aiokafka.errors
    import neo4j.exceptions
    import pymongo.errors
    import redis.exceptions

    return {
        pymongo.errors.ConnectionFailure: "mongodb",  # AutoReconnect, ServerSelectionTimeout, …
        neo4j.exceptions.ServiceUnavailable: "neo4j",
        neo4j.exceptions.SessionExpired: "neo4j",
        redis.exceptions.ConnectionError: "redis",
        redis.exceptions.TimeoutError: "redis",
        aiokafka.errors.KafkaConnectionError: "kafka",
        aiokafka.errors.KafkaTimeoutError: "kafka",
    }


# Redis's error replies that say it cannot serve now, whatever was asked: over its memory
# under `noeviction` (OOM), failing to save with stop-writes-on-bgsave-error (MISCONF), a replica
# (READONLY), loading its data (LOADING), held by a long script (BUSY), a cluster or primary not
# ready. Any other reply (WRONGTYPE, a script's own error) is a bug here, and stays a 500.
REDIS_REFUSALS = frozenset({"OOM", "MISCONF", "READONLY", "LOADING", "BUSY", "MASTERDOWN",
                            "NOREPLICAS", "TRYAGAIN", "CLUSTERDOWN"})

_SCRIPT_REFUSAL = re.compile(r"(?:ERR )?Error running script .*?: -([A-Z]+)\b")
"""A refusal inside a script, as Redis 6 wraps it: `ERR Error running script (call to f_…):
@user_script:2: @user_script: 2: -OOM command not allowed …` (redis-py's own parser cuts the
`ERR ` off; the cache's pipelined connection keeps it)."""


def down_store(exc: BaseException) -> str | None:
    """The store `exc` says cannot serve (see `store_errors`, `REDIS_REFUSALS`), or None."""
    import redis.exceptions

    for kind, store in store_errors().items():
        if isinstance(exc, kind):
            return store
    if isinstance(exc, (redis.exceptions.OutOfMemoryError, redis.exceptions.ReadOnlyError,
                        redis.exceptions.ClusterDownError, redis.exceptions.TryAgainError)):
        return "redis"  # redis-py's own classes for some refusals, their code cut off
    if not isinstance(exc, redis.exceptions.ResponseError):
        return None
    said = str(exc)
    in_script = _SCRIPT_REFUSAL.match(said)
    return "redis" if (in_script.group(1) if in_script else said.split(" ", 1)[0]) in (
        REDIS_REFUSALS) else None


def is_text(value: str) -> bool:
    """False for a string holding an unpaired UTF-16 surrogate (JSON's "\\ud800"), which is
    no character: no store takes it."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def unpaired_surrogate(exc: BaseException) -> Problem | None:
    """The problem to answer when a store refused text holding an unpaired surrogate."""
    if isinstance(exc, UnicodeEncodeError) and exc.reason == "surrogates not allowed":
        return Problem("a text value holds an unpaired UTF-16 surrogate (\\ud800-\\udfff), "
                       "which is no character", status=422, code="invalid_text")
    return None


# A file write the disk refused: full, over quota, failing, or remounted read-only.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS})


def disk_unavailable(exc: BaseException) -> StoreUnavailable | None:
    """A file the disk would not take (spooled uploads, media files, an import's folder) as the
    `disk` store being unavailable: a 503 with Retry-After, as a full SQLite file is."""
    if not isinstance(exc, OSError) or exc.errno not in DISK_ERRNOS:
        return None
    unavailable = StoreUnavailable("disk", os.strerror(exc.errno).lower())
    unavailable.__cause__ = exc
    return unavailable


def is_store_down(exc: BaseException) -> bool:
    return (isinstance(exc, StoreUnavailable) or down_store(exc) is not None
            or disk_unavailable(exc) is not None)


def store_outages(app: object) -> StoreOutages:
    """The log of stores that are down `install_error_handlers` gave `app` (a new one, which
    thins nothing, for an app without)."""
    found = getattr(getattr(app, "state", None), "store_outages", None)
    return found if isinstance(found, StoreOutages) else StoreOutages()


def count_refusal(connection: HTTPConnection | None, problem: Problem) -> None:
    """A 429 in `bloop_rate_limited_total`, by the limiter that refused it (its `limit`), else
    by its code, and by the template of the route it was asked of."""
    if problem.status != 429 or connection is None:
        return
    metrics = getattr(getattr(connection.app.state, "platform", None), "metrics", None)
    if metrics is None:  # an app without the platform's (a test's)
        return
    route = getattr(connection.scope.get("route"), "path", None) or "unmatched"
    limit = getattr(problem, "limit", None) or problem.code
    metrics.rate_limited.labels(str(limit), route).inc()


def _store_down_handler(store: str) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        store_outages(request.app).failed(store, exc)
        err = StoreUnavailable(store)
        return problem_response(err.status, err.code, err.detail, instance=request.url.path,
                                extra=err.extra, headers=err.headers)

    return handle


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path. Starlette's 405 names only those
    of the first route whose path matched, where a path's methods are often split over several.
    Only the routes with the fewest path parameters count: `/invitations/accept` is its own
    resource, not an invitation whose id is "accept" (and is routed so: fixed_paths.py)."""
    matched = [(len(route.param_convertors), route.methods)
               for route in iter_route_contexts(request.app.router.routes)
               if route.methods and route.matches(request.scope)[0] is not Match.NONE]
    fewest = min((n for n, _ in matched), default=0)
    return sorted({m for n, methods in matched if n == fewest for m in methods})


def install_error_handlers(app: FastAPI) -> None:
    app.state.store_outages = StoreOutages()

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        count_refusal(request, exc)
        return problem_response(exc.status, exc.code, exc.detail, instance=request.url.path,
                                extra=exc.extra, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        sent = request.headers.get("content-type", "")
        if _not_json(sent) and any(tuple(e.get("loc", ())) == ("body",) for e in exc.errors()):
            return await _problem(request, Problem(
                f"the body is sent as {sent.split(';', 1)[0].strip()}; send it as JSON "
                "(Content-Type: application/json)", status=415, code="unsupported_media_type"))
        return await _problem(request, Invalid(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, ClientDisconnect):  # FastAPI reading a JSON body
            return await _gone(request, exc.__cause__)
        if (unread := unreadable_json(exc)) is not None:
            return await _problem(request, Invalid([{"loc": ("body",), "msg": unread,
                                                     "type": "json_invalid"}]))
        code = exc.code if isinstance(exc, BodyRefused) else status_code_name(exc.status_code)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        return problem_response(exc.status_code, code, str(exc.detail), instance=request.url.path,
                                headers=headers)

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect) -> JSONResponse:
        return client_gone_response(request.url.path)

    for exc_class, store in store_errors().items():
        app.add_exception_handler(exc_class, _store_down_handler(store))

    import redis.exceptions

    @app.exception_handler(redis.exceptions.ResponseError)
    async def _redis_refused(request: Request, exc: Exception) -> JSONResponse:
        return unexpected_response(exc, request.url.path, store_outages(request.app))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return unexpected_response(exc, request.url.path, store_outages(request.app))


def _not_json(content_type: str) -> bool:
    """A declared media type that is not JSON, which FastAPI hands a JSON route as raw bytes."""
    kind = content_type.split(";", 1)[0].strip().lower()
    return bool(kind) and kind != "application/json" and not kind.endswith("+json")


def unreadable_json(exc: StarletteHTTPException) -> str | None:
    """What made FastAPI's JSON parsing of a body fail, when it did for a reason its own
    answer (400, "There was an error parsing the body") leaves unsaid."""
    if exc.status_code != 400 or exc.__cause__ is None:
        return None
    return json_fault(exc.__cause__)


def json_fault(exc: BaseException) -> str | None:
    """Why `json.loads` failed, beside a syntax error, for a person to read; None when `exc`
    is no such failure."""
    if isinstance(exc, RecursionError):
        return "the JSON nests too deeply to be read"
    if isinstance(exc, UnicodeDecodeError):
        return "the JSON is not UTF-8 text"
    if isinstance(exc, ValueError):  # e.g. an integer of more digits than Python converts
        return f"the JSON cannot be read: {exc}"
    return None


def client_gone_response(path: str) -> JSONResponse:
    """The answer to a client that left before its body was read (an upload it gave up):
    nothing went wrong here, and no one reads the answer, counted under nginx's 499."""
    log.info("the client went away before its request was read", extra={"path": path})
    return problem_response(CLIENT_CLOSED, "client_closed_request",
                            "the client closed the connection before its request was read",
                            instance=path)


def unexpected_response(exc: Exception, path: str, outages: StoreOutages) -> JSONResponse:
    """The answer to an exception no handler took, logged once with its traceback (a store
    that cannot serve, or a disk that refused a file: a 503, in `outages`). The 500's body
    names the request id, so a person's report can be matched with the log."""
    if (refused := unpaired_surrogate(exc)) is not None:
        return problem_response(refused.status, refused.code, refused.detail, instance=path)
    if (store := down_store(exc)) is not None:
        outages.failed(store, exc, path=path)
        unavailable = StoreUnavailable(store)
        return problem_response(unavailable.status, unavailable.code, unavailable.detail,
                                instance=path, extra=unavailable.extra,
                                headers=unavailable.headers)
    if (down := disk_unavailable(exc)) is not None:
        outages.failed("disk", exc, "the disk refused a file", path=path)
        return problem_response(down.status, down.code, down.detail, instance=path,
                                extra=down.extra, headers=down.headers)
    log.exception("unhandled error", extra={"path": path}, exc_info=exc)
    rid = request_id_var.get()
    return problem_response(500, "internal_error", "an unexpected error occurred",
                            instance=path, extra={"request_id": rid} if rid else None)
