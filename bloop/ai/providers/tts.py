"""The text-to-speech port and its adapters: espeak-ng on this machine (no key, no model to
download, the default), and OpenAI speech, Azure Speech and ElevenLabs when a key is configured.

Every adapter answers with 16-bit mono WAV audio and the start and end of each sentence in it.
The local engine and the OpenAI and Azure adapters speak one sentence per call and measure
each piece, so the sentence timings are exact; ElevenLabs returns character timings itself.
Failures are the LLM port's `ProviderError`s: timeouts, 429s and 5xx are transient (the job
retries them), a refused key or request is not. A missing local tool is `MissingTool`.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import re
import shutil
import wave
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol
from xml.sax.saxutils import escape

import httpx
import openai
from openai import AsyncOpenAI
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from bloop.ai import writing
from bloop.ai.providers.llm import (
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    provider_said,
    redact,
    retry_after,
)
from bloop.platform.kit import processes
from bloop.platform.kit.urls import HttpUrlText, url_password

TtsProvider = Literal["local", "openai", "azure", "elevenlabs"]
log = logging.getLogger("bloop.ai.tts")


class MissingTool(ProviderError):
    """A program a media job needs (ffmpeg, espeak-ng) is not installed on this machine."""

    code = "media_tool_missing"


class NothingToSay(ProviderError):
    code = "nothing_to_say"


class CannotRead(ProviderRejected):
    """The local engine would read the text as nonsense: it has no reading of its script in
    that language (Han for Japanese and Chinese) and falls back to English."""

    code = "tts_cannot_read"


class VoiceUnavailable(ProviderRejected):
    """The voice a job names is not one the provider has."""

    code = "voice_unavailable"


def voice_unavailable(voice: str, provider: str) -> str:
    """What a job or a request is told of a voice the text-to-speech provider does not have."""
    return (f"the narration voice {voice!r} is not available: the {provider} text-to-speech "
            "provider has no voice of that name")


def no_voice_for(language: str, provider: str) -> str:
    """What a job or a request is told of a language the text-to-speech provider has no voice
    for (it would read the text as English)."""
    return (f"the {provider} text-to-speech provider has no voice for the language "
            f"{language!r}, and would read the text as English: name a voice it has in "
            "`params.voice`, or have the operator configure a paid provider that speaks it "
            "(BLOOP_TTS_PROVIDER openai, azure or elevenlabs, with its API key)")


def english(language: str) -> bool:
    """Whether the BCP 47 tag `language` is English (the default voices' language)."""
    tag = language.lower()
    return tag == "en" or tag.startswith("en-")


def require_tool(name: str) -> str:
    """The path of the program `name`, or `MissingTool` saying how to get it."""
    path = shutil.which(name)
    if path is None:
        raise MissingTool(f"`{name}` is not installed on this machine; run `bash infra/media.sh` "
                          "(Debian packages ffmpeg, espeak-ng) to make narration and video work")
    return path


@dataclass(frozen=True)
class Timing:
    """Where a piece of text is spoken, in seconds from the start of the audio."""

    start_s: float
    end_s: float
    text: str


@dataclass(frozen=True)
class Speech:
    """Spoken text: 16-bit mono WAV bytes and where each sentence is in them."""

    wav: bytes
    sample_rate: int
    duration_s: float
    sentences: tuple[Timing, ...]
    provider: str
    voice: str


class Tts(Protocol):
    @property
    def name(self) -> str: ...

    usd_per_character: float
    """What the provider charges for a character it speaks (0 for the local voice)."""
    spoken: Callable[[int], None] | None
    """Told the characters of each paid call as it answers (see `bloop.ai.jobs.metered`)."""

    async def synthesize(self, text: str, voice: str | None = None) -> Speech:
        """`text` spoken by `voice` (the adapter's default when None). Raises a
        `ProviderError`."""

    async def voice_for(self, language: str) -> str | None:
        """The voice that speaks `language` (a BCP 47 tag such as `fr` or `pt-BR`), or None to
        use the default voice; `VoiceUnavailable` when the provider has none for it."""

    async def close(self) -> None: ...


def split_sentences(text: str) -> list[str]:
    """`text` cut into sentences (after the stops of `writing.ENDS`, those of Latin, Han,
    Devanagari and Arabic script), whitespace collapsed, empty pieces left out."""
    return writing.split(text)


# WAV helpers shared by the adapters and the narration.


def wav_bytes(pcm: bytes, sample_rate: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm)
    return out.getvalue()


def read_wav(data: bytes) -> tuple[bytes, int]:
    """The 16-bit mono PCM frames and sample rate of a WAV file."""
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            if w.getsampwidth() != 2 or w.getnchannels() != 1:
                raise ProviderUnavailable(
                    f"expected 16-bit mono audio, got {w.getsampwidth() * 8}-bit "
                    f"{w.getnchannels()}-channel")
            return w.readframes(w.getnframes()), w.getframerate()
    except (wave.Error, EOFError) as exc:
        raise ProviderUnavailable(f"the speech engine returned unreadable audio ({exc})") from None


def silence(seconds: float, sample_rate: int) -> bytes:
    return b"\x00\x00" * max(0, round(seconds * sample_rate))


def join_sentences(pieces: Sequence[tuple[str, bytes]], *, provider: str, voice: str,
                   gap_s: float = 0.15) -> Speech:
    """One `Speech` from per-sentence WAVs, a short pause between sentences."""
    if not pieces:
        raise NothingToSay("there is no text to speak")
    pcm = bytearray()
    rate = 0
    timings: list[Timing] = []
    for i, (text, data) in enumerate(pieces):
        frames, piece_rate = read_wav(data)
        rate = rate or piece_rate
        if piece_rate != rate:
            raise ProviderUnavailable("the speech engine changed its sample rate mid-text")
        if i:
            pcm += silence(gap_s, rate)
        start = len(pcm) / 2 / rate
        pcm += frames
        timings.append(Timing(round(start, 3), round(len(pcm) / 2 / rate, 3), text))
    return Speech(wav=wav_bytes(bytes(pcm), rate), sample_rate=rate,
                  duration_s=round(len(pcm) / 2 / rate, 3), sentences=tuple(timings),
                  provider=provider, voice=voice)


async def per_sentence(text: str, speak: Callable[[str], Awaitable[bytes]], *, provider: str,
                       voice: str, concurrency: int = 4,
                       spoken: Callable[[int], None] | None = None) -> Speech:
    """`text` spoken one sentence per call to `speak` (at most `concurrency` at once); each
    call that answered tells `spoken` the characters it was paid for."""
    sentences = split_sentences(text)
    if not sentences:
        raise NothingToSay("there is no text to speak")
    gate = asyncio.Semaphore(concurrency)

    async def one(sentence: str) -> bytes:
        async with gate:
            audio = await speak(sentence)
        if spoken is not None:
            spoken(len(sentence))
        return audio

    calls = [asyncio.ensure_future(one(s)) for s in sentences]
    try:
        audio = await asyncio.gather(*calls)
    except BaseException:  # a call failed, or the job was cancelled: stop the others too,
        for call in calls:  # each killing its process, and wait until they have
            if not call.cancelling():
                call.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
        raise
    # Half a second of copying for a long lesson: on a thread, so the loop keeps serving.
    return await asyncio.to_thread(join_sentences, list(zip(sentences, audio, strict=True)),
                                   provider=provider, voice=voice)


def status_error(provider: str, status: int, headers: Mapping[str, str], detail: str = "",
                 secrets: Sequence[str | None] = ()) -> ProviderError:
    """The `ProviderError` for an HTTP error status from a speech API; what the provider said
    (`detail`) is kept without the `secrets` (its key) or anything shaped like a credential."""
    detail = " ".join(redact(detail, secrets).split())
    detail = f": {detail[:300]}" if detail else ""
    if status == 429:
        return ProviderRateLimited(f"{provider} is rate limiting us{detail}", status=status,
                                   retry_after_s=retry_after(headers))
    if status >= 500 or status in (408, 409):
        return ProviderUnavailable(f"{provider} failed ({status}){detail}", status=status,
                                   retry_after_s=retry_after(headers))
    return ProviderRejected(f"{provider} refused the request ({status}){detail}", status=status)


async def _post(client: httpx.AsyncClient, provider: str, url: str, *,
                secrets: Sequence[str | None] = (), **kwargs: object) -> httpx.Response:
    try:
        response = await client.post(url, **kwargs)  # type: ignore[arg-type]
    except httpx.TimeoutException as exc:
        raise ProviderTimeout(f"{provider} did not answer in time ({type(exc).__name__})") \
            from None
    except httpx.TransportError as exc:
        raise ProviderUnavailable(f"could not reach {provider} ({redact(str(exc), secrets)})") \
            from None
    if response.status_code >= 400:
        raise status_error(provider, response.status_code, response.headers, response.text,
                           secrets)
    return response


class _Priced:
    usd_per_character = 0.0
    spoken: Callable[[int], None] | None = None


class EspeakTts(_Priced):
    """espeak-ng, from Debian's packages: robotic but intelligible, instant, and offline."""

    name = "local"
    # Which languages espeak-ng speaks and which voices it has, asked once per process: a
    # renderer makes a new adapter for each job.
    _voices: ClassVar[dict[str, str | None]] = {}
    _listed: ClassVar[dict[str, frozenset[str]]] = {}
    KEPT_LANGUAGES: ClassVar[int] = 256
    """Languages whose answer is kept at most (clients name any tags they like)."""

    def __init__(self, *, voice: str = "en-us", words_per_minute: int = 165,
                 concurrency: int = 2) -> None:
        self._voice = voice
        self._wpm = words_per_minute
        self._concurrency = concurrency

    async def voice_for(self, language: str) -> str | None:
        """espeak-ng's voice for `language` (it names voices by language), None for English
        (the default voice); `VoiceUnavailable` for a language it does not speak, which it
        would read as English."""
        if english(language):
            return None
        voice = await self._language_voice(language.lower())
        if voice is None:
            raise VoiceUnavailable(no_voice_for(language, "local (espeak-ng)"))
        return voice

    async def speaks(self, language: str) -> bool:
        """Whether espeak-ng has a voice for `language` (English it always has)."""
        return english(language) or await self._language_voice(language.lower()) is not None

    async def _language_voice(self, tag: str) -> str | None:
        if tag not in self._voices:
            done = await processes.run(require_tool("espeak-ng"), f"--voices={tag}",
                                       stderr=processes.DEVNULL)
            if done.returncode != 0:  # asked again next time
                raise ProviderUnavailable(f"espeak-ng could not list its voices for {tag!r} "
                                          f"(exit status {done.returncode})")
            listed = done.stdout.decode(errors="replace").splitlines()[1:]  # a header, then a voice a line
            if len(self._voices) >= self.KEPT_LANGUAGES:
                self._voices.clear()
            self._voices[tag] = tag if listed else None
            return tag if listed else None
        return self._voices[tag]

    async def has_voice(self, voice: str) -> bool:
        """Whether espeak-ng has `voice`, whatever its case: a language, name or file name of
        `espeak-ng --voices` (or a language it narrows, as `zh-cn` does `zh`), then perhaps `+`
        and a variant of `--voices=variant`. Anything else (a path) is not one, so it never
        reaches `espeak-ng -v`."""
        name, plus, variant = voice.casefold().partition("+")
        listed = await self._list("")
        parts = name.split("-")
        narrowed = all(p.isascii() and p.isalnum() for p in parts) and any(
            "-".join(parts[:n]) in listed for n in range(len(parts) - 1, 0, -1))
        return (name in listed or narrowed) and (
            not plus or variant in await self._list("variant"))

    async def _list(self, which: str) -> frozenset[str]:
        if which not in self._listed:
            done = await processes.run(require_tool("espeak-ng"),
                                       f"--voices={which}" if which else "--voices",
                                       stderr=processes.DEVNULL)
            if done.returncode != 0:
                return frozenset()  # asked again next time
            self._listed[which] = _voice_names(done.stdout.decode(errors="replace"))
        return self._listed[which]

    async def synthesize(self, text: str, voice: str | None = None) -> Speech:
        binary = require_tool("espeak-ng")
        chosen = voice or self._voice
        if not await self.has_voice(chosen):
            raise VoiceUnavailable(voice_unavailable(chosen, "local (espeak-ng)"))
        await _check_readable(binary, chosen, text)

        async def speak(sentence: str) -> bytes:
            done = await processes.run(binary, "-v", chosen, "-s", str(self._wpm), "--stdout",
                                       "--", sentence)
            if done.returncode != 0 or not done.stdout:
                log.warning("espeak-ng failed", extra={
                    "voice": chosen, "status": done.returncode,
                    "stderr": done.stderr.decode(errors="replace").strip()[-2000:]})
                raise ProviderRejected(f"the local text-to-speech engine (espeak-ng) could not "
                                       f"speak with the voice {chosen!r} (exit status "
                                       f"{done.returncode}; the server's log has its message)")
            return _fix_stream_wav(done.stdout)

        return await per_sentence(text, speak, provider=self.name, voice=chosen,
                                  concurrency=self._concurrency, spoken=self.spoken)

    async def close(self) -> None:
        return None


_OTHER_LANGUAGE = re.compile(r"\(([^\s()]+)\s+\d+\)")


def _voice_names(listing: str) -> frozenset[str]:
    """The names `espeak-ng -v` takes from a `--voices` listing: a header, then a voice a line
    (priority, language, age/gender, name, file, other languages as `(tag priority)`)."""
    names: set[str] = set()
    for line in listing.splitlines()[1:]:
        columns = line.split(maxsplit=5)
        if len(columns) < 5:
            continue
        names.update((columns[1], columns[3], columns[4].rsplit("/", 1)[-1]))
        if len(columns) > 5:
            names.update(_OTHER_LANGUAGE.findall(columns[5]))
    return frozenset(n.casefold() for n in names if n != "variant")


_SWITCH = re.compile(r"\(([a-z][a-z0-9-]*)\)")
_SAMPLE_CHARS = 600
UNREAD_SHARE = 0.2  # of the words: a Japanese text's kanji are more than this


def _foreign(word: str) -> bool:
    """Whether `word` has a letter of a script other than Latin."""
    return any(c.isalpha() and not (c < "\u0250" or "\u1e00" <= c < "\u1f00") for c in word)


def english_share(phonemes: str, voice: str) -> float:
    """The share of the words in espeak-ng's phoneme output (`-x`) for `voice` that it reads
    in English: it switches to English, marking the switch `(en)`, for what the voice has no
    reading of (each kanji is "Chinese letter" in a Japanese voice)."""
    mode = voice
    words = english = 0
    for word in phonemes.split():
        switches = _SWITCH.findall(word)
        words += 1
        english += mode.startswith("en") or any(s.startswith("en") for s in switches)
        mode = switches[-1] if switches else mode
    return english / words if words else 0.0


async def _check_readable(binary: str, voice: str, text: str) -> None:
    """`CannotRead` when espeak-ng's `voice` would read much of `text` in English. Only the
    words of other scripts than Latin are asked about (English code names in a Russian lesson
    are read in English, rightly), the first few hundred characters of them."""
    if voice.lower().startswith("en"):
        return
    sample = " ".join(w for w in text.split() if _foreign(w))[:_SAMPLE_CHARS]
    if not sample:
        return
    done = await processes.run(binary, "-q", "-x", "-v", voice, "--", sample,
                               stderr=processes.DEVNULL)
    if done.returncode == 0 and english_share(done.stdout.decode(errors="replace"),
                                              voice) > UNREAD_SHARE:
        raise CannotRead(
            f"the local voice (espeak-ng, {voice!r}) cannot read this text: it would read many "
            "of its words as English nonsense (it cannot read Japanese kanji or Chinese). "
            "Configure a text-to-speech provider that speaks this language: BLOOP_TTS_PROVIDER "
            "openai, azure (with a voice for the language) or elevenlabs, and its API key")


def _fix_stream_wav(data: bytes) -> bytes:
    """espeak-ng writing to a pipe cannot go back to fill in the WAV sizes; set them."""
    if len(data) < 44 or data[:4] != b"RIFF" or data[36:40] != b"data":
        return data
    size = len(data) - 44
    return (data[:4] + (size + 36).to_bytes(4, "little") + data[8:40]
            + size.to_bytes(4, "little") + data[44:])


class OpenAiTts(_Priced):
    """OpenAI's speech API (`audio.speech.create`), or any server that speaks it."""

    name = "openai"

    def __init__(self, *, api_key: str | None = None, base_url: str | None = None,
                 model: str = "gpt-4o-mini-tts", voice: str = "alloy", timeout_s: float = 60.0,
                 concurrency: int = 4) -> None:
        self._client = AsyncOpenAI(api_key=api_key or "unused", base_url=base_url,
                                   timeout=timeout_s, max_retries=0)
        self._secrets = (api_key, url_password(base_url) if base_url else None)
        self._model = model
        self._voice = voice
        self._concurrency = concurrency

    async def synthesize(self, text: str, voice: str | None = None) -> Speech:
        chosen = voice or self._voice

        async def speak(sentence: str) -> bytes:
            try:
                response = await self._client.audio.speech.create(
                    model=self._model, voice=chosen, input=sentence, response_format="wav")
            except openai.APITimeoutError:
                raise ProviderTimeout("OpenAI speech did not answer in time") from None
            except openai.APIConnectionError as exc:
                raise ProviderUnavailable("could not reach OpenAI speech "
                                          f"({redact(str(exc), self._secrets)})") from None
            except openai.APIStatusError as exc:
                raise status_error("OpenAI speech", exc.status_code, exc.response.headers,
                                   provider_said(exc, self._secrets), self._secrets) from None
            return _fix_stream_wav(response.content)

        return await per_sentence(text, speak, provider=self.name, voice=chosen,
                                  concurrency=self._concurrency, spoken=self.spoken)

    async def voice_for(self, language: str) -> str | None:
        return None  # its voices speak many languages

    async def close(self) -> None:
        await self._client.close()


class AzureTts(_Priced):
    """Azure AI Speech's REST API (`cognitiveservices/v1`, SSML in, 24 kHz PCM WAV out)."""

    name = "azure"

    def __init__(self, *, api_key: str, region: str = "westeurope", endpoint: str | None = None,
                 voice: str = "en-US-JennyNeural", timeout_s: float = 60.0,
                 concurrency: int = 4) -> None:
        self._url = (endpoint or f"https://{region}.tts.speech.microsoft.com").rstrip("/") \
            + "/cognitiveservices/v1"
        self._client = httpx.AsyncClient(timeout=timeout_s, headers={
            "Ocp-Apim-Subscription-Key": api_key, "User-Agent": "bloop",
            "Content-Type": "application/ssml+xml",
            "X-Microsoft-OutputFormat": "riff-24khz-16bit-mono-pcm"})
        self._voice = voice
        self._concurrency = concurrency
        self._secrets = (api_key,)

    def _ssml(self, sentence: str, voice: str) -> str:
        lang = "-".join(voice.split("-")[:2]) or "en-US"
        return (f"<speak version='1.0' xml:lang='{escape(lang)}'>"
                f"<voice name='{escape(voice)}'>{escape(sentence)}</voice></speak>")

    async def synthesize(self, text: str, voice: str | None = None) -> Speech:
        chosen = voice or self._voice

        async def speak(sentence: str) -> bytes:
            response = await _post(self._client, "Azure Speech", self._url,
                                   secrets=self._secrets,
                                   content=self._ssml(sentence, chosen).encode())
            return response.content

        return await per_sentence(text, speak, provider=self.name, voice=chosen,
                                  concurrency=self._concurrency, spoken=self.spoken)

    async def voice_for(self, language: str) -> str | None:
        return None  # a voice per locale: a job names one for a language other than the default's

    async def close(self) -> None:
        await self._client.aclose()


class ElevenLabsTts(_Priced):
    """ElevenLabs' `text-to-speech/{voice}/with-timestamps`: raw 24 kHz PCM and the start
    and end of every character, which place the sentences."""

    name = "elevenlabs"
    rate = 24_000

    def __init__(self, *, api_key: str, base_url: str = "https://api.elevenlabs.io",
                 voice: str = "21m00Tcm4TlvDq8ikWAM", model: str = "eleven_multilingual_v2",
                 timeout_s: float = 120.0) -> None:
        self._base = base_url.rstrip("/")
        self._client = httpx.AsyncClient(timeout=timeout_s, headers={"xi-api-key": api_key})
        self._secrets = (api_key, url_password(base_url))
        self._voice = voice
        self._model = model

    async def synthesize(self, text: str, voice: str | None = None) -> Speech:
        chosen = voice or self._voice
        sentences = split_sentences(text)
        if not sentences:
            raise NothingToSay("there is no text to speak")
        spoken = " ".join(sentences)
        response = await _post(
            self._client, "ElevenLabs", f"{self._base}/v1/text-to-speech/{chosen}/with-timestamps",
            secrets=self._secrets, params={"output_format": f"pcm_{self.rate}"},
            json={"text": spoken, "model_id": self._model})
        if self.spoken is not None:
            self.spoken(len(spoken))
        try:
            body = response.json()
            pcm = base64.b64decode(body["audio_base64"])
            align = body.get("alignment") or {}
            starts = [float(t) for t in align.get("character_start_times_seconds", [])]
            ends = [float(t) for t in align.get("character_end_times_seconds", [])]
        except (ValueError, KeyError, TypeError) as exc:
            raise ProviderUnavailable(f"ElevenLabs answered in an unexpected shape ({exc})") \
                from None
        duration = round(len(pcm) / 2 / self.rate, 3)
        timings: list[Timing] = []
        offset = 0
        for sentence in sentences:
            first, last = offset, offset + len(sentence) - 1
            offset += len(sentence) + 1
            if last < len(starts) and last < len(ends):
                timings.append(Timing(round(starts[first], 3), round(ends[last], 3), sentence))
            else:  # no alignment: place the sentence by its share of the characters
                timings.append(Timing(round(duration * first / len(spoken), 3),
                                      round(duration * (last + 1) / len(spoken), 3), sentence))
        return Speech(wav=wav_bytes(pcm, self.rate), sample_rate=self.rate, duration_s=duration,
                      sentences=tuple(timings), provider=self.name, voice=chosen)

    async def voice_for(self, language: str) -> str | None:
        return None  # its voices speak many languages

    async def close(self) -> None:
        await self._client.aclose()


class TtsSettings(BaseSettings):
    """The platform's text-to-speech provider; a tenant's own settings may replace these.
    `auto` takes the first provider with a key (OpenAI, Azure, ElevenLabs), else espeak-ng."""

    model_config = SettingsConfigDict(env_prefix="BLOOP_TTS_", extra="ignore", frozen=True)

    provider: Literal["auto", "local", "openai", "azure", "elevenlabs"] = "auto"
    voice: str | None = Field(default=None, max_length=100)
    timeout_s: float = Field(default=60.0, gt=0, le=600)
    local_words_per_minute: int = Field(default=165, ge=80, le=400)
    openai_api_key: SecretStr | None = None
    openai_base_url: HttpUrlText | None = None
    openai_model: str = "gpt-4o-mini-tts"
    azure_api_key: SecretStr | None = None
    azure_region: str = "westeurope"
    azure_endpoint: HttpUrlText | None = None
    elevenlabs_api_key: SecretStr | None = None
    elevenlabs_base_url: HttpUrlText = "https://api.elevenlabs.io"
    elevenlabs_model: str = "eleven_multilingual_v2"
    usd_per_million_characters: float | None = Field(default=None, ge=0, le=10_000)
    """What the chosen provider charges; None: its list price (`PRICES`)."""

    def chosen(self) -> TtsProvider:
        if self.provider != "auto":
            return self.provider
        if self.openai_api_key is not None:
            return "openai"
        if self.azure_api_key is not None:
            return "azure"
        if self.elevenlabs_api_key is not None:
            return "elevenlabs"
        return "local"


def _key(value: SecretStr | None, provider: str) -> str:
    if value is None:
        raise ProviderRejected(f"text-to-speech provider {provider} is chosen but has no API key")
    return value.get_secret_value()


PRICES: dict[TtsProvider, float] = {"local": 0.0, "openai": 15.0, "azure": 16.0,
                                     "elevenlabs": 200.0}
"""List prices in USD a million characters (late 2026): OpenAI's tts-1, about what
gpt-4o-mini-tts costs at 15 characters a second; Azure's neural voices; ElevenLabs at its Pro
plan's rate. A deployment with other terms sets `BLOOP_TTS_USD_PER_MILLION_CHARACTERS`."""


def make_tts(settings: TtsSettings) -> Tts:
    """The adapter `settings` choose, priced."""
    provider = settings.chosen()
    adapter = _adapter(settings, provider)
    price = (settings.usd_per_million_characters if settings.usd_per_million_characters
             is not None and provider != "local" else PRICES[provider])
    adapter.usd_per_character = price / 1e6
    return adapter


def _adapter(settings: TtsSettings, provider: TtsProvider) -> Tts:
    if provider == "openai":
        return OpenAiTts(api_key=_key(settings.openai_api_key, provider),
                         base_url=settings.openai_base_url, model=settings.openai_model,
                         voice=settings.voice or "alloy", timeout_s=settings.timeout_s)
    if provider == "azure":
        return AzureTts(api_key=_key(settings.azure_api_key, provider),
                        region=settings.azure_region, endpoint=settings.azure_endpoint,
                        voice=settings.voice or "en-US-JennyNeural", timeout_s=settings.timeout_s)
    if provider == "elevenlabs":
        return ElevenLabsTts(api_key=_key(settings.elevenlabs_api_key, provider),
                             base_url=settings.elevenlabs_base_url, model=settings.elevenlabs_model,
                             voice=settings.voice or "21m00Tcm4TlvDq8ikWAM",
                             timeout_s=settings.timeout_s)
    return EspeakTts(voice=settings.voice or "en-us",
                     words_per_minute=settings.local_words_per_minute)
