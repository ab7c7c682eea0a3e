"""The narrated video's real-time factor: wall time to make a ~60-second 720p video from a sample
lesson (script, narration with espeak-ng, Manim render, ffmpeg mux) divided by the video's
duration. Target: <= 1.0 on this machine (2 cores). Baseline in the same run: ffmpeg alone
encoding a synthetic 720p clip of the same length and frame rate (the floor for any renderer
that hands frames to x264).

Stages overlap (scenes render while later scenes are still narrated), so the split does not add
up to the total. The output is checked as a person would: ffprobe's streams and duration, the
audio's loudness, and three frames written as PNGs to look at.

    python bench/ai.py [--fps 15] [--workers 2] [--rounds 1] [--out /tmp/bloop-bench-ai]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import time
from pathlib import Path

from bloop.ai.audio import ffprobe
from bloop.ai.providers.tts import EspeakTts
from bloop.ai.video import Video, render_lesson_video, script_from_lesson

LESSON = [
    "# Photosynthesis\n\nPhotosynthesis is how green plants make their own food from light. "
    "It happens in the leaves, inside tiny structures called chloroplasts.",
    "## What goes in and what comes out\n\nPlants take in carbon dioxide from the air and water "
    "from the soil. Sunlight provides the energy that drives the reaction. The products are "
    "glucose, a sugar the plant uses for energy, and oxygen, which is released into the air.",
    "## The overall reaction\n\n$$6CO_2 + 6H_2O \\rightarrow C_6H_{12}O_6 + 6O_2$$",
    "## The flow of energy\n\n- Sunlight -> Chlorophyll -> Glucose -> Growth",
    "## Measuring it\n\nWe can estimate the rate from the oxygen a leaf releases each minute, "
    "by counting the bubbles.\n\n```python\ndef rate(oxygen_ml: float, minutes: float) -> float:\n"
    "    return oxygen_ml / minutes\n\nprint(rate(12.5, 5))\n```",
    "## Why it matters\n\nAlmost every food chain on Earth starts with photosynthesis. The "
    "oxygen we breathe comes from it too. Without it, life as we know it could not exist.",
]
WIDTH, HEIGHT = 1280, 720


async def run(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{args[0]} failed: {err.decode(errors='replace')[-500:]}")
    return (out + err).decode(errors="replace")


async def baseline(seconds: float, fps: int, out: Path) -> float:
    """ffmpeg alone: a 720p test pattern of `seconds`, x264 veryfast (as the scenes use)."""
    t0 = time.perf_counter()
    await run("ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
              f"testsrc2=size={WIDTH}x{HEIGHT}:rate={fps}:duration={seconds:.2f}",
              "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
              str(out / "baseline.mp4"))
    return time.perf_counter() - t0


async def one_round(out: Path, fps: int, workers: int) -> tuple[Video, float, float]:
    t0 = time.perf_counter()
    script = script_from_lesson("Photosynthesis", LESSON)
    t_script = time.perf_counter() - t0
    video = await render_lesson_video(script, EspeakTts(), out, resolution=(WIDTH, HEIGHT),
                                      fps=fps, workers=workers)
    return video, t_script, time.perf_counter() - t0


async def look(video: Video, out: Path) -> None:
    probe = await ffprobe(video.path)
    streams = {s["codec_type"]: s for s in probe["streams"]}
    v, a = streams["video"], streams["audio"]
    print(f"ffprobe: video {v['codec_name']} {v['pix_fmt']} {v['width']}x{v['height']} "
          f"{v['r_frame_rate']} fps {float(v['duration']):.2f}s; audio {a['codec_name']} "
          f"{a['sample_rate']} Hz {float(a['duration']):.2f}s; subtitles "
          f"{streams.get('subtitle', {}).get('codec_name', 'none')}; "
          f"container {float(probe['format']['duration']):.2f}s")
    report = await run("ffmpeg", "-hide_banner", "-nostdin", "-i", str(video.path), "-vn", "-af",
                       "volumedetect", "-f", "null", "-")
    levels = dict(re.findall(r"(mean_volume|max_volume): (-?[\d.]+) dB", report))
    print(f"audio level: mean {levels.get('mean_volume')} dB, max {levels.get('max_volume')} dB")
    for k, scene in enumerate(video.scenes[::max(1, len(video.scenes) // 3)][:3]):
        at = scene.start_s + scene.duration_s * 0.8
        png = out / f"frame-{k + 1}.png"
        await run("ffmpeg", "-v", "error", "-y", "-ss", f"{at:.2f}", "-i", str(video.path),
                  "-frames:v", "1", str(png))
        print(f"frame {k + 1}: {png} (scene {scene.index + 1}, {scene.kind}, at {at:.1f}s)")
    for line in video.repairs:
        print(f"repair: {line}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("/tmp/bloop-bench-ai"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    factors, splits = [], []
    video: Video | None = None
    for _ in range(args.rounds):
        video, t_script, total = await one_round(args.out, args.fps, args.workers)
        factors.append(total / video.duration_s)
        splits.append({"script": t_script, **video.timings, "total": total})
    assert video is not None
    floor = await baseline(video.duration_s, args.fps, args.out) / video.duration_s
    split = {k: statistics.median(s[k] for s in splits) for k in splits[0]}
    rtf = statistics.median(factors)
    print(f"video: {video.duration_s:.1f}s at {WIDTH}x{HEIGHT}, {args.fps} fps, "
          f"{len(video.scenes)} scenes, {args.workers} render workers, {args.rounds} round(s)")
    print("time (s, stages overlap): " + ", ".join(f"{k} {v:.2f}" for k, v in split.items()))
    print(f"ffmpeg alone encoding the same length: {floor:.3f} x real time")
    print(f"real-time factor: {rtf:.3f} (target <= 1.0); {rtf / floor:.1f}x the ffmpeg floor")
    await look(video, args.out)


if __name__ == "__main__":
    asyncio.run(main())
