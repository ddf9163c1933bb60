"""Voice descriptors on synthetic signals with known answers (impressions.data.voice)."""

import numpy as np
import pytest

from impressions.data import voice

SR = 16000


def tone(periods, amplitudes, sr=SR, width=0.0025):
    """A glottal-pulse-like train: cycle i starts at the sum of the earlier periods and holds one
    smooth bump (sin^2 over `width` s, peak amplitudes[i]) followed by silence until the next.

    Each pulse peaks exactly `width / 2` after its cycle's start (between samples too), so the
    pulse-to-pulse periods are exactly `periods` and the per-pulse amplitudes `amplitudes`.
    """
    edges = np.concatenate([[0.0], np.cumsum(periods)])
    t = np.arange(int(edges[-1] * sr)) / sr
    k = np.searchsorted(edges, t, side="right") - 1
    tau = t - edges[k]
    wave = np.where(tau < width, np.sin(np.pi * np.minimum(tau, width) / width) ** 2, 0.0)
    return (np.asarray(amplitudes)[k] * wave).astype(np.float32)


def test_steady_tone_pitch_and_no_jitter_or_shimmer():
    n = int(2.0 * 150)
    out = voice.describe(tone([1 / 150] * n, [0.3] * n))
    assert out["f0_mean_hz"] == pytest.approx(150, rel=0.005)
    assert out["f0_sd_st"] < 0.05 and out["f0_range_st"] < 0.1
    assert out["jitter_local"] < 0.002 and out["shimmer_local_db"] < 0.05
    assert out["hnr_db"] > 20
    assert out["voiced_ratio"] > 0.95 and out["pause_ratio"] == 0.0


@pytest.mark.parametrize("jitter,shimmer_db", [(0.01, 0.5), (0.02, 1.0)])
def test_tone_with_known_jitter_and_shimmer(jitter, shimmer_db):
    # alternating periods T(1 +- j/2): |T_i - T_i-1| = j T, so jitter (local) = j;
    # alternating amplitudes with a ratio of shimmer_db dB between neighbours: shimmer (local, dB)
    n = 300
    sign = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    periods = (1 / 140) * (1 + sign * jitter / 2)
    amplitudes = 0.3 * 10 ** (sign * shimmer_db / 40)
    out = voice.describe(tone(periods, amplitudes))
    assert out["jitter_local"] == pytest.approx(jitter, rel=0.15)
    assert out["shimmer_local_db"] == pytest.approx(shimmer_db, rel=0.15)
    assert out["f0_mean_hz"] == pytest.approx(140, rel=0.01)


def test_known_pause_pattern():
    # 4 x (0.5 s voice, 0.25 s silence). A 40 ms frame touching any voice is sound, so each pause
    # is measured 30 ms short (0.22 s) and each voiced run that much long
    voiced = tone([1 / 200] * 100, [0.2] * 100)
    silence = np.zeros(int(0.25 * SR), np.float32)
    signal = np.concatenate([np.concatenate([voiced, silence]) for _ in range(4)])
    out = voice.describe(signal)
    assert out["voiced_ratio"] == pytest.approx(2 / 3, abs=0.04)
    assert out["pause_ratio"] == pytest.approx(0.22 / 0.75, abs=0.02)
    assert out["voiced_segment_mean_s"] == pytest.approx(0.5, abs=0.04)
    assert out["pause_mean_s"] == pytest.approx(0.22, abs=0.02)
    assert out["voiced_segments_per_s"] == pytest.approx(4 / 3.0, abs=0.01)
    rms = np.sqrt(np.mean(voiced.astype(np.float64) ** 2))
    assert out["loudness_mean_db"] == pytest.approx(20 * np.log10(rms), abs=1.5)


def test_pitch_range_of_a_glide():
    # F0 gliding 100 -> 200 Hz (12 semitones) evenly in log frequency: 20-80th percentile = 7.2 st
    f0 = 100 * 2 ** np.linspace(0, 1, 600)
    out = voice.describe(tone(1 / f0, np.full(f0.size, 0.3)))
    assert out["f0_range_st"] == pytest.approx(0.6 * 12, abs=0.5)


def test_noise_and_silence():
    silent = voice.describe(np.zeros(SR * 2, np.float32))
    assert silent["voiced_ratio"] == 0 and silent["pause_ratio"] == 1 and np.isnan(silent["f0_mean_hz"])
    noise = voice.describe(np.random.default_rng(0).normal(0, 0.1, SR * 2).astype(np.float32))
    assert noise["voiced_ratio"] < 0.1 and noise["pause_ratio"] == 0
    empty = voice.describe(np.zeros(0, np.float32))
    assert empty["voice_seconds"] == 0 and np.isnan(empty["hnr_db"])
