"""How many GraphQL operations one caller may have running at once in this process: each holds
the event loop while it completes its answer, and its answer in memory until it is sent, so a
few sent together by one caller stalled every other request for seconds, whatever the rate
limit (which counts a request once, whatever it costs)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from bloop.platform.kit.auth import Principal
from bloop.platform.kit.errors import Problem

RETRY_AFTER_S = 1


class TooManyRunning(Problem):
    """429, as the rate limits answer; `limit` names it in `bloop_rate_limited_total`."""

    status, code = 429, "rate_limited"
    limit = "graphql_concurrent"

    def __init__(self, most: int) -> None:
        super().__init__(f"more than {most} GraphQL requests of this caller at once; wait for "
                         "their answers before sending more",
                         headers={"Retry-After": str(RETRY_AFTER_S)})


class Running:
    """The operations each caller (a person, or an API key's service) has running."""

    def __init__(self, most: int) -> None:
        self.most = most
        self._running: dict[tuple[str, str, str], int] = {}

    @contextmanager
    def one_more(self, principal: Principal) -> Iterator[None]:
        """Counts one more operation of `principal` while it runs; `TooManyRunning` past
        `most`."""
        key = (principal.tenant, principal.kind, principal.user_id)
        held = self._running.get(key, 0)
        if held >= self.most:
            raise TooManyRunning(self.most)
        self._running[key] = held + 1
        try:
            yield
        finally:
            if (left := self._running[key] - 1) > 0:
                self._running[key] = left
            else:
                del self._running[key]
