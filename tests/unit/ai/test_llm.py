"""The OpenAI adapter against a local stand-in answering with OpenAI's recorded response shapes:
structured output requests, usage and cost, and how each failure is sorted (transient or not)."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from bloop.ai.providers.llm import (
    ChatMessage,
    OpenAiLlm,
    Pricing,
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    Usage,
    strict_schema,
)
from bloop.ai.text.model import QuizAnswer, SummaryAnswer
from tests.unit.ai.fake_openai import (
    BAD_KEY,
    NO_QUOTA,
    RATE_LIMITED,
    SERVER_ERROR,
    FakeOpenAI,
    Reply,
)

ASK = [ChatMessage("system", "You write study material."), ChatMessage("user", "Summarise.")]


def llm(fake: FakeOpenAI, timeout_s: float = 5.0) -> OpenAiLlm:
    return OpenAiLlm(model="gpt-4o-mini", api_key="sk-test-key", base_url=fake.base_url,
                     timeout_s=timeout_s, pricing=Pricing(0.15, 0.60))


async def test_a_structured_answer_with_its_usage(fake_openai: FakeOpenAI) -> None:
    fake_openai.script(Reply(content='{"summary": "S", "key_points": ["k"]}'))
    model = llm(fake_openai)
    reply = await model.complete_json(ASK, "SummaryAnswer", SummaryAnswer.model_json_schema())
    await model.close()
    assert json.loads(reply.text) == {"summary": "S", "key_points": ["k"]}
    assert reply.usage == Usage(1117, 246)
    assert reply.model == "gpt-4o-mini-2024-07-18"
    assert model.pricing.cost(reply.usage) == pytest.approx((1117 * 0.15 + 246 * 0.60) / 1e6)
    [sent] = fake_openai.requests
    assert sent["path"] == "/v1/chat/completions"
    assert sent["model"] == "gpt-4o-mini"
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    fmt = sent["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["schema"]["additionalProperties"] is False
    assert fake_openai.headers[0]["authorization"] == "Bearer sk-test-key"


def test_strict_schemas_close_every_object_and_require_every_field() -> None:
    schema = strict_schema(QuizAnswer.model_json_schema())

    def objects(node: Any) -> list[dict[str, Any]]:
        found = []
        if isinstance(node, dict):
            if node.get("type") == "object":
                found.append(node)
            for v in node.values():
                found += objects(v)
        elif isinstance(node, list):
            for v in node:
                found += objects(v)
        return found

    assert len(objects(schema)) == 3
    for obj in objects(schema):
        assert obj["additionalProperties"] is False
        assert sorted(obj["required"]) == sorted(obj["properties"])
    assert "maxLength" not in json.dumps(schema)
    assert "default" not in json.dumps(schema)


@pytest.mark.parametrize(("reply", "error", "transient"), [
    (RATE_LIMITED, ProviderRateLimited, True),
    (SERVER_ERROR, ProviderUnavailable, True),
    (NO_QUOTA, ProviderRejected, False),
    (BAD_KEY, ProviderRejected, False),
])
async def test_failures_are_sorted(fake_openai: FakeOpenAI, reply: Reply,
                                   error: type[ProviderError], transient: bool) -> None:
    fake_openai.script(reply)
    model = llm(fake_openai)
    with pytest.raises(error) as caught:
        await model.complete_json(ASK, "SummaryAnswer", SummaryAnswer.model_json_schema())
    await model.close()
    assert caught.value.transient is transient
    assert len(fake_openai.requests) == 1, "the adapter itself never retries"
    if reply is RATE_LIMITED:
        assert caught.value.retry_after_s == pytest.approx(0.2)


async def test_a_slow_provider_times_out(fake_openai: FakeOpenAI) -> None:
    fake_openai.script(Reply(content="{}", delay_s=1.5))
    model = llm(fake_openai, timeout_s=0.3)
    with pytest.raises(ProviderTimeout) as caught:
        await model.complete_json(ASK, "SummaryAnswer", SummaryAnswer.model_json_schema())
    await model.close()
    assert caught.value.transient


async def test_an_unreachable_server_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    model = OpenAiLlm(model="m", base_url=f"http://127.0.0.1:{port}/v1", timeout_s=2)
    with pytest.raises(ProviderUnavailable):
        await model.complete_json(ASK, "SummaryAnswer", SummaryAnswer.model_json_schema())
    await model.close()
