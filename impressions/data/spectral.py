"""The three signal functions audio features need, in numpy: power STFT, mel filter bank, YIN pitch.

They compute what librosa 0.11's `stft`, `filters.mel` and `yin` compute for the arguments
`impressions.data.audio` passes (a centred, zero-padded periodic-Hann STFT; Slaney or HTK mel bands
with Slaney area normalisation; YIN with librosa's trough threshold, parabolic refinement and
centred frames), checked against librosa in tests/test_audio.py. librosa's first call in a process
cost 2.0-2.4 CPU-s (scipy.signal, numba and its cached kernels) against 0.03 for a clip's work, paid
by every `audio_shard` job (benchmarks/clip_costs.py); these need numpy alone.
"""

from __future__ import annotations

import numpy as np


def _frames(y: np.ndarray, length: int, hop: int) -> np.ndarray:
    """(length, n) overlapping frames of a 1-d signal, frame t starting at t * hop (a view)."""
    n = 1 + (y.size - length) // hop
    return np.lib.stride_tricks.as_strided(
        y, (length, n), (y.strides[0], hop * y.strides[0]), writeable=False
    )


def power_stft(y: np.ndarray, n_fft: int, hop: int, win: int) -> np.ndarray:
    """(1 + n_fft // 2, T) float32 |STFT|^2: frames centred on t * hop (zero padding), periodic Hann of
    `win` samples centred in `n_fft`."""
    window = np.zeros(n_fft)
    left = (n_fft - win) // 2
    window[left : left + win] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    padded = np.pad(np.asarray(y, np.float32), n_fft // 2)
    spectrum = np.fft.rfft(window[:, None] * _frames(padded, n_fft, hop), axis=0).astype(np.complex64)
    return np.abs(spectrum) ** 2


_F_SP = 200.0 / 3  # Slaney's scale: linear below 1 kHz (this many Hz per mel), logarithmic above
_LOG_STEP = np.log(6.4) / 27.0
_MIN_LOG_MEL = 1000.0 / _F_SP


def _hz_to_mel(hz, htk: bool) -> np.ndarray:
    hz = np.atleast_1d(np.asarray(hz, np.float64))
    if htk:
        return 2595.0 * np.log10(1.0 + hz / 700.0)
    mel = hz / _F_SP
    high = hz >= 1000.0
    mel[high] = _MIN_LOG_MEL + np.log(hz[high] / 1000.0) / _LOG_STEP
    return mel


def _mel_to_hz(mel, htk: bool) -> np.ndarray:
    mel = np.atleast_1d(np.asarray(mel, np.float64))
    if htk:
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    hz = _F_SP * mel
    high = mel >= _MIN_LOG_MEL
    hz[high] = 1000.0 * np.exp(_LOG_STEP * (mel[high] - _MIN_LOG_MEL))
    return hz


def mel_bank(sr: int, n_fft: int, n_mels: int, htk: bool = False) -> np.ndarray:
    """(n_mels, 1 + n_fft // 2) float32 triangular filters from 0 Hz to sr / 2, each scaled to unit
    area over its band (Slaney's normalisation); `htk` picks HTK's mel scale instead of Slaney's."""
    bins = np.fft.rfftfreq(n_fft, 1.0 / sr)
    low, high = _hz_to_mel(0.0, htk)[0], _hz_to_mel(sr / 2.0, htk)[0]
    edges = _mel_to_hz(np.linspace(low, high, n_mels + 2), htk)
    widths = np.diff(edges)
    ramps = edges[:, None] - bins[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)
    # scaled after the float32 cast, as librosa does: the same values to the last bit
    return (weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]).astype(np.float32)


def _fast_length(n: int) -> int:
    """The smallest 2-3-5-smooth length >= n (a fast FFT size)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def yin(y: np.ndarray, fmin: float, fmax: float, sr: int, frame_length: int) -> np.ndarray:
    """f0 (Hz) per frame by YIN (de Cheveigne and Kawahara 2002): centred zero-padded frames, hop
    frame_length // 4, the first trough of the cumulative mean normalised difference under 0.1 (else
    its global minimum), refined by a parabola through it and its neighbours."""
    y = np.pad(np.asarray(y), frame_length // 2)
    frames = _frames(y, frame_length, frame_length // 4)
    min_period = int(np.floor(sr / fmax))
    max_period = min(int(np.ceil(sr / fmin)), frame_length - 1)
    size = _fast_length(2 * frame_length - 1)
    acf = np.fft.irfft(np.abs(np.fft.rfft(frames, n=size, axis=0)) ** 2, n=size, axis=0)[: max_period + 1]
    energy = np.cumsum(np.square(frames), axis=0)
    energy[0] = 0  # librosa's difference function subtracts 0, not y(0)^2, at lag 1
    diff = np.zeros((max_period + 1, frames.shape[1]), dtype=energy.dtype)
    diff[1:] = 2 * (acf[:1] - acf[1:]) - energy[:max_period]
    mean = np.cumsum(diff[1:], axis=0) / np.arange(1, max_period + 1)[:, None]
    denominator = mean[min_period - 1 : max_period]
    cmnd = diff[min_period:] / (denominator + np.finfo(denominator.dtype).tiny)

    # parabolic shift per lag: 0 where the optimum lies more than a bin away, and at both ends
    a = cmnd[2:] + cmnd[:-2] - 2 * cmnd[1:-1]
    b = (cmnd[2:] - cmnd[:-2]) / 2
    shifts = np.zeros_like(cmnd)
    with np.errstate(divide="ignore", invalid="ignore"):
        shifts[1:-1] = np.where(np.abs(b) >= np.abs(a), 0.0, -b / a)
    trough = np.zeros(cmnd.shape, bool)
    trough[0] = cmnd[0] < cmnd[1]
    trough[1:-1] = (cmnd[1:-1] < cmnd[:-2]) & (cmnd[1:-1] <= cmnd[2:])
    trough[-1] = cmnd[-1] < cmnd[-2]
    below = trough & (cmnd < 0.1)
    period = np.where(below.any(axis=0), np.argmax(below, axis=0), np.argmin(cmnd, axis=0))
    refined = min_period + period + np.take_along_axis(shifts, period[None], axis=0)[0]
    return sr / refined
