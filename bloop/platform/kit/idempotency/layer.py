"""The `Idempotency-Key` request header on POST routes (IETF draft "The Idempotency-Key HTTP
Header Field"): a POST sent again with the same key, by the same caller, answers what the first
one answered, without running again.

The middleware reads the body of a POST that carries the key, and leaves a `Pending` in the
request's scope (`MALFORMED` for a key that is no key, which `claim` refuses with 400); the
route's `require(...)` dependency, once it knows the caller, takes the key (`claim`): for (the
path's tenant, the caller, the key), it keeps the request's fingerprint (its method, path,
query and a hash of its body) and, once answered, its response, within the path's tenant (the
caller's without one, as on /graphql), whose kept answers an erasure drops. Taking it again
with the same request raises `Replayed` (the stored response is sent), with another request
422 `idempotency_key_reused`, while the first still runs 409 `idempotency_key_in_use`. An answer
under 400 is kept for `keep_s`; an error, or an answer its route says changed nothing
(`changed_nothing`: a GraphQL operation each of whose mutations failed), frees the key. A key
neither answered nor freed within `lock_s` (its process died after the route wrote, maybe) is
409 `idempotency_outcome_unknown` for `keep_s` more: never run again.
Routes without `require(...)` (signing in, signing up) and routes that read the header
themselves (`ai/jobs`, whose key names a job for good) are left alone, as are those that limit
their own bodies (uploads), whose body is not read ahead, and those whose answer carries a
secret (`SECRET_ANSWER`: an API key, an invitation's token), which is never kept: a key,
malformed or not, is ignored where it is not honoured (clients send it everywhere)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bloop.platform.kit.errors import (
    BodyRefused,
    Problem,
    client_gone_response,
    problem_body,
    problem_response,
)
from bloop.platform.kit.idempotency.port import KEY_PATTERN, MAX_KEY_CHARS, IdempotencyStore
from bloop.platform.kit.middleware import paths_pattern
from bloop.platform.kit.personal_data import not_stored
from bloop.platform.kit.problem_docs import RETRY_AFTER, add_problem
from bloop.platform.kit.settings import HttpSettings

log = logging.getLogger("bloop.idempotency")
HEADER = "Idempotency-Key"
_VALID_KEY = re.compile(KEY_PATTERN)
_SCOPE = "bloop.idempotency"
MALFORMED = "malformed"  # in the scope for a key that is no key
KEPT_HEADERS = frozenset({b"content-type", b"location", b"content-location", b"etag",
                          b"last-modified", b"link", b"cache-control"})
MAX_KEPT_BYTES = 1_048_576  # a larger answer is not kept: its key is freed
IN_USE_RETRY_S = 1
AGAIN_S = 5.0
"""A store that timed out may still carry out what it was sent, later (Redis, once its slow
command is done): what failed is done again after this long, in the background, then after
twice as long each time (at most `MAX_AGAIN_S`) until the key's lock has lapsed."""
MAX_AGAIN_S = 60.0
MAX_LATER = 1_000
"""Background attempts beyond this many (a long outage) are tried once, not until the lock
lapses."""
LAST_TRY_S = 2.0  # at shutdown, pending attempts are tried once more within this long
_LATER: dict[asyncio.Task[None], Callable[[], Awaitable[None]]] = {}
"""The background attempts, held until they end, with what they try."""
NO_KEY = f"an {HEADER} is 1 to {MAX_KEY_CHARS} printable ASCII characters, without spaces"
REUSED = f"this {HEADER} was used for a different request"
IN_USE = f"the first request with this {HEADER} is still running; try again shortly"
OUTCOME_UNKNOWN = (f"the first request with this {HEADER} was interrupted; whether it took effect "
                   "is unknown: check, then send it again with a new key")


