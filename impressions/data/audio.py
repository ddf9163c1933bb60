"""Audio: the first seconds of a clip as a 16 kHz mono waveform, plus log-mel and log filterbank.

Two spectral views serve the two published audio models: a 64-band log-mel spectrogram (25 ms
window, 10 ms hop) for CNNs, and a 26-filter log filterbank with the same framing, the features of the
DAN+ audio model. The filterbank (``fbank``) is librosa's (centred Hann STFT, HTK mel bank) or, as
Zhang et al.'s released code computed it, `python_speech_features.logfbank` itself (METHODS.md 3.1).
librosa's STFT, mel banks and YIN pitch are computed by `impressions.data.spectral` (numpy, the same
values), so a job does not pay librosa's 2.0-2.4 CPU-s first call.
Clips shorter than the window are zero-padded at the end and flagged.

The window (`window_seconds`): ``seconds`` (the thesis's first 5 s) or, with ``seconds: null``, the
whole clip. Arrays stay rectangular, so a whole clip is stored in a window of ``max_seconds``
(default 20 s; First Impressions clips last about 15.3 s): shorter clips are zero-padded at the end
(not flagged: that is expected), longer ones are cut at ``max_seconds``. Each clip's real length is
kept (``n_samples`` in the audio table): the waveform model crops and tests inside it
(`impressions.training.datasets.RandomCrop`, `impressions.training.datasets.WholeClip`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from impressions.data import spectral
from impressions.data.defaults import PREPROCESSING as _DEFAULTS

FBANKS = ("librosa", "python_speech_features")
"""The log-filterbank implementations (config `audio.fbank`; its default is the schema's)."""

PCM16_SCALE = 32768.0
"""python_speech_features gets the window at 16-bit sample values: Zhang et al. wrote 16-bit WAVs
(ffmpeg's default for .wav, `audio/utils/mp42wav.sh`); their reader is not released, so reading them
as int16 with scipy.io.wavfile (the package README's example, DeepPersonality's port) is our inference.
The log energies then sit 2 * log(32768) = 20.8 above the float waveform's."""

WHOLE_CLIP_MAX_SECONDS = 20.0
"""The window that holds a whole clip (``seconds: null``) when ``max_seconds`` is not set."""


def window_seconds(seconds: float | None, max_seconds: float | None = None) -> float:
    """The stored window: `seconds`, or `max_seconds` for the whole clip (`seconds` None)."""
    return float(seconds) if seconds is not None else float(max_seconds or WHOLE_CLIP_MAX_SECONDS)


@dataclass
class ClipAudio:
    """A clip's fixed-length waveform and its spectral features."""

    waveform: np.ndarray  # (seconds * sample_rate,) float32, zero-padded
    logmel: np.ndarray  # (n_mels, T) float32, natural log of mel power
    logfbank: np.ndarray  # (n_fbank, T) float32
    sample_rate: int
    n_samples: int  # real samples before padding
    padded: bool

    def stats(self) -> dict[str, float]:
        """Scalar descriptors over the real (unpadded) part: loudness and a pitch estimate."""
        real = self.waveform[: self.n_samples]
        rms = float(np.sqrt(np.mean(real**2))) if real.size else 0.0
        return {
            "rms": rms,
            "loudness_db": float(20 * np.log10(max(rms, 1e-6))),
            "pitch_hz": _median_pitch(real, self.sample_rate),
        }


def _median_pitch(y: np.ndarray, sr: int) -> float:
    """Median voiced f0 (YIN over 50-500 Hz); NaN when there is too little signal."""
    if y.size < sr // 4 or np.sqrt(np.mean(y**2)) < 1e-4:
        return float("nan")
    f0 = spectral.yin(y, fmin=50, fmax=500, sr=sr, frame_length=1024)
    return float(np.median(f0))


def window(
    samples: np.ndarray,
    *,
    sample_rate: int = 16000,
    seconds: float | None = 5.0,
    max_seconds: float | None = None,
) -> tuple[np.ndarray, int]:
    """Decoded samples zero-padded or cut to the window (`window_seconds`), and the real sample count."""
    length = int(round(window_seconds(seconds, max_seconds) * sample_rate))
    n_real = min(samples.size, length)
    waveform = np.zeros(length, np.float32)
    waveform[:n_real] = samples[:n_real]
    return waveform, n_real


def features(
    samples: np.ndarray,
    *,
    sample_rate: int = 16000,
    seconds: float | None = 5.0,
    n_mels: int = 64,
    n_fbank: int = 26,
    win_ms: float = 25.0,
    hop_ms: float = 10.0,
    max_seconds: float | None = None,
    fbank: str = _DEFAULTS["audio"]["fbank"],
) -> ClipAudio:
    """Pad/trim decoded samples to the window (`window_seconds`) and compute the spectral features.

    `fbank` (`FBANKS`): the log filterbank's implementation; with python_speech_features it has that
    package's frame count (uncentred frames: 499 for 5 s at 16 kHz, librosa's centred ones 501)."""
    if fbank not in FBANKS:
        raise ValueError(f"fbank must be one of {', '.join(FBANKS)}, not {fbank!r}")
    waveform, n_real = window(samples, sample_rate=sample_rate, seconds=seconds, max_seconds=max_seconds)
    length = waveform.size
    win = int(sample_rate * win_ms / 1000)
    n_fft = 1 << (win - 1).bit_length()  # FFT size: the next power of two holding the window
    hop = int(sample_rate * hop_ms / 1000)
    power = spectral.power_stft(waveform, n_fft, hop, win)

    def log_bands(n_bands: int, htk: bool) -> np.ndarray:
        bank = spectral.mel_bank(sample_rate, n_fft, n_bands, htk)
        return np.log(bank @ power + 1e-10).astype(np.float32)

    if fbank == "librosa":
        logfbank = log_bands(n_fbank, htk=True)
    else:
        logfbank = released_logfbank(waveform, sample_rate, n_fbank, win_ms, hop_ms)
    return ClipAudio(
        waveform=waveform,
        logmel=log_bands(n_mels, htk=False),
        logfbank=logfbank,
        sample_rate=sample_rate,
        n_samples=n_real,
        padded=n_real < length and seconds is not None,  # a whole clip's window is padded by design
    )


def released_logfbank(
    waveform: np.ndarray, sample_rate: int, n_fbank: int, win_ms: float, hop_ms: float
) -> np.ndarray:
    """(n_fbank, T) float32: `python_speech_features.logfbank` of the window at 16-bit sample values
    (`PCM16_SCALE`), its other arguments (NFFT 512, pre-emphasis 0.97, 0 Hz to sr/2) the library's
    defaults, as Zhang et al. called it (METHODS.md 3.1). A deviation from their pipeline all the same:
    the input is the stored mono window at `audio.sample_rate`, not the 44.1 kHz stereo clip that their
    pre-emphasis flattened to interleaved L/R and whose 1,103-sample frames NFFT 512 cut (METHODS
    pitfall 9), so it gives about half their 3,059 frames per clip."""
    from python_speech_features import logfbank

    signal = waveform.astype(np.float64) * PCM16_SCALE
    bank = logfbank(
        signal, samplerate=sample_rate, winlen=win_ms / 1000, winstep=hop_ms / 1000, nfilt=n_fbank
    )
    return bank.T.astype(np.float32)


def silent(*, sample_rate: int = 16000, seconds: float | None = 5.0, **kwargs) -> ClipAudio:
    """The features of silence: what a clip without an audio stream gets, flagged by n_samples == 0."""
    return features(np.zeros(0, np.float32), sample_rate=sample_rate, seconds=seconds, **kwargs)
