# ruff: noqa: RUF001  (Unicode maths signs on purpose)
"""A video script: scenes of a few kinds, each with what is shown and what is said. No I/O.

`script_from_lesson` makes one from a lesson's markdown blocks without a model (extractive and
deterministic); an LLM may fill the same model. Equations are plain text with Unicode maths
(x² + y² = r²), set by Pango: the renderer needs no LaTeX.
"""

from __future__ import annotations

import itertools
import re
from abc import abstractmethod
from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from bloop.ai import writing
from bloop.ai.audio.narration import NothingToNarrate, spoken_text
from bloop.ai.phrases import Phrases, known, primary
from bloop.ai.providers.llm import ProviderError
from bloop.ai.providers.tts import split_sentences
from bloop.platform.kit.text import NonBlank

Short = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300),
                  NonBlank]
SAID_MAX = 4000
Said = Annotated[str, StringConstraints(strip_whitespace=True, max_length=SAID_MAX)]
SCENES_MAX = 60
POINTS_MAX = 20

# How long a code scene stays on screen at least: a moment to find it, then time for each line.
CODE_READING_S = 2.0
CODE_LINE_S = 1.0
CODE_READING_MAX_S = 20.0


class _Scene(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    narration: Said = Field(default="", description="what the narrator says during the scene; "
                            "empty: the scene's own text is read")

    @abstractmethod
    def shown_text(self) -> str: ...

    def spoken(self) -> str:
        return self.narration or self.shown_text()

    def reading_s(self) -> float:
        """The least time the scene stays on screen, however short its narration: what it
        shows and does not say (code) takes that long to read."""
        return 0.0


class TitleScene(_Scene):
    kind: Literal["title"] = "title"
    title: Short
    subtitle: str = Field(default="", max_length=300)

    def shown_text(self) -> str:
        return ". ".join(t for t in (self.title, self.subtitle) if t)


class KeyPointsScene(_Scene):
    kind: Literal["key_points"] = "key_points"
    heading: Short
    points: Annotated[list[Short], Field(min_length=1, max_length=POINTS_MAX)]

    def shown_text(self) -> str:
        return ". ".join([self.heading, *self.points])


class EquationScene(_Scene):
    kind: Literal["equation"] = "equation"
    heading: Short
    equation: Short = Field(description="Unicode maths, e.g. E = mc², a² + b² = c²")
    explanation: str = Field(default="", max_length=600)

    def shown_text(self) -> str:
        return ". ".join(t for t in (self.heading, self.explanation) if t)


class Edge(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Short
    target: Short
    label: str = Field(default="", max_length=60)


class DiagramScene(_Scene):
    """Boxes joined by arrows, laid out left to right in the order the boxes are listed."""

    kind: Literal["diagram"] = "diagram"
    heading: Short
    boxes: Annotated[list[Short], Field(min_length=1, max_length=12)]
    arrows: list[Edge] = Field(default_factory=list)

    @model_validator(mode="after")
    def _arrows_join_boxes(self) -> DiagramScene:
        unknown = {e.source for e in self.arrows} | {e.target for e in self.arrows}
        unknown -= set(self.boxes)
        if unknown:
            raise ValueError(f"arrows name boxes that are not in the diagram: {sorted(unknown)}")
        return self

    def shown_text(self) -> str:
        return ". ".join([self.heading, *(f"{e.source} leads to {e.target}"
                                          for e in self.arrows)])


class CodeScene(_Scene):
    kind: Literal["code"] = "code"
    heading: Short
    code: Annotated[str, StringConstraints(min_length=1, max_length=20_000)]
    language: str = Field(default="python", max_length=40)

    def shown_text(self) -> str:
        return f"{self.heading}. Here is the code."

    def reading_s(self) -> float:
        lines = sum(1 for line in self.code.splitlines() if line.strip())
        return min(CODE_READING_S + CODE_LINE_S * lines, CODE_READING_MAX_S)


AnyScene = TitleScene | KeyPointsScene | EquationScene | DiagramScene | CodeScene
Scene = Annotated[AnyScene, Field(discriminator="kind")]


class VideoScript(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    title: Short
    scenes: Annotated[list[Scene], Field(min_length=1, max_length=SCENES_MAX)]
    source: Literal["extractive", "llm"] = "extractive"

    def shown(self) -> list[str]:
        """Every text the video's scenes show (burned-in captions aside)."""
        return [self.title, *(text for scene in self.scenes
                              for text in _strings(scene.model_dump(
                                  exclude={"kind", "narration", "language"})))]


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    return [s for item in value for s in _strings(item)] if isinstance(value, list) else []


# Extractive script from markdown.

_FENCED = re.compile(r"^\s*(```|~~~)\s*([\w+#.-]*)[^\n]*\n(.*?)^\s*\1\s*$", re.S | re.M)
_MATH = re.compile(r"^\s*\$\$(.+?)\$\$\s*$", re.S)
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")
_ITEM = re.compile(r"^\s{0,3}(?:[-*+]|\d+[.)])\s+(.+)$")
_ARROW = re.compile(r"\s*(?:->|→|=>)\s*")
_LATEX = {r"\cdot": "·", r"\times": "×", r"\pi": "π", r"\alpha": "α", r"\beta": "β",
          r"\theta": "θ", r"\lambda": "λ", r"\sum": "Σ", r"\int": "∫", r"\infty": "∞",
          r"\leq": "≤", r"\geq": "≥", r"\neq": "≠", r"\approx": "≈", r"\pm": "±",
          r"\rightarrow": "→", r"\to": "→", r"\Delta": "Δ", r"\sqrt": "√"}
_SUPERSCRIPT = str.maketrans("0123456789+-n", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻ⁿ")
_SUBSCRIPT = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def unicode_math(tex: str) -> str:
    """Simple TeX (x^2, a_1, \\frac{a}{b}, \\pi) as Unicode text; anything else as written."""
    text = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", r"(\1)/(\2)", tex)
    for command, symbol in sorted(_LATEX.items(), key=lambda kv: -len(kv[0])):
        text = re.sub(re.escape(command) + r"(?![A-Za-z])", symbol, text)
    text = re.sub(r"\^\{?([0-9+\-n]+)\}?", lambda m: m.group(1).translate(_SUPERSCRIPT), text)
    text = re.sub(r"_\{?([0-9]+)\}?", lambda m: m.group(1).translate(_SUBSCRIPT), text)
    text = text.replace("{", "").replace("}", "").replace("\\", "")
    return " ".join(text.split())


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1].rsplit(" ", 1)[0] + "…"


class VideoTooLong(ProviderError):
    """The lesson needs more scenes than the video may have, even with its prose in as few
    scenes as can say it."""

    code = "video_too_long"


# Key points a scene has at most, made or joined to fit `max_scenes`: as many as a 720p frame
# shows at their longest, two lines each, with captions burned in.
SCENE_POINTS = 5


def script_from_lesson(title: str, blocks: Sequence[str], *, language: str = "en",
                       max_scenes: int = SCENES_MAX, sentences_per_scene: int = 3) -> VideoScript:
    """A script from a lesson's markdown blocks: a title card, then per section its key points
    (each sentence of its paragraphs, each item of its lists), equations (`$$…$$` blocks),
    diagrams (lists whose items are all like `Light -> Leaf -> Sugar`) and code listings.

    The narration is the lesson's own sentences, every one, in order: the title card says the
    title and the first paragraph's first `sentences_per_scene - 1` sentences, key-point scenes
    at most `sentences_per_scene` each, and what the first paragraph has more opens the key
    points. Code is shown, not read (the sentence before it, alone, is said over it); a
    diagram is read as what leads to what. The few words the script adds are in `language` (a
    BCP 47 tag) when `bloop.ai.phrases` has it, else left out. When there are more than
    `max_scenes` scenes, neighbouring key-point scenes are joined (those under one heading and
    the shortest first) until there are not; `VideoTooLong` when they cannot be (more code,
    equations and diagrams than scenes, or over `SAID_MAX` characters a scene)."""
    if sentences_per_scene < 1 or max_scenes < 1:
        raise ValueError("a video has a scene at least, and a scene says a sentence at least")
    own = known(language)
    code_says, equation_says = (own.code_says, own.equation_says) if own else ("", "")
    english = primary(language) == "en"
    said_title = " ".join(title.split()) or "Lesson"
    title = _clip(said_title, 120)
    scenes: list[AnyScene] = []
    heading = title
    intro: list[str] = []
    introduced = False
    points: list[str] = []
    said: list[str] = []

    def flush() -> None:
        if points:
            scenes.append(KeyPointsScene(heading=_clip(heading, 80),
                                         points=[_clip(p, 110) for p in points],
                                         narration=writing.joined(said)))
        points.clear()
        said.clear()

    def add(point: str, sentences: list[str]) -> None:
        """A key point and the sentences that say it, in a scene of its own when the one being
        made is full; sentences past a scene's worth go on as points of their own."""
        if points and (len(said) + len(sentences) > sentences_per_scene
                       or len(points) >= SCENE_POINTS):
            flush()
        points.append(point)
        said.extend(sentences[:sentences_per_scene])
        for sentence in sentences[sentences_per_scene:]:
            add(sentence.rstrip("."), [sentence])

    for block in blocks:
        for part in markdown_parts(block):
            if (m := _HEADING.match(part)) and "\n" not in part.strip():
                flush()
                heading = m.group(1)
                continue
            if code := _FENCED.match(part):
                lead = writing.joined(said) if len(points) <= 1 else ""
                if lead:
                    points.clear()
                    said.clear()
                flush()
                scenes.append(CodeScene(heading=_clip(heading, 80), code=code.group(3).rstrip(),
                                        language=code.group(2) or "text",
                                        narration=lead or writing.stopped(f"{heading}: {code_says}"
                                                                 if code_says else heading)))
                continue
            if math := _MATH.match(part):
                flush()
                equation = unicode_math(math.group(1))
                # in another language the TTS reads the signs in that language
                said_equation = _spoken_equation(equation) if english else equation
                scenes.append(EquationScene(
                    heading=_clip(heading, 80), equation=_clip(equation, 120),
                    narration=writing.joined([writing.stopped(heading), writing.stopped(
                        f"{equation_says}: {said_equation}" if equation_says
                        else said_equation)])))
                continue
            lead, items = _items(part)
            chains = [[b.strip() for b in _ARROW.split(spoken_text(item).rstrip("."))
                       if b.strip()] for item in items if _ARROW.search(item)]
            if items and len(chains) == len(items) and all(len(c) >= 2 for c in chains):
                flush()
                scenes.append(_diagram(heading, chains, own, split_sentences(spoken_text(lead))))
                continue
            prose = split_sentences(spoken_text(part))
            if not prose:
                continue
            if not scenes and not introduced:
                introduced = True
                intro = prose[:sentences_per_scene - 1]
                for sentence in prose[len(intro):]:
                    add(sentence.rstrip("."), [sentence])
            elif items:
                for sentence in split_sentences(spoken_text(lead)):
                    add(sentence.rstrip("."), [sentence])
                for item in items:
                    if sentences := split_sentences(spoken_text(item)):
                        add(spoken_text(item.splitlines()[0]).rstrip(".")
                            or sentences[0].rstrip("."), sentences)
            else:
                for sentence in prose:
                    add(sentence.rstrip("."), [sentence])
            if len(points) >= 4 or len(said) >= sentences_per_scene:
                flush()
    flush()
    scenes.insert(0, TitleScene(title=title, subtitle=_clip(intro[0], 140) if intro else "",
                                narration=writing.joined([writing.stopped(said_title), *intro])))
    if len(scenes) == 1 and not intro:
        raise NothingToNarrate("the lesson has nothing to make a video of: no prose, only "
                               "code, images or markup (or nothing at all)")
    return VideoScript(title=title, scenes=_fit(scenes, min(max_scenes, SCENES_MAX)))


def _items(part: str) -> tuple[str, list[str]]:
    """A paragraph's lines before its first list item, and its items (each with the lines that
    go on from it)."""
    lead: list[str] = []
    items: list[str] = []
    for line in part.splitlines():
        if m := _ITEM.match(line):
            items.append(m.group(1))
        elif items:
            items[-1] += "\n" + line
        else:
            lead.append(line)
    return "\n".join(lead), items


def _fit(scenes: list[AnyScene], limit: int) -> list[AnyScene]:
    """`scenes`, neighbouring key-point scenes joined until there are `limit` at most: those
    under one heading before others, and of those the pair that says least."""
    scenes = list(scenes)
    while len(scenes) > limit:
        pairs = [(a.heading != b.heading, len(a.narration) + len(b.narration), i, a, b)
                 for i, (a, b) in enumerate(itertools.pairwise(scenes))
                 if isinstance(a, KeyPointsScene) and isinstance(b, KeyPointsScene)
                 and len(a.points) + len(b.points) <= SCENE_POINTS
                 and len(a.narration) + 1 + len(b.narration) <= SAID_MAX]
        if not pairs:
            shown = sum(1 for s in scenes if not isinstance(s, TitleScene | KeyPointsScene))
            raise VideoTooLong(
                f"the lesson needs {len(scenes)} scenes and a video has {limit} at most: "
                f"{shown} of them show code, equations or diagrams, and its prose is in as few "
                f"scenes as {SCENE_POINTS} points and {SAID_MAX} characters of narration a scene "
                "allow: split the lesson")
        _, _, i, a, b = min(pairs, key=lambda pair: pair[:3])
        scenes[i:i + 2] = [KeyPointsScene(heading=a.heading, points=[*a.points, *b.points],
                                          narration=writing.joined([a.narration, b.narration]))]
    return scenes


def markdown_parts(block: str) -> list[str]:
    """Markdown cut into paragraphs, each fenced code block whole (blank lines in it too), a
    heading apart from the paragraph under it."""
    out: list[str] = []
    pos = 0
    for m in _FENCED.finditer(block):
        out += [p for p in re.split(r"\n\s*\n", block[pos:m.start()]) if p.strip()]
        out.append(m.group(0))
        pos = m.end()
    out += [p for p in re.split(r"\n\s*\n", block[pos:]) if p.strip()]
    return [q for p in out for q in _heading_first(p)]


def _heading_first(paragraph: str) -> list[str]:
    lines = paragraph.strip("\n").splitlines()
    if len(lines) > 1 and _HEADING.match(lines[0]) and not paragraph.lstrip().startswith("```"):
        return [lines[0], "\n".join(lines[1:])]
    return [paragraph]


def _spoken_equation(equation: str) -> str:
    words = {"=": " equals ", "+": " plus ", "−": " minus ", "×": " times ", "·": " times ",
             "/": " over ", "²": " squared", "³": " cubed", "≈": " is about ", "√": " root of ",
             "→": " gives "}
    for sign, word in words.items():
        equation = equation.replace(sign, word)
    equation = equation.translate(str.maketrans("₀₁₂₃₄₅₆₇₈₉", "0123456789"))
    return " ".join(equation.split())


def _diagram(heading: str, chains: list[list[str]], said: Phrases | None,
             lead: list[str]) -> DiagramScene:
    boxes: list[str] = []
    arrows: list[Edge] = []
    for chain in chains:
        names = [_clip(b, 40) for b in chain]
        for name in names:
            if name not in boxes:
                boxes.append(name)
        arrows += [Edge(source=a, target=b) for a, b in itertools.pairwise(names)]
    # in a language without phrases, each chain's boxes in order
    flow = [writing.stopped(", ".join(c)) if said is None else
            writing.stopped(", ".join(said.leads_to.format(a=a, b=b) for a, b in itertools.pairwise(c)))
            for c in chains]
    return DiagramScene(heading=_clip(heading, 80), boxes=boxes[:12],
                        arrows=[e for e in arrows if e.source in boxes[:12]
                                and e.target in boxes[:12]],
                        narration=writing.joined([writing.stopped(heading), *lead, *flow]))
