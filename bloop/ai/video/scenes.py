"""Manim Community scenes for the script's scene kinds, with their layout checked against the
frame before anything is rendered, and repaired when it does not fit.

Only the render worker (`bloop.ai.video.worker`) imports this module: it imports Manim. Text is
set with Pango (`MarkupText`, `Code`) in the fonts of `bloop.ai.video.fonts`; nothing needs LaTeX.
"""

from __future__ import annotations

import re
import textwrap
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

from bloop.ai.video.fonts import use_scene_fonts

use_scene_fonts()  # before Manim sets any text

import manim as m  # noqa: E402

from bloop.ai.video.script import (  # noqa: E402
    CodeScene,
    DiagramScene,
    EquationScene,
    KeyPointsScene,
    Scene,
    TitleScene,
)

BACKGROUND = "#0f172a"
FOREGROUND = "#f1f5f9"
ACCENT = "#38bdf8"
MUTED = "#94a3b8"
BOX = "#1e293b"
SANS = "DejaVu Sans"
MONO = "DejaVu Sans Mono"
MARGIN = 0.4
CAPTION_BAND = 1.25
MIN_SCALE = 0.7
CHAR_WIDTH = 0.00725  # frame units per character per point of font size (DejaVu Sans)
# A `Code` listing at font size 22, measured: its height and width for n lines of k characters.
CODE_BASE_H, CODE_LINE_H = 0.85, 0.344
CODE_BASE_W, CODE_CHAR_W = 1.25, 0.184
LINE_HEIGHT = 1.225  # Pango's line height that spaces lines as Text's line_spacing=0.9 did
LRM = "\u200e"  # a left-to-right mark: code reads left to right, even a line that opens in Arabic
_RTL = "\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufeff"
_RTL_RUN = re.compile(f"[{_RTL}]+(?:[ ]+[{_RTL}]+)*")


class Overflow(Exception):
    """The layout does not fit in the frame."""


class NotListable(Exception):
    """Code that Manim's `Code` cannot draw: it colours a line's glyphs by the position of its
    characters, so each character must be one glyph, set left to right."""


def _listable(char: str) -> bool:
    """Whether `Code` draws `char` as one glyph of a left-to-right line: not right-to-left
    (Arabic, Hebrew: the line is reordered and overflows), not a combining mark (Devanagari's
    vowel signs), an emoji or other character outside the Basic Multilingual Plane, or a
    variation selector or other format character."""
    if char in "\n\t":
        return True
    return (unicodedata.bidirectional(char) not in ("R", "AL", "AN")
            and unicodedata.category(char) not in ("Mn", "Mc", "Me", "Cf", "Co", "Cs")
            and ord(char) <= 0xFFFF and not 0xFE00 <= ord(char) <= 0xFE0F)


@dataclass
class Layout:
    """What a scene shows, in its final place, and the order it appears in: `steps[i]` is
    revealed at `at[i]` seconds (None: spread evenly over the first part of the scene)."""

    content: m.VGroup
    steps: list[m.Mobject]
    at: list[float | None] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)


def _chars(font_size: float, width: float) -> int:
    return max(12, int(width / (CHAR_WIDTH * font_size)))


def text(value: str, size: float, *, width: float, color: str = FOREGROUND, bold: bool = False,
         font: str = SANS, max_lines: int | None = None) -> m.MarkupText:
    """`value` wrapped to `width` frame units, at most `max_lines` lines (the rest cut with …)."""
    chars = _chars(size, width)
    lines = textwrap.wrap(value, chars, break_long_words=True) or [" "]
    if max_lines is not None and len(lines) > max_lines:
        lines = [*lines[:max_lines - 1], textwrap.shorten(" ".join(lines[max_lines - 1:]),
                                                          chars, placeholder=" …")]
    # MarkupText, not Text: Text leaves out the Arabic before a number (`العدد 42 والنص`).
    markup = f'<span line_height="{LINE_HEIGHT}">{escape(chr(10).join(lines))}</span>'
    mob = m.MarkupText(markup, font_size=size, font=font, color=color,
                       weight=m.BOLD if bold else m.NORMAL)
    if mob.width > width:  # the estimate of the characters a line holds was too generous
        mob.scale_to_fit_width(width)
    return mob


