"""The LLM port and its adapter for any OpenAI-compatible chat API: OpenAI itself, or a local
vLLM or Ollama server through a base URL. Answers are structured: the request names a JSON
Schema (`response_format: json_schema`) and the caller validates what comes back.

Provider failures are sorted into transient ones (timeouts, 429 rate limits, 5xx, lost
connections), which a job retries with back-off, and permanent ones (a refused key, a bad
request, an exhausted account), which fail the job at once. What a provider says about a
failure is kept (its status, its error type and code, its message) with anything shaped like a
credential taken out first (`redact`): providers echo the key they were given, OpenAI masked
(`sk-...abcd`), an OpenAI-compatible server sometimes whole, and the message ends up in the
job's errors, its `failed` event, the data export and the logs.

A 2xx answer that is not a chat completion (a cut-off or non-UTF-8 body, an HTML page, a message
whose content is not text) is a transient failure too, as a 5xx is. A model's refusal and a
provider's content filter are permanent ones with their own codes (`model_refused`,
`content_filtered`): asking again is paid for and answered alike. Token counts are never below
0, and an answer without them is charged an estimate (`estimate_tokens`), never nothing.
"""

from __future__ import annotations

import copy
import email.utils
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, cast

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion, ChatCompletionMessage, ChatCompletionMessageParam
from openai.types.chat.chat_completion import Choice
from openai.types.shared_params import ResponseFormatJSONSchema

from bloop.platform.kit.urls import url_password

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.prompt_tokens + other.prompt_tokens,
                     self.completion_tokens + other.completion_tokens)


@dataclass(frozen=True)
class LlmReply:
    text: str
    model: str
    usage: Usage
    finish_reason: str = "stop"


@dataclass(frozen=True)
class Pricing:
    """USD per million prompt and completion tokens."""

    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0

    def cost(self, usage: Usage) -> float:
        return round((usage.prompt_tokens * self.input_per_mtok
                      + usage.completion_tokens * self.output_per_mtok) / 1_000_000, 8)


class ProviderError(Exception):
    """A provider call that failed. `transient` ones are worth retrying (after
    `retry_after_s` when the provider said so)."""

    code = "provider_error"
    transient = False

    def __init__(self, message: str, *, retry_after_s: float | None = None,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.status = status
        self.usage = Usage()  # tokens spent before it failed (an invalid answer still costs)


class ProviderTimeout(ProviderError):
    code, transient = "provider_timeout", True


class ProviderRateLimited(ProviderError):
    code, transient = "provider_rate_limited", True


class ProviderUnavailable(ProviderError):
    code, transient = "provider_unavailable", True


class ProviderRejected(ProviderError):
    code = "provider_rejected"


class ModelRefused(ProviderRejected):
    """The model declined to answer (the message's `refusal`)."""

    code = "model_refused"


class ContentFiltered(ProviderRejected):
    """The provider's content filter stopped the answer (`finish_reason: content_filter`)."""

    code = "content_filtered"


class Llm(Protocol):
    @property
    def model(self) -> str: ...

    @property
    def pricing(self) -> Pricing: ...

    async def complete_json(self, messages: Sequence[ChatMessage], schema_name: str,
                            schema: dict[str, Any], *, max_tokens: int = 4000) -> LlmReply:
        """The model's answer to `messages`, asked to follow `schema`. The text is not checked
        here. Raises a `ProviderError`: `ModelRefused` or `ContentFiltered` (with the usage of
        that answer) when the model would not answer."""

    async def close(self) -> None: ...


_KEEP = {"type", "properties", "required", "items", "enum", "anyOf", "$defs", "$ref",
         "additionalProperties", "description", "const"}


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON Schema reduced to what OpenAI's strict structured outputs (and the
    OpenAI-compatible servers) accept: every object closed with every property required, and
    no keywords beyond the basic ones. Lengths and bounds are checked on our side after."""

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(n) for n in node]
        if not isinstance(node, dict):
            return node
        out = {k: walk(v) if k not in ("properties", "$defs") else
               {name: walk(sub) for name, sub in v.items()}
               for k, v in node.items() if k in _KEEP}
        if out.get("type") == "object" or "properties" in out:
            out["type"] = "object"
            out["additionalProperties"] = False
            out["required"] = list(out.get("properties", {}))
        return out

    result: dict[str, Any] = walk(copy.deepcopy(schema))
    return result


def retry_after(headers: Mapping[str, str]) -> float | None:
    """The wait a provider asks for, in seconds, from `retry-after-ms` or `retry-after` (a
    number of seconds or an HTTP date); a value that is no finite wait is not one."""
    for name in ("retry-after-ms", "retry-after"):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value)
        except ValueError:
            seconds = _seconds_until(value) if name == "retry-after" else math.nan
        if math.isfinite(seconds):
            return max(0.0, seconds / 1000 if name.endswith("-ms") else seconds)
    return None


def _seconds_until(http_date: str) -> float:
    try:
        at = email.utils.parsedate_to_datetime(http_date)
    except (TypeError, ValueError):
        return math.nan
    if at.tzinfo is None:
        return math.nan
    return (at - datetime.now(UTC)).total_seconds()


REDACTED = "[redacted]"


def _scheme_value(found: re.Match[str]) -> str:
    """An Authorization header's value redacted, unless it reads as a word ("Bearer
    authentication failed"): a token has a digit or a sign, or capitals inside it."""
    value = found.group(3)
    if value.isalpha() and value[1:].islower() and len(value) < 20:
        return found.group(0)
    return f"{found.group(1)}{found.group(2)}{REDACTED}"


