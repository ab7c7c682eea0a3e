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
    """The lesson needs more scenes than the video may have, even with its key points packed
    as many to a scene as a scene may show."""

    code = "video_too_long"


# Key points a scene has at most, made or joined to fit `max_scenes`: as many as a 720p frame
# shows at their longest, two lines each, with captions burned in.
SCENE_POINTS = 5
# The title scene's subtitle: the sentences it says after the title, as many as a 720p frame
# shows under a title of four lines, with captions burned in (four lines of it).
SUBTITLE_CHARS = 200


def script_from_lesson(title: str, blocks: Sequence[str], *, language: str = "en",
                       max_scenes: int = SCENES_MAX, sentences_per_scene: int = 3) -> VideoScript:
    """A script from a lesson's markdown blocks: a title card, then per section its key points
    (each sentence of its paragraphs, each item of its lists), equations (`$$…$$` blocks),
    diagrams (lists whose items are all like `Light -> Leaf -> Sugar`) and code listings.

    The narration is the lesson's own sentences, every one, in order: the title card says the
    title and the first paragraph's first `sentences_per_scene - 1` sentences (those that fit
    the subtitle, which shows them), key-point scenes at most `sentences_per_scene` each, and
    what the first paragraph has more opens the key points. Code is shown, not read (a sentence
    of prose alone before it is said over it; a list item is shown in the key points before
    it); a diagram is read as what leads to what. The few words the script adds are in
    `language` (a BCP 47 tag) when `bloop.ai.phrases` has it, else left out. When there are
    more than `max_scenes` scenes, they are made fewer as `_fit` does; `VideoTooLong` when they
    cannot be."""
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
    listed: list[bool] = []  # whether each of `points` is a list item
    point_said: list[str] = []  # what each of `points` says
    said_by_point: dict[int, list[str]] = {}  # the same, of key-point scenes by place

    def flush() -> None:
        if points:
            said_by_point[len(scenes)] = list(point_said)
            scenes.append(KeyPointsScene(heading=_clip(heading, 80),
                                         points=[_clip(p, 110) for p in points],
                                         narration=writing.joined(said)))
        for pending in (points, said, listed, point_said):
            pending.clear()

    def add(point: str, sentences: list[str], *, item: bool = False) -> None:
        """A key point and the sentences that say it, in a scene of its own when the one being
        made is full; sentences past a scene's worth go on as points of their own."""
        if points and (len(said) + len(sentences) > sentences_per_scene
                       or len(points) >= SCENE_POINTS):
            flush()
        points.append(point)
        said.extend(sentences[:sentences_per_scene])
        listed.append(item)
        point_said.append(writing.joined(sentences[:sentences_per_scene]))
        for sentence in sentences[sentences_per_scene:]:
            add(sentence.rstrip("."), [sentence], item=item)

    for block in blocks:
        for part in markdown_parts(block):
            if (m := _HEADING.match(part)) and "\n" not in part.strip():
                flush()
                heading = m.group(1)
                continue
            if code := _FENCED.match(part):
                # a sentence of prose alone before the code leads to it; a list item is a point
                lead = writing.joined(said) if len(points) == 1 and not any(listed) else ""
                if lead:
                    for pending in (points, said, listed, point_said):
                        pending.clear()
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
                while len(intro) > 1 and len(writing.joined(intro)) > SUBTITLE_CHARS:
                    intro.pop()
                for sentence in prose[len(intro):]:
                    add(sentence.rstrip("."), [sentence])
            elif items:
                for sentence in split_sentences(spoken_text(lead)):
                    add(sentence.rstrip("."), [sentence])
                for item in items:
                    if sentences := split_sentences(spoken_text(item)):
                        add(spoken_text(item.splitlines()[0]).rstrip(".")
                            or sentences[0].rstrip("."), sentences, item=True)
            else:
                for sentence in prose:
                    add(sentence.rstrip("."), [sentence])
            if len(points) >= 4 or len(said) >= sentences_per_scene:
                flush()
    flush()
    if not scenes and not intro:
        raise NothingToNarrate("the lesson has nothing to make a video of: no prose, only "
                               "code, images or markup (or nothing at all)")
    # A first sentence longer than the subtitle is cut on screen (the title scene shows no key
    # points); it is said whole.
    opening = TitleScene(title=title, subtitle=_clip(writing.joined(intro), SUBTITLE_CHARS),
                         narration=writing.joined([writing.stopped(said_title), *intro]))
    parts: list[Part] = [(opening, []), *((s, said_by_point.get(i, []))
                                          for i, s in enumerate(scenes))]
    return VideoScript(title=title, scenes=_fit(parts, min(max_scenes, SCENES_MAX)))


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


