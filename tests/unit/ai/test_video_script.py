"""The video script model, the extractive script from a lesson, what a narrator reads out of
markdown, and caption cues. Pure logic."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import ValidationError

from bloop.ai.audio import NothingToNarrate, cues_from, speak, spoken_text, webvtt
from bloop.ai.providers.tts import Speech, Timing, join_sentences, split_sentences, wav_bytes
from bloop.ai.video import (
    CodeScene,
    DiagramScene,
    Edge,
    EquationScene,
    KeyPointsScene,
    TitleScene,
    VideoScript,
    VideoTooLong,
    script_from_lesson,
    unicode_math,
)

LESSON = [
    "# Photosynthesis\n\nPhotosynthesis is how green plants make their own food. It happens in "
    "the leaves.",
    "## Inputs and outputs\n\nPlants take in carbon dioxide and water. Sunlight drives the "
    "reaction. The products are glucose and oxygen. Oxygen leaves through the stomata.",
    "## The reaction\n\n$$6CO_2 + 6H_2O \\rightarrow C_6H_{12}O_6 + 6O_2$$",
    "## Energy flow\n\n- Sunlight -> Chlorophyll -> Glucose",
    "## Measuring it\n\nThe rate is oxygen over time.\n\n```python\ndef rate(ml, minutes):\n"
    "    return ml / minutes\n```",
]


def test_script_from_lesson_makes_one_scene_of_each_kind_in_lesson_order() -> None:
    script = script_from_lesson("Photosynthesis", LESSON)
    assert [s.kind for s in script.scenes] == ["title", "key_points", "key_points", "equation",
                                               "diagram", "code"]
    title, points, more, equation, diagram, code = script.scenes
    assert isinstance(title, TitleScene)
    assert title.subtitle == ("Photosynthesis is how green plants make their own food. It "
                              "happens in the leaves.")
    assert title.narration == ("Photosynthesis. Photosynthesis is how green plants make their "
                               "own food. It happens in the leaves.")
    assert isinstance(points, KeyPointsScene)
    assert points.heading == "Inputs and outputs"
    assert points.points == ["Plants take in carbon dioxide and water",
                             "Sunlight drives the reaction", "The products are glucose and oxygen"]
    assert isinstance(more, KeyPointsScene)
    assert more.points == ["Oxygen leaves through the stomata"]
    assert isinstance(equation, EquationScene)
    assert equation.equation == "6CO₂ + 6H₂O → C₆H₁₂O₆ + 6O₂"
    assert "6CO2 plus 6H2O gives C6H12O6 plus 6O2" in equation.narration
    assert isinstance(diagram, DiagramScene)
    assert diagram.boxes == ["Sunlight", "Chlorophyll", "Glucose"]
    assert [(e.source, e.target) for e in diagram.arrows] == [("Sunlight", "Chlorophyll"),
                                                              ("Chlorophyll", "Glucose")]
    assert isinstance(code, CodeScene)
    assert code.language == "python"
    assert code.code == "def rate(ml, minutes):\n    return ml / minutes"
    assert code.narration == "The rate is oxygen over time."
    assert script_from_lesson("Photosynthesis", LESSON) == script


def test_script_from_lesson_limits_scenes_and_refuses_an_empty_lesson() -> None:
    """A lesson with more scenes than `max_scenes` lost the scenes after them, and what they
    said, silently: now its key-point scenes are joined, and a lesson that cannot fit fails."""
    fitted = script_from_lesson("P", LESSON, max_scenes=5)
    assert [s.kind for s in fitted.scenes] == ["title", "key_points", "equation", "diagram",
                                               "code"]
    joined = fitted.scenes[1]
    assert isinstance(joined, KeyPointsScene)
    assert joined.heading == "Inputs and outputs"
    assert joined.points[-1] == "Oxygen leaves through the stomata"
    with pytest.raises(VideoTooLong,
                       match="needs 5 scenes at the fewest and a video has 3 at most") as raised:
        script_from_lesson("P", LESSON, max_scenes=3)
    assert raised.value.code == "video_too_long"
    assert not raised.value.transient
    with pytest.raises(NothingToNarrate, match="nothing to make a video of"):
        script_from_lesson("Empty", ["   ", "![figure](a.png)"])


def _sentence(n: int) -> str:
    return f"Sentence {n} says something."


def _sentences(first: int, count: int) -> str:
    return " ".join(_sentence(n) for n in range(first, first + count))


# Lesson shapes, and the sentences of their prose, in order, that the narration must say.
SHAPES: dict[str, tuple[list[str], list[str]]] = {
    "one long first paragraph": (
        [_sentences(1, 7), _sentences(8, 2)], [_sentence(n) for n in range(1, 10)]),
    "many short paragraphs": (  # of 1, 2, 1, 2, … sentences
        ["\n\n".join(_sentences(n, 1 + n % 3 // 2) for n in range(1, 31) if n % 3 != 0)],
        [_sentence(n) for n in range(1, 31)]),
    "headings with lists": (
        ["# Parts\n\n" + _sentences(1, 2),
         "## Pieces\n\nThe pieces are:\n- Item one is here.\n- Item two. It has two "
         "sentences.\n- Item three\n- Item four\n- Item five\n- Item six\n- Item seven",
         "## Steps\n\n1. First step\n2. Second step\n3. Third step\n\n" + _sentences(3, 4),
         "## Flow\n\nIt goes:\n- Light -> Leaf\n- Plain item here.",
         "## Cycle\n\nIn short:\n- Sun -> Leaf -> Sugar"],
        [_sentence(1), _sentence(2), "The pieces are.", "Item one is here.", "Item two.",
         "It has two sentences.", "Item three.", "Item four.", "Item five.", "Item six.",
         "Item seven.", "First step.", "Second step.", "Third step.",
         *(_sentence(n) for n in range(3, 7)), "It goes.", "Plain item here.", "In short."]),
    "a paragraph after code": (
        [_sentences(1, 4), "## Code", _sentence(5), "```python\nx = 1\n```",
         _sentences(6, 5), "$$E = mc^2$$", _sentences(11, 2)],
        [_sentence(n) for n in range(1, 13)]),
    "a list longer than the scenes": (  # packed five items to a scene to fit 12
        ["## Facts\n\n" + "\n".join(f"- Fact {n} is here." for n in range(1, 41))],
        [f"Fact {n} is here." for n in range(1, 41)]),
}


@pytest.mark.parametrize("sentences_per_scene", [1, 2, 3, 5])
@pytest.mark.parametrize("max_scenes", [60, 12])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_a_video_says_every_sentence_of_the_lessons_prose_in_order(
        shape: str, max_scenes: int, sentences_per_scene: int) -> None:
    """A first paragraph longer than the title scene's narration lost its other sentences
    (a 4-sentence lesson's video said 2 of them); so did a list longer than a scene, a list
    with items that are not arrows beside some that are, and the scenes past `max_scenes`."""
    blocks, prose = SHAPES[shape]
    script = script_from_lesson("P", blocks, max_scenes=max_scenes,
                                sentences_per_scene=sentences_per_scene)
    said = split_sentences(" ".join(s.narration for s in script.scenes))
    rest = iter(said)
    missing = [sentence for sentence in prose if sentence not in rest]
    assert not missing, f"not said, or not in order: {missing}; said: {said}"
    assert len(script.scenes) <= max_scenes
    assert all(len(s.points) <= 5 for s in script.scenes if isinstance(s, KeyPointsScene))
    if max_scenes == 60:
        title, *scenes = script.scenes
        assert len(split_sentences(title.narration)) <= sentences_per_scene
        assert all(len(split_sentences(s.narration)) <= sentences_per_scene for s in scenes
                   if isinstance(s, KeyPointsScene))


def test_a_list_item_before_code_is_shown_and_a_sentence_of_prose_leads_to_it() -> None:
    """The last item of a list right before a code block was said over the code scene, which
    showed only the heading and the code: the item was on no frame."""
    items = ["Roots take in water", "Leaves take in carbon dioxide", "Chlorophyll absorbs light",
             "Water is split", "Sugar is made", "Sugar is stored as starch",
             "Oxygen leaves through the pores"]
    lesson = [_sentences(1, 5), "\n".join(f"- {item}" for item in items),
              "```python\nx = 1\n```", "Here is how it looks:", "```python\ny = 2\n```"]
    script = script_from_lesson("P", lesson)
    shown = [p for s in script.scenes if isinstance(s, KeyPointsScene) for p in s.points]
    assert shown[-len(items):] == items
    codes = [s for s in script.scenes if isinstance(s, CodeScene)]
    assert [s.narration for s in codes] == ["P: here it is in code.", "Here is how it looks."]


def test_the_title_scene_shows_the_sentences_it_says() -> None:
    """The title scene said the first paragraph's first two sentences and showed the first."""
    long = "The second sentence goes on " + "and on " * 40 + "to its end."
    short, overlong = (script_from_lesson("P", [text]) for text in (
        _sentences(1, 3), f"{_sentence(1)} {long} {_sentence(3)}"))
    title = short.scenes[0]
    assert isinstance(title, TitleScene)
    assert title.subtitle == _sentences(1, 2)
    assert title.narration == f"P. {_sentences(1, 2)}"
    title, points = overlong.scenes
    assert isinstance(title, TitleScene)
    assert isinstance(points, KeyPointsScene)
    assert title.narration == f"P. {_sentence(1)}"
    assert title.subtitle == _sentence(1)
    assert points.narration == f"{long} {_sentence(3)}"


def test_a_lesson_too_long_for_its_scenes_has_its_key_points_packed_five_to_a_scene() -> None:
    """A 200-sentence lesson failed `video_too_long`: its scenes of three points could not be
    joined in pairs (six points), though five to a scene fit in 60. Its message said the
    lesson needed 67 scenes with its prose in as few as it could be."""
    items = "\n".join(f"- Item {n}. It has two sentences." for n in range(1, 61))
    script = script_from_lesson("P", [_sentences(1, 200), items])
    title, *scenes = script.scenes
    assert len(script.scenes) <= 60
    assert title.narration == f"P. {_sentences(1, 2)}"
    said = [p for s in scenes if isinstance(s, KeyPointsScene) for p in s.points]
    assert said == [*(_sentence(n).rstrip(".") for n in range(3, 201)),
                    *(f"Item {n}. It has two sentences" for n in range(1, 61))]
    for scene in scenes:  # every point shown, with what it says
        assert isinstance(scene, KeyPointsScene)
        assert len(scene.points) <= 5
        assert scene.narration == " ".join(f"{p}." for p in scene.points)
    with pytest.raises(VideoTooLong, match=(
            "needs 61 scenes at the fewest and a video has 60 at most: 0 of them show code")):
        script_from_lesson("P", [_sentences(1, 300)])  # 2 sentences, then 298 points
    assert len(script_from_lesson("P", [_sentences(1, 292)]).scenes) == 60


@pytest.mark.parametrize(("tex", "text"), [
    ("E = mc^2", "E = mc²"),
    ("a^{2} + b^2 = c^2", "a² + b² = c²"),
    ("x_1 \\times \\pi", "x₁ × π"),  # noqa: RUF001
    ("\\frac{a}{b} \\leq 1", "(a)/(b) ≤ 1"),
])
def test_unicode_math_sets_simple_tex_without_latex(tex: str, text: str) -> None:
    assert unicode_math(tex) == text


def test_a_diagram_arrow_must_join_boxes_it_has() -> None:
    with pytest.raises(ValidationError, match="not in the diagram"):
        DiagramScene(heading="Flow", boxes=["A", "B"], arrows=[Edge(source="A", target="C")])


def test_a_script_needs_a_scene_and_scenes_read_their_own_text_when_not_narrated() -> None:
    with pytest.raises(ValidationError):
        VideoScript(title="T", scenes=[])
    scene = KeyPointsScene(heading="Why", points=["Food", "Air"])
    assert scene.spoken() == "Why. Food. Air"
    script = VideoScript.model_validate({"title": "T", "scenes": [
        {"kind": "equation", "heading": "Area", "equation": "A = πr²"}]})
    assert isinstance(script.scenes[0], EquationScene)


def test_code_stays_on_screen_long_enough_to_read_and_the_rest_as_long_as_it_is_said() -> None:
    """A code scene lasted as long as its narration ("Functions: here it is in code.", about
    3 s), seven lines of code included."""
    code = "def area(width, height=1):\n    return width * height\n\n" + "print(area(3))\n" * 5
    assert CodeScene(heading="Area", code=code).reading_s() == 2.0 + 7 * 1.0
    assert CodeScene(heading="Long", code="x = 1\n" * 100).reading_s() == 20.0
    assert KeyPointsScene(heading="Why", points=["Food", "Air"]).reading_s() == 0.0


def test_spoken_text_reads_prose_and_leaves_code_and_markup_out() -> None:
    markdown = ("# Cells\n\nA *cell* is the unit of life. See [the atlas](http://x).\n\n"
                "- nucleus\n- membrane\n\n```python\nprint('no')\n```\n\n![img](a.png)\n\n"
                "| a | b |\n|---|---|\n\nSteps:\n1. Look\n2. Draw")
    assert spoken_text(markdown) == ("Cells. A cell is the unit of life. See the atlas. nucleus. "
                                     "membrane. Steps. Look. Draw.")
    assert split_sentences("One. Two!  Three? (Four.) Five") == ["One.", "Two!", "Three?",
                                                                  "(Four.)", "Five"]


def test_sentences_end_at_the_stops_of_other_scripts_and_keep_them() -> None:
    """Only `.!?…` before a space ended a sentence, so a Japanese caption ran over three
    sentences and Hindi ones ended mid-sentence; a Latin "." followed `。`, `।` and `؟`."""
    assert split_sentences("変数は名前です。値を指します！本当？はい。") == [  # noqa: RUF001
        "変数は名前です。", "値を指します！", "本当？", "はい。"]  # noqa: RUF001
    assert split_sentences("यह चर है। वह भी॥ ठीक है") == ["यह चर है।", "वह भी॥", "ठीक है"]
    assert split_sentences("هل فهمت الدرس؟ نعم. یہ سبق ہے۔ ختم") == [  # noqa: RUF001
        "هل فهمت الدرس؟", "نعم.", "یہ سبق ہے۔", "ختم"]  # noqa: RUF001
    assert split_sentences("「名前です。」次です。") == ["「名前です。」", "次です。"]
    assert spoken_text("# 変数\n\n変数は存在します。\n\n- 一つ\n- 二つ：") == (  # noqa: RUF001
        "変数。変数は存在します。一つ。二つ。")
    assert spoken_text("## المتغير؟\n\nهذا درس.") == "المتغير؟ هذا درس."  # noqa: RUF001
    assert spoken_text("# चर\n\nये नाम हैं।\n\n- पहला") == "चर। ये नाम हैं। पहला।"


class NeverCalled:
    name = "never"
    usd_per_character = 0.0
    spoken: Callable[[int], None] | None = None

    async def synthesize(self, text: str, voice: str | None = None) -> Speech:
        raise AssertionError("no text should reach the TTS")

    async def voice_for(self, language: str) -> str | None:
        return None

    async def close(self) -> None:
        return None


@pytest.mark.parametrize("text", ["", "   \n ", "```python\nprint(1)\n```", "![x](y.png)\n\n---"])
async def test_nothing_to_narrate_is_its_own_error(text: str) -> None:
    with pytest.raises(NothingToNarrate) as raised:
        await speak(text, NeverCalled())
    assert raised.value.code == "nothing_to_narrate"
    assert not raised.value.transient


def test_sentence_timings_come_from_each_piece_and_the_pauses() -> None:
    pieces = [("First one.", wav_bytes(b"\x01\x00" * 8000, 16_000)),
              ("Second.", wav_bytes(b"\x01\x00" * 4000, 16_000))]
    speech = join_sentences(pieces, provider="t", voice="v", gap_s=0.25)
    assert speech.sentences == (Timing(0.0, 0.5, "First one."), Timing(0.75, 1.0, "Second."))
    assert speech.duration_s == 1.0


def test_long_sentences_become_several_cues_and_webvtt_escapes() -> None:
    long = ("Photosynthesis turns light, water and carbon dioxide into the glucose that feeds "
            "nearly every living thing on the planet & more.")
    cues = cues_from([Timing(0.0, 1.0, "Short <one>."), Timing(1.2, 7.2, long)])
    assert cues[0].text == "Short <one>."
    assert len(cues) == 3
    assert cues[1].start_s == 1.2
    assert cues[-1].end_s == 7.2
    assert cues[1].end_s == cues[2].start_s
    assert " ".join(c.text for c in cues[1:]) == long
    vtt = webvtt(cues)
    assert vtt.startswith("WEBVTT\n\n1\n00:00:00.000 --> 00:00:01.000\nShort &lt;one&gt;.\n")
    assert "planet &amp;" in vtt
    assert all(len(line.replace("&amp;", "&")) <= 42 for line in vtt.splitlines())


@pytest.mark.parametrize(("language", "code_said", "equation_said"), [
    ("en", "Setup: here it is in code.", "Setup. The equation reads: E equals mc squared."),
    ("ja", "Setup: コードではこうなります。", "Setup. 式はこうなります: E = mc²."),
    ("sw", "Setup.", "Setup. E = mc²."),
])
def test_the_words_a_script_adds_are_in_the_lessons_language_or_left_out(
        language: str, code_said: str, equation_said: str) -> None:
    script = script_from_lesson("T", ["Intro text.", "## Setup", "```python\nx = 1\n```",
                                      "$$E = mc^2$$"], language=language)
    said = [s.narration for s in script.scenes]
    assert code_said in said
    assert equation_said in said


def test_what_a_script_adds_ends_in_its_scripts_full_stop() -> None:
    """A Hindi video's title and code cues ended with a Latin "." (`चर और फ़ंक्शन.`)."""
    script = script_from_lesson("चर", ["पाइथन में चर किसी मान का नाम होता है।", "## फ़ंक्शन",
                                       "```python\nx = 1\n```"], language="hi")
    assert [s.narration for s in script.scenes] == [
        "चर। पाइथन में चर किसी मान का नाम होता है।", "फ़ंक्शन: कोड में यह ऐसा दिखता है।"]


@pytest.mark.parametrize(("language", "said"), [
    ("en", "Flow. Light leads to Leaf, Leaf leads to Sugar."),
    ("fr", "Flow. Light mène à Leaf, Leaf mène à Sucre."),
    ("sw", "Flow. Light, Leaf, Sugar."),
])
def test_a_diagram_is_read_out_in_the_lessons_language(language: str, said: str) -> None:
    """A French or Japanese video said "leads to" between the boxes of its diagrams."""
    sugar = "Sucre" if language == "fr" else "Sugar"
    script = script_from_lesson("T", ["Intro text.", "## Flow", f"- Light -> Leaf -> {sugar}"],
                                language=language)
    assert said in [s.narration for s in script.scenes]


def test_a_japanese_quotation_goes_on_after_its_closing_bracket() -> None:
    """「名前です。」と言いました。 was cut after 」, a caption cue of its own for と言いました。"""
    assert split_sentences("先生は「変数は名前です。」と言いました。次に「はい。」って答えた。"
                           "「終わり。」次の文です。") == [
        "先生は「変数は名前です。」と言いました。", "次に「はい。」って答えた。",
        "「終わり。」", "次の文です。"]


def test_what_is_cut_to_fit_the_screen_is_still_said_whole() -> None:
    """A title over 120 characters, or an equation, was cut with "…" in the narration too."""
    title = "A very long lesson title " * 6
    terms = " + ".join(f"a_{n} x^{n}" for n in range(1, 15))
    script = script_from_lesson(title, ["Intro text.", f"$$y = {terms}$$"])
    shown_title, equation = script.scenes
    assert isinstance(shown_title, TitleScene)
    assert isinstance(equation, EquationScene)
    assert script.title.endswith("…")
    assert shown_title.narration == f"{' '.join(title.split())}. Intro text."
    assert equation.equation.endswith("…")
    assert equation.narration.endswith("plus a14 x¹⁴.")
