"""Voice descriptors per clip: pitch, voice quality, loudness and timing, eGeMAPS-like, numpy only.

The `builtin` voice backend (`voice.backend`; `describe_with` dispatches, `opensmile` is openSMILE's
own eGeMAPSv02 in `impressions.data.egemaps`). Computed on the clip's audio window (the first
`audio.seconds`, 16 kHz mono; `waveform.npy`) by `describe`. Framing: 40 ms windows (two periods
at 50 Hz), 10 ms hop, Hann window.

- A frame is *sound* when its RMS level is within `SOUND_RANGE_DB` of the window's loudest frame and
  above `SILENCE_DB`; otherwise it is *silent* (a pause).
- A sound frame is *voiced* when its normalised autocorrelation (Boersma's window-corrected
  estimate) has a peak of at least `VOICING_THRESHOLD` at a lag between 1/F0_MAX and 1/F0_MIN; that
  lag, refined by parabolic interpolation, is the frame's F0.

Descriptors (column, unit, definition; the eGeMAPS v01b parameter each matches, Eyben et al. 2016):

- ``f0_mean_hz`` (Hz): mean F0 over voiced frames. eGeMAPS gives the mean in semitones
  (F0semitoneFrom27.5Hz_sma3nz_amean); ours is in Hz, the same frames.
- ``f0_sd_st`` (semitones): standard deviation of F0 in semitones re 27.5 Hz over voiced frames.
  eGeMAPS gives the coefficient of variation (stddevNorm) instead: related, not equal.
- ``f0_range_st`` (semitones): 80th minus 20th percentile of F0 in semitones; matches
  F0semitoneFrom27.5Hz_sma3nz_pctlrange0-2.
- ``jitter_local`` (ratio): mean absolute difference of consecutive pitch periods divided by the
  mean period, over periods measured pulse by pulse inside voiced runs (Praat's jitter (local));
  matches jitterLocal_sma3nz_amean (as a ratio, 0.01 = 1%).
- ``shimmer_local_db`` (dB): mean absolute dB difference of the peak-to-peak amplitudes of
  consecutive periods (Praat's shimmer (local, dB)); matches shimmerLocaldB_sma3nz_amean.
- ``hnr_db`` (dB): mean over voiced frames of 10 log10(r / (1 - r)), r the autocorrelation peak;
  matches HNRdBACF_sma3nz_amean.
- ``loudness_mean_db``, ``loudness_sd_db``, ``loudness_range_db`` (dBFS, dB, dB): mean, standard
  deviation and 20th-80th percentile range of the frame RMS level over sound frames. eGeMAPS's
  loudness (loudness_sma3_amean, stddevNorm, pctlrange0-2) is a perceptual auditory-spectrum
  loudness (sone-like), not a level in dB: not matched, only analogous.
- ``voiced_ratio``, ``pause_ratio`` (share of the window): voiced frames and silent frames over all
  frames of the real (unpadded) signal. No direct eGeMAPS counterpart.
- ``voiced_segment_mean_s``, ``pause_mean_s`` (s): mean length of runs of voiced frames and of
  silent frames, 0 when there is none; match MeanVoicedSegmentLengthSec and (for pauses, with
  silence in place of "unvoiced") MeanUnvoicedSegmentLength.
- ``voiced_segments_per_s`` (1/s): voiced runs per second of signal, a speech-rate proxy (about one
  per syllable or word in running speech); matches VoicedSegmentsPerSec. eGeMAPS's other rate,
  loudnessPeaksPerSec, is not computed.

Not matched at all: formants (F1-F3 frequency, bandwidth, amplitude), spectral slope, alpha ratio,
Hammarberg index, H1-H2, H1-A3, MFCC and spectral flux. Descriptors that need voiced frames are NaN
when there are none (silence, music without a steady pitch).
"""

from __future__ import annotations

import numpy as np

from impressions.schemas import VOICE

WINDOW_S = 0.040
HOP_S = 0.010
F0_MIN, F0_MAX = 60.0, 500.0
VOICING_THRESHOLD = 0.45
"""Smallest normalised autocorrelation peak of a voiced frame (Praat's default is 0.45)."""
SOUND_RANGE_DB = 35.0
MAX_PULSES = 300
"""Jitter and shimmer read the pulses of the voiced runs in time order until this many are counted
(about 2 s of voice at 150 Hz): enough for a stable mean, and it bounds the per-pulse Python loop."""
SILENCE_DB = -60.0
"""Frames quieter than both the loudest frame minus SOUND_RANGE_DB and this (dBFS) are silent."""


