"""Rendering one demo clip: its voice-like audio track and its ffmpeg video (see `impressions.data.demo`).

What a clip shows and how it is labelled is planned in `demo`; this module turns one planned
`DemoClip` into an H.264 + AAC file, written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import os
import subprocess
import wave
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from impressions.media import MissingResourceError, astronaut_image, ffmpeg_exe, pyfeat_test_media

if TYPE_CHECKING:
    from impressions.data.demo import DemoClip

AUDIO_RATE = 22050  # the voice has no energy above 5 kHz; ffmpeg resamples to 44.1 kHz for AAC
CANVAS = (1280, 720)  # Ken Burns canvas: the still upscaled over a blurred fill, zoomed by zoompan
WOLFGANG = "WolfgangLanger_Pexels.mp4"
SOURCES_WITH_AUDIO = {WOLFGANG, "single_face.mp4", "no_face.mp4", "face_noface.mov", "noface_face.mov"}


def source_path(name: str) -> Path:
    """Where a demo source file is installed; raises MissingResourceError naming it if it is not."""
    try:
        return astronaut_image() if name == "astronaut.png" else pyfeat_test_media(name)
    except MissingResourceError as err:
        raise MissingResourceError(f"demo source {name!r} is not available: {err}") from err


# ---------------------------------------------------------------------------------------------- audio


def _voice(duration: float, f0: float, seed: int) -> np.ndarray:
    """A voice-like mono signal: formant-shaped harmonics gated into syllables and phrases."""
    rng = np.random.default_rng(seed)
    sr = AUDIO_RATE
    n = int(round(duration * sr))
    t = np.arange(n) / sr
    envelope = np.zeros(n)
    vowel = np.zeros(n, dtype=int)
    pos = float(rng.uniform(0.05, 0.3))
    while pos < duration:
        for _ in range(int(rng.integers(4, 10))):  # a phrase of syllables
            length = float(rng.uniform(0.12, 0.3))
            window = np.hanning(int(length * sr)) ** 0.7
            a = int(pos * sr)
            if a >= n:
                break
            b = min(n, a + len(window))
            envelope[a:b] = rng.uniform(0.6, 1.0) * window[: b - a]
            vowel[a:b] = rng.integers(0, 5)
            pos += length + float(rng.uniform(0.02, 0.08))
        pos += float(rng.uniform(0.25, 0.6))  # a pause between phrases
    phase = rng.uniform(0, 2 * np.pi)
    contour = 1.5 * np.sin(2 * np.pi * 0.35 * t + phase) + 0.25 * np.sin(2 * np.pi * 5.5 * t)
    pitch = f0 * 2 ** (contour / 12)
    cycles = 2 * np.pi * np.cumsum(pitch) / sr
    formants = np.array([[730, 1090, 2440], [270, 2290, 3010], [300, 870, 2240], [530, 1840, 2480],
                         [570, 840, 2410]], dtype=float)  # fmt: skip  # /a/ /i/ /u/ /e/ /o/
    # Formant gains change slowly: evaluate them on every 32nd sample and hold them in between.
    step = 32
    f, coarse = formants[vowel[::step]], pitch[::step]
    signal = np.zeros(n)
    for k in range(1, int(5000 / (f0 * 2 ** (1.75 / 12))) + 1):
        gain = (1.0 / (1.0 + ((k * coarse[:, None] - f) / 90.0) ** 2)).sum(axis=1) + 0.05
        signal += np.repeat(gain, step)[:n] / k * np.sin(k * cycles)
    signal *= envelope
    signal += 0.002 * rng.standard_normal(n) * (envelope > 0)  # breath, so pauses differ from voicing
    return signal


def _source_audio(clip: DemoClip, path: Path) -> np.ndarray:
    """The source's own track for the clip's span, stereo float at AUDIO_RATE, aligned to its video."""
    n = int(round(clip.duration * AUDIO_RATE))
    cmd = [ffmpeg_exe(), "-v", "error", "-nostdin"]
    if clip.loops:
        cmd += ["-stream_loop", str(clip.loops)]
    if clip.start:
        cmd += ["-ss", f"{clip.start:.3f}"]
    # first_pts=0 pads the .mov tracks that start 2.4 s after their video, keeping sound in sync.
    resync = "aresample=async=1:first_pts=0"
    cmd += ["-i", str(path), "-map", "0:a:0", "-t", f"{clip.duration:.3f}", "-af", resync]
    cmd += ["-ac", "2", "-ar", str(AUDIO_RATE), "-f", "f32le", "-"]
    raw = _run(cmd, capture=True)
    x = np.frombuffer(raw, dtype=np.float32).reshape(-1, 2).astype(np.float64)
    return np.pad(x[:n], ((0, max(0, n - len(x))), (0, 0)))


def _audio_track(clip: DemoClip, path: Path, seed: int) -> np.ndarray:
    n = int(round(clip.duration * AUDIO_RATE))
    track = _source_audio(clip, path) if clip.source in SOURCES_WITH_AUDIO else np.zeros((n, 2))
    if clip.audio == "voice":
        voice = _voice(clip.duration, clip.f0, seed)
        voice *= 0.1 / np.sqrt(np.mean(voice**2))  # -20 dBFS before the final level, well over room noise
        track = track + voice[:, None]
    rms = float(np.sqrt(np.mean(track**2)))
    if rms == 0:
        raise RuntimeError(f"{clip.clip_id}: the audio of {clip.source} is silent; cannot set its loudness")
    track *= 10 ** (clip.loudness_db / 20) / rms
    return np.clip(track, -1.0, 1.0)


def _write_wav(path: Path, track: np.ndarray) -> None:
    pcm = np.round(track * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(pcm.shape[1])
        w.setsampwidth(2)
        w.setframerate(AUDIO_RATE)
        w.writeframes(pcm.tobytes())


# ---------------------------------------------------------------------------------------------- video


def _video_filter(clip: DemoClip) -> str:
    if clip.kind == "still":
        cw, ch = (CANVAS[1], CANVAS[0]) if clip.height > clip.width else CANVAS
        frames = int(round(clip.duration * clip.fps))
        last = max(frames - 1, 1)
        z0, z1 = clip.zoom
        x0, y0, x1, y1 = clip.pan
        zoom = f"{z0}+({z1 - z0})*on/{last}"
        cx, cy = f"({x0}+({x1 - x0})*on/{last})", f"({y0}+({y1 - y0})*on/{last})"
        # The still fitted into a 1280x720 (or 720x1280) canvas over a blurred fill of itself, then one
        # zoompan pass; the large canvas keeps the integer crop steps of zoompan smooth.
        chain = [
            f"split[fg][bg];[bg]scale={cw}:{ch}:force_original_aspect_ratio=increase,crop={cw}:{ch},"
            f"boxblur=24:2[fill];[fg]scale={cw}:{ch}:force_original_aspect_ratio=decrease[fit];"
            "[fill][fit]overlay=(W-w)/2:(H-h)/2",
            f"zoompan=z='{zoom}':x='{cx}*iw-iw/zoom/2':y='{cy}*ih-ih/zoom/2':d={frames}"
            f":s={clip.width}x{clip.height}:fps={clip.fps:g}",
        ]
    else:
        x, y, w, h = clip.crop
        chain = [f"crop=trunc(iw*{w}/2)*2:trunc(ih*{h}/2)*2:trunc(iw*{x}):trunc(ih*{y})",
                 f"scale={clip.width}:{clip.height}"]  # fmt: skip
    if clip.hflip:
        chain.append("hflip")
    chain += [f"eq=brightness={clip.brightness}", "setsar=1", "format=yuv420p"]
    return ",".join(chain)


def render_clip(clip: DemoClip, root: Path, workdir: Path, seed: int) -> None:
    path = source_path(clip.source)
    out = root / clip.relpath
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(out.name + ".part")
    cmd = [ffmpeg_exe(), "-v", "error", "-nostdin", "-y"]
    if clip.kind == "still":
        cmd += ["-i", str(path)]
    else:
        if clip.loops:
            cmd += ["-stream_loop", str(clip.loops)]
        if clip.start:
            cmd += ["-ss", f"{clip.start:.3f}"]
        cmd += ["-i", str(path)]
    if clip.audio != "none":
        wav = workdir / f"{seed}.wav"  # not the clip id: ids may start with "-"
        _write_wav(wav, _audio_track(clip, path, seed))
        cmd += ["-i", str(wav), "-map", "0:v:0", "-map", "1:a:0",
                "-c:a", "aac", "-b:a", "64k", "-ar", "44100", "-ac", "2"]  # fmt: skip
    else:
        cmd += ["-map", "0:v:0", "-an"]
    fps = Fraction(clip.fps).limit_denominator(1001)
    cmd += ["-vf", _video_filter(clip), "-fps_mode", "cfr", "-r", str(fps), "-t", f"{clip.duration:.3f}",
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "28", "-profile:v", "high",
            "-map_metadata", "-1", "-fflags", "+bitexact", "-flags", "+bitexact", "-movflags", "+faststart",
            "-f", "mp4", str(part)]  # fmt: skip
    try:
        _run(cmd)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, out)


def _run(cmd: list[str], *, capture: bool = False) -> bytes:
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0:
        stderr = proc.stderr.decode(errors="replace")
        raise RuntimeError(f"ffmpeg failed ({proc.returncode}): {' '.join(cmd)}\n{stderr}")
    return proc.stdout if capture else b""