class Frame:
    """The drawable area: the frame less a margin, and less the caption band at the bottom
    when captions are burned in."""

    def __init__(self, *, captions: bool) -> None:
        self.width = float(m.config.frame_width) - 2 * MARGIN
        self.top = float(m.config.frame_height) / 2 - MARGIN
        self.bottom = -float(m.config.frame_height) / 2 + MARGIN + (CAPTION_BAND if captions
                                                                     else 0.0)
        self.height = self.top - self.bottom

    def overflow(self, mob: m.Mobject) -> str | None:
        """What sticks out of the area, or None."""
        half = self.width / 2
        left, right = float(mob.get_left()[0]), float(mob.get_right()[0])
        top, bottom = float(mob.get_top()[1]), float(mob.get_bottom()[1])
        out = []
        if left < -half - 1e-3 or right > half + 1e-3:
            out.append(f"{mob.width:.2f} wide for {self.width:.2f}")
        if top > self.top + 1e-3 or bottom < self.bottom - 1e-3:
            out.append(f"{mob.height:.2f} high for {self.height:.2f}")
        return ", ".join(out) or None

    def fits(self, mob: m.Mobject, min_scale: float = MIN_SCALE) -> bool:
        """Whether `mob` fits once scaled down to no less than `min_scale`."""
        return mob.width * min_scale <= self.width and mob.height * min_scale <= self.height

    def fit(self, layout: Layout, *, min_scale: float = MIN_SCALE) -> None:
        """Scales the content down to fit when it need not shrink below `min_scale`, and
        records it; raises `Overflow` otherwise."""
        problem = self.overflow(layout.content)
        if problem is None:
            return
        content = layout.content
        scale = min(self.width / content.width, self.height / content.height, 1.0)
        if scale < min_scale:
            raise Overflow(problem)
        content.scale(scale * 0.98)
        content.move_to((0.0, (self.top + self.bottom) / 2, 0.0))
        if content.get_top()[1] > self.top:
            content.shift(m.DOWN * (content.get_top()[1] - self.top))
        layout.repairs.append(f"scaled to fit ({problem}; x{scale * 0.98:.2f})")
        if (problem := self.overflow(content)) is not None:
            raise Overflow(problem)


def _heading(value: str, frame: Frame) -> m.MarkupText:
    return text(value, 40, width=frame.width, color=ACCENT, bold=True, max_lines=2) \
        .to_edge(m.UP, buff=MARGIN + 0.1)


def _below(mob: m.Mobject, anchor: m.Mobject, buff: float = 0.5) -> m.Mobject:
    return mob.next_to(anchor, m.DOWN, buff=buff)


def title_layout(scene: TitleScene, frame: Frame, **_: Any) -> Layout:
    title = text(scene.title, 60, width=frame.width, bold=True, max_lines=4)
    parts: list[m.VMobject] = [title]
    if scene.subtitle:
        parts.append(text(scene.subtitle, 30, width=frame.width * 0.85, color=MUTED))
    rule = m.Line(m.LEFT * 2, m.RIGHT * 2, color=ACCENT, stroke_width=6)
    group = m.VGroup(*parts[:1], rule, *parts[1:]).arrange(m.DOWN, buff=0.45)
    group.move_to((0.0, (frame.top + frame.bottom) / 2, 0.0))
    return Layout(group, [m.VGroup(title, rule), *parts[1:]])