class Replayed(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__("replayed")
        self.response = response


async def replayed(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Replayed)
    return exc.response


def encode_response(status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    kept = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in headers
            if k.lower() in KEPT_HEADERS]
    return json.dumps({"status": status, "headers": kept}).encode() + b"\n" + body


def decode_response(raw: bytes) -> Response:
    head, _, body = raw.partition(b"\n")
    meta: dict[str, Any] = json.loads(head)
    response = Response(content=body, status_code=int(meta["status"]))
    response.raw_headers.extend((k.encode("latin-1"), v.encode("latin-1"))
                                for k, v in meta["headers"])
    return response


def own_key(route: object) -> bool:
    """Whether `route` reads the Idempotency-Key header itself."""
    return isinstance(route, APIRoute) and _reads_key(route.dependant)


def _reads_key(dependant: Dependant) -> bool:
    return any(p.alias.replace("_", "-").lower() == "idempotency-key"
               for p in dependant.header_params) or any(map(_reads_key, dependant.dependencies))


def _answers_a_secret(response: Response) -> None:
    """Marks a route whose answer carries a secret (`SECRET_ANSWER`)."""
    not_stored(response)


SECRET_ANSWER = Depends(_answers_a_secret)
"""In a route's `dependencies`: its answer carries a secret shown only once (an API key, an
invitation's token), which is kept nowhere in the clear: not by a cache (`no-store`), nor under
an Idempotency-Key: the same request sent again runs again."""


def secret_answer(route: object) -> bool:
    """Whether `route` (an `APIRoute`, or its context in an app) is marked `SECRET_ANSWER`."""
    dependant = getattr(route, "dependant", None)
    return isinstance(dependant, Dependant) and _marked(dependant)


def _marked(dependant: Dependant) -> bool:
    return dependant.call is _answers_a_secret or any(map(_marked, dependant.dependencies))


class Pending:
    """A POST's key, until the route's caller is known and the key is taken."""

    def __init__(self, store: IdempotencyStore, key: str, fingerprint: str, lock_s: float,
                 keep_s: float = 0.0) -> None:
        self.store, self.key, self.fingerprint, self.lock_s = store, key, fingerprint, lock_s
        self.keep_s = keep_s
        self.token = secrets.token_hex(8)  # this request's, beside its retries' fingerprint
        self.stored_key: str | None = None  # once taken by this request
        self.tenant = ""  # the tenant it was taken within
        self.settled = False
        self.changed_nothing = False  # the route says so, whatever its answer's status

    async def claim(self, tenant: str | None, caller: tuple[str, ...], route: object) -> None:
        if self.settled:
            return
        self.settled = True
        if own_key(route) or secret_answer(route):
            return
        stored_key = hashlib.sha256("\x00".join((tenant or "", *caller, self.key)).encode(
            )).hexdigest()
        within = tenant if tenant is not None else next(iter(caller), "")
        try:
            held = await self.store.claim(within, stored_key, self.fingerprint, self.lock_s,
                                          self.keep_s, self.token)
        except BaseException:
            # The key may be taken all the same (a timed out claim the store ran, or runs late):
            # freed if it is this request's, now and again until its lock lapses, rather than
            # left unanswered (409 for lock_s + keep_s).
            async def release() -> None:
                await self.store.release(within, stored_key, self.fingerprint, self.token)

            _in_background(release, self.lock_s, "an Idempotency-Key whose taking failed "
                           "could not be freed: given up", late=True)
            raise
        if held is None:
            self.stored_key, self.tenant = stored_key, within
            return
        if held.fingerprint != self.fingerprint:
            raise Problem(REUSED, status=422, code="idempotency_key_reused")
        if held.lapsed:
            raise Problem(OUTCOME_UNKNOWN, status=409, code="idempotency_outcome_unknown")
        if held.response is None:
            raise Problem(IN_USE, status=409, code="idempotency_key_in_use",
                          headers={"Retry-After": str(IN_USE_RETRY_S)})
        raise Replayed(decode_response(held.response))


async def claim(request: Request, tenant: str | None, caller: tuple[str, ...]) -> None:
    """Takes the request's Idempotency-Key for `caller` (its tenant first, then who it is), if
    it carries one (see the module)."""
    pending: Pending | str | None = request.scope.get(_SCOPE)
    if pending == MALFORMED:
        raise Problem(NO_KEY, status=400, code="invalid_idempotency_key")
    if isinstance(pending, Pending):
        await pending.claim(tenant, caller, request.scope.get("route"))


def keyed(scope: Scope) -> bool:
    """Whether the request carries a key whose answer may be kept."""
    return isinstance(scope.get(_SCOPE), Pending)


def changed_nothing(scope: Scope) -> None:
    """The answer changed nothing, whatever its status (a GraphQL operation is 200 when each of
    its mutations failed): its key is freed, as an error's is."""
    pending: Pending | str | None = scope.get(_SCOPE)
    if isinstance(pending, Pending):
        pending.changed_nothing = True


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp, store: Callable[[], IdempotencyStore], keep_s: float,
                 lock_s: float, own_limits: re.Pattern[str] | None = None) -> None:
        """`own_limits`: the paths of the routes that limit their own bodies (uploads)."""
        self.app, self.store, self.keep_s, self.lock_s = app, store, keep_s, lock_s
        self.own_limits = own_limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = _header(scope) if scope["type"] == "http" and scope["method"] == "POST" else None
        path = scope.get("path", "")
        if key is None or (self.own_limits is not None and self.own_limits.fullmatch(path)):
            await self.app(scope, receive, send)
            return
        if len(key) > MAX_KEY_CHARS or not _VALID_KEY.match(key):
            scope[_SCOPE] = MALFORMED  # refused only by a route honouring the key
            await self.app(scope, receive, send)
            return
        try:
            body = await _read_body(receive)
        except BodyRefused as exc:
            _route_to(scope)
            await problem_response(exc.status_code, exc.code, str(exc.detail),
                                   instance=path)(scope, receive, send)
            return
        if body is None:  # the client went away: 499, as a route reading the body answers
            _route_to(scope)
            await client_gone_response(path)(scope, receive, send)
            return
        digest = hashlib.sha256()
        for part in (scope["method"], path, scope.get("query_string", b"").decode("latin-1")):
            digest.update(part.encode() + b"\x00")
        digest.update(body)
        pending = Pending(self.store(), key, digest.hexdigest(), self.lock_s, self.keep_s)
        scope[_SCOPE] = pending
        await self._run(pending, scope, _replay(body, receive), send)

    async def _run(self, pending: Pending, scope: Scope, receive: Receive, send: Send) -> None:
        status, size, settled = 0, 0, False
        headers: list[tuple[bytes, bytes]] = []
        parts: list[bytes] = []

        async def settle() -> None:
            nonlocal settled
            settled = True
            kept = status < 400 and size <= MAX_KEPT_BYTES and not pending.changed_nothing
            await self._settle(pending, encode_response(status, headers, b"".join(parts))
                               if kept else None)

        async def capture(message: Message) -> None:
            nonlocal status, headers, size
            if message["type"] == "http.response.start":
                status, headers = message["status"], list(message.get("headers", ()))
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
                if size <= MAX_KEPT_BYTES:
                    parts.append(message.get("body", b""))
                if not message.get("more_body", False):
                    # Kept before its last part goes: the request sent again once answered
                    # finds it, not the key still taken.
                    await settle()
            await send(message)

        try:
            await self.app(scope, receive, capture)
        except BaseException:
            if not settled:
                await self._settle(pending, None)
            raise
        if not settled:
            await settle()

    async def _settle(self, pending: Pending, response: bytes | None) -> None:
        """Keeps the answer under the key the request took, or frees the key."""
        stored_key = pending.stored_key
        if stored_key is None:
            return

        async def settle() -> None:
            if response is None:
                await pending.store.release(pending.tenant, stored_key, pending.fingerprint,
                                            pending.token)
            else:
                await pending.store.finish(pending.tenant, stored_key, pending.fingerprint,
                                           response, self.keep_s, pending.token)

        try:
            await settle()
        except BaseException as exc:
            # The answer went out: tried again later (a no-op once a try was carried out after
            # all), else the key lapses unsettled after lock_s. Cancelled, too.
            log.warning("an Idempotency-Key could not be settled", extra={"error": repr(exc)})
            _in_background(settle, pending.lock_s,
                           "an Idempotency-Key could not be settled: given up")
            if not isinstance(exc, Exception):
                raise


