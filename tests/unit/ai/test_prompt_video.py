"""A video from an educator's prompt: the job's script comes from the tenant's language model
(the OpenAI stand-in answering with recorded chat-completion bodies), its spend is on the job,
it renders end to end through the app on the embedded stores, and the refusals: no language
model, a prompt too long, a prompt on a kind that takes none, a job with neither lesson nor
prompt. Failures of the model map onto the job's failure codes."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from bloop.ai.jobs import renderers
from bloop.ai.jobs.model import MAX_PROMPT_CHARS, Job, JobParams, JobRequest, MediaResult
from bloop.ai.jobs.renderers import LibraryRenderer
from bloop.ai.jobs.service import JobService
from bloop.ai.jobs.stores.embedded import EmbeddedJobStore, FileMediaStore
from bloop.ai.jobs.worker import JobRunner
from bloop.ai.video import VideoScript
from bloop.platform.kit.errors import Problem
from bloop.platform.kit.events.types import registry
from bloop.platform.kit.settings import AiSettings
from bloop.platform.kit.sqlite import SqliteDB
from tests.support import eventually, member, require_media_kind
from tests.unit.ai.fake_openai import FakeOpenAI, Reply
from tests.unit.ai.test_ai_api import BASE, build, follow, lesson
from tests.unit.ai.test_jobs import LESSON, VoicesByLanguage

ANSWER: dict[str, Any] = {"title": "Why leaves are green", "scenes": [
    {"kind": "title", "title": "Why leaves are green", "subtitle": "",
     "narration": "Leaves look green because of chlorophyll."},
    {"kind": "key_points", "heading": "Chlorophyll", "points": ["Absorbs red and blue",
                                                             "Reflects green"],
     "narration": "It takes in red and blue light and sends the green back."},
]}
PRICES = AiSettings(price_input_per_mtok=0.15, price_output_per_mtok=0.6).model_dump(
    include={"price_input_per_mtok", "price_output_per_mtok"})
USD = (1117 * 0.15 + 246 * 0.6) / 1e6


def answered() -> Reply:
    return Reply(content=json.dumps(ANSWER))


def refused() -> Reply:
    message = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
    return Reply(body={"id": "chatcmpl-x", "object": "chat.completion", "created": 1741570283,
                       "model": "gpt-4o-mini", "choices": [{"index": 0, "message": message,
                                                            "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 900, "completion_tokens": 12,
                                 "total_tokens": 912}})


# The worker with an injected render function, on the embedded job store.

Seen = dict[str, Any]


def recording_video(seen: Seen) -> Callable[..., Any]:
    """Shaped like `render_lesson_video`: records what it was given, writes a small file."""

    def render(script: VideoScript, out_dir: Path, title: str) -> Path:
        seen.update(script=script, title=title)
        (out_dir / "video.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
        return out_dir / "video.mp4"

    return render


@pytest.fixture
async def service(tmp_path: Path, fake_openai: FakeOpenAI) -> AsyncIterator[JobService]:
    settings = AiSettings(openai_base_url=fake_openai.base_url, llm_timeout_s=5.0,
                          retry_backoff_s=0.0, lease_s=0.6, invalid_output_retries=1, **PRICES)
    db = SqliteDB(tmp_path / "ai.sqlite3")
    store = EmbeddedJobStore(db, registry)
    await store.setup()
    yield JobService(store, settings, media_kinds=frozenset({"video"}))
    await db.close()


async def run(service: JobService, tmp_path: Path, job: Job, seen: Seen) -> Job:
    media = FileMediaStore(tmp_path / "media")
    await media.setup()
    renderer = LibraryRenderer("video", function=recording_video(seen))
    await JobRunner(service, media, service.settings, "w", {"video": renderer}).run("acme",
                                                                                     job.id)
    return await service.job("acme", job.id)


async def test_the_renderer_gets_the_script_the_model_wrote_from_the_prompt_and_lesson(
        service: JobService, tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    fake_openai.script(answered())
    ask = JobRequest(kind="video", lesson_id=LESSON.id,
                     params=JobParams(prompt="Why are leaves green? Keep it short."))
    job, created = await service.request("acme", "u1", ask, LESSON)
    assert created
    seen: Seen = {}
    done = await run(service, tmp_path, job, seen)
    assert done.status == "succeeded", done.errors
    script = seen["script"]
    assert isinstance(script, VideoScript)
    assert (script.title, script.source, len(script.scenes)) == ("Why leaves are green", "llm", 2)
    assert seen["title"] == LESSON.title
    assert (done.cost.prompt_tokens, done.cost.completion_tokens) == (1117, 246)
    assert done.cost.usd == pytest.approx(USD)
    assert done.cost.model == "gpt-4o-mini-2024-07-18"
    [sent] = fake_openai.requests
    assert sent["response_format"]["json_schema"]["name"] == "VideoScriptAnswer"
    user = sent["messages"][-1]["content"]
    assert "Why are leaves green?" in user
    assert LESSON.text.split("\n\n")[0].strip() in user, "the lesson is the source text"
    assert "in the language whose BCP 47 tag is `en`" in user, "the lesson's language"

    again, created = await service.request("acme", "u2", ask, LESSON)
    assert (again.id, created) == (job.id, False)
    other = JobRequest(kind="video", lesson_id=LESSON.id, params=JobParams(prompt="Roots?"))
    assert (await service.request("acme", "u1", other, LESSON))[1], "another prompt, another job"


@pytest.mark.parametrize(("lesson_language", "asked", "language"), [
    (None, "fr", "fr"), (None, None, "en"), ("de", None, "de"), ("de", "pt-BR", "pt-BR")])
async def test_a_prompt_video_is_written_and_spoken_in_the_language_asked_else_the_lesson_s(
        service: JobService, tmp_path: Path, fake_openai: FakeOpenAI,
        monkeypatch: pytest.MonkeyPatch, lesson_language: str | None, asked: str | None,
        language: str) -> None:
    monkeypatch.setattr(renderers, "_tts", VoicesByLanguage)
    fake_openai.script(answered())
    source = None if lesson_language is None else LESSON.model_copy(
        update={"language": lesson_language})
    job, _ = await service.request("acme", "u1", JobRequest(
        kind="video", lesson_id=source.id if source else None,
        params=JobParams(prompt="Pourquoi les feuilles sont-elles vertes ?", language=asked)),
        source)
    seen: Seen = {}

    def render(script: VideoScript, tts: VoicesByLanguage, out_dir: Path, voice: str | None,
               language: str) -> Path:
        seen.update(voice=voice, language=language)
        (out_dir / "video.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
        return out_dir / "video.mp4"

    media = FileMediaStore(tmp_path / "media")
    await media.setup()
    renderer = LibraryRenderer("video", function=render)
    await JobRunner(service, media, service.settings, "w", {"video": renderer}).run("acme", job.id)
    assert (await service.job("acme", job.id)).status == "succeeded"
    [sent] = fake_openai.requests
    assert f"in the language whose BCP 47 tag is `{language}`" in sent["messages"][-1]["content"]
    voice = None if language == "en" else f"voice-{language}"
    assert seen == {"voice": voice, "language": language}


async def test_a_lesson_video_without_a_prompt_still_uses_the_lesson_s_own_script(
        service: JobService, tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    job, _ = await service.request("acme", "u1", JobRequest(kind="video", lesson_id=LESSON.id),
                                   LESSON)
    seen: Seen = {}
    done = await run(service, tmp_path, job, seen)
    assert done.status == "succeeded", done.errors
    assert seen["script"].source != "llm"
    assert fake_openai.requests == []
    assert done.cost.usd == 0


@pytest.mark.parametrize(("replies", "code", "tokens"), [
    ([Reply(content='{"title": "x"}'), Reply(content="not json")], "invalid_output", 2 * 1117),
    ([refused()], "model_refused", 900)])
async def test_a_model_that_will_not_write_the_script_fails_the_job_with_its_spend(
        service: JobService, tmp_path: Path, fake_openai: FakeOpenAI, replies: list[Reply],
        code: str, tokens: int) -> None:
    fake_openai.script(*replies)
    job, _ = await service.request("acme", "u1", JobRequest(
        kind="video", params=JobParams(prompt="Leaves")), None)
    seen: Seen = {}
    done = await run(service, tmp_path, job, seen)
    assert done.status == "failed"
    assert [e.code for e in done.errors] == [code]
    assert done.cost.prompt_tokens == tokens
    assert done.cost.usd > 0
    assert seen == {}, "nothing rendered"


async def test_bad_prompt_requests_are_refused_before_any_spend(
        service: JobService, fake_openai: FakeOpenAI) -> None:
    cases: list[tuple[JobRequest, str]] = [
        (JobRequest(kind="video", params=JobParams(prompt="x" * (MAX_PROMPT_CHARS + 1))),
         "prompt_too_long"),
        (JobRequest(kind="summary", params=JobParams(prompt="Leaves")), "prompt_not_supported"),
        (JobRequest(kind="video"), "lesson_required"),
        (JobRequest(kind="quiz", params=JobParams(language="fr")), "language_not_supported"),
        (JobRequest(kind="video", params=JobParams(language="fr")), "language_not_supported")]
    for ask, code in cases:
        with pytest.raises(Problem) as caught:
            await service.request("acme", "u1", ask, None)
        assert (caught.value.status, caught.value.code) == (422, code)
    assert (await service.store.list_jobs("acme")).items == []
    assert fake_openai.requests == []


# Through the app.


@pytest.fixture(autouse=True)
def embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("BLOOP_STORE", "BLOOP_MONGO_ADAPTER", "BLOOP_KAFKA_ADAPTER", "BLOOP_REDIS_ADAPTER"):
        monkeypatch.delenv(var, raising=False)


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app started, and a client signed in as an educator of `acme`."""
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bloop.test") as client:
        client.headers.update(await member(app, client, "acme", ["educator"]))
        yield client


