"""API keys checked by identity over HTTP, for a process that serves routes without identity
(`BLOOP_AUTH_API_KEYS_URL`, identity's `GET /v1/auth/principal`).

Identity's answer for a key, principal or refusal, is kept for `keep_s` (identity keeps the key's
record as long); concurrent requests with a key not yet kept share one call. A revoked key is
refused sooner wherever revocation marks are shared (Redis): `require()` reads the key's mark on
every request."""

from __future__ import annotations

import asyncio
import hashlib
import time

import httpx
from pydantic import ValidationError

from bloop.platform.kit import peers
from bloop.platform.kit.auth.apikeys import API_KEY_HEADER, ApiKeyCredential
from bloop.platform.kit.auth.principal import Principal, PrincipalView
from bloop.platform.kit.auth.tokens import Unauthenticated
from bloop.platform.kit.errors import StoreUnavailable

Answer = Principal | Unauthenticated


class RemoteApiKeys:
    KEPT = 10_000

    def __init__(self, url: str, keep_s: float, *, timeout_s: float = 2.0,
                 client: httpx.AsyncClient | None = None) -> None:
        self.url = url
        self.keep_s = keep_s
        self.client = client or httpx.AsyncClient(timeout=timeout_s)
        self._kept: dict[str, tuple[Answer, float]] = {}
        self._asking: dict[str, asyncio.Future[Answer]] = {}

    async def authenticate(self, key: ApiKeyCredential) -> Principal:
        name = hashlib.sha256(str(key).encode()).hexdigest()
        kept = self._kept.get(name)
        if kept is not None and time.monotonic() - kept[1] < self.keep_s:
            answer = kept[0]
        else:
            asking = self._asking.get(name)
            if asking is None:
                asking = self._asking[name] = asyncio.ensure_future(self._ask(name, key))
                asking.add_done_callback(lambda _: self._asking.pop(name, None))
            answer = await asyncio.shield(asking)
        if isinstance(answer, Unauthenticated):
            raise Unauthenticated(answer.detail, code=answer.code)
        return answer

    async def _ask(self, name: str, key: ApiKeyCredential) -> Answer:
        r = await peers.get(self.client, "identity", self.url, {API_KEY_HEADER: str(key)})
        answer: Answer
        if r.status_code == 200:
            try:
                answer = PrincipalView.model_validate_json(r.content).principal()
            except ValidationError:
                raise StoreUnavailable("identity", "an answer that is not a principal") from None
        elif r.status_code == 401:
            body = peers.problem_of(r)
            answer = Unauthenticated(str(body.get("detail", "the API key is refused")),
                                     code=str(body.get("code", "invalid_token")))
        else:
            raise StoreUnavailable("identity", f"HTTP {r.status_code}")
        if len(self._kept) >= self.KEPT:
            del self._kept[next(iter(self._kept))]
        self._kept[name] = (answer, time.monotonic())
        return answer

    async def close(self) -> None:
        await self.client.aclose()