def key_points_layout(scene: KeyPointsScene, frame: Frame, **_: Any) -> Layout:
    """The heading and the points as bullets, as many as fit (the narration still says them
    all)."""
    heading = _heading(scene.heading, frame)
    bullets = []
    room = frame.height / MIN_SCALE - heading.height - 0.6
    for point in _likely_to_fit(scene.points, frame.width - 0.6, room):
        dot = m.Dot(color=ACCENT, radius=0.08)
        line = text(point, 30, width=frame.width - 0.6)
        dot.next_to(line, m.LEFT, buff=0.25).align_to(line, m.UP).shift(m.DOWN * 0.14)
        bullets.append(m.VGroup(dot, line))

    def arrange(shown: list[m.VGroup]) -> m.VGroup:
        body = m.VGroup(*shown).arrange(m.DOWN, aligned_edge=m.LEFT, buff=0.38)
        body.next_to(heading, m.DOWN, buff=0.6).set_x(0)
        heading.to_edge(m.UP, buff=MARGIN + 0.1)
        if heading.width < body.width:
            heading.align_to(body, m.LEFT).shift(m.LEFT * 0.35)
        return m.VGroup(heading, body)

    shown = bullets
    content = arrange(shown)
    while len(shown) > 1 and not frame.fits(content):
        shown = shown[:-1]
        content = arrange(shown)
    layout = Layout(content, [heading, *shown])
    if len(shown) < len(scene.points):
        layout.repairs.append(f"fewer key points shown ({len(scene.points)} → {len(shown)})")
    return layout


def _likely_to_fit(points: Sequence[str], width: float, room: float) -> list[str]:
    """The first points whose estimated height fits `room`, and one more: building a Text is
    slow (Pango, then SVG), so points that cannot fit are not built at all."""
    chars = _chars(30, width)
    used, out = 0.0, []
    for point in points:
        out.append(point)
        used += 0.45 * len(textwrap.wrap(point, chars) or [""]) + 0.38
        if used > room:
            break
    return out


def equation_layout(scene: EquationScene, frame: Frame, **_: Any) -> Layout:
    heading = _heading(scene.heading, frame)
    equation = text(scene.equation, 56, width=frame.width, max_lines=3)
    frame_box = m.SurroundingRectangle(equation, color=ACCENT, buff=0.35, corner_radius=0.15)
    core = m.VGroup(equation, frame_box)
    parts: list[m.VMobject] = [core]
    if scene.explanation:
        parts.append(text(scene.explanation, 28, width=frame.width * 0.9, color=MUTED))
    body = m.VGroup(*parts).arrange(m.DOWN, buff=0.6)
    layout = Layout(m.VGroup(heading, body), [heading, core, *parts[1:]])
    _under(body, heading, frame, layout)
    return layout


def _under(body: m.Mobject, heading: m.Mobject, frame: Frame, layout: Layout) -> None:
    """`body` centred in the room under `heading`, scaled down (not below `MIN_SCALE`) to
    fit it; raises `Overflow` when it cannot."""
    top = float(heading.get_bottom()[1]) - 0.5
    room = top - frame.bottom
    scale = min(1.0, frame.width / body.width, room / body.height)
    if scale < MIN_SCALE:
        raise Overflow(f"{body.width:.2f} x {body.height:.2f} for {frame.width:.2f} x "
                       f"{room:.2f} under the heading")
    if scale < 1.0:
        body.scale(scale)
        layout.repairs.append(f"scaled to fit under the heading (x{scale:.2f})")
    body.move_to((0.0, (top + frame.bottom) / 2, 0.0))


