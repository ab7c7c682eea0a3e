"""The OpenAI adapter against a local stand-in answering with OpenAI's recorded response shapes:
structured output requests, usage and cost, and how each failure is sorted (transient or not)."""

from __future__ import annotations

import json
import logging
import socket
from typing import Any

import pytest

from bloop.ai.providers.llm import (
    ChatMessage,
    ContentFiltered,
    ModelRefused,
    OpenAiLlm,
    Pricing,
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    Usage,
    redact,
    strict_schema,
)
from bloop.ai.text.model import QuizAnswer, SummaryAnswer
from bloop.platform.kit.logging import configure_logging
from tests.unit.ai.fake_openai import (
    BAD_KEY,
    ECHOED_KEY,
    KEY,
    MASKED_KEY,
    NO_QUOTA,
    RATE_LIMITED,
    SERVER_ERROR,
    FakeOpenAI,
    Reply,
    completion,
)

NOISY = ("aiokafka", "kafka", "neo4j", "pymongo", "uvicorn.access", "httpx", "httpx2",
         "httpcore", "httpcore2", "openai")
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


def _answer(**change: Any) -> dict[str, Any]:
    body = completion('{"summary": "S", "key_points": ["k"]}')
    body["choices"][0]["message"].update(change)
    return body


GOOD = json.dumps(completion('{"summary": "S", "key_points": ["k"]}')).encode()


@pytest.mark.parametrize(("reply", "said"), [
    (Reply(raw=GOOD[:40]), "a body that is cut off or not JSON"),
    (Reply(raw=b"<html><body>nginx ok</body></html>", content_type="text/html"),
     "a body that is not JSON: <html><body>nginx ok</body></html>"),
    (Reply(raw=GOOD.replace(b"key_points", b"key_\xff\xfepoints")), "a body that is not UTF-8"),
    (Reply(body=_answer(content={"summary": "S", "key_points": ["k"]})),
     "a message whose content is not text"),
    (Reply(body={**completion("{}"), "choices": ["text"]}), "a choice without a message"),
])
async def test_an_answer_that_is_not_a_chat_completion_is_a_transient_provider_failure(
        fake_openai: FakeOpenAI, reply: Reply, said: str) -> None:
    """The `openai` package hands back the text of a body that is not JSON, lets a decoding
    error through, and builds a completion without checking it."""
    fake_openai.script(reply)
    model = llm(fake_openai)
    with pytest.raises(ProviderUnavailable) as caught:
        await model.complete_json(ASK, "SummaryAnswer", SummaryAnswer.model_json_schema())
    await model.close()
    assert str(caught.value) == f"the provider's answer is not a chat completion ({said})"
    assert caught.value.transient


async def test_a_refusal_or_a_content_filter_is_a_permanent_failure_with_its_spend(
        fake_openai: FakeOpenAI) -> None:
    fake_openai.script(
        Reply(body=_answer(content=None, refusal="I can't help with that.")),
        Reply(body=completion(None, finish_reason="content_filter")),
        Reply(content='{"summary": "S", "key_points": ["k"]}', finish_reason="content_filter"))
    model = llm(fake_openai)
    with pytest.raises(ModelRefused, match=r"^the model refused: I can't help with that\.$") as no:
        await model.complete_json(ASK, "SummaryAnswer", SummaryAnswer.model_json_schema())
    assert (no.value.code, no.value.transient, no.value.usage) == (
        "model_refused", False, Usage(1117, 246))
    for _ in range(2):
        with pytest.raises(ContentFiltered) as filtered:
            await model.complete_json(ASK, "SummaryAnswer", SummaryAnswer.model_json_schema())
        assert (filtered.value.code, filtered.value.transient) == ("content_filtered", False)
        assert filtered.value.usage == Usage(1117, 246)
    await model.close()


