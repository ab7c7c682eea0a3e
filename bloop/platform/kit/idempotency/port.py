"""The store of Idempotency-Keys: per key, the fingerprint of the request that took it and, once
that request has been answered, its response. Keys come hashed (`layer.Pending.claim`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

KEY_PATTERN = r"^[\x21-\x7e]+$"  # what a client may send as a key: printable ASCII, no space
MAX_KEY_CHARS = 200
FINGERPRINT_LEN = 64  # a sha256, in hex
_PENDING, _DONE = b"P", b"D"
_LOCK_UNTIL = b"/"  # in a pending entry, after its token: when its lock lapses, in ms


@dataclass(frozen=True)
class Entry:
    fingerprint: str
    response: bytes | None
    """None while the request that took the key runs."""
    token: str = field(default="", compare=False)
    """While it runs, the request's own token (its retry, of the same fingerprint, has another):
    after the fingerprint, where a process of the earlier version reads nothing (its own
    entries have none)."""
    lapsed: bool = False
    """Unanswered past its lock: the request that took it neither answered nor freed it (its
    process died, its answer could not be kept), so whether it took effect is unknown."""

    def encode(self) -> bytes:
        """A pending entry's is the prefix of what `claim` stores (`pending`): what `finish`
        and `release` match."""
        if self.response is None:
            return _PENDING + self.fingerprint.encode() + self.token.encode()
        return _DONE + self.fingerprint.encode() + self.response

    def pending(self, lock_until_ms: int) -> bytes:
        return self.encode() + _LOCK_UNTIL + str(lock_until_ms).encode()

    @staticmethod
    def decode(raw: bytes, now_ms: int | None = None) -> Entry:
        fingerprint = raw[1:1 + FINGERPRINT_LEN].decode()
        if raw[:1] != _PENDING:
            return Entry(fingerprint, raw[1 + FINGERPRINT_LEN:])
        # The earlier version's pending entries end with their fingerprint: never lapsed.
        token, _, lock_until = raw[1 + FINGERPRINT_LEN:].partition(_LOCK_UNTIL)
        return Entry(fingerprint, None, token.decode(), lapsed=bool(lock_until)
                     and now_ms is not None and int(lock_until) <= now_ms)


class IdempotencyStore(Protocol):
    """A key is unique alone (a hash of its tenant, its caller and the client's key); it is
    kept with its tenant, so that erasing a person there drops every answer kept in it
    (`drop_tenant`): which answers are theirs or about them cannot be told apart."""

    async def claim(self, tenant: str, key: str, fingerprint: str, lock_s: float,
                    keep_s: float = 0.0, token: str = "") -> Entry | None:
        """Takes `key` for a request of `fingerprint` and `token` for `lock_s` (None), unless it
        is held: then the entry held under it, left as it is. Unanswered and not freed after
        `lock_s`, the key is still held, `lapsed`, for `keep_s` more."""

    async def finish(self, tenant: str, key: str, fingerprint: str, response: bytes,
                     keep_s: float, token: str = "") -> None:
        """Keeps `response` under `key` for `keep_s`, when the request of `fingerprint` and
        `token` still holds it unanswered (not once its tenant's keys were dropped)."""

    async def release(self, tenant: str, key: str, fingerprint: str, token: str = "") -> None:
        """Frees `key` when the request of `fingerprint` and `token` still holds it unanswered
        (lapsed too)."""

    async def drop_tenant(self, tenant: str) -> None:
        """Drops every key taken within `tenant`, answered or not (and, where the store can
        tell, those a process of the earlier version took, whose tenant is unknown)."""

    async def ping(self) -> None: ...
