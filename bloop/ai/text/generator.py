"""The text generator port, and its LLM implementation: each answer is asked for as JSON
following a schema, validated (a quiz against content's own quiz model), and asked for again
with the validation error when it does not hold, a few times at most (`ask_json`, which the
video script from a prompt uses too). An answer cut off at the token limit is asked for once
more, with twice the limit, and not again. Whatever fails, the tokens spent so far go with the
error (`ProviderError.usage`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from bloop.ai.providers.llm import ChatMessage, Llm, ProviderError, Usage
from bloop.ai.text.model import (
    CardAnswer,
    Flashcard,
    FlashcardsAnswer,
    FlashcardSet,
    Generated,
    LessonText,
    QuestionAnswer,
    QuizAnswer,
    QuizDraft,
    SimplerAnswer,
    Simplified,
    Summary,
    SummaryAnswer,
)
from bloop.platform.content.model import Level
from bloop.platform.content.quiz import QuizBlock

A = TypeVar("A", bound=BaseModel)
R = TypeVar("R")

MAX_TOKENS = 4000
ECHOED = 20_000  # characters of an invalid answer sent back to the model with its problem


class InvalidOutput(ProviderError):
    """The model kept answering with something that is not valid (not JSON, not the schema,
    or a quiz content would refuse)."""

    code = "invalid_output"


class TextGenerator(Protocol):
    async def summary(self, lesson: LessonText, *, instructions: str = "") -> Generated[Summary]: ...

    async def simpler(self, lesson: LessonText, level: Level, *,
                      instructions: str = "") -> Generated[Simplified]: ...

    async def quiz(self, lesson: LessonText, count: int, *, quiz_id: str,
                   instructions: str = "") -> Generated[QuizDraft]:
        """A quiz block with the id `quiz_id`."""

    async def flashcards(self, lesson: LessonText, count: int, *,
                         instructions: str = "") -> Generated[FlashcardSet]: ...


def _question(n: int, q: QuestionAnswer) -> dict[str, object]:
    out: dict[str, object] = {
        "id": f"q{n}", "type": q.type, "prompt": q.prompt,
        "feedback": {"correct": q.feedback_correct, "incorrect": q.feedback_incorrect}}
    if q.type in ("single_choice", "multiple_choice"):
        out["options"] = [{"id": f"o{i}", "text": o.text, "correct": o.correct,
                           "feedback": o.feedback} for i, o in enumerate(q.options, 1)]
    elif q.type == "true_false":
        if q.answer is None:
            raise ValueError(f"question q{n}: a true_false question needs an answer")
        out["answer"] = q.answer
    else:
        out["accepted"] = q.accepted
    return out


def quiz_block(quiz_id: str, answer: QuizAnswer) -> QuizBlock:
    """The answer as content's quiz block `quiz_id`, with its questions' ids assigned;
    `ValidationError` or `ValueError` when content's quiz rules refuse it (no correct option,
    duplicate options, …)."""
    return QuizBlock.model_validate({
        "id": quiz_id, "title": answer.title,
        "questions": [_question(n, q) for n, q in enumerate(answer.questions, 1)]})


def all_asked(answer: QuizAnswer, count: int) -> QuizAnswer:
    """The first `count` questions of `answer`; fewer is an invalid answer (asked again)."""
    if len(answer.questions) < count:
        raise ValueError(f"the quiz has {len(answer.questions)} questions; {count} were asked "
                         "for")
    return answer.model_copy(update={"questions": answer.questions[:count]})


def cards(lesson: LessonText, answer: list[CardAnswer]) -> list[Flashcard]:
    known = set(lesson.concepts)
    return [Flashcard(front=c.front, back=c.back,
                      concept_id=c.concept if c.concept in known else None) for c in answer]


def _problem(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "answer"
        return f"{where}: {first['msg']}"
    return str(exc)


@dataclass(frozen=True)
class Asked(Generic[R]):
    value: R
    usage: Usage
    model: str
    attempts: int


AGAIN = "Answer again with JSON that follows the schema."
STAYED = "the model's answer stayed invalid after {tries} tries: {last}"


async def ask_json(llm: Llm, messages: Sequence[ChatMessage], name: str, schema: dict[str, Any],
                   read: Callable[[str], R], *, attempts: int,
                   problem: Callable[[Exception], str] = _problem, again: str = AGAIN,
                   stayed: str = STAYED) -> Asked[R]:
    """`read` of the model's answer to `messages`, asked for again with its problem (a
    `ValidationError` or `ValueError` from `read`) at most `attempts` times in all. Raises
    `InvalidOutput` (`stayed`, formatted with `tries` and `last`) when no answer reads, and
    the port's `ProviderError`s, each with the usage of every answer before it."""
    asked = list(messages)
    spent = Usage()
    limit = MAX_TOKENS
    last = ""
    for attempt in range(1, attempts + 1):
        try:
            reply = await llm.complete_json(asked, name, schema, max_tokens=limit)
        except ProviderError as exc:
            exc.usage = spent + exc.usage
            raise
        spent = spent + reply.usage
        if reply.finish_reason == "length":
            last = f"the answer was cut off at the token limit ({limit})"
            if limit > MAX_TOKENS:
                break
            limit *= 2  # the same question once more, with room for the whole answer
            continue
        try:
            return Asked(read(reply.text), spent, reply.model, attempt)
        except (ValidationError, ValueError) as exc:
            last = problem(exc)
        asked += [ChatMessage("assistant", reply.text[:ECHOED]),
                  ChatMessage("user", f"That answer is not valid ({last}). {again}")]
    error = InvalidOutput(stayed.format(tries=attempt, last=last))
    error.usage = spent
    raise error


