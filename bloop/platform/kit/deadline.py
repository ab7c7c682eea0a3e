"""A bound on one store operation, for drivers that would otherwise wait on a silent server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from bloop.platform.kit.errors import StoreUnavailable


@contextlib.asynccontextmanager
async def store_deadline(store: str, seconds: float) -> AsyncIterator[None]:
    """Cancels the work inside after `seconds`, which then fails as the store being unavailable
    (a 503 on a route, a retry in a consumer)."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise StoreUnavailable(store, f"no answer within {seconds:g}s") from None