def _frames(y: np.ndarray, sr: int) -> np.ndarray:
    win, hop = int(round(WINDOW_S * sr)), int(round(HOP_S * sr))
    if y.size < win:
        return np.zeros((0, win))
    n = 1 + (y.size - win) // hop
    idx = np.arange(win)[None, :] + hop * np.arange(n)[:, None]
    return y[idx]


def _autocorrelation(frames: np.ndarray, max_lag: int) -> np.ndarray:
    """Normalised autocorrelation per frame for lags 0..max_lag, divided by the window's own
    (Boersma 1993). The FFT only needs win + max_lag points to keep those lags free of wrap-around."""
    win = frames.shape[1]
    hann = np.hanning(win)
    x = (frames - frames.mean(axis=1, keepdims=True)) * hann
    n_fft = 1 << (win + max_lag).bit_length()
    r = np.fft.irfft(np.abs(np.fft.rfft(x, n_fft)) ** 2, n_fft)[:, : max_lag + 1]
    rw = np.fft.irfft(np.abs(np.fft.rfft(hann, n_fft)) ** 2, n_fft)[: max_lag + 1]
    r = r / np.maximum(r[:, :1], 1e-20)
    return r / np.maximum(rw / rw[0], 1e-3)


OCTAVE_TOLERANCE = 0.9
"""The shortest lag whose autocorrelation peak reaches this share of the highest wins: a periodic
signal peaks as high at two and three periods, which would halve F0."""


def _best_lags(r: np.ndarray, lag_lo: int, lag_hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: the pitch lag (local maximum of r in [lag_lo, lag_hi)) and its value."""
    band = r[:, lag_lo - 1 : lag_hi + 1]
    inner = band[:, 1:-1]
    local = (inner >= band[:, :-2]) & (inner > band[:, 2:])
    best = np.where(local, inner, -np.inf).max(axis=1)
    ok = local & (inner >= OCTAVE_TOLERANCE * best[:, None])
    first = np.argmax(ok, axis=1)
    found = ok.any(axis=1)
    lag = lag_lo + np.where(found, first, 0)
    peak = np.where(found, inner[np.arange(len(r)), first], 0.0)
    return lag, peak


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of True."""
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(int)))
    return list(zip(edges[::2], edges[1::2]))


