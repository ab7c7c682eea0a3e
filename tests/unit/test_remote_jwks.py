"""A process without identity reads its keys over HTTP: identity out of reach is that service
being unavailable (503), not a server error."""

from __future__ import annotations

import socket
import time

import pytest

from bloop.platform.kit.auth.tokens import RemoteJwks
from bloop.platform.kit.errors import StoreUnavailable


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_identity_out_of_reach_is_a_503_tried_again_once_a_second() -> None:
    """The connection error reached the handler as a 500 (and a traceback per request)."""
    keys = RemoteJwks(f"http://127.0.0.1:{closed_port()}/.well-known/jwks.json", retry_s=60)
    with pytest.raises(StoreUnavailable) as first:
        await keys.public_key("k1")
    assert (first.value.status, first.value.extra["store"]) == (503, "identity")
    began = time.perf_counter()
    with pytest.raises(StoreUnavailable):
        await keys.public_key("k2")  # within retry_s: answered without trying again
    assert time.perf_counter() - began < 0.05