Part = tuple[AnyScene, list[str]]  # a scene, and what each of its key points says


def _fit(parts: list[Part], limit: int) -> list[AnyScene]:
    """The scenes of `parts`, `limit` at most: neighbouring key-point scenes joined, those under
    one heading before others and of those the pair that says least; when no two can be (more
    than five points together), the key points of neighbouring scenes under one heading packed
    into fewer scenes, each point with what it says. A scene so made says all its points say,
    more than `sentences_per_scene` sentences: a long lesson's video says all it has."""
    parts = list(parts)
    while len(parts) > limit:
        if fewer := _joined(parts) or _repacked(parts, len(parts) - limit):
            parts = fewer
            continue
        shown = sum(1 for s, _ in parts if not isinstance(s, TitleScene | KeyPointsScene))
        raise VideoTooLong(
            f"the lesson needs {len(parts)} scenes at the fewest and a video has {limit} at "
            f"most: {shown} of them show code, equations or diagrams, the others its prose, "
            f"its key points packed {SCENE_POINTS} to a scene under each heading ({SAID_MAX} "
            "characters of narration a scene at most); split the lesson into shorter ones")
    return [scene for scene, _ in parts]


def _joined(parts: list[Part]) -> list[Part] | None:
    """`parts` with the two neighbouring key-point scenes that best join joined, or None."""
    pairs = [(a.heading != b.heading, len(a.narration) + len(b.narration), i,
              [*zip(a.points, a_said, strict=True), *zip(b.points, b_said, strict=True)],
              a.heading)
             for i, ((a, a_said), (b, b_said)) in enumerate(itertools.pairwise(parts))
             if isinstance(a, KeyPointsScene) and isinstance(b, KeyPointsScene)
             and len(a.points) + len(b.points) <= SCENE_POINTS
             and len(a.narration) + 1 + len(b.narration) <= SAID_MAX]
    if not pairs:
        return None
    _, _, i, units, heading = min(pairs, key=lambda pair: pair[:3])
    return [*parts[:i], _points_scene(heading, units), *parts[i + 2:]]


def _repacked(parts: list[Part], excess: int) -> list[Part] | None:
    """`parts` with the key points of the run of neighbouring key-point scenes under one heading
    that saves most scenes packed five to a scene, packed again: into as many scenes as leave
    `excess` fewer in all, the points spread evenly, or as few as can be. None when no run
    packs into fewer scenes than it has."""
    best: tuple[int, int, int, list[Part]] | None = None
    start = 0
    while start < len(parts):
        run: list[KeyPointsScene] = []
        units: list[tuple[str, str]] = []
        for scene, says in parts[start:]:
            if not isinstance(scene, KeyPointsScene) or (run and scene.heading != run[0].heading):
                break
            run.append(scene)
            units += zip(scene.points, says, strict=True)
        end = start + max(len(run), 1)
        fewest = _packed(units, None)
        if len(run) > 1 and len(fewest) < len(run) and (best is None
                                                         or len(fewest) - len(run) < best[0]):
            target = max(len(fewest), len(run) - excess)
            even = _packed(units, target)
            groups = even if len(even) <= target else fewest
            best = (len(fewest) - len(run), start, end,
                    [_points_scene(run[0].heading, group) for group in groups])
        start = end
    if best is None:
        return None
    _, start, end, packed = best
    return [*parts[:start], *packed, *parts[end:]]


def _packed(units: list[tuple[str, str]], groups: int | None) -> list[list[tuple[str, str]]]:
    """`units` (a point, what it says) in order, in groups of five points and `SAID_MAX`
    characters said at most: as few as can be (`groups` None), else `groups` of sizes as even
    as can be (more when the characters need them)."""
    out: list[list[tuple[str, str]]] = [[]]
    for n, unit in enumerate(units):
        group = out[-1]
        full = (len(group) >= SCENE_POINTS
                or len(writing.joined([*(s for _, s in group), unit[1]])) > SAID_MAX)
        if groups is not None and groups > len(out) - 1:
            # the points left, this group's included, spread over the groups left
            full = full or len(group) >= -(-(len(units) - n + len(group)) // (groups - len(out) + 1))
        if group and full:
            out.append([])
        out[-1].append(unit)
    return out


def _points_scene(heading: str, units: list[tuple[str, str]]) -> Part:
    said = [s for _, s in units]
    return KeyPointsScene(heading=heading, points=[p for p, _ in units],
                          narration=writing.joined(said)), said


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
