"""What the text generators read (a lesson's text) and what they produce. No I/O here.

The `*Answer` models are the JSON the LLM is asked for (flat, so every OpenAI-compatible server
can follow the schema); the rest are the generated material as Bloop keeps it. The answers'
text follows the rules of client text (`bloop.platform.kit.text`: no control characters, nor
bidirectional overrides in a single line), so an answer that breaks them is invalid and asked
for again, as such a request would be refused. A quiz is kept as the content service's own
`QuizBlock`, so it is valid for content before it is ever saved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import ConfigDict, Field, StringConstraints

from bloop.ai.providers.llm import Usage
from bloop.platform.content.model import Level, made_from
from bloop.platform.content.quiz import QuizBlock
from bloop.platform.kit.read_back import Tolerant
from bloop.platform.kit.text import NonBlank, NonBlankLine, NonBlankLines

Source = Literal["llm", "offline"]
Line = NonBlankLine[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                     max_length=2000), NonBlank]]
ShortText = NonBlankLines[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                           max_length=2000), NonBlank]]
LongText = NonBlankLines[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                          max_length=20_000), NonBlank]]

_OFFLINE = ("Made offline from the lesson's own sentences (extractive); no language model was "
            "used.")
OFFLINE_NOTE = _OFFLINE + " Review before publishing."
# Generated cards reach learners unreviewed (learning's add_generated_cards).
OFFLINE_CARDS_NOTE = (_OFFLINE + " The cards join the decks of the learners who completed a lesson "
                      "teaching their concept as they are (made from a version not published, "
                      "once it is); educators fix or retire them like any card.")


class _Model(Tolerant):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LessonText(_Model):
    """A lesson as the generators read it: its title and the text of its blocks, taken at one
    version."""

    id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    version: int = Field(ge=1)
    course: str = ""
    title: str
    text: str = Field(description="the lesson's markdown blocks, joined by blank lines")
    concepts: list[str] = Field(default_factory=list, description="the concepts it teaches")
    language: str = "en"
    shows_ai: dict[str, list[str]] = Field(default_factory=dict, exclude=True, description=(
        "the AI jobs whose audio or video blocks the lesson shows, by the jobs' kind; read "
        "with the lesson, never kept with a job"))

    @property
    def is_blank(self) -> bool:
        return not self.text.strip()

    @property
    def made_from(self) -> str:
        """The digest of what a narration or a video of it is made from (content's
        `made_from`), whatever its version."""
        return made_from(self.title, self.text, self.language)


# What the LLM is asked to answer.


class SummaryAnswer(_Model):
    summary: LongText
    key_points: Annotated[list[Line], Field(min_length=1, max_length=12)]


class SimplerAnswer(_Model):
    text: LongText


class OptionAnswer(_Model):
    text: ShortText
    correct: bool
    feedback: str


class QuestionAnswer(_Model):
    type: Literal["single_choice", "multiple_choice", "true_false", "short_text"]
    prompt: ShortText
    options: list[OptionAnswer] = Field(description="choice questions only; empty otherwise")
    answer: bool | None = Field(description="true_false questions only; null otherwise")
    accepted: list[str] = Field(description="short_text questions only: accepted answers")
    feedback_correct: str
    feedback_incorrect: str


class QuizAnswer(_Model):
    title: Line
    questions: Annotated[list[QuestionAnswer], Field(min_length=1, max_length=50)]


class CardAnswer(_Model):
    front: ShortText
    back: ShortText
    concept: str | None = Field(description="the id of the lesson concept it practises, or null")


class FlashcardsAnswer(_Model):
    cards: Annotated[list[CardAnswer], Field(min_length=1, max_length=100)]


# What is kept.


class Summary(_Model):
    kind: Literal["summary"] = "summary"
    summary: str
    key_points: list[str]
    source: Source
    note: str = ""


class Simplified(_Model):
    kind: Literal["simplify"] = "simplify"
    level: Level
    text: str
    source: Source
    note: str = ""


class QuizDraft(_Model):
    kind: Literal["quiz"] = "quiz"
    block: QuizBlock = Field(description="a content quiz block, ready for the lesson edit API")
    source: Source
    note: str = ""


class Flashcard(_Model):
    front: str
    back: str
    concept_id: str | None = None


class FlashcardSet(_Model):
    kind: Literal["flashcards"] = "flashcards"
    cards: list[Flashcard]
    source: Source
    note: str = ""


T = TypeVar("T")


@dataclass(frozen=True)
class Generated(Generic[T]):
    """Generated material, the tokens it took, and the model that made it."""

    value: T
    usage: Usage = field(default_factory=Usage)
    model: str = "offline"
    cost_usd: float = 0.0