async def test_token_counts_are_never_negative_and_never_missing(
        fake_openai: FakeOpenAI) -> None:
    text = '{"summary": "S", "key_points": ["k"]}'
    fake_openai.script(Reply(content=text, prompt_tokens=-1_000_000,
                             completion_tokens=-1_000_000),
                       Reply(body={k: v for k, v in completion(text).items() if k != "usage"}))
    model = llm(fake_openai)
    schema = SummaryAnswer.model_json_schema()
    negative = await model.complete_json(ASK, "SummaryAnswer", schema)
    missing = await model.complete_json(ASK, "SummaryAnswer", schema)
    await model.close()
    assert negative.usage == Usage(0, 0)
    sent = sum(len(m.content) for m in ASK) + len(json.dumps(schema))
    assert missing.usage.prompt_tokens == -(-sent // 4)
    assert missing.usage.completion_tokens == -(-len(text) // 4)


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


@pytest.mark.parametrize(("reply", "key", "kept"), [
    (BAD_KEY, "sk-abc", ["401", "invalid_request_error/invalid_api_key",
                         "Incorrect API key provided", "platform.openai.com"]),
    (MASKED_KEY, "sk-proj-longer-key-that-ends-in-yZ4A",
     ["401", "invalid_api_key", "Incorrect API key provided"]),
    (ECHOED_KEY, "acme-own-model-key-0042", ["401", "auth_error/401",
                                             "Invalid proxy server token passed"]),
    (ECHOED_KEY, "sk-acme-proj-0042", ["401", "auth_error/401"]),
])
async def test_what_a_provider_says_is_kept_without_the_key(
        fake_openai: FakeOpenAI, reply: Reply, key: str, kept: list[str]) -> None:
    """A provider's error text was kept verbatim: OpenAI shows the key masked (`sk-...abcd`),
    and an OpenAI-compatible server may echo it whole; it went into the job's errors, its
    `failed` event and the data export. The status and the provider's error type and code
    stay."""
    fake_openai.script(reply)
    model = OpenAiLlm(model="m", api_key=key, base_url=fake_openai.base_url, timeout_s=5)
    with pytest.raises(ProviderRejected) as caught:
        await model.complete_json(ASK, "SummaryAnswer", SummaryAnswer.model_json_schema())
    await model.close()
    said = str(caught.value)
    assert fake_openai.headers[0]["authorization"] == f"Bearer {key}"
    assert key not in said
    assert KEY not in said
    assert "sk-" not in said
    assert "yZ4A" not in said
    assert "Bearer [redacted]" in said or reply is not ECHOED_KEY
    for part in kept:
        assert part in said, said
    assert caught.value.status == 401


def test_redaction_takes_out_what_looks_like_a_credential_and_leaves_the_rest() -> None:
    kept = ("Rate limit reached for gpt-4o-mini in organization org-abc on tokens per min "
            "(TPM): Limit 200000, Used 199000, Requested 1500. Please try again in 150ms.")
    assert redact(kept) == kept
    assert redact("The model `meta-llama/Meta-Llama-3.1-70B-Instruct` does not exist") == \
        "The model `meta-llama/Meta-Llama-3.1-70B-Instruct` does not exist"
    for secret, text in [
        ("my-own-key", "Invalid key my-own-key for this server"),
        ("tok3n.value", "Authorization: Bearer tok3n.value"),
        ("abc123", '{"api_key": "abc123"}'),
        ("hunter22", "could not reach http://admin:hunter22@models.example/v1"),
        ("sk-proj-Ab12", "key sk-proj-Ab12******yZ4A refused"),
        ("sk_3f9a", "ElevenLabs: invalid key sk_3f9a0c1d"),
        ("0123456789abcdef0123456789abcdef", "token 0123456789abcdef0123456789abcdef expired"),
    ]:
        cleaned = redact(text, ["my-own-key"])
        assert secret not in cleaned, cleaned
        assert "[redacted]" in cleaned or "***@" in cleaned, cleaned
    assert redact("short key abc", ["abc"]) == "short key abc", "too short to tell from words"


async def test_provider_calls_log_no_address_at_info(fake_openai: FakeOpenAI) -> None:
    """The HTTP clients logged every provider call at INFO with its full address:
    `HTTP Request: POST http://user:secret@…/chat/completions`."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level, {
        name: logging.getLogger(name).level for name in NOISY}
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    try:
        configure_logging("INFO")
        root.addHandler(Keep())
        for name in ("httpx", "httpx2", "httpcore", "httpcore2"):
            assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
        configure_logging("DEBUG")
        root.addHandler(Keep())
        assert not logging.getLogger("httpcore2.http11").isEnabledFor(logging.DEBUG)
        fake_openai.script(Reply(content='{"summary": "S", "key_points": ["k"]}'), BAD_KEY)
        model = OpenAiLlm(model="m", api_key="sk-logged-nowhere",
                          base_url=fake_openai.base_url.replace("http://", "http://u:hunter22@"))
        await model.complete_json(ASK, "SummaryAnswer", SummaryAnswer.model_json_schema())
        with pytest.raises(ProviderRejected):
            await model.complete_json(ASK, "SummaryAnswer", SummaryAnswer.model_json_schema())
        await model.close()
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        for name, level in saved[2].items():
            logging.getLogger(name).setLevel(level)
    assert len(fake_openai.requests) == 2
    for record in seen:
        text = record.getMessage() + repr(record.args)
        assert "hunter22" not in text, text
        assert "sk-logged-nowhere" not in text, text
