"""Narration: text spoken by a text-to-speech provider, encoded with ffmpeg, with captions."""

from bloop.ai.audio.captions import Cue, cues_from, webvtt
from bloop.ai.audio.ffmpeg import MediaFailed, ffprobe
from bloop.ai.audio.narration import Narration, NothingToNarrate, narrate, speak, spoken_text

__all__ = ["Cue", "MediaFailed", "Narration", "NothingToNarrate", "cues_from", "ffprobe",
           "narrate", "speak", "spoken_text", "webvtt"]
