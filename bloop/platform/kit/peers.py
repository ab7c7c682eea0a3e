"""Calls from one Bloop service to another's HTTP API, when the two run in separate processes.
The other service out of reach, or answering what a caller cannot act on, is that service being
unavailable (503); its 429, which limits the caller whose credential was sent, is passed on."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from bloop.platform.kit.errors import Problem, StoreUnavailable

ANSWERED = frozenset({200, 401, 403, 404})


class PeerRateLimited(Problem):
    """Another service's 429, passed on. The service that refused counted it under its own
    limiter: this process counts it in `bloop_rate_limited_total` as `limit="peer"`."""

    status, code = 429, "rate_limited"
    limit = "peer"


async def get(client: httpx.AsyncClient, service: str, url: str,
              headers: Mapping[str, str]) -> httpx.Response:
    """`service`'s answer to a GET of `url`: 200, 401, 403 or 404, for the caller to read."""
    try:
        r = await client.get(url, headers=dict(headers))
    except httpx.HTTPError as exc:
        raise StoreUnavailable(service, type(exc).__name__) from None
    if r.status_code == 429:
        raise PeerRateLimited(str(problem_of(r).get("detail") or f"{service} asks to slow down"),
                              headers={"Retry-After": r.headers.get("retry-after", "1")})
    if r.status_code not in ANSWERED:
        raise StoreUnavailable(service, f"HTTP {r.status_code}")
    return r


def problem_of(r: httpx.Response) -> dict[str, object]:
    """The problem+json body of a refusal, empty when it has none."""
    try:
        body = r.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
