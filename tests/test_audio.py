import os
import subprocess
import sys

import numpy as np
import pytest

from impressions.data import audio


def test_features_shapes_padding_and_stats():
    sr = 16000
    t = np.arange(int(2.5 * sr)) / sr
    tone = (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32)
    clip = audio.features(tone)
    assert clip.waveform.shape == (80000,) and clip.padded and clip.n_samples == tone.size
    assert clip.logmel.shape == (64, 501) and clip.logfbank.shape == (26, 501)
    stats = clip.stats()
    assert stats["pitch_hz"] == pytest.approx(180, rel=0.03)
    assert stats["loudness_db"] == pytest.approx(20 * np.log10(0.3 / np.sqrt(2)), abs=0.2)
    # the padded tail is silence: its log-mel frames sit at the floor
    assert clip.logmel[:, -50:].max() < clip.logmel[:, :200].max() - 20


def test_silence_is_flagged_not_invented():
    clip = audio.silent()
    assert clip.n_samples == 0 and clip.padded and np.isnan(clip.stats()["pitch_hz"])


@pytest.mark.heavy  # three fresh processes: test-all
def test_concurrent_first_calls_with_a_cold_numba_cache(tmp_path):
    """Parallel jobs on a fresh environment must not corrupt numba's cache (they segfaulted when the
    features ran librosa's numba kernels; `spectral` needs no numba, and this keeps it so)."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    code = (
        "import numpy as np; from impressions.data import audio; "
        "print(audio.features(np.random.default_rng(0).normal(size=38696).astype(np.float32)).stats())"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE) for _ in range(3)
    ]
    codes = [p.wait(timeout=300) for p in procs]
    assert codes == [0, 0, 0], [p.stderr.read().decode()[-500:] for p in procs]


def test_released_filterbank_is_python_speech_features_logfbank_on_real_speech():
    """audio.fbank python_speech_features: the released call `logfbank(sig, rate)` (METHODS.md 3.1)."""
    from python_speech_features import logfbank

    from impressions import media
    from impressions.data import video

    samples = video.read_audio(media.pyfeat_test_media("single_face.mp4"), 5.0)  # a man talking
    assert samples.size > 30000 and np.sqrt(np.mean(samples**2)) > 1e-3
    released = audio.features(samples, fbank="python_speech_features")
    # the library's defaults (25 ms, 10 ms, 26 filters, NFFT 512) on 16-bit sample values
    want = logfbank(released.waveform.astype(np.float64) * 32768, 16000).T
    assert released.logfbank.shape == want.shape == (26, 499) and released.logfbank.dtype == np.float32
    np.testing.assert_allclose(released.logfbank, want, rtol=0, atol=1e-4)
    assert np.ptp(want[:, :150]) > 10  # speech, not a flat floor

    default = audio.features(samples)
    assert default.logfbank.shape == (26, 501)  # librosa's centred frames
    np.testing.assert_array_equal(default.logfbank, audio.features(samples, fbank="librosa").logfbank)
    np.testing.assert_array_equal(default.logmel, released.logmel)  # the log-mel is librosa's either way
    with pytest.raises(ValueError, match="fbank must be one of"):
        audio.features(samples, fbank="kaldi")


def test_the_demo_default_stays_librosa_and_the_zhang_preset_selects_the_released_filterbank():
    from pathlib import Path

    import yaml

    from impressions.data import defaults

    assert defaults.PREPROCESSING["audio"]["fbank"] == "librosa"
    repo = Path(__file__).resolve().parents[1]
    zhang = yaml.safe_load((repo / "experiments" / "ventura2017_100frames.yaml").read_text())
    assert zhang["audio"]["fbank"] == "python_speech_features"
    assert "audio_fbank" in zhang["models"]["families"]


def test_numpy_spectral_functions_compute_what_librosa_computes_on_real_speech():
    """`spectral` stands in for librosa's stft, filters.mel and yin: the same values for our arguments."""
    librosa = pytest.importorskip("librosa")
    from impressions import media
    from impressions.data import spectral, video

    speech = video.read_audio(media.pyfeat_test_media("single_face.mp4"), 5.0)
    noise = np.random.default_rng(0).normal(scale=0.1, size=4000).astype(np.float32)  # shorter than 1 s
    for y in (speech, noise):
        want = np.abs(librosa.stft(y, n_fft=512, hop_length=160, win_length=400, center=True)) ** 2
        np.testing.assert_array_equal(spectral.power_stft(y, 512, 160, 400), want)
        f0 = spectral.yin(y, fmin=50, fmax=500, sr=16000, frame_length=1024)
        np.testing.assert_allclose(
            f0, librosa.yin(y, fmin=50, fmax=500, sr=16000, frame_length=1024), atol=1e-3
        )
    for n_mels, htk in ((64, False), (26, True)):
        np.testing.assert_array_equal(
            spectral.mel_bank(16000, 512, n_mels, htk),
            librosa.filters.mel(sr=16000, n_fft=512, n_mels=n_mels, htk=htk),
        )
