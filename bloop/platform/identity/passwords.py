"""Password rules and hashing (argon2id).

A password is at least 12 characters (a passphrase of a few words is the easy way there) and is
refused when it is, under light disguise, one of the commonly breached passwords bundled here:
case, digit or symbol suffixes, leetspeak and repetition do not make `Password1234!` new."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from bloop.platform.kit.errors import Problem

T = TypeVar("T")

MIN_LENGTH = 12
MAX_LENGTH = 256

_COMMON_TEXT = """
123456 123456789 12345678 1234567890 12345 1234567 123123 111111 000000 654321 121212 123321
password passw0rd passwort motdepasse contrasena qwerty qwertyuiop qwertyuiopasdfghjkl qwertz
azerty asdfgh asdfghjkl zxcvbnm 1q2w3e4r 1q2w3e4r5t 1qaz2wsx qazwsx qazwsxedc zaq12wsx abc123
abcdef abcdefgh abcdefghijkl iloveyou letmein welcome welcomehome admin administrator root
login master monkey dragon football baseball basketball soccer hockey superman batman
trustno1 sunshine princess shadow ashley michael jennifer jordan hunter ranger buster
charlie thomas daniel jessica pepper ginger killer hello hellothere freedom whatever
starwars pokemon computer internet secret changeme default guest test tester testing
summer winter spring autumn january february december love lovely loveyou
mustang harley access flower cookie cheese chocolate butterfly samsung google apple
bloop bloopbloop learning student teacher school university college classroom
correcthorsebatterystaple
"""
COMMON = frozenset(_COMMON_TEXT.split())

_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a",
                       "$": "s", "!": "i", "|": "l", "+": "t"})
_EDGES = re.compile(r"^[^a-z]+|[^a-z]+$")
_SEPARATORS = re.compile(r"[\s._\-]+")


class WeakPassword(Problem):
    status, code = 422, "weak_password"


def _bases(password: str) -> set[str]:
    """The password's plausible origins: lower-cased, without separators, edge digits or
    symbols, leetspeak undone."""
    lowered = _SEPARATORS.sub("", password.lower())
    out = {lowered, lowered.translate(_LEET), _EDGES.sub("", lowered)}
    out |= {_EDGES.sub("", s).translate(_LEET) for s in list(out)}
    out |= {_EDGES.sub("", s) for s in list(out)}
    return {s for s in out if s}


_WORDS = sorted((w for w in COMMON if len(w) >= 5), key=len, reverse=True)
_PARTS = re.compile(r"[^a-z0-9]+")


def _without(base: str, words: list[str]) -> str:
    for word in words:
        base = base.replace(word, "")
    return _EDGES.sub("", base)


def _repeats(s: str) -> bool:
    """`aaaa…`, `abcabc…`, `passwordpassword`: a short unit repeated."""
    return any(len(s) % n == 0 and s == s[:n] * (len(s) // n) for n in range(1, len(s) // 2 + 1))


def _run(s: str) -> bool:
    """A straight run such as `abcdefghijkl` or `987654321098`."""
    steps = {ord(b) - ord(a) for a, b in itertools.pairwise(s)}
    return len(s) > 2 and (steps <= {1, -9} or steps <= {-1, 9})


def check(password: str, *, email: str = "") -> None:
    """Raises `WeakPassword` with the reason when `password` is not good enough."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"the password needs at least {MIN_LENGTH} characters; a few "
                           "unrelated words make a strong, memorable passphrase")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"the password is longer than {MAX_LENGTH} characters")
    if not password.strip():
        raise WeakPassword("the password is blank")
    personal = sorted((p for p in _PARTS.split(email.lower()) if len(p) >= 3), key=len,
                      reverse=True)
    for base in _bases(password):
        if (base in COMMON or _repeats(base) or _run(base)
                or len(_without(base, _WORDS)) < 4):
            raise WeakPassword("this password is one of the most commonly used (or a variation "
                               "of one); choose another")
        if personal and len(_without(base, personal)) < 4:
            raise WeakPassword("the password must not be built from the email address")


# Each argon2 hash takes 64 MiB while it runs: on the default thread pool a burst of sign-ins
# ran six at once (663 MiB at the peak) and queued every other thread's work behind them.
HASHING_THREADS = max(1, min(4, os.cpu_count() or 1))
_pool: ThreadPoolExecutor | None = None


def _hashing_pool() -> ThreadPoolExecutor:
    global _pool  # one pool for the process: the bound is on its memory
    if _pool is None:
        _pool = ThreadPoolExecutor(HASHING_THREADS, thread_name_prefix="bloop-argon2")
    return _pool


class Hasher:
    """argon2id; the work runs on threads of its own (HASHING_THREADS at most, for the whole
    process) so the event loop keeps serving."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or PasswordHasher()
        self._dummy: str | None = None  # made on the hashing threads, at its first need

    def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = self.hasher.hash("bloop-timing-equaliser")
        return self._dummy

    async def _off_loop(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(_hashing_pool(), work)

    async def hash(self, password: str) -> str:
        return await self._off_loop(lambda: self.hasher.hash(password))

    async def verify(self, hashed: str | None, password: str) -> bool:
        """False for a wrong password; an absent hash still costs one verification, so an
        unknown email takes as long as a wrong password."""
        def run() -> bool:
            try:
                return self.hasher.verify(hashed or self._dummy_hash(), password) and hashed is not None
            except (VerificationError, InvalidHashError):
                return False

        return await self._off_loop(run)

    def needs_rehash(self, hashed: str) -> bool:
        return self.hasher.check_needs_rehash(hashed)
