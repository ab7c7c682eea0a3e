"""Narration and video, made for real with espeak-ng, Manim and ffmpeg (installed by
infra/media.sh), and checked as a person would: ffprobe's streams, codecs and durations, the
audio's loudness (not silent), and frames that are not blank."""

from __future__ import annotations

import asyncio
import re
import statistics
from pathlib import Path
from typing import Any

import pytest

from bloop.ai.audio import NothingToNarrate, ffprobe, narrate
from bloop.ai.audio.ffmpeg import AudioFormat, MediaFailed
from bloop.ai.providers.tts import CannotRead, EspeakTts, VoiceUnavailable
from bloop.ai.video import (
    CodeScene,
    KeyPointsScene,
    TitleScene,
    VideoScript,
    render_lesson_video,
    script_from_lesson,
)

LESSON = ("# Photosynthesis\n\nPlants turn light into sugar. This happens in the **leaves**.\n\n"
          "```python\nprint('not read out')\n```\n\n- Chlorophyll absorbs light\n- Water is split")


def read(path: Path, binary: bool = False) -> Any:
    return path.read_bytes() if binary else path.read_text(encoding="utf-8")


def files(folder: Path) -> list[Path]:
    return sorted(folder.iterdir())


async def run(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return (out + err).decode(errors="replace")


async def mean_volume_db(path: Path) -> float:
    report = await run("ffmpeg", "-hide_banner", "-nostdin", "-i", str(path), "-vn",
                       "-af", "volumedetect", "-f", "null", "-")
    match = re.search(r"mean_volume: (-?[\d.]+|-inf) dB", report)
    assert match, report
    return float(match.group(1))


async def frame_variance(path: Path, at_s: float, width: int, height: int) -> float:
    """The grey-level variance of the frame at `at_s`: a blank frame is near 0."""
    proc = await asyncio.create_subprocess_exec(
        "ffmpeg", "-v", "error", "-nostdin", "-ss", f"{at_s:.2f}", "-i", str(path),
        "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-",
        stdout=asyncio.subprocess.PIPE)
    pixels, _ = await proc.communicate()
    assert len(pixels) == width * height
    return statistics.pvariance(pixels[::7])


@pytest.mark.parametrize(("fmt", "codec", "content_type"), [
    ("opus", "opus", "audio/ogg; codecs=opus"), ("mp3", "mp3", "audio/mpeg")])
async def test_narration_is_encoded_timed_and_audible(tmp_path: Path, fmt: AudioFormat, codec: str,
                                                      content_type: str) -> None:
    narration = await narrate(LESSON, EspeakTts(), tmp_path, fmt)
    assert narration.content_type == content_type
    probe = await ffprobe(narration.path)
    (stream,) = probe["streams"]
    assert stream["codec_name"] == codec
    assert float(probe["format"]["duration"]) == pytest.approx(narration.duration_s, abs=0.15)
    tags = stream.get("tags", {}) | probe["format"].get("tags", {})  # Ogg's are the stream's
    assert tags["language"] == "eng"
    assert [c.text for c in narration.cues] == [
        "Photosynthesis.", "Plants turn light into sugar.", "This happens in the leaves.",
        "Chlorophyll absorbs light.", "Water is split."]
    ends = [0.0] + [c.end_s for c in narration.cues]
    assert all(c.start_s >= prev and c.end_s > c.start_s for c, prev in zip(narration.cues, ends,
                                                                               strict=False))
    assert narration.cues[-1].end_s == pytest.approx(narration.duration_s, abs=0.01)
    vtt = read(narration.captions_path)
    assert vtt.startswith("WEBVTT\n")
    assert vtt.count(" --> ") == 5
    assert await mean_volume_db(narration.path) > -35
    assert files(tmp_path) == sorted([narration.path, narration.captions_path])


@pytest.mark.parametrize("fmt", ["opus", "mp3"])
async def test_the_same_narration_is_the_same_bytes(tmp_path: Path, fmt: AudioFormat) -> None:
    """Content stores identical bytes once; an Ogg stream's serial was random, so two
    narrations of one text differed from byte 15 and each was stored and attached."""
    made = []
    for folder in (tmp_path / "first", tmp_path / "second"):
        folder.mkdir()
        made.append(await narrate(LESSON, EspeakTts(), folder, fmt))
    assert made[0].path.read_bytes() == made[1].path.read_bytes()


async def test_espeak_speaks_a_lesson_in_its_language(tmp_path: Path) -> None:
    tts = EspeakTts()
    assert [await tts.voice_for(tag) for tag in ("fr", "pt-BR", "de", "en", "en-GB")] == [
        "fr", "pt-br", "de", None, None]
    for tag in ("tlh", "zz"):  # not read as English: the job fails, saying so
        with pytest.raises(VoiceUnavailable, match=f"no voice for the language '{tag}'"):
            await tts.voice_for(tag)
        assert not await tts.speaks(tag)
    assert await tts.speaks("en-GB")
    french = "Les plantes changent la lumière en sucre. Cela se passe dans les feuilles."
    narration = await narrate(french, tts, tmp_path, voice=await tts.voice_for("fr"),
                              language="fr")
    assert (narration.provider, narration.voice) == ("local", "fr")
    (stream,) = (await ffprobe(narration.path))["streams"]
    assert stream["tags"]["language"] == "fra"
    assert narration.duration_s > 2
    assert await mean_volume_db(narration.path) > -35


JAPANESE = "# 変数\n\n変数は値に付けた名前です。代入文は右辺の式の値を左辺の名前に結び付けます。"
CHINESE = "变量是指向一个值的名字。赋值语句把左边的名字绑定到右边表达式的值。"
RUSSIAN = ("Функция `print()` выводит значение переменной `count`. Метод `list.append()` и функция "
           "`len()` работают со списком `items`. Python и JavaScript — языки программирования.")  # noqa: RUF001


@pytest.mark.parametrize(("language", "text"), [("ja", JAPANESE), ("zh", CHINESE)])
async def test_the_local_voice_refuses_text_it_cannot_read(tmp_path: Path, language: str,
                                                           text: str) -> None:
    """espeak-ng's Japanese voice read each kanji as "Chinese letter" in English (96.8 s for six
    sentences) and its Chinese one read pinyin tone numbers in English; the job succeeded."""
    tts = EspeakTts()
    with pytest.raises(CannotRead, match="BLOOP_TTS_PROVIDER") as raised:
        await narrate(text, tts, tmp_path, voice=await tts.voice_for(language),
                      language=language)
    assert not raised.value.transient
    assert raised.value.code == "tts_cannot_read"
    assert files(tmp_path) == []


@pytest.mark.parametrize(("language", "text", "sentences"), [
    ("ru", RUSSIAN, 3),
    ("hi", "पाइथन एक प्रोग्रामिंग भाषा है। चर एक नाम है जो किसी मान को दर्शाता है।", 2),
    ("ar", "هل فهمت الدرس؟ نعم، المتغير يحفظ القيمة.", 2),
    ("ja", "これは ひらがなと カタカナの ぶんです。プログラムを かきましょう。", 2)])
async def test_the_local_voice_reads_scripts_it_knows_with_english_names_in_them(
        tmp_path: Path, language: str, text: str, sentences: int) -> None:
    tts = EspeakTts()
    narration = await narrate(text, tts, tmp_path, voice=await tts.voice_for(language),
                              language=language)
    assert len(narration.cues) == sentences


async def test_a_lesson_of_only_code_has_nothing_to_narrate(tmp_path: Path) -> None:
    with pytest.raises(NothingToNarrate):
        await narrate("```python\nx = 1\n```", EspeakTts(), tmp_path)
    assert files(tmp_path) == []


W, H, FPS = 640, 360, 12


async def test_a_lesson_video_has_both_streams_captions_and_real_frames(tmp_path: Path) -> None:
    script = script_from_lesson("Photosynthesis", [
        "# Photosynthesis\n\nPlants make sugar from light.",
        "## The reaction\n\n$$6CO_2 + 6H_2O \\rightarrow C_6H_{12}O_6 + 6O_2$$",
    ])
    broken = CodeScene(heading="Pseudo-code", code="repeat until done\n  grow",
                       language="no-such-language", narration="Then the plant keeps growing.")
    crowded = KeyPointsScene(heading="Everything at once", points=[
        f"A long point about photosynthesis that wraps onto two lines, number {i}"
        for i in range(10)], narration="So much happens at once.")
    script = script.model_copy(update={"scenes": [*script.scenes, broken, crowded]})
    steps: list[tuple[str, float]] = []
    video = await render_lesson_video(script, EspeakTts(), tmp_path, resolution=(W, H), fps=FPS,
                                      language="pt-BR",
                                      on_progress=lambda step, f: steps.append((step, f)))
    probe = await ffprobe(video.path)
    streams = {s["codec_type"]: s for s in probe["streams"]}
    assert set(streams) == {"video", "audio", "subtitle"}
    assert [streams[k]["tags"]["language"] for k in ("audio", "subtitle")] == ["por", "por"]
    v, a = streams["video"], streams["audio"]
    assert (v["codec_name"], v["pix_fmt"], v["width"], v["height"]) == ("h264", "yuv420p", W, H)
    assert v["r_frame_rate"] == f"{FPS}/1"
    assert a["codec_name"] == "aac"
    assert streams["subtitle"]["codec_name"] == "mov_text"
    head = read(video.path, binary=True)[:4096]
    assert b"moov" in head, "faststart: the index comes before the media data"
    scenes_total = sum(s.duration_s for s in video.scenes)
    assert [s.kind for s in video.scenes] == [s.kind for s in script.scenes]
    assert float(probe["format"]["duration"]) == pytest.approx(scenes_total, abs=0.25)
    assert float(v["duration"]) == pytest.approx(float(a["duration"]), abs=0.2)
    assert video.cues[-1].end_s <= video.duration_s
    assert read(video.captions_path).count(" --> ") == len(video.cues)
    assert await mean_volume_db(video.path) > -35
    for scene in video.scenes:
        middle = scene.start_s + scene.duration_s * 0.8
        assert await frame_variance(video.path, middle, W, H) > 50, scene
    broken_report, crowded_report = video.scenes[-2], video.scenes[-1]
    # A code scene stays long enough to read however short its narration (it was the
    # narration's 2 s and a tail, whatever the code's length).
    assert broken_report.duration_s >= broken.reading_s() == 4.0
    assert any("plain card" in r and "ClassNotFound" in r for r in broken_report.repairs)
    assert any("fewer key points shown (10 → " in r for r in crowded_report.repairs)
    assert len(video.repairs) >= 2
    assert all(not r for r in (s.repairs for s in video.scenes[:-2]))
    assert steps[-1] == ("done", 1.0)
    assert [f for _, f in steps] == sorted(f for _, f in steps)
    assert set(video.timings) == {"tts", "render", "mux", "total"}
    assert files(tmp_path) == sorted([video.path, video.captions_path])


async def test_burned_captions_are_drawn_into_the_frame(tmp_path: Path) -> None:
    script = VideoScript(title="T", scenes=[TitleScene(
        title="Light", narration="Light is energy. Plants catch it with their leaves.")])
    video = await render_lesson_video(script, EspeakTts(), tmp_path, resolution=(W, H), fps=FPS,
                                      captions="burned")
    probe = await ffprobe(video.path)
    assert sorted(s["codec_type"] for s in probe["streams"]) == ["audio", "video"]
    cue = video.cues[1]
    proc = await asyncio.create_subprocess_exec(
        "ffmpeg", "-v", "error", "-nostdin", "-ss", f"{(cue.start_s + cue.end_s) / 2:.2f}",
        "-i", str(video.path), "-frames:v", "1", "-vf", f"crop={W}:{H // 7}:0:{H - H // 7}",
        "-f", "rawvideo", "-pix_fmt", "gray", "-", stdout=asyncio.subprocess.PIPE)
    band, _ = await proc.communicate()
    assert statistics.pvariance(band) > 100, "the caption band has no text in it"


async def test_a_scene_that_cannot_render_fails_the_video_instead_of_vanishing(
        tmp_path: Path) -> None:
    script = VideoScript(title="T", scenes=[TitleScene(title="Anything")])
    with pytest.raises(MediaFailed, match=r"scene 1 \(title\) could not be rendered.*took over"):
        await render_lesson_video(script, EspeakTts(), tmp_path, resolution=(W, H), fps=FPS,
                                  scene_timeout_s=0.05)
    assert files(tmp_path) == []