SYSTEM = ("You write study material for an online course. Use only what the lesson says; do not "
          "add facts from elsewhere. Write in the lesson's language ({language}). Answer with "
          "JSON that follows the given schema, and nothing else.")


class LlmTextGenerator:
    def __init__(self, llm: Llm, *, invalid_retries: int = 2) -> None:
        self.llm = llm
        self.invalid_retries = invalid_retries

    def _messages(self, lesson: LessonText, task: str, instructions: str) -> list[ChatMessage]:
        extra = f"\n\nThe educator adds: {instructions}" if instructions else ""
        return [ChatMessage("system", SYSTEM.format(language=lesson.language)),
                ChatMessage("user", f"Lesson: {lesson.title}\n\n{lesson.text}\n\n---\n"
                                    f"Task: {task}{extra}")]

    async def _ask(self, messages: list[ChatMessage], answer: type[A],
                   check: Callable[[A], R]) -> tuple[R, Usage, str]:
        made = await ask_json(self.llm, messages, answer.__name__, answer.model_json_schema(),
                              lambda text: check(answer.model_validate_json(text)),
                              attempts=self.invalid_retries + 1)
        return made.value, made.usage, made.model

    def _generated(self, value: R, usage: Usage, model: str) -> Generated[R]:
        return Generated(value=value, usage=usage, model=model,
                         cost_usd=self.llm.pricing.cost(usage))

    async def summary(self, lesson: LessonText, *, instructions: str = "") -> Generated[Summary]:
        task = ("Summarise the lesson in one or two short paragraphs, then list its key points "
                "(at most eight, one sentence each).")
        value, usage, model = await self._ask(
            self._messages(lesson, task, instructions), SummaryAnswer,
            lambda a: Summary(summary=a.summary, key_points=list(a.key_points), source="llm"))
        return self._generated(value, usage, model)

    async def simpler(self, lesson: LessonText, level: Level, *,
                      instructions: str = "") -> Generated[Simplified]:
        task = (f"Explain the lesson again, more simply, for a {level} learner: shorter "
                "sentences, everyday words, one small example. Markdown is allowed.")
        value, usage, model = await self._ask(
            self._messages(lesson, task, instructions), SimplerAnswer,
            lambda a: Simplified(level=level, text=a.text, source="llm"))
        return self._generated(value, usage, model)

    async def quiz(self, lesson: LessonText, count: int, *, quiz_id: str,
                   instructions: str = "") -> Generated[QuizDraft]:
        task = (f"Write a quiz of {count} questions on the lesson. Types: single_choice (exactly "
                "one correct option), multiple_choice (at least one), true_false (set answer), "
                "short_text (list accepted answers). Give every option feedback, and feedback "
                "for a correct and an incorrect answer. Option texts must differ.")
        value, usage, model = await self._ask(
            self._messages(lesson, task, instructions), QuizAnswer,
            lambda a: QuizDraft(block=quiz_block(quiz_id, all_asked(a, count)), source="llm"))
        return self._generated(value, usage, model)

    async def flashcards(self, lesson: LessonText, count: int, *,
                         instructions: str = "") -> Generated[FlashcardSet]:
        concepts = ", ".join(lesson.concepts) or "none"
        task = (f"Write {count} flashcards for spaced review: a question or cue on the front, a "
                f"short answer on the back. Set concept to one of these ids when the card "
                f"practises it, else null: {concepts}.")
        value, usage, model = await self._ask(
            self._messages(lesson, task, instructions), FlashcardsAnswer,
            lambda a: FlashcardSet(cards=cards(lesson, list(a.cards)), source="llm"))
        return self._generated(value, usage, model)