def _in_background(attempt: Callable[[], Awaitable[None]], until_s: float, gave_up: str, *,
                   late: bool = False) -> None:
    """Runs `attempt` outside the request after `AGAIN_S`, then after twice as long each time
    (at most `MAX_AGAIN_S`) while it fails, until `until_s` has passed and it was tried once
    more; giving up is logged as `gave_up`. `late`: what it undoes may be carried out late (a
    take that timed out), so it is tried at once too, and on until then even once it worked.
    Beyond `MAX_LATER` pending attempts it is tried once."""
    loop = asyncio.get_running_loop()
    once = len(_LATER) >= MAX_LATER
    if once:
        log.warning("too many Idempotency-Keys to settle in the background: tried once",
                    extra={"pending": len(_LATER)})
    give_up_at = loop.time() + until_s

    async def run() -> None:
        wait_s, tries = (0.0 if late and not once else AGAIN_S), 0
        while True:
            await asyncio.sleep(wait_s)
            tries, last = tries + 1, once or loop.time() >= give_up_at
            try:
                await attempt()
                error = None
            except Exception as exc:
                error = exc
            if last:
                if error is not None:
                    log.warning(gave_up, extra={"error": repr(error), "tries": tries})
                return
            if error is None and not late:
                return
            wait_s = min(max(wait_s * 2, AGAIN_S), MAX_AGAIN_S)

    task = loop.create_task(run(), name="idempotency-again")
    _LATER[task] = attempt
    task.add_done_callback(lambda done: _LATER.pop(done, None))


