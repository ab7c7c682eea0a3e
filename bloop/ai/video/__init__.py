"""Narrated explainer videos: a `VideoScript` of scenes, each narrated, rendered with Manim
Community to its narration's length, and joined with ffmpeg into one MP4 with captions."""

from bloop.ai.video.render import (
    RenderPool,
    SceneReport,
    Video,
    render_lesson_video,
    require_video_tools,
)
from bloop.ai.video.script import (
    CodeScene,
    DiagramScene,
    Edge,
    EquationScene,
    KeyPointsScene,
    TitleScene,
    VideoScript,
    VideoTooLong,
    markdown_parts,
    script_from_lesson,
    unicode_math,
)

__all__ = ["CodeScene", "DiagramScene", "Edge", "EquationScene", "KeyPointsScene", "RenderPool",
           "SceneReport", "TitleScene", "Video", "VideoScript", "VideoTooLong", "markdown_parts",
           "render_lesson_video", "require_video_tools", "script_from_lesson", "unicode_math"]
