"""A language model that reports each answer's tokens as it arrives, so a job stopped between
two calls (cancelled, or its lease lost) still records every call it paid for: an answer's,
and those a `ProviderError` of the call carries (a refusal, an answer that was not a
completion); and a speech provider whose paid characters are recorded likewise. Each may be
given a check to pass before every paid call (the tenant's budget), which raises to stop it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bloop.ai.providers.llm import ChatMessage, Llm, LlmReply, Pricing, ProviderError, Usage
from bloop.ai.providers.tts import Speech, Tts

Spent = Callable[[Usage, str], Awaitable[None]]
Before = Callable[[], Awaitable[None]]
"""Awaited before each paid call; raises to stop the job instead."""


class MeteredLlm:
    def __init__(self, llm: Llm, spent: Spent, before: Before | None = None) -> None:
        self.llm = llm
        self.spent = spent
        self.before = before

    @property
    def model(self) -> str:
        return self.llm.model

    @property
    def pricing(self) -> Pricing:
        return self.llm.pricing

    async def complete_json(self, messages: Sequence[ChatMessage], schema_name: str,
                            schema: dict[str, Any], *, max_tokens: int = 4000) -> LlmReply:
        if self.before is not None:
            await self.before()
        try:
            reply = await self.llm.complete_json(messages, schema_name, schema,
                                                 max_tokens=max_tokens)
        except ProviderError as exc:
            await self._spent(exc.usage, self.llm.model)
            raise
        await self._spent(reply.usage, reply.model)
        return reply

    async def _spent(self, usage: Usage, model: str) -> None:
        if usage.prompt_tokens or usage.completion_tokens:
            # Recorded even when the job is cancelled meanwhile: the call was paid for.
            await asyncio.shield(self.spent(usage, model))

    async def close(self) -> None:
        await self.llm.close()


SpeechSpent = Callable[[int, float, str, str], Awaitable[None]]
"""Told the characters a speech provider was paid for, their price, the provider and voice."""


class MeteredTts:
    """A speech provider whose paid characters are recorded as its calls answer: after each
    `synthesize`, whether it finished or failed part-way, what its calls that answered cost."""

    def __init__(self, tts: Tts, spent: SpeechSpent, before: Before | None = None) -> None:
        self.tts = tts
        self.spent = spent
        self.before = before
        self.usd_per_character = tts.usd_per_character
        self.spoken: Callable[[int], None] | None = None
        self._unrecorded = 0
        tts.spoken = self._count

    @property
    def name(self) -> str:
        return self.tts.name

    def _count(self, characters: int) -> None:
        self._unrecorded += characters

    async def synthesize(self, text: str, voice: str | None = None) -> Speech:
        if self.before is not None:
            await self.before()
        try:
            return await self.tts.synthesize(text, voice)
        finally:
            characters, self._unrecorded = self._unrecorded, 0
            if characters:
                await asyncio.shield(self.spent(
                    characters, characters * self.usd_per_character, self.tts.name, voice or ""))

    async def voice_for(self, language: str) -> str | None:
        return await self.tts.voice_for(language)

    async def close(self) -> None:
        await self.tts.close()
