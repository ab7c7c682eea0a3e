"""Where content reads a finished AI job's output files: never the AI service's store, always
its public surface. In one process with the AI service, its outputs object; otherwise the AI
service's HTTP API (`BLOOP_AI_URL`), through the signed link each output of `video.events`
carries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping

import httpx

from bloop.ai.jobs.events import OutputRef
from bloop.ai.jobs.outputs import JobOutputs
from bloop.platform.kit.errors import NotFound, Problem, StoreUnavailable


class AiOutputs:
    """The AI service's outputs in this process when it runs here (looked up at each read: it
    may be mounted after content), else over HTTP at `base_url`."""

    def __init__(self, here: Callable[[], Mapping[str, object] | None], base_url: str | None,
                 client: httpx.AsyncClient | None = None, timeout_s: float = 60.0) -> None:
        self.here = here
        self.base_url = base_url.rstrip("/") if base_url else None
        self.client = client or httpx.AsyncClient(timeout=timeout_s)

    def read(self, tenant: str, job_id: str, output: OutputRef) -> AsyncIterator[bytes]:
        state = self.here()
        outputs = None if state is None else state.get("outputs")
        if isinstance(outputs, JobOutputs):
            return self._in_process(outputs, tenant, job_id, output.name)
        if self.base_url is None:
            raise StoreUnavailable("ai", "this process does not run the AI service; set "
                                         "BLOOP_AI_URL")
        return self._over_http(self.base_url + output.url)

    @staticmethod
    async def _in_process(outputs: JobOutputs, tenant: str, job_id: str,
                          name: str) -> AsyncIterator[bytes]:
        _, body = await outputs.open(tenant, job_id, name)
        async for chunk in body:
            yield chunk

    async def _over_http(self, url: str) -> AsyncIterator[bytes]:
        try:
            async with self.client.stream("GET", url) as r:
                if r.status_code == 404:
                    raise NotFound("the AI service has no such output")
                if r.status_code in (401, 403):
                    raise Problem("the AI service refused the output's link (expired, or "
                                  "signed with another secret)", status=403,
                                  code="ai_link_refused")
                if r.status_code != 200:
                    raise StoreUnavailable("ai", f"HTTP {r.status_code}")
                async for chunk in r.aiter_bytes():
                    yield chunk
        except httpx.HTTPError as exc:
            raise StoreUnavailable("ai", type(exc).__name__) from None

    async def close(self) -> None:
        await self.client.aclose()
