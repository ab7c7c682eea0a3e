"""The text-to-speech adapters against a stand-in for each speech API on 127.0.0.1, answering
with the shapes the real APIs document: OpenAI `POST /v1/audio/speech` (WAV bytes, streamed,
so the RIFF sizes are left at 0xFFFFFFFF), Azure `POST /cognitiveservices/v1` (SSML in, RIFF
PCM out), ElevenLabs `POST /v1/text-to-speech/{voice}/with-timestamps` (JSON: base64 PCM and
character timings), and their errors (429 with `retry-after`, 5xx, 401, a hang)."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from pydantic import SecretStr

from bloop.ai.providers import tts as tts_module
from bloop.ai.providers.llm import (
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
)
from bloop.ai.providers.tts import (
    AzureTts,
    ElevenLabsTts,
    EspeakTts,
    MissingTool,
    OpenAiTts,
    Tts,
    TtsSettings,
    VoiceUnavailable,
    english_share,
    make_tts,
    read_wav,
    wav_bytes,
)

RATE = 24_000


def tone_pcm(seconds: float, rate: int = RATE) -> bytes:
    """A square wave: audio that is not silence."""
    period = rate // 200
    return b"".join((4000 if (i // (period // 2)) % 2 else -4000).to_bytes(2, "little", signed=True)
                    for i in range(round(seconds * rate)))


def streamed_wav(pcm: bytes, rate: int = RATE) -> bytes:
    """A WAV as a streaming encoder writes it: sizes unknown, so 0xFFFFFFFF."""
    header = bytearray(wav_bytes(b"", rate))
    header[4:8] = header[40:44] = b"\xff\xff\xff\xff"
    return bytes(header) + pcm


def seconds_for(text: str) -> float:
    """How long the stand-ins speak `text`: 50 ms a character."""
    return round(len(text) * 0.05, 3)


@dataclass
class Reply:
    status: int = 200
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


class FakeSpeech:
    """OpenAI, Azure and ElevenLabs speech on one local port."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.replies: deque[Reply] = deque()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                return None

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                url = urlparse(self.path)
                fake.seen.append(Seen("POST", url.path, parse_qs(url.query),
                                      {k.lower(): v for k, v in self.headers.items()}, body))
                reply = fake.replies.popleft() if fake.replies else fake.answer(url.path, body)
                time.sleep(reply.delay_s)
                payload = reply.body or b""
                try:
                    self.send_response(reply.status)
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, path: str, body: bytes) -> Reply:
        if path == "/v1/audio/speech":
            text = json.loads(body)["input"]
            return Reply(body=streamed_wav(tone_pcm(seconds_for(text))),
                         headers={"content-type": "audio/wav"})
        if path == "/cognitiveservices/v1":
            text = body.decode().split(">", 2)[2].rsplit("</voice>", 1)[0]
            return Reply(body=wav_bytes(tone_pcm(seconds_for(text)), RATE),
                         headers={"content-type": "audio/x-wav"})
        if path.endswith("/with-timestamps"):
            text = json.loads(body)["text"]
            starts = [round(i * 0.05, 3) for i in range(len(text))]
            alignment = {"characters": list(text), "character_start_times_seconds": starts,
                         "character_end_times_seconds": [round(s + 0.05, 3) for s in starts]}
            pcm = tone_pcm(seconds_for(text))
            return Reply(body=json.dumps({"audio_base64": base64.b64encode(pcm).decode(),
                                          "alignment": alignment,
                                          "normalized_alignment": alignment}).encode(),
                         headers={"content-type": "application/json"})
        return Reply(404, b'{"detail": "Not Found"}')

    def __enter__(self) -> FakeSpeech:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake() -> Iterator[FakeSpeech]:
    with FakeSpeech() as server:
        yield server


TEXT = "Plants make sugar from light. They release oxygen!"
SENTENCES = ["Plants make sugar from light.", "They release oxygen!"]


def check_timings(speech: Any, gap_s: float) -> None:
    frames, rate = read_wav(speech.wav)
    assert rate == RATE
    assert speech.duration_s == pytest.approx(len(frames) / 2 / rate, abs=0.001)
    assert [t.text for t in speech.sentences] == SENTENCES
    first, second = speech.sentences
    assert first.start_s == 0
    assert first.end_s == pytest.approx(seconds_for(SENTENCES[0]), abs=0.002)
    assert second.start_s == pytest.approx(first.end_s + gap_s, abs=0.002)
    assert second.end_s == pytest.approx(speech.duration_s, abs=0.002)


