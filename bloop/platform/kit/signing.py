"""Links that carry their own credential: a path's parts and an expiry, signed with HMAC-SHA256.
Every process that checks a link must share the secret of the one that made it; without one, a
random secret per process suits a single process."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from typing import NamedTuple

from bloop.platform.kit.auth import Forbidden


class SignedLink(NamedTuple):
    url: str  # path and query
    expires: int  # Unix seconds


class LinkSigner:
    def __init__(self, secret: bytes | None, ttl_s: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.secret = secret or secrets.token_bytes(32)
        self.ttl_s, self.clock = ttl_s, clock

    def signed(self, path: str, *parts: str) -> SignedLink:
        """`path` (which may hold a query) with the query parameters (`expires`, `signature`)
        that vouch for `parts` until `ttl_s` from now."""
        expires, signature = self.sign(*parts)
        joint = "&" if "?" in path else "?"
        return SignedLink(f"{path}{joint}expires={expires}&signature={signature}", expires)

    def sign(self, *parts: str) -> tuple[int, str]:
        """An expiry at most `ttl_s` from now and at least seven eighths of it, and the signature
        that vouches for `parts` until then. Expiries fall on whole eighths of `ttl_s`, so that
        links made meanwhile are the same URL, which browsers keep cached."""
        step = max(1, self.ttl_s // 8)
        expires = (int(self.clock()) + self.ttl_s) // step * step
        return expires, self._sign(parts, expires)

    def check(self, parts: tuple[str, ...], expires: int, signature: str) -> None:
        """Refuses (403) a signature that does not vouch for `parts` and `expires`, or whose
        time is up."""
        if not hmac.compare_digest(signature, self._sign(parts, expires)):
            raise Forbidden("the link's signature does not match", code="bad_signature")
        if expires <= self.clock():
            raise Forbidden("the link has expired", code="link_expired")

    def _sign(self, parts: tuple[str, ...], expires: int) -> str:
        message = "\n".join((*parts, str(expires))).encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()