def diagram_layout(scene: DiagramScene, frame: Frame, **_: Any) -> Layout:
    """Boxes of one size in rows, the rows read alternately left to right and right to left so
    that a chain of arrows never jumps back across the frame; as many columns as make the
    boxes largest, scaled to the room under the heading."""
    heading = _heading(scene.heading, frame)
    labels = {name: text(name, 28, width=2.6, max_lines=3) for name in scene.boxes}
    box_w = max(2.2, *(label.width + 0.5 for label in labels.values()))
    box_h = max(label.height for label in labels.values()) + 0.6
    gap_x, gap_y = 1.1, 1.0
    top = float(heading.get_bottom()[1]) - 0.5
    room = top - frame.bottom
    n = len(scene.boxes)

    def size(cols: int) -> float:
        rows = -(-n // cols)
        return min(1.0, frame.width / (cols * box_w + (cols - 1) * gap_x),
                   room / (rows * box_h + (rows - 1) * gap_y))

    choices = range(1, min(n, 6) + 1)
    best = max(size(c) for c in choices)
    cols = max(c for c in choices if size(c) >= 0.9 * best)  # wide rows, if not much smaller
    scale = size(cols)
    if scale < 0.5:
        raise Overflow(f"{n} boxes would need x{scale:.2f}")
    rows = -(-n // cols)
    width = (cols * box_w + (cols - 1) * gap_x) * scale
    height = (rows * box_h + (rows - 1) * gap_y) * scale
    y0 = top - (room - height) / 2 - box_h * scale / 2
    boxes: dict[str, m.VGroup] = {}
    for k, (name, label) in enumerate(labels.items()):
        row, col = divmod(k, cols)
        if row % 2:
            col = cols - 1 - col
        rect = m.RoundedRectangle(width=box_w, height=box_h, corner_radius=0.2, color=ACCENT,
                                  fill_color=BOX, fill_opacity=1, stroke_width=3)
        box = m.VGroup(rect, label.move_to(rect)).scale(scale)
        box.move_to((-width / 2 + (col * (box_w + gap_x) + box_w / 2) * scale,
                     y0 - row * (box_h + gap_y) * scale, 0.0))
        boxes[name] = box
    arrows: list[m.VMobject] = []
    for edge in scene.arrows:
        a, b = boxes[edge.source], boxes[edge.target]
        start, end = _edge_point(a, b.get_center()), _edge_point(b, a.get_center())
        arrow = m.Arrow(start, end, buff=0, color=FOREGROUND, stroke_width=5,
                        max_tip_length_to_length_ratio=0.3, max_stroke_width_to_length_ratio=8)
        if edge.label:
            across = abs(end[0] - start[0]) >= abs(end[1] - start[1])
            label = text(edge.label, 22, width=gap_x * 0.95 if across else 2.5, color=MUTED,
                         max_lines=2).scale(scale)
            label.next_to(arrow, m.UP if across else m.RIGHT, buff=0.1)
            arrows.append(m.VGroup(arrow, label))
        else:
            arrows.append(arrow)
    content = m.VGroup(heading, *boxes.values(), *arrows)
    steps: list[m.Mobject] = [heading]
    for name, box in boxes.items():
        steps.append(box)
        steps += [arrows[i] for i, e in enumerate(scene.arrows) if e.target == name]
    layout = Layout(content, steps)
    if scale < 1.0:
        layout.repairs.append(f"diagram scaled to fit ({cols} columns, x{scale:.2f})")
    return layout


def _edge_point(box: m.Mobject, toward: Any) -> Any:
    """Where the line from `box`'s centre to `toward` leaves the box."""
    center = box.get_center()
    direction = toward - center
    half_w, half_h = box.width / 2 + 0.08, box.height / 2 + 0.08
    scale = min(half_w / abs(direction[0]) if abs(direction[0]) > 1e-6 else float("inf"),
                half_h / abs(direction[1]) if abs(direction[1]) > 1e-6 else float("inf"))
    return center + direction * scale


def code_layout(scene: CodeScene, frame: Frame, *, shorten: bool = False, **_: Any) -> Layout:
    """The listing, highlighted, as large as fits up to x1.5. Too big at `MIN_SCALE`: raises
    `Overflow` (judged from the size it would have: building a long listing is slow), or with
    `shorten`, cuts it to the lines and columns that fit."""
    heading = _heading(scene.heading, frame)
    lines = scene.code.expandtabs(4).splitlines() or [" "]
    if odd := next((c for c in scene.code if not _listable(c)), None):
        raise NotListable(f"{odd!r} (U+{ord(odd):04X}) in the code")
    room = float(heading.get_bottom()[1]) - 0.5 - frame.bottom
    fit_rows = max(3, int((room / MIN_SCALE - CODE_BASE_H) / CODE_LINE_H))
    fit_cols = max(20, int((frame.width * 0.9 / MIN_SCALE - CODE_BASE_W) / CODE_CHAR_W))
    widest = max(len(line) for line in lines)
    if len(lines) > fit_rows or widest > fit_cols:
        need = min(room / (CODE_BASE_H + CODE_LINE_H * len(lines)),
                   frame.width * 0.9 / (CODE_BASE_W + CODE_CHAR_W * widest))
        if not shorten:
            raise Overflow(f"{len(lines)} lines of up to {widest} characters would need "
                           f"x{need:.2f}")
    shown = lines
    repairs = []
    if shorten and len(lines) > fit_rows:
        shown = [*lines[:fit_rows - 1], "…"]
        repairs.append(f"code cut to its first {fit_rows - 1} of {len(lines)} lines")
    if shorten and widest > fit_cols:
        shown = [line if len(line) <= fit_cols else line[:fit_cols - 1] + "…" for line in shown]
        repairs.append(f"code lines cut to {fit_cols} characters")
    listing = m.Code(code_string="\n".join(shown), language=scene.language or "text",
                     background="window", formatter_style="monokai",
                     paragraph_config={"font": MONO, "font_size": 22})
    scale = min(1.5, frame.width * 0.9 / listing.width, room / listing.height)
    if scale < MIN_SCALE * 0.95:  # smaller code is not legible
        raise Overflow(f"{len(shown)} lines of code would need x{scale:.2f}")
    listing.scale(scale)
    listing.move_to((0.0, float(heading.get_bottom()[1] - 0.5 + frame.bottom) / 2, 0.0))
    return Layout(m.VGroup(heading, listing), [heading, listing], repairs=repairs)


def _left_to_right(line: str) -> str:
    """`line` set left to right: a left-to-right mark opens it and closes each right-to-left run
    (the words of an Arabic name or string), so the signs between two runs stay in place."""
    return LRM + _RTL_RUN.sub(lambda run: run.group(0) + LRM, line)


def card_layout(scene: Scene, frame: Frame, **_: Any) -> Layout:
    """The plain fallback: the heading and the scene's text, or its code unhighlighted."""
    heading = _heading(getattr(scene, "heading", None) or getattr(scene, "title", "") or " ",
                       frame)
    if isinstance(scene, CodeScene):
        lines = scene.code.expandtabs(4).splitlines()[:14]
        listing = escape("\n".join(_left_to_right(line[:70]) for line in lines) or " ")
        body: m.VMobject = m.MarkupText(f'<span line_height="{LINE_HEIGHT}">{listing}</span>',
                                        font=MONO, font_size=22, color=FOREGROUND)
        room = float(heading.get_bottom()[1]) - 0.6 - frame.bottom
        body.scale(max(1.0, min(1.5, frame.width * 0.9 / body.width, room / body.height)))
    else:
        body = text(scene.shown_text() or scene.spoken(), 30, width=frame.width, max_lines=7)
    _below(body, heading, 0.6)
    content = m.VGroup(heading, body)
    return Layout(content, [heading, body])


Builder = Callable[..., Layout]
BUILDERS: dict[str, Builder] = {
    "title": title_layout, "key_points": key_points_layout, "equation": equation_layout,
    "diagram": diagram_layout, "code": code_layout,
}


def attempts(scene: Scene) -> list[tuple[str, Builder, dict[str, Any]]]:
    """The layouts to try in order: as written, then shorter versions, then the plain card."""
    build = BUILDERS[scene.kind]
    tries: list[tuple[str, Builder, dict[str, Any]]] = [("as written", build, {})]
    if isinstance(scene, CodeScene) and all(_listable(c) for c in scene.code):
        tries.append(("shorter code", build, {"shorten": True}))
    tries.append(("plain card", card_layout, {}))
    return tries


def layout_for(scene: Scene, frame: Frame,
               build_attempts: Sequence[tuple[str, Builder, dict[str, Any]]] | None = None) -> Layout:
    """The first attempt that builds and fits (scaled down a little if need be). Each attempt
    given up is recorded in the returned layout's `repairs`; if the plain card fails too,
    its error is raised."""
    notes: list[str] = []
    tries = list(build_attempts or attempts(scene))
    for i, (label, build, options) in enumerate(tries):
        last = i == len(tries) - 1
        try:
            layout = build(scene, frame, **options)
            frame.fit(layout, min_scale=0.3 if last else MIN_SCALE)
        except Overflow as exc:
            notes.append(f"{label}: overflows the frame ({exc})")
            if last:
                raise
            continue
        except Exception as exc:
            notes.append(f"{label}: failed ({type(exc).__name__}: {str(exc)[:160]})")
            if last:
                raise
            continue
        if i:
            layout.repairs.insert(0, f"{'simplified' if last else 'repaired'} to {label} "
                                     f"after {'; '.join(notes)}")
        return layout
    raise AssertionError("unreachable: the last attempt raises or returns")
