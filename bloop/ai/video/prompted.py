"""A video script from a prompt: the LLM port asked for the scenes as JSON following the script's
own schema, validated here, and asked again with the validation error when it does not hold (the
text generator's `ask_json`).
Equations the model writes in TeX are set as Unicode maths, as the extractive script does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bloop.ai.providers.llm import ChatMessage, Llm, Usage
from bloop.ai.text.generator import ask_json
from bloop.ai.video.script import EquationScene, Scene, VideoScript, unicode_math

SYSTEM = (
    "You write the script of a short narrated explainer video for learners. Answer with JSON "
    "following the schema. Scenes, in order: one `title` scene first, then `key_points` "
    "(2 to 5 short points), `equation` (plain Unicode maths such as E = mc² or "
    "6CO₂ + 6H₂O → C₆H₁₂O₆ + 6O₂, never LaTeX), `diagram` (2 to 8 boxes with short names; "
    "every arrow joins two of those boxes) and `code` (a listing of at most 15 lines) where "
    "they help. Every scene has a `narration`: one to three plain spoken sentences, no "
    "markdown, no symbols to pronounce. Keep on-screen text short; the narration explains.")


class ScriptAnswer(BaseModel):
    """What the model is asked for: the script without its bookkeeping."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=120)
    scenes: list[Scene] = Field(min_length=1, max_length=60)


@dataclass(frozen=True)
class PromptedScript:
    script: VideoScript
    model: str
    usage: Usage
    attempts: int


def answer_schema() -> dict[str, Any]:
    """`ScriptAnswer`'s JSON Schema with the scene union as `anyOf` (structured outputs take
    no `oneOf` nor `discriminator`; each scene's `kind` constant tells them apart)."""

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(n) for n in node]
        if not isinstance(node, dict):
            return node
        return {("anyOf" if k == "oneOf" else k): walk(v) for k, v in node.items()
                if k != "discriminator"}

    schema: dict[str, Any] = walk(ScriptAnswer.model_json_schema())
    return schema


def _script(answer: ScriptAnswer, max_scenes: int) -> VideoScript:
    scenes = [s.model_copy(update={"equation": unicode_math(s.equation)})
              if isinstance(s, EquationScene) else s for s in answer.scenes[:max_scenes]]
    return VideoScript(title=answer.title, scenes=scenes, source="llm")


async def script_from_prompt(llm: Llm, prompt: str, *, source_text: str = "",
                             language: str = "en", max_scenes: int = 8, seconds: int = 60,
                             max_attempts: int = 3) -> PromptedScript:
    """A script for a video of about `seconds` on `prompt` (drawing on `source_text`, a
    lesson's markdown, when given), written in `language` (a BCP 47 tag), which it is narrated
    in. Raises `InvalidOutput` when the model's answers never validate, `ModelRefused` when
    it refuses, and the port's other `ProviderError`s, each with the tokens spent."""
    words = round(seconds * 2.5)
    ask = (f"Make a video of about {seconds} seconds ({words} spoken words in all, at most "
           f"{max_scenes} scenes) about: {prompt.strip()}")
    ask += (f"\n\nWrite every title, on-screen text and narration in the language whose BCP 47 "
            f"tag is `{language}`, whatever the language of this request.")
    if source_text.strip():
        ask += f"\n\nBase it on this lesson, in its own words where you can:\n\n{source_text}"
    messages = [ChatMessage("system", SYSTEM), ChatMessage("user", ask)]
    made = await ask_json(
        llm, messages, "VideoScriptAnswer", answer_schema(),
        lambda text: _script(ScriptAnswer.model_validate_json(text), max_scenes),
        attempts=max_attempts, problem=_problems,
        again="Answer again with the whole script, fixed.",
        stayed="the model's video script was invalid {tries} times; last: {last}")
    return PromptedScript(script=made.value, model=made.model, usage=made.usage,
                          attempts=made.attempts)


def _problems(exc: Exception) -> str:
    if not isinstance(exc, ValidationError):
        return str(exc)
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:8])