async def test_offline_a_prompt_is_refused_and_a_lesson_video_is_still_taken(
        tmp_path: Path) -> None:
    app = build(tmp_path, AiSettings(provider="offline"))
    async with running(app) as c:
        require_media_kind(app, "video")
        les = await lesson(c)
        for body in ({"kind": "video", "params": {"prompt": "Why are leaves green?"}},
                     {"kind": "video", "lesson_id": les["id"], "params": {"prompt": "Leaves"}}):
            r = await c.post(f"{BASE}/ai/jobs", json=body)
            assert r.status_code == 422, r.text
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["code"] == "llm_required"
            assert "offline" in r.json()["detail"]
            assert "lesson's own text" in r.json()["detail"]
        r = await c.post(f"{BASE}/ai/jobs", json={
            "kind": "video", "params": {"prompt": "x" * (MAX_PROMPT_CHARS + 1)}})
        assert (r.status_code, r.json()["code"]) == (422, "prompt_too_long")
        assert (await c.get(f"{BASE}/ai/jobs")).json()["items"] == []
        r = await c.post(f"{BASE}/ai/jobs", json={"kind": "video", "lesson_id": les["id"]})
        assert r.status_code == 201, r.text
        await c.post(f"{BASE}/ai/jobs/{r.json()['id']}/cancel")


