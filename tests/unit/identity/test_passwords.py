"""Password rules and argon2id hashing."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from argon2 import PasswordHasher

from bloop.platform.identity.passwords import HASHING_THREADS, Hasher, WeakPassword, check


@pytest.mark.parametrize("password", [
    "ada loves the analytical engine", "zebra kettle moon", "Tr0ub4dor&3xyz",
    "demo-school-pass-2024"])
def test_long_or_passphrase_passwords_pass(password: str) -> None:
    check(password, email="ada@demo.bloop.dev")


@pytest.mark.parametrize("password", [
    "short", "elevenchars", "Password1234!", "P@ssw0rd2024!!", "qwertyuiop12", "aaaaaaaaaaaa",
    "123456789012", "abcdefghijkl", "passwordpassword", "mypassword12", "Welcome2024!!",
    "correct horse battery staple", " " * 12, "x" * 257])
def test_weak_or_common_passwords_are_refused(password: str) -> None:
    with pytest.raises(WeakPassword) as err:
        check(password)
    assert err.value.status == 422


@pytest.mark.parametrize("password", ["ada@demo1234", "Ada.Demo.2024!", "adademobloop"])
def test_passwords_built_from_the_email_are_refused(password: str) -> None:
    with pytest.raises(WeakPassword, match="email"):
        check(password, email="ada@demo.bloop.dev")


async def test_hashes_are_argon2id_and_verify() -> None:
    hasher = Hasher(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    hashed = await hasher.hash("ada loves the analytical engine")
    assert hashed.startswith("$argon2id$")
    assert await hasher.verify(hashed, "ada loves the analytical engine")
    assert not await hasher.verify(hashed, "ada loves the analytical engine!")
    assert not await hasher.verify(None, "anything at all")
    assert not await hasher.verify("not-a-hash", "anything at all")
    assert not hasher.needs_rehash(hashed)
    assert Hasher(PasswordHasher(time_cost=2, memory_cost=8, parallelism=1)).needs_rehash(hashed)


async def test_hashing_runs_a_few_at_a_time_on_threads_of_its_own() -> None:
    """argon2 takes 64 MiB a hash while it runs: a burst of sign-ins ran as many at once as the
    default thread pool has threads, and queued every other thread's work behind them."""
    lock, running, most, threads = threading.Lock(), 0, 0, set()

    class Counting(PasswordHasher):
        def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
            nonlocal running, most
            with lock:
                running += 1
                most = max(most, running)
                threads.add(threading.current_thread().name)
            try:
                time.sleep(0.02)  # the work of a real-cost hash, stood for
                return super().hash(password, salt=salt)
            finally:
                with lock:
                    running -= 1

    hasher = Hasher(Counting(time_cost=1, memory_cost=8, parallelism=1))
    await asyncio.gather(*(hasher.hash(f"password number {n}") for n in range(3 * HASHING_THREADS + 2)))
    assert 1 <= most <= HASHING_THREADS
    assert all(name.startswith("bloop-argon2") for name in threads), threads


async def test_no_hash_is_made_on_the_event_loop() -> None:
    """The hash an unknown email is checked against was made as the hasher was, on the loop:
    the first sign-in after each start held every other request 260-670 ms."""
    threads: list[str] = []

    class Watched(PasswordHasher):
        def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
            threads.append(threading.current_thread().name)
            return super().hash(password, salt=salt)

    hasher = Hasher(Watched(time_cost=1, memory_cost=8, parallelism=1))
    assert not await hasher.verify(None, "anything at all")
    assert not await hasher.verify(None, "anything else")
    assert threads
    assert all(name.startswith("bloop-argon2") for name in threads), threads