async def try_pending_once(within_s: float = LAST_TRY_S) -> None:
    """At shutdown, before the store closes: each background attempt of this loop still
    waiting is tried once more, all within about twice `within_s`, rather than dropped; what
    is left is logged (nothing is raised, so the stores still close)."""
    loop = asyncio.get_running_loop()
    attempts = [(task, attempt) for task, attempt in _LATER.items() if task.get_loop() is loop]
    if not attempts:
        return
    for task, _ in attempts:
        task.cancel()
    await asyncio.wait([task for task, _ in attempts], timeout=within_s)
    tries = [asyncio.ensure_future(attempt()) for _, attempt in attempts]
    done, left = await asyncio.wait(tries, timeout=within_s)
    for task in left:
        task.cancel()
    if left:
        await asyncio.wait(left, timeout=min(within_s, 0.5))
    failed = len(left) + sum(1 for t in done if t.cancelled() or t.exception() is not None)
    if failed:
        log.warning("Idempotency-Keys left unsettled at shutdown", extra={"keys": failed})


def install_idempotency(app: FastAPI, store: Callable[[], IdempotencyStore],
                        settings: HttpSettings, own_limits: Sequence[str]) -> None:
    """Inside the request-context middleware (added before it), whose body limits apply."""
    app.add_exception_handler(Replayed, replayed)
    document_idempotency(app, own_limits)
    app.add_middleware(IdempotencyMiddleware, store=store, keep_s=settings.idempotency_keep_s,
                       lock_s=settings.idempotency_lock_s, own_limits=paths_pattern(own_limits))


_AT = "/v1/tenants/demo/courses"
KEY_PARAMETER: dict[str, Any] = {
    "name": HEADER, "in": "header", "required": False,
    "description": "a key of the caller's own for this request: the same request sent again "
                   "with it gets the first one's answer (its status, body, `Location` and "
                   "`ETag`, when under 400) without running again",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_CHARS,
               "pattern": KEY_PATTERN}}
NO_KEY_DOC = (f"`invalid_idempotency_key`: the {HEADER} is no key", problem_body(
    400, "invalid_idempotency_key", NO_KEY, instance=_AT))
IN_USE_DOC = (f"`idempotency_key_in_use`: the first request with this {HEADER} still runs; "
              "try again after `Retry-After` seconds", problem_body(
                  409, "idempotency_key_in_use", IN_USE, instance=_AT))
OUTCOME_UNKNOWN_DOC = (f"`idempotency_outcome_unknown`: the first request with this {HEADER} "
                       "was interrupted, whether it took effect is unknown; check, then send "
                       "it again with a new key", problem_body(
                           409, "idempotency_outcome_unknown", OUTCOME_UNKNOWN, instance=_AT))
REUSED_DOC = (f"`idempotency_key_reused`: this {HEADER} was sent with another request",
              problem_body(422, "idempotency_key_reused", REUSED, instance=_AT))
NOT_KEPT_PARAMETER: dict[str, Any] = {
    **KEY_PARAMETER,
    "description": "not honoured here: this answer carries a secret shown only once, so it is "
                   "never kept, and the same request sent again runs again (a key that is no "
                   "key is still 400)"}


def document_idempotency(app: FastAPI, own_limits: Sequence[str]) -> None:
    """Names, in the app's OpenAPI document, the header and its problems on each POST that
    honours it: those needing a credential (`document_security`'s marks, read after it), but
    the uploads; a route reading the header itself keeps its own, and gets the 400, as does
    one whose answer is a secret, whose header says it is not honoured."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        secrets = {r.path_format for r in iter_route_contexts(app.routes)
                   if "POST" in (r.methods or ()) and secret_answer(r)}
        for path, operations in schema.get("paths", {}).items():
            operation = operations.get("post")
            if operation is None or "security" not in operation or path in own_limits:
                continue
            responses = operation.setdefault("responses", {})
            add_problem(responses, NO_KEY_DOC)
            parameters = operation.setdefault("parameters", [])
            if any(p["in"] == "header" and p["name"].lower() == HEADER.lower()
                   for p in parameters):
                continue  # its own, or documented on an earlier call
            if path in secrets:
                parameters.append(NOT_KEPT_PARAMETER)
                continue
            parameters.append(KEY_PARAMETER)
            add_problem(responses, IN_USE_DOC, RETRY_AFTER)
            add_problem(responses, OUTCOME_UNKNOWN_DOC)
            add_problem(responses, REUSED_DOC)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _header(scope: Scope) -> str | None:
    for name, value in scope.get("headers") or ():
        if name.lower() == b"idempotency-key":
            return str(value.decode("latin-1"))
    return None


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _route_to(scope: Scope) -> None:
    """Names in `scope` the route a request answered before routing was for, under which it is
    counted and logged, as it is when the route answers."""
    routes = getattr(getattr(scope.get("app"), "router", None), "routes", ())
    scope["route"] = next((route for route in iter_route_contexts(routes)
                           if route.matches(scope)[0] is Match.FULL), None)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again