async def test_openai_speaks_each_sentence_and_times_it(fake: FakeSpeech) -> None:
    tts = OpenAiTts(api_key="sk-test", base_url=f"{fake.url}/v1", voice="nova")
    try:
        speech = await tts.synthesize(TEXT)
    finally:
        await tts.close()
    check_timings(speech, gap_s=0.15)
    assert (speech.provider, speech.voice) == ("openai", "nova")
    bodies = sorted((json.loads(s.body) for s in fake.seen), key=lambda b: str(b["input"]))
    assert bodies == [{"model": "gpt-4o-mini-tts", "voice": "nova", "input": s,
                       "response_format": "wav"} for s in sorted(SENTENCES)]
    assert all(s.headers["authorization"] == "Bearer sk-test" for s in fake.seen)


async def test_azure_sends_escaped_ssml_and_asks_for_pcm(fake: FakeSpeech) -> None:
    tts = AzureTts(api_key="az-key", endpoint=fake.url, voice="en-GB-SoniaNeural")
    try:
        speech = await tts.synthesize("Is 3 < 4 & 5 > 2? Yes.")
    finally:
        await tts.close()
    assert [t.text for t in speech.sentences] == ["Is 3 < 4 & 5 > 2?", "Yes."]
    first = next(s for s in fake.seen if b"Is 3" in s.body)
    assert first.path == "/cognitiveservices/v1"
    assert first.headers["ocp-apim-subscription-key"] == "az-key"
    assert first.headers["x-microsoft-outputformat"] == "riff-24khz-16bit-mono-pcm"
    assert first.headers["content-type"] == "application/ssml+xml"
    assert first.body.decode() == ("<speak version='1.0' xml:lang='en-GB'><voice "
                                   "name='en-GB-SoniaNeural'>Is 3 &lt; 4 &amp; 5 &gt; 2?</voice>"
                                   "</speak>")
    assert speech.duration_s > 0


async def test_elevenlabs_places_sentences_by_character_timings(fake: FakeSpeech) -> None:
    tts = ElevenLabsTts(api_key="xi-key", base_url=fake.url, voice="voice123")
    try:
        speech = await tts.synthesize(TEXT)
    finally:
        await tts.close()
    (seen,) = fake.seen
    assert seen.path == "/v1/text-to-speech/voice123/with-timestamps"
    assert seen.query == {"output_format": ["pcm_24000"]}
    assert seen.headers["xi-api-key"] == "xi-key"
    assert json.loads(seen.body) == {"text": TEXT, "model_id": "eleven_multilingual_v2"}
    first, second = speech.sentences
    assert (first.start_s, first.end_s) == (0.0, seconds_for(SENTENCES[0]))
    assert second.start_s == pytest.approx(seconds_for(SENTENCES[0] + " "), abs=0.001)
    assert second.end_s == pytest.approx(speech.duration_s, abs=0.001)


def adapter(provider: str, url: str, timeout_s: float = 60.0) -> Tts:
    if provider == "openai":
        return OpenAiTts(api_key="k", base_url=f"{url}/v1", timeout_s=timeout_s)
    if provider == "azure":
        return AzureTts(api_key="k", endpoint=url, timeout_s=timeout_s)
    return ElevenLabsTts(api_key="k", base_url=url, timeout_s=timeout_s)


@pytest.mark.parametrize(("reply", "error", "transient"), [
    (Reply(429, b'{"error": {"message": "Rate limit reached", "type": "requests", '
                b'"code": "rate_limit_exceeded"}}', {"retry-after": "7",
                                                     "content-type": "application/json"}),
     ProviderRateLimited, True),
    (Reply(503, b'{"error": {"message": "The engine is currently overloaded", '
                b'"type": "server_error"}}', {"content-type": "application/json"}),
     ProviderUnavailable, True),
    (Reply(401, b'{"error": {"message": "Incorrect API key provided", '
                b'"type": "invalid_request_error", "code": "invalid_api_key"}}',
           {"content-type": "application/json"}), ProviderRejected, False),
])
@pytest.mark.parametrize("provider", ["openai", "azure", "elevenlabs"])
async def test_errors_are_sorted_for_the_job_retry(fake: FakeSpeech, provider: str, reply: Reply,
                                                   error: type[Exception],
                                                   transient: bool) -> None:
    fake.replies.extend([reply] * 4)
    tts = adapter(provider, fake.url)
    try:
        with pytest.raises(error) as raised:
            await tts.synthesize("One sentence only.")
    finally:
        await tts.close()
    assert raised.value.transient is transient  # type: ignore[attr-defined]
    assert raised.value.status == reply.status  # type: ignore[attr-defined]
    if reply.status == 429:
        assert raised.value.retry_after_s == 7  # type: ignore[attr-defined]


@pytest.mark.parametrize("provider", ["openai", "azure", "elevenlabs"])
async def test_a_provider_that_hangs_times_out_as_transient(fake: FakeSpeech,
                                                            provider: str) -> None:
    fake.replies.append(Reply(200, b"", delay_s=1.5))
    tts = adapter(provider, fake.url, timeout_s=0.3)
    try:
        with pytest.raises(ProviderTimeout) as raised:
            await tts.synthesize("One sentence only.")
    finally:
        await tts.close()
    assert raised.value.transient