def _pulses(y: np.ndarray, sr: int, start: int, stop: int, period: float) -> tuple[np.ndarray, np.ndarray]:
    """Pulse times (samples, sub-sample) and per-period peak-to-peak amplitudes in y[start:stop].

    Each pulse is the waveform maximum within +-20% of one period after the previous one (the first
    is the maximum of the first period), refined by a parabola through it and its neighbours; its
    amplitude is the peak-to-peak range over one period centred on it.
    """
    times, amps = [], []
    p = int(round(period))
    half = max(p // 2, 1)
    i = start + int(np.argmax(y[start : start + p]))
    while True:
        a, b, c = y[i - 1 : i + 2] if 0 < i < y.size - 1 else (0.0, y[i], 0.0)
        denom = a - 2 * b + c
        times.append(i + (0.5 * (a - c) / denom if denom < 0 else 0.0))
        around = y[max(i - half, 0) : i + half]  # one period centred on the pulse
        amps.append(float(around.max() - around.min()))
        lo, hi = int(i + 0.8 * period), int(i + 1.2 * period) + 1
        if hi >= stop:
            break
        i = lo + int(np.argmax(y[lo:hi]))
    return np.array(times), np.array(amps)


def describe(samples: np.ndarray, sample_rate: int = 16000) -> dict[str, float]:
    """The voice descriptors of one window of mono samples (module docstring)."""
    y = np.asarray(samples, dtype=np.float64)
    out = dict.fromkeys(
        ("f0_mean_hz", "f0_sd_st", "f0_range_st", "jitter_local", "shimmer_local_db", "hnr_db",
         "loudness_mean_db", "loudness_sd_db", "loudness_range_db"),
        float("nan"),
    )  # fmt: skip
    out.update(
        voice_seconds=y.size / sample_rate, voiced_ratio=0.0, pause_ratio=1.0, voiced_segments_per_s=0.0,
        voiced_segment_mean_s=0.0, pause_mean_s=0.0,
    )  # fmt: skip
    frames = _frames(y, sample_rate)
    if len(frames) == 0:
        return out
    level = 10 * np.log10(np.maximum((frames**2).mean(axis=1), 1e-12))
    sound = (level > level.max() - SOUND_RANGE_DB) & (level > SILENCE_DB)
    lag_lo, lag_hi = int(sample_rate / F0_MAX), int(np.ceil(sample_rate / F0_MIN))
    r = np.zeros((len(frames), lag_hi + 2))
    r[sound] = _autocorrelation(frames[sound], lag_hi + 1)  # silent frames are never voiced
    lag, peak = _best_lags(r, lag_lo, lag_hi)
    voiced = sound & (peak >= VOICING_THRESHOLD)
    seconds = y.size / sample_rate
    out["voiced_ratio"], out["pause_ratio"] = float(voiced.mean()), float((~sound).mean())
    voiced_runs, pauses = _runs(voiced), _runs(~sound)
    out["voiced_segments_per_s"] = len(voiced_runs) / seconds
    if pauses:
        out["pause_mean_s"] = float(np.mean([b - a for a, b in pauses]) * HOP_S)
    if sound.any():
        db = level[sound]
        out.update(
            loudness_mean_db=float(db.mean()), loudness_sd_db=float(db.std()),
            loudness_range_db=float(np.subtract(*np.percentile(db, [80, 20]))),
        )  # fmt: skip
    if not voiced.any():
        return out
    rows = np.flatnonzero(voiced)
    a, b, c = (r[rows, lag[rows] + k] for k in (-1, 0, 1))
    denom = a - 2 * b + c
    shift = np.where(denom < 0, 0.5 * (a - c) / np.where(denom < 0, denom, -1), 0.0)
    f0 = sample_rate / (lag[rows] + shift)
    st = 12 * np.log2(f0 / 27.5)
    rc = np.clip(peak[rows], 1e-6, 1 - 1e-6)
    out.update(
        f0_mean_hz=float(f0.mean()), f0_sd_st=float(st.std()),
        f0_range_st=float(np.subtract(*np.percentile(st, [80, 20]))),
        hnr_db=float(np.mean(10 * np.log10(rc / (1 - rc)))),
        voiced_segment_mean_s=float(np.mean([q - p for p, q in voiced_runs]) * HOP_S),
    )  # fmt: skip
    periods, ratios = [], []
    hop, win = int(round(HOP_S * sample_rate)), frames.shape[1]
    period_of = dict(zip(rows, sample_rate / f0))
    n_pulses = 0
    for start, stop in voiced_runs:
        if stop - start < 3:
            continue  # too short for several periods
        if n_pulses >= MAX_PULSES:
            break
        period = float(np.median([period_of[k] for k in range(start, stop)]))
        times, amps = _pulses(y, sample_rate, start * hop, min(stop * hop + win, y.size), period)
        n_pulses += times.size
        p = np.diff(times)
        if p.size >= 2:
            periods.append(p)
        if amps.size >= 2:
            ratios.append(np.abs(20 * np.log10(np.maximum(amps[1:], 1e-9) / np.maximum(amps[:-1], 1e-9))))
    if periods:
        diffs = np.concatenate([np.abs(np.diff(p)) for p in periods])
        out["jitter_local"] = float(diffs.mean() / np.concatenate(periods).mean())
    if ratios:
        out["shimmer_local_db"] = float(np.concatenate(ratios).mean())
    return out


BACKENDS = ("builtin", "opensmile")
"""`voice.backend`: this module's `describe`, or openSMILE's eGeMAPSv02 (`impressions.data.egemaps`)."""


def _check(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown voice backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def columns(backend: str) -> tuple[str, ...]:
    """The descriptor columns a backend writes: the 14 of `schemas.VOICE`, or openSMILE's 88 names."""
    _check(backend)
    if backend == "opensmile":
        from impressions.data import egemaps

        return egemaps.feature_names()
    return VOICE


def describe_with(backend: str, samples: np.ndarray, sample_rate: int = 16000) -> dict[str, float]:
    """`voice_seconds` and the backend's descriptors (`columns(backend)`) of one mono window."""
    _check(backend)
    seconds = {"voice_seconds": np.asarray(samples).size / sample_rate}
    if backend == "opensmile":
        from impressions.data import egemaps

        return {**seconds, **egemaps.describe(samples, sample_rate)}
    return {**seconds, **describe(samples, sample_rate)}


def label(backend: str) -> str:
    """How a report names a backend's voice inputs."""
    _check(backend)
    if backend == "opensmile":
        from impressions.data import egemaps

        return f"openSMILE {egemaps.FEATURE_SET} ({egemaps.N_FEATURES} functionals)"
    return f"builtin ({len(VOICE)} eGeMAPS-like descriptors)"
