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


def test_concurrent_first_calls_with_a_cold_numba_cache(tmp_path):
    """Parallel jobs on a fresh environment must not corrupt numba's cache (they segfaulted before)."""
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