async def test_an_unreachable_provider_is_transient() -> None:
    tts = AzureTts(api_key="k", endpoint="http://127.0.0.1:9", timeout_s=2)
    try:
        with pytest.raises(ProviderUnavailable) as raised:
            await tts.synthesize("Hello there.")
    finally:
        await tts.close()
    assert raised.value.transient


def test_settings_choose_the_adapter() -> None:
    assert isinstance(make_tts(TtsSettings()), EspeakTts)
    assert isinstance(make_tts(TtsSettings(openai_api_key=SecretStr("sk"))), OpenAiTts)
    assert isinstance(make_tts(TtsSettings(azure_api_key=SecretStr("k"))), AzureTts)
    assert isinstance(make_tts(TtsSettings(elevenlabs_api_key=SecretStr("k"))), ElevenLabsTts)
    assert isinstance(make_tts(TtsSettings(provider="local", openai_api_key=SecretStr("sk"))),
                      EspeakTts)
    with pytest.raises(ProviderRejected, match="no API key"):
        make_tts(TtsSettings(provider="azure"))


async def test_local_engine_missing_is_a_clear_permanent_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(MissingTool, match=r"espeak-ng.*infra/media\.sh") as raised:
        await EspeakTts().synthesize("Hello.")
    assert not raised.value.transient
    assert raised.value.code == "media_tool_missing"


def test_the_share_of_words_the_local_voice_reads_in_english() -> None:
    """espeak-ng marks a switch to English `(en)` and back `(ja)`: a Japanese voice reads each
    kanji as "Chinese letter"; a Russian one reads code names in English, rightly."""
    japanese = ("_:(en)tS'aIni:z(ja)l'et@ _:(en)tS'aIni:z(ja)l'et@ n'o "
                "_:(en)tS'aIni:z(ja)l'et@ h'a r`'e t'e s'u")
    assert english_share(japanese, "ja") == 3 / 8
    chinese = "(en)beI55Tr'i:55_| dZI55Nw'055n_| tja55nw'055n_| h,eI55@55Tr'i:55(cmn)_|"
    assert english_share(chinese, "zh") == 1.0
    russian = "p;ir;im;'ennVja (en)k'aUnt(ru) x@-ran;'it tS;isl'o"
    assert english_share(russian, "ru") == 1 / 4
    assert english_share("p@-r;iv;'et m;'ir", "ru") == english_share("", "ru") == 0.0


def fake_espeak(folder: Path, said: str) -> str:
    """A stand-in for espeak-ng: lists the voice `xx` (and variant `f3`) and fails to speak,
    saying `said` on stderr."""
    path = folder / "espeak-ng"
    path.write_text(f"""#!/bin/sh
case "$1" in
  --voices=variant) printf 'Pty Language Age/Gender VoiceName File Other Languages\\n'
                    printf ' 5  variant --/F f3 !v/f3\\n' ;;
  --voices) printf 'Pty Language Age/Gender VoiceName File Other Languages\\n'
            printf ' 5  xx-yy --/M Xish xyz/xx-YY (xx 5)\\n' ;;
  *) echo '{said}' >&2; exit 1 ;;
esac
""")
    path.chmod(0o755)
    return str(path)


async def test_the_local_engines_own_message_goes_to_the_log_and_never_to_the_caller(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """espeak-ng's stderr was the error's message, and so the job's: with a voice that was a
    path, the lines of the file it read."""
    leaked = "Bad voice attribute: root:x:0:0:root:/root:/bin/bash"
    monkeypatch.setattr(tts_module, "require_tool", lambda name: fake_espeak(tmp_path, leaked))
    monkeypatch.setattr(EspeakTts, "_listed", {})
    tts = EspeakTts()
    assert [await tts.has_voice(v) for v in ("xx", "XX-yy", "xish", "xx-YY", "xx-zz", "xx+f3",
                                             "yy", "xx+m1", "../xyz/xx-YY", "xyz/xx-YY",
                                             "xx-../../etc/passwd", "xx+../f3")] == [
        True, True, True, True, True, True, False, False, False, False, False, False]
    with caplog.at_level(logging.WARNING, "bloop.ai.tts"), \
            pytest.raises(ProviderRejected) as raised:
        await tts.synthesize("Hello there.", "xx+f3")
    assert str(raised.value) == ("the local text-to-speech engine (espeak-ng) could not speak "
                                 "with the voice 'xx+f3' (exit status 1; the server's log has "
                                 "its message)")
    assert any(leaked in str(getattr(r, "stderr", "")) for r in caplog.records), "logged"
    with pytest.raises(VoiceUnavailable, match=r"^the narration voice '\.\./etc/passwd' is not "
                       r"available: the local \(espeak-ng\) text-to-speech provider has no voice "
                       r"of that name$") as refused:
        await tts.synthesize("Hello there.", "../etc/passwd")
    assert (refused.value.code, refused.value.transient) == ("voice_unavailable", False)
