"""A language model that reports each answer's tokens as it arrives, so a job stopped between
two calls (cancelled, or its lease lost) still records every call it paid for: an answer's,
and those a `ProviderError` of the call carries (a refusal, an answer that was not a
completion)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bloop.ai.providers.llm import ChatMessage, Llm, LlmReply, Pricing, ProviderError, Usage

Spent = Callable[[Usage, str], Awaitable[None]]


class MeteredLlm:
    def __init__(self, llm: Llm, spent: Spent) -> None:
        self.llm = llm
        self.spent = spent

    @property
    def model(self) -> str:
        return self.llm.model

    @property
    def pricing(self) -> Pricing:
        return self.llm.pricing

    async def complete_json(self, messages: Sequence[ChatMessage], schema_name: str,
                            schema: dict[str, Any], *, max_tokens: int = 4000) -> LlmReply:
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
