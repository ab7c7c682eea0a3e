"""Scene layouts are checked against the frame before anything is rendered: what fits is kept
as written, what overflows is repaired (scaled, fewer points, shorter code) and a scene that
raises becomes a plain card. Built with Manim in this process; nothing is rendered."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import manim as m
import pytest

from bloop.ai.video import (
    CodeScene,
    DiagramScene,
    Edge,
    EquationScene,
    KeyPointsScene,
    TitleScene,
    script_from_lesson,
)
from bloop.ai.video.scenes import Frame, Layout, Overflow, attempts, card_layout, layout_for
from bloop.ai.video.script import Scene


@pytest.fixture(autouse=True)
def frame_720p(tmp_path: Path) -> Iterator[None]:
    with m.tempconfig({"pixel_width": 1280, "pixel_height": 720, "frame_width": 8 * 16 / 9,
                       "frame_height": 8.0, "media_dir": str(tmp_path)}):
        yield


def inside(frame: Frame, layout: Layout) -> bool:
    return frame.overflow(layout.content) is None and all(
        frame.overflow(step) is None for step in layout.steps)


LONG = "a key point long enough to wrap over two lines of the frame, as lessons often do"


@pytest.mark.parametrize("scene", [
    TitleScene(title="Photosynthesis", subtitle="How plants make food from light."),
    KeyPointsScene(heading="Inputs", points=["Carbon dioxide", "Water", "Light"]),
    EquationScene(heading="Reaction", equation="6CO₂ + 6H₂O → C₆H₁₂O₆ + 6O₂",
                  explanation="Six molecules of each."),
    DiagramScene(heading="Flow", boxes=["Sun", "Leaf", "Sugar", "Plant", "Animal"],
                 arrows=[Edge(source="Sun", target="Leaf"), Edge(source="Leaf", target="Sugar"),
                         Edge(source="Sugar", target="Plant", label="feeds")]),
    CodeScene(heading="Rate", code="def rate(ml, minutes):\n    return ml / minutes"),
], ids=lambda s: s.kind)
@pytest.mark.parametrize("captions", [False, True])
def test_each_kind_fits_as_written(scene: Scene, captions: bool) -> None:
    frame = Frame(captions=captions)
    layout = layout_for(scene, frame)
    assert layout.repairs == []
    assert inside(frame, layout)
    assert layout.content.height > frame.height * 0.15


def test_too_many_key_points_are_cut_to_what_fits_and_scaled() -> None:
    frame = Frame(captions=True)
    scene = KeyPointsScene(heading="Everything", points=[f"{LONG} ({i})" for i in range(12)])
    layout = layout_for(scene, frame)
    assert inside(frame, layout)
    shown = len(layout.steps) - 1
    assert 2 <= shown < 12
    assert f"fewer key points shown (12 → {shown})" in layout.repairs
    assert any(r.startswith("scaled to fit") for r in layout.repairs)


def test_a_long_listing_is_shortened_and_a_very_long_title_wrapped() -> None:
    frame = Frame(captions=False)
    code = CodeScene(heading="Long", code="\n".join(f"x{i} = {i}" for i in range(80)))
    layout = layout_for(code, frame)
    assert inside(frame, layout)
    assert any("code cut to its first" in r for r in layout.repairs)
    title = TitleScene(title=" ".join(["Photosynthesis"] * 18))
    assert inside(frame, layout_for(title, frame))


def test_a_scene_that_raises_becomes_a_plain_card_and_says_why() -> None:
    frame = Frame(captions=False)
    scene = CodeScene(heading="Pseudo", code="repeat\n  step", language="no-such-language")
    layout = layout_for(scene, frame)
    assert inside(frame, layout)
    (note,) = layout.repairs
    assert note.startswith("simplified to plain card after as written: failed (ClassNotFound")


def test_when_even_the_card_fails_the_error_is_raised_not_swallowed() -> None:
    frame = Frame(captions=False)
    scene = TitleScene(title="Anything")

    def broken(*_: Any, **__: Any) -> Layout:
        raise RuntimeError("cairo exploded")

    def huge(scene: Scene, frame: Frame, **_: Any) -> Layout:
        layout = card_layout(scene, frame)
        layout.content.scale(20)
        return layout

    with pytest.raises(RuntimeError, match="cairo exploded"):
        layout_for(scene, frame, [("as written", broken, {}), ("plain card", broken, {})])
    with pytest.raises(Overflow):
        layout_for(scene, frame, [("plain card", huge, {})])


def test_every_scene_of_an_extractive_script_fits_its_frame() -> None:
    script = script_from_lesson("Cells", [
        "# Cells\n\nEvery living thing is made of cells. Some are made of just one.",
        "## Parts\n\n- Nucleus: holds the DNA\n- Membrane: lets things in and out\n"
        "- Mitochondria: release energy\n- Ribosomes: build proteins\n- Vacuole: stores water",
        "## Growth\n\n$$N = N_0 \\cdot 2^{n}$$",
    ])
    frame = Frame(captions=True)
    for scene in script.scenes:
        layout = layout_for(scene, frame)
        assert inside(frame, layout), scene.kind
        assert all("plain card" not in r for r in layout.repairs)
    assert [label for label, _, _ in attempts(script.scenes[0])] == ["as written", "plain card"]


def below_heading(layout: Layout) -> bool:
    heading, *rest = layout.steps
    return all(float(step.get_top()[1]) < float(heading.get_bottom()[1]) for step in rest)


def test_a_big_diagram_snakes_through_rows_under_its_heading_without_a_card() -> None:
    frame = Frame(captions=True)
    names = [f"Stage {i} of the long process" for i in range(12)]
    scene = DiagramScene(heading="Twelve stages of a process, with a heading that is long",
                         boxes=names, arrows=[Edge(source=a, target=b, label="then")
                                              for a, b in itertools.pairwise(names)])
    layout = layout_for(scene, frame)
    assert inside(frame, layout)
    assert below_heading(layout)
    assert all("plain card" not in r for r in layout.repairs)
    assert any(r.startswith("diagram scaled to fit (") for r in layout.repairs)
    boxes = [step for step in layout.steps[1:]
             if step.submobjects and isinstance(step.submobjects[0], m.RoundedRectangle)]
    assert len(boxes) == 12
    xs = [float(b.get_center()[0]) for b in boxes]
    ys = [round(float(b.get_center()[1]), 2) for b in boxes]
    cols = ys.count(ys[0])
    assert 2 <= cols < 12
    assert xs[:cols] == sorted(xs[:cols]), "the first row reads left to right"
    assert xs[cols:2 * cols] == sorted(xs[cols:2 * cols], reverse=True), "the second back"
    assert abs(xs[cols] - xs[cols - 1]) < 0.01, "a row's last box sits over the next's first"


def test_a_long_equation_is_scaled_under_its_heading() -> None:
    frame = Frame(captions=True)
    scene = EquationScene(heading="Long", equation=" + ".join(f"a{i}x{i}" for i in range(25)),
                          explanation="The sum of all the terms, explained at some length so "
                          "that the explanation wraps onto a second line.")
    layout = layout_for(scene, frame)
    assert inside(frame, layout)
    assert below_heading(layout)
    assert layout.repairs[0].startswith("scaled to fit under the heading (x")


def glyphs(layout: Layout) -> int:
    return sum(len(step.family_members_with_points()) for step in layout.steps[1:])


def test_an_arabic_code_listing_reads_left_to_right_within_the_frame() -> None:
    frame = Frame(captions=True)
    scene = CodeScene(heading="مثال", code='تحية = "مرحبا"\nprint(تحية)')
    layout = layout_for(scene, frame)
    assert inside(frame, layout)
    assert not any(r.startswith("scaled to fit") for r in layout.repairs)
    assert layout.steps[1].width < frame.width / 2


def test_arabic_before_a_number_is_drawn_whole() -> None:
    point = 'العدد 42 والنص "Python 3.12" في جملة عربية'
    layout = layout_for(KeyPointsScene(heading="نقاط", points=[point]), Frame(captions=False))
    assert layout.repairs == []
    assert glyphs(layout) == 1 + len(point.replace(" ", ""))  # the bullet and each letter


def test_code_with_an_emoji_is_drawn_whole_as_a_plain_listing() -> None:
    code = 'party = "🎉"\nprint(party * 3)'
    layout = layout_for(CodeScene(heading="Party", code=code), Frame(captions=False))
    assert any("plain card" in r for r in layout.repairs)
    assert glyphs(layout) == len(code.replace(" ", "").replace("\n", ""))
