"""Signed links to a job's output files: what `video.events` carry, so that a consumer in
another process (content, attaching the media to the lesson) can fetch an output through the
AI service's API without a user's credentials. A link names one output of one job of one
tenant and an expiry, signed with HMAC-SHA256 under the AI service's link secret, which every AI
process of a deployment must share (`BLOOP_AI_LINK_SECRET`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import quote

from bloop.platform.kit.signing import LinkSigner


def link_path(tenant: str, job_id: str, name: str) -> str:
    return f"/v1/tenants/{tenant}/ai/links/{job_id}/{quote(name, safe='')}"


class OutputLinks:
    def __init__(self, secret: bytes | None, ttl_s: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.signer = LinkSigner(secret, ttl_s, clock)

    def signed(self, tenant: str, job_id: str, name: str) -> str:
        """The link (path and query) to the output, valid for up to `ttl_s` from now."""
        return self.signer.signed(link_path(tenant, job_id, name), tenant, job_id, name).url

    def check(self, tenant: str, job_id: str, name: str, expires: int, signature: str) -> None:
        """Refuses (403) a link whose signature does not match or whose time is up."""
        self.signer.check((tenant, job_id, name), expires, signature)
