"""A stand-in for OpenAI's chat completions API on 127.0.0.1, answering with the shapes the real
API answers with (recorded bodies: a completion with usage, 429 with `retry-after`, the
`insufficient_quota` 429, 500, 401 with the key masked), optionally after a delay (for timeouts
and slow jobs). `KEY` in a scripted body is replaced by the key the request was sent with, as an
OpenAI-compatible server that echoes it back whole answers (`ECHOED_KEY`).

Scripted replies are used first, in order; after them it answers every request with valid JSON
for the schema the request names (`response_format.json_schema.name`)."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    content: str | None = None
    body: dict[str, Any] | None = None
    raw: bytes | None = None  # the body as it is sent, instead of JSON
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    finish_reason: str = "stop"
    prompt_tokens: int = 1117
    completion_tokens: int = 246


def completion(content: str | None, *, model: str = "gpt-4o-mini-2024-07-18", finish_reason: str = "stop",
               prompt_tokens: int = 1117, completion_tokens: int = 246) -> dict[str, Any]:
    return {
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG", "object": "chat.completion",
        "created": 1741570283, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content,
                                             "refusal": None, "annotations": []},
                     "logprobs": None, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens,
                  "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                                "accepted_prediction_tokens": 0,
                                                "rejected_prediction_tokens": 0}},
        "service_tier": "default", "system_fingerprint": "fp_06737a9306",
    }


RATE_LIMITED = Reply(429, body={"error": {
    "message": "Rate limit reached for gpt-4o-mini in organization org-abc on tokens per min "
               "(TPM): Limit 200000, Used 199000, Requested 1500. Please try again in 150ms.",
    "type": "tokens", "param": None, "code": "rate_limit_exceeded"}},
    headers={"retry-after": "0.2", "x-ratelimit-limit-tokens": "200000",
             "x-ratelimit-remaining-tokens": "1000", "x-ratelimit-reset-tokens": "150ms"})
NO_QUOTA = Reply(429, body={"error": {
    "message": "You exceeded your current quota, please check your plan and billing details.",
    "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}})
SERVER_ERROR = Reply(500, body={"error": {
    "message": "The server had an error while processing your request. Sorry about that!",
    "type": "server_error", "param": None, "code": None}})
BAD_KEY = Reply(401, body={"error": {
    "message": "Incorrect API key provided: sk-abc. You can find your API key at "
               "https://platform.openai.com/account/api-keys.",
    "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}})
KEY = "<<the request's key>>"
MASKED_KEY = Reply(401, body={"error": {  # OpenAI, a longer key: shown masked, with its end
    "message": "Incorrect API key provided: sk-proj-************************************"
               "********yZ4A. You can find your API key at "
               "https://platform.openai.com/account/api-keys.",
    "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}})
ECHOED_KEY = Reply(401, body={"error": {  # an OpenAI-compatible server: the key whole
    "message": f"Authentication Error, Invalid proxy server token passed. Received API Key = "
               f"{KEY}, Key Hash (Token) = 9f2c1e. Unable to find token in cache or "
               f"`LiteLLM_VerificationTokenTable` (header was 'Authorization: Bearer {KEY}')",
    "type": "auth_error", "param": "None", "code": "401"}})


def valid_answer(schema_name: str, prompt: str) -> dict[str, Any]:
    concepts = re.search(r"else null: ([^.]*)\.", prompt)
    concept = concepts.group(1).split(", ")[0] if concepts else None
    if schema_name == "SummaryAnswer":
        return {"summary": "A variable names a value; assignment binds it.",
                "key_points": ["A name refers to a value.", "Assignment rebinds a name."]}
    if schema_name == "SimplerAnswer":
        return {"text": "A name points at a value. `x = 1` makes x point at 1."}
    if schema_name == "QuizAnswer":
        return {"title": "Names and values", "questions": [
            {"type": "single_choice", "prompt": "What does `b = a` do?",
             "options": [{"text": "Makes b refer to a's object", "correct": True,
                          "feedback": "Yes: no copy is made."},
                         {"text": "Copies a into b", "correct": False,
                          "feedback": "No: names refer, they do not copy."}],
             "answer": None, "accepted": [], "feedback_correct": "Right.",
             "feedback_incorrect": "Names refer to objects."},
            {"type": "true_false", "prompt": "Assignment is an equation.", "options": [],
             "answer": False, "accepted": [], "feedback_correct": "Right.",
             "feedback_incorrect": "It binds a name."},
            {"type": "short_text", "prompt": "Which statement binds a name to a value?",
             "options": [], "answer": None, "accepted": ["assignment", "an assignment"],
             "feedback_correct": "Yes.", "feedback_incorrect": "An assignment does."}]}
    if schema_name == "FlashcardsAnswer":
        return {"cards": [{"front": "What is a variable?", "back": "A name for a value.",
                           "concept": concept},
                          {"front": "Does b = a copy?", "back": "No, both names refer to one "
                           "object.", "concept": None}]}
    raise AssertionError(f"unknown schema {schema_name}")


class FakeOpenAI:
    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.default_delay_s = 0.0
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                with fake._lock:
                    fake.requests.append({"path": self.path, **body})
                    fake.headers.append({k.lower(): v for k, v in self.headers.items()})
                    reply = fake.replies.popleft() if fake.replies else None
                if reply is None:
                    name = body.get("response_format", {}).get("json_schema", {}).get("name", "")
                    prompt = body["messages"][-1]["content"]
                    reply = Reply(content=json.dumps(valid_answer(name, prompt)),
                                  delay_s=fake.default_delay_s)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                payload = reply.body if reply.body is not None else completion(
                    reply.content or "", finish_reason=reply.finish_reason,
                    prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens)
                sent = self.headers.get("authorization", "").removeprefix("Bearer ")
                raw = reply.raw if reply.raw is not None else \
                    json.dumps(payload).replace(KEY, sent).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", reply.content_type)
                    self.send_header("content-length", str(len(raw)))
                    self.send_header("openai-processing-ms", "412")
                    self.send_header("x-request-id", "req_7c2b7a7b4ee2d10f1b9e1e5b0c1f2a3d")
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):
                    return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self.replies.extend(replies)

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
