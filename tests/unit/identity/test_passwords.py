"""Password rules and argon2id hashing."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from bloop.platform.identity.passwords import Hasher, WeakPassword, check


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
