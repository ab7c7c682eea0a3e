"""The render worker: `python -m bloop.ai.video.worker` reads one JSON job a line on stdin,
renders the scene with Manim Community (Cairo renderer, no cache, no preview) into an MP4 of
exactly the asked number of frames, and answers one JSON line on stdout.

A layout that overflows the frame or a scene that raises while building or rendering is
repaired or simplified (`bloop.ai.video.scenes.layout_for`) and rendered again; the answer
lists what was done. Manim is imported once per worker, not once per scene.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import traceback
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from bloop.ai.video.script import Scene


class RenderJob(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    scene: Scene
    frames: int = Field(ge=1, description="the clip's length in frames")
    fps: int = Field(ge=1, le=60)
    width: int = Field(ge=160, le=3840)
    height: int = Field(ge=90, le=2160)
    out: str
    reveal_at: list[float] = Field(default_factory=list, description="seconds at which each "
                                   "spoken sentence starts (key points appear with them)")
    captions: list[tuple[float, float, str]] = Field(default_factory=list,
                                                     description="burned-in captions")
    simplified: bool = Field(default=False, description="go straight to the plain card")


class RenderAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ok: bool
    out: str = ""
    frames: int = 0
    repairs: list[str] = Field(default_factory=list)
    error: str = Field(default="", description="why it failed, in words a job may show")
    detail: str = Field(default="", description="what was raised, for the server's log only "
                                                "(it may name the server's files)")


def _frames(seconds: float, fps: int) -> int:
    return max(0, round(seconds * fps))


def render(job: RenderJob) -> RenderAnswer:
    import manim as m

    from bloop.ai.video import scenes as s

    # Beside the clip, in the job's scratch directory: what a killed render leaves is swept
    # with it (`JobRunner.sweep_scratch`).
    media = tempfile.mkdtemp(prefix="bloop-manim-", dir=os.path.dirname(job.out) or None)
    # veryfast x264 and encoding overlapped with drawing: the clips are re-muxed, not kept.
    options = {"video_encoder_options": {"preset": "veryfast", "crf": "23"},
               "max_inflight_encoders": 4, "pixel_width": job.width,
               "pixel_height": job.height, "frame_rate": job.fps,
               "frame_width": 8.0 * job.width / job.height, "frame_height": 8.0,
               "background_color": s.BACKGROUND, "disable_caching": True,
               "write_to_movie": True, "save_last_frame": False, "preview": False,
               "media_dir": media, "output_file": job.out, "verbosity": "ERROR",
               "progress_bar": "none", "renderer": "cairo"}
    repairs: list[str] = []
    try:
        return _render(m, s, job, options, repairs)
    finally:
        shutil.rmtree(media, ignore_errors=True)


def _render(m: Any, s: Any, job: RenderJob, options: dict[str, Any],
            repairs: list[str]) -> RenderAnswer:
    for simplified in ((True,) if job.simplified else (False, True)):
        try:
            with m.tempconfig(options):
                frame = s.Frame(captions=bool(job.captions))
                tries = s.attempts(job.scene)[-1:] if simplified else None
                layout = s.layout_for(job.scene, frame, tries)
                clip = _clip_class(m, s)(layout, job)
                clip.render()
            return RenderAnswer(ok=True, out=job.out, frames=clip.frames,
                                repairs=repairs + layout.repairs)
        except Exception as exc:
            note = f"{type(exc).__name__}: {str(exc)[:200]}"
            if simplified:
                return RenderAnswer(ok=False, repairs=repairs, detail=note,
                                    error=f"the renderer raised {type(exc).__name__}")
            repairs.append(f"simplified to plain card after the render failed ({note})")
    raise AssertionError("unreachable")


def _reveal(m: Any, mob: Any) -> Any:
    """A fade-in that changes opacities in place: Manim's `FadeIn` deep-copies the mobject,
    which costs more than drawing the frames of a text-heavy scene."""

    class Reveal(m.Animation):  # type: ignore[misc]
        def create_starting_mobject(self) -> Any:
            return m.Mobject()

        def begin(self) -> None:
            self.parts = [(p, p.get_fill_opacity(), p.get_stroke_opacity())
                          for p in self.mobject.family_members_with_points()]
            super().begin()

        def interpolate_mobject(self, alpha: float) -> None:
            a = self.rate_func(alpha)
            for part, fill, stroke in self.parts:
                part.set_fill(opacity=fill * a, family=False)
                part.set_stroke(opacity=stroke * a, family=False)

    return Reveal(mob, introducer=True)


def _clip_class(m: Any, s: Any) -> Any:
    class Clip(m.Scene):  # type: ignore[misc]
        """The layout revealed step by step, captions swapped at their cue times, frozen
        frames in between; exactly `job.frames` frames long."""

        def __init__(self, layout: Any, job: RenderJob) -> None:
            super().__init__()
            self.layout, self.job, self.frames = layout, job, 0

        def construct(self) -> None:
            job, layout = self.job, self.layout
            total = job.frames
            steps = layout.steps
            reveal = self._reveal_frames(len(steps), total)
            events: list[tuple[int, int, Any]] = [(f, 1, st) for f, st in zip(reveal, steps,
                                                                              strict=True)]
            events += [(_frames(a, job.fps), 0, text) for a, _, text in job.captions]
            events.sort(key=lambda e: (e[0], e[1]))
            caption: Any = None
            for i, (at, kind, payload) in enumerate(events):
                self._wait_until(at)
                if kind == 0:
                    if caption is not None:
                        self.remove(caption)
                    caption = self._caption(payload)
                    self.add(caption)
                    continue
                nxt = min([e[0] for e in events[i + 1:] if e[0] > at] + [total])
                length = max(1, min(_frames(0.6, job.fps), nxt - self.frames))
                if self.frames + length > total:
                    self.add(payload)
                    continue
                self.play(_reveal(m, payload), run_time=(length - 0.5) / job.fps)
                self.frames += length
            self._wait_until(total)

        def _reveal_frames(self, n: int, total: int) -> list[int]:
            fps = self.job.fps
            said = [_frames(t, fps) for t in self.job.reveal_at]
            if n - 1 == len(said) and n > 1 and self.job.scene.kind == "key_points":
                return [0, *said]
            step = min(fps * 1.0, total * 0.45 / max(1, n - 1))
            return [round(i * step) for i in range(n)]

        def _wait_until(self, frame: int) -> None:
            gap = min(frame, self.job.frames) - self.frames
            if gap > 0:
                self.wait((gap + 0.5) / self.job.fps)
                self.frames += gap

        def _caption(self, value: str) -> Any:
            band = m.Rectangle(width=float(m.config.frame_width), height=s.CAPTION_BAND,
                               fill_color="#000000", fill_opacity=0.55, stroke_width=0)
            band.to_edge(m.DOWN, buff=0)
            words = s.text(value, 26, width=float(m.config.frame_width) - 1.0, max_lines=2)
            return m.VGroup(band, words.move_to(band))

    return Clip


def main() -> None:
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # Manim's own output goes to stderr
    from bloop.ai.video.fonts import use_scene_fonts

    use_scene_fonts()
    import manim  # noqa: F401  (imported before the first job arrives)

    adapter: TypeAdapter[RenderJob] = TypeAdapter(RenderJob)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            answer = render(adapter.validate_json(line))
        except Exception as exc:
            traceback.print_exc()
            answer = RenderAnswer(ok=False, error=f"the renderer raised {type(exc).__name__}",
                                  detail=f"{type(exc).__name__}: {str(exc)[:300]}")
        answers.write(answer.model_dump_json() + "\n")


if __name__ == "__main__":
    main()