_CREDENTIALS: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    # an Authorization header's value, as servers echo it
    (re.compile(r"\b(Bearer|bearer|BEARER|Basic|BASIC)(\s+|=)"
                r"([A-Za-z0-9._~+/=*-]*[A-Za-z0-9_~+/=*-])"), _scheme_value),
    # keys by their prefixes: OpenAI's and Anthropic's (sk-, sk-proj-, sk-ant-, masked or
    # not), ElevenLabs' (sk_), Groq's (gsk_)
    (re.compile(r"\b(?:sk|rk|gsk)[-_][A-Za-z0-9_*.-]*[A-Za-z0-9_*]"), REDACTED),
    # `api_key=...`, `"password": "..."`, `x-api-key: ...`
    (re.compile(r"(?i)\b((?:x-)?api[-_ ]?key|access[-_ ]?token|secret|password|passwd"
                r"|authorization|subscription[-_ ]?key)([\"']?\s*[:=]\s*[\"']?)"
                r"(?!(?i:bearer|basic)\s|\[redacted\])[^\s\"',;}]+"), rf"\1\2{REDACTED}"),
    # a user name and password in a web address
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s@]*@"), r"\1***@"),
    # long opaque tokens (32 characters and more, letters and digits mixed)
    (re.compile(r"\b(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{32,}\b"),
     REDACTED),
)


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` without the `secrets` given (a configured key, a password; those of fewer than 6
    characters are too short to tell from words and left alone) nor anything shaped like a key
    or a bearer token."""
    for secret in sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    for pattern, replacement in _CREDENTIALS:
        text = pattern.sub(replacement, text)
    return text


def _error_field(exc: openai.APIStatusError, name: str) -> str | None:
    """The provider's error `type` or `code`: `{"error": {...}}` or the error itself."""
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get(name) is not None:
            return str(inner[name])
    return None


def _error_code(exc: openai.APIStatusError) -> str | None:
    return _error_field(exc, "code")


def provider_said(exc: openai.APIStatusError, secrets: Iterable[str | None] = (),
                  limit: int = 300) -> str:
    """What a provider said with an error status, credentials taken out: its error type and
    code, then its message (`invalid_request_error/invalid_api_key: Incorrect API key
    provided: [redacted]. …`); "" when it said nothing."""
    kinds = "/".join(dict.fromkeys(k for k in (_error_field(exc, "type"), _error_code(exc))
                                   if k))
    body = exc.body
    inner = body.get("error", body) if isinstance(body, dict) else body
    said: object = (inner.get("message") or inner.get("detail")) if isinstance(inner, dict) \
        else inner
    if not isinstance(said, str):
        said = "" if said is None else json.dumps(said, default=str)
    said = " ".join(redact(said, secrets).split())
    if len(said) > limit:
        said = said[:limit] + "…"
    kinds = redact(kinds[:200], secrets)
    return f"{kinds}: {said}" if kinds and said else kinds or said


def status_detail(exc: openai.APIStatusError, secrets: Iterable[str | None] = ()) -> str:
    """The status and what the provider said with it (`401 invalid_api_key: …`)."""
    said = provider_said(exc, secrets)
    return f"{exc.status_code} {said}" if said else str(exc.status_code)


def estimate_tokens(*texts: str) -> int:
    """Tokens for `texts` when a provider does not say: one for every 4 ASCII characters (as
    OpenAI's tokenizers average on English) and one for every other character (a CJK character
    is about one), so rather more than fewer."""
    ascii_chars = sum(len(t.encode("ascii", "ignore")) for t in texts)
    other = sum(len(t) for t in texts) - ascii_chars
    return math.ceil(ascii_chars / 4) + other


def _count(value: object) -> int | None:
    return max(value, 0) if isinstance(value, int) and not isinstance(value, bool) else None


def _usage(usage: object) -> Usage | None:
    """The usage a provider reported, a negative count as 0; None when it reported none."""
    prompt = _count(getattr(usage, "prompt_tokens", None))
    completion = _count(getattr(usage, "completion_tokens", None))
    if usage is None or prompt is None or completion is None:
        return None
    return Usage(prompt, completion)


def _spent(error: ProviderError, usage: Usage | None) -> ProviderError:
    error.usage = usage or Usage()
    return error


def _malformed(what: str) -> ProviderUnavailable:
    return ProviderUnavailable(f"the provider's answer is not a chat completion ({what})")


class OpenAiLlm:
    """Chat completions through the `openai` package. The package's own retries are off: a
    job decides when to try again, so attempts and waits are recorded on it."""

    def __init__(self, *, model: str, api_key: str | None = None, base_url: str | None = None,
                 timeout_s: float = 60.0, pricing: Pricing | None = None) -> None:
        self._model = model
        self._pricing = pricing or Pricing()
        self._secrets = (api_key, url_password(base_url) if base_url else None)
        # Local servers (vLLM, Ollama) take any key; the client insists on one.
        self._client = AsyncOpenAI(api_key=api_key or "unused", base_url=base_url,
                                   timeout=timeout_s, max_retries=0)

    @property
    def model(self) -> str:
        return self._model

    @property
    def pricing(self) -> Pricing:
        return self._pricing

    async def complete_json(self, messages: Sequence[ChatMessage], schema_name: str,
                            schema: dict[str, Any], *, max_tokens: int = 4000) -> LlmReply:
        try:
            response = await self._client.chat.completions.create(
                model=self._model,
                messages=cast("list[ChatCompletionMessageParam]",
                              [{"role": m.role, "content": m.content} for m in messages]),
                response_format=cast("ResponseFormatJSONSchema", {
                    "type": "json_schema", "json_schema": {
                        "name": schema_name, "schema": strict_schema(schema), "strict": True}}),
                max_completion_tokens=max_tokens,
                temperature=0.2,
            )
        except openai.APITimeoutError as exc:
            raise ProviderTimeout(f"the model did not answer in time "
                                  f"({redact(str(exc), self._secrets)})") from None
        except openai.APIConnectionError as exc:
            raise ProviderUnavailable(f"could not reach the model's server "
                                      f"({redact(str(exc), self._secrets)})") from None
        except openai.RateLimitError as exc:
            if _error_code(exc) == "insufficient_quota":
                raise ProviderRejected("the provider account has no quota left "
                                       f"({status_detail(exc, self._secrets)})",
                                       status=429) from None
            raise ProviderRateLimited("the provider is rate limiting us "
                                      f"({status_detail(exc, self._secrets)})",
                                      retry_after_s=retry_after(exc.response.headers),
                                      status=429) from None
        except json.JSONDecodeError:
            raise _malformed("a body that is cut off or not JSON") from None
        except UnicodeDecodeError:
            raise _malformed("a body that is not UTF-8") from None
        except openai.APIResponseValidationError:
            raise _malformed("a body of another shape") from None
        except openai.APIStatusError as exc:
            if exc.status_code >= 500 or exc.status_code in (408, 409):
                raise ProviderUnavailable(
                    f"the provider failed ({status_detail(exc, self._secrets)})",
                    status=exc.status_code,
                    retry_after_s=retry_after(exc.response.headers)) from None
            raise ProviderRejected("the provider refused the request "
                                   f"({status_detail(exc, self._secrets)})",
                                   status=exc.status_code) from None
        return self._reply(response, messages, schema)

    def _reply(self, response: object, messages: Sequence[ChatMessage],
               schema: dict[str, Any]) -> LlmReply:
        """The reply in `response`, as the `openai` package left it: it returns the text of a
        body that is not JSON, and builds a completion without checking its fields' types."""
        if isinstance(response, str):
            raise _malformed(f"a body that is not JSON: {self._snippet(response)}")
        if not isinstance(response, ChatCompletion):
            raise _malformed("a body of another shape")
        reported = _usage(response.usage)
        choices: object = response.choices
        if not isinstance(choices, list) or not choices:
            raise _spent(ProviderUnavailable("the provider answered with no choice"), reported)
        choice = choices[0]
        if not isinstance(choice, Choice) or not isinstance(choice.message,
                                                            ChatCompletionMessage):
            raise _spent(_malformed("a choice without a message"), reported)
        content: object = choice.message.content
        refusal: object = getattr(choice.message, "refusal", None)
        if not isinstance(content, str | None) or not isinstance(refusal, str | None):
            raise _spent(_malformed("a message whose content is not text"), reported)
        usage = reported or Usage(
            estimate_tokens(*(m.content for m in messages), json.dumps(schema)),
            estimate_tokens(content or "", refusal or ""))
        finish = choice.finish_reason if isinstance(choice.finish_reason, str) else "stop"
        if refusal:
            failed: ProviderError = ModelRefused(f"the model refused: {self._snippet(refusal)}")
        elif finish == "content_filter":
            failed = ContentFiltered("the provider's content filter stopped the model's answer")
        else:
            model = response.model if isinstance(response.model, str) and response.model \
                else self._model
            return LlmReply(text=content or "", model=model, usage=usage, finish_reason=finish)
        raise _spent(failed, usage)

    def _snippet(self, text: str, limit: int = 200) -> str:
        said = " ".join(redact(text, self._secrets).split())
        return said[:limit] + "…" if len(said) > limit else said

    async def close(self) -> None:
        await self._client.close()
