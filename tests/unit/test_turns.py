"""kit.turns: writers of one key one at a time, other keys alongside."""

from __future__ import annotations

import asyncio

from bloop.platform.kit.turns import Turns


async def test_holders_of_one_key_take_turns_and_other_keys_run_alongside() -> None:
    turns = Turns()
    inside: dict[str, int] = {"a": 0, "b": 0}
    most: dict[str, int] = {"a": 0, "b": 0}
    both = asyncio.Event()

    async def write(key: str) -> None:
        async with turns.of(key):
            inside[key] += 1
            most[key] = max(most[key], inside[key])
            if inside["a"] and inside["b"]:
                both.set()
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            inside[key] -= 1

    await asyncio.gather(*(write(k) for k in "ab" * 10))
    assert most == {"a": 1, "b": 1}
    assert both.is_set()
    assert len(turns) == 0


async def test_a_holder_that_fails_gives_the_key_up() -> None:
    turns = Turns()

    async def fail() -> None:
        async with turns.of("k"):
            raise ValueError("the write failed")

    results = await asyncio.gather(fail(), fail(), return_exceptions=True)
    assert [type(r) for r in results] == [ValueError, ValueError]
    assert len(turns) == 0
    async with turns.of("k"):
        assert len(turns) == 1
