"""A video script from a prompt, through the LLM port against the OpenAI stand-in: the schema
sent is one structured outputs accept, TeX in an equation is set as Unicode, an answer that
does not validate is asked for again with the error, and one that never does fails clearly."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bloop.ai.providers.llm import ModelRefused, OpenAiLlm, ProviderRejected
from bloop.ai.text.generator import InvalidOutput
from bloop.ai.video import DiagramScene, EquationScene, KeyPointsScene, TitleScene
from bloop.ai.video.prompted import answer_schema, script_from_prompt
from tests.unit.ai.fake_openai import BAD_KEY, FakeOpenAI, Reply

ANSWER: dict[str, Any] = {"title": "Photosynthesis", "scenes": [
    {"kind": "title", "title": "Photosynthesis", "subtitle": "Food from light",
     "narration": "Plants make their own food from light."},
    {"kind": "key_points", "heading": "Inputs", "points": ["Carbon dioxide", "Water", "Light"],
     "narration": "They need three things."},
    {"kind": "equation", "heading": "Reaction", "equation": "6CO_2 + 6H_2O \\rightarrow "
     "C_6H_{12}O_6 + 6O_2", "explanation": "", "narration": "Six molecules of each."},
    {"kind": "diagram", "heading": "Flow", "boxes": ["Sun", "Leaf", "Sugar"],
     "arrows": [{"source": "Sun", "target": "Leaf", "label": ""},
                {"source": "Leaf", "target": "Sugar", "label": "makes"}],
     "narration": "Energy flows from the sun to sugar."},
]}


def llm(fake: FakeOpenAI) -> OpenAiLlm:
    return OpenAiLlm(model="gpt-4o-mini", api_key="sk-test", base_url=fake.base_url)


def walk(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, list):
        return [d for n in node for d in walk(n)]
    if not isinstance(node, dict):
        return []
    return [node, *(d for v in node.values() for d in walk(v))]


async def test_a_prompt_becomes_a_validated_script(fake_openai: FakeOpenAI) -> None:
    fake_openai.script(Reply(content=json.dumps(ANSWER)))
    model = llm(fake_openai)
    made = await script_from_prompt(model, "How do plants eat?", source_text="# Plants\n\nThey "
                                    "photosynthesise.", seconds=40)
    await model.close()
    script = made.script
    assert (made.attempts, made.usage.prompt_tokens, script.source) == (1, 1117, "llm")
    assert [type(s) for s in script.scenes] == [TitleScene, KeyPointsScene, EquationScene,
                                                DiagramScene]
    equation = script.scenes[2]
    assert isinstance(equation, EquationScene)
    assert equation.equation == "6CO₂ + 6H₂O → C₆H₁₂O₆ + 6O₂"
    [sent] = fake_openai.requests
    user = sent["messages"][-1]["content"]
    assert "How do plants eat?" in user
    assert "about 40 seconds (100 spoken words" in user
    assert "They photosynthesise." in user
    schema = sent["response_format"]["json_schema"]["schema"]
    assert sent["response_format"]["json_schema"]["strict"] is True
    nodes = walk(schema)
    assert not any("oneOf" in n or "discriminator" in n for n in nodes)
    assert sum(1 for n in nodes if "anyOf" in n) >= 1
    assert all(n["additionalProperties"] is False and set(n["required"]) == set(n["properties"])
               for n in nodes if n.get("type") == "object")


async def test_an_invalid_answer_is_asked_for_again_with_the_error(
        fake_openai: FakeOpenAI) -> None:
    bad = {**ANSWER, "scenes": [{**ANSWER["scenes"][3], "arrows": [
        {"source": "Moon", "target": "Leaf", "label": ""}]}]}
    fake_openai.script(Reply(content=json.dumps(bad)), Reply(content=json.dumps(ANSWER)))
    model = llm(fake_openai)
    made = await script_from_prompt(model, "plants", max_scenes=2)
    await model.close()
    assert made.attempts == 2
    assert made.usage.prompt_tokens == 2 * 1117
    assert [s.kind for s in made.script.scenes] == ["title", "key_points"]
    second = fake_openai.requests[1]["messages"]
    assert second[-2]["role"] == "assistant"
    assert "arrows name boxes that are not in the diagram: ['Moon']" in second[-1]["content"]


async def test_a_model_that_never_answers_validly_or_refuses_fails_clearly(
        fake_openai: FakeOpenAI) -> None:
    fake_openai.script(*[Reply(content='{"title": "T", "scenes": []}')] * 3)
    model = llm(fake_openai)
    with pytest.raises(InvalidOutput, match="invalid 3 times; last: scenes: List should have "
                       "at least 1 item") as raised:
        await script_from_prompt(model, "plants")
    assert raised.value.usage.prompt_tokens == 3 * 1117
    assert not raised.value.transient
    refusal = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
    fake_openai.script(Reply(body={
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1741570283,
        "model": "gpt-4o-mini", "choices": [{"index": 0, "message": refusal,
                                             "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}))
    with pytest.raises(ModelRefused, match="the model refused: I can't help with that") as no:
        await script_from_prompt(model, "something harmful")
    assert isinstance(no.value, ProviderRejected)
    assert no.value.usage.prompt_tokens == 10
    await model.close()
    assert len(fake_openai.requests) == 4
    assert answer_schema()["properties"]["scenes"]["items"]["anyOf"]


async def test_an_invalid_answer_is_sent_back_cut_and_the_spend_goes_with_a_later_failure(
        fake_openai: FakeOpenAI) -> None:
    fake_openai.script(Reply(content=json.dumps({"title": "t" * 2_000_000, "scenes": []})),
                       BAD_KEY)
    model = llm(fake_openai)
    with pytest.raises(ProviderRejected) as caught:
        await script_from_prompt(model, "plants")
    await model.close()
    assert caught.value.usage.prompt_tokens == 1117, "the first answer was paid for"
    sent_back = fake_openai.requests[1]["messages"][-2]
    assert (sent_back["role"], len(sent_back["content"])) == ("assistant", 20_000)


async def test_a_script_cut_off_at_the_token_limit_is_asked_for_once_more(
        fake_openai: FakeOpenAI) -> None:
    cut = Reply(content=json.dumps(ANSWER)[:100], finish_reason="length")
    fake_openai.script(cut, cut, Reply(content=json.dumps(ANSWER)))
    model = llm(fake_openai)
    with pytest.raises(InvalidOutput, match="invalid 2 times; last: the answer was cut off"):
        await script_from_prompt(model, "plants")
    await model.close()
    assert [r["max_completion_tokens"] for r in fake_openai.requests] == [4000, 8000]