async def test_a_prompt_video_renders_end_to_end(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    app = build(tmp_path, AiSettings(openai_base_url=fake_openai.base_url, model="gpt-4o-mini",
                                     **PRICES))
    async with running(app) as c:
        require_media_kind(app, "video")
        les = await lesson(c)
        for body in ({"kind": "video", "params": {"prompt": "Why are leaves green?"}},
                     {"kind": "video", "lesson_id": les["id"],
                      "params": {"prompt": "Why are leaves green?"}}):
            fake_openai.script(answered())
            r = await c.post(f"{BASE}/ai/jobs", json=body)
            assert r.status_code == 201, r.text
            final = (await follow(c, r.json()["id"]))[-1][1]
            assert final["status"] == "succeeded", final["errors"]
            assert final["lesson_id"] == body.get("lesson_id")
            assert final["cost"]["prompt_tokens"] == 1117
            assert final["cost"]["usd"] == pytest.approx(USD)
            result = MediaResult.model_validate(final["result"])
            video = next(o for o in result.outputs if o.kind == "video")
            assert (video.duration_s or 0) > 2
            got = await c.get(video.url)
            assert got.status_code == 200
            assert len(got.content) == video.bytes > 1000

        async def attached() -> bool:
            shown = (await c.get(f"{BASE}/lessons/{les['id']}")).json()
            return any(b["type"] == "video" for b in shown["blocks"])

        await eventually(attached, what="the prompted video on its lesson's draft")
        shown = (await c.get(f"{BASE}/lessons/{les['id']}")).json()
        assert [b["type"] for b in shown["blocks"]].count("video") == 1, \
            "the lesson-less video went to no lesson"
        listed = (await c.get(f"{BASE}/ai/jobs")).json()["items"]
        assert sorted(str(j["lesson_id"]) for j in listed) == sorted([les["id"], "None"])
    assert len(fake_openai.requests) == 2
