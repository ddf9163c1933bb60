"""openSMILE's eGeMAPSv02 functionals as a voice backend (impressions.data.egemaps), its per-clip cache
and the backend named in the voice table's metadata (impressions.data.tables)."""

import importlib.util
import json

import numpy as np
import polars as pl
import pytest

from impressions.data import egemaps, shards, tables, voice
from impressions.data.preprocess import output_paths
from impressions.data.preprocess_shard import CACHE_FILE
from impressions.data.shards import CACHE_FILES
from impressions.schemas import VOICE, VOICE_KEYS

# only found, never imported: impressions.data.egemaps loads the wheel's ctypes wrapper by path
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("opensmile") is None, reason="opensmile not installed"
)

SR = 16000


def speech_like(seconds=3.0, f0=150.0, seed=0):
    """Harmonics of a slowly wavering F0 through two formant-like peaks, gated into syllables."""
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.03 * np.sin(2 * np.pi * 0.7 * t))) / SR
    formants = lambda f: np.exp(-(((f - 500) / 150) ** 2)) + 0.5 * np.exp(-(((f - 1500) / 250) ** 2))  # noqa: E731
    y = sum(formants(k * f0) * np.sin(k * phase) / k**0.5 for k in range(1, 30))
    gate = (np.sin(2 * np.pi * 4 * t) > -0.2).astype(float)  # ~4 syllables/s with short pauses
    y = 0.1 * y * gate / np.abs(y).max()
    return y + 1e-3 * np.random.default_rng(seed).standard_normal(y.size)


def test_opensmile_backend_writes_the_88_egemaps_functionals_named_as_opensmile_names_them():
    out = voice.describe_with("opensmile", speech_like(), SR)
    names = [k for k in out if k not in VOICE_KEYS]
    assert len(names) == egemaps.N_FEATURES == len(set(names)) == 88
    assert tuple(names) == egemaps.feature_names() == voice.columns("opensmile")
    for name in ("F0semitoneFrom27.5Hz_sma3nz_amean", "jitterLocal_sma3nz_amean",
                 "shimmerLocaldB_sma3nz_amean", "HNRdBACF_sma3nz_amean", "loudness_sma3_amean",
                 "equivalentSoundLevel_dBp", "VoicedSegmentsPerSec", "mfcc1_sma3_amean"):  # fmt: skip
        assert name in names
    assert all(np.isfinite(out[n]) for n in names)
    # 150 Hz is 29.37 semitones above 27.5 Hz; openSMILE's pitch must find it (its mean over voiced frames)
    assert out["F0semitoneFrom27.5Hz_sma3nz_amean"] == pytest.approx(12 * np.log2(150 / 27.5), abs=0.5)
    assert out["voice_seconds"] == pytest.approx(3.0)
    higher = voice.describe_with("opensmile", speech_like(f0=220.0), SR)
    assert higher["F0semitoneFrom27.5Hz_sma3nz_amean"] == pytest.approx(12 * np.log2(220 / 27.5), abs=0.5)


def test_opensmile_on_an_empty_or_silent_window_gives_values_not_a_crash():
    empty = egemaps.describe(np.zeros(0), SR)
    assert len(empty) == 88 and all(np.isnan(v) for v in empty.values())
    silent = egemaps.describe(np.zeros(SR), SR)
    assert len(silent) == 88 and silent["VoicedSegmentsPerSec"] == 0.0


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown voice backend 'praat'"):
        voice.columns("praat")


def _clip(folder, samples, key="v1"):
    folder.mkdir(parents=True)
    paths = output_paths(folder)
    np.save(paths["waveform"], np.concatenate([samples, np.zeros(SR)]).astype(np.float32))  # padded
    paths["qc"].write_text(json.dumps({"audio_samples": samples.size}))
    (folder / CACHE_FILE).write_text(json.dumps({"video": key}))
    return folder


def test_voice_is_cached_per_clip_and_backend(tmp_path, monkeypatch):
    clip = _clip(tmp_path / "a.000", speech_like(2.0))
    built, computed = shards.clip_voice(clip, SR, "builtin")
    smile, _ = shards.clip_voice(clip, SR, "opensmile")
    assert computed
    assert set(built) == {"voice_seconds", *VOICE} and len(smile) == 89  # the key holds the backend
    assert built["voice_seconds"] == smile["voice_seconds"] == pytest.approx(2.0)  # the real samples only
    assert all((clip / CACHE_FILES["voice"].format(backend=b)).is_file() for b in voice.BACKENDS)

    calls = []
    real = egemaps.describe
    monkeypatch.setattr(egemaps, "describe", lambda *args: calls.append(1) or real(*args))
    again, computed = shards.clip_voice(clip, SR, "opensmile")
    assert not computed and not calls and again.keys() == smile.keys()
    assert np.allclose(list(again.values()), list(smile.values()), equal_nan=True)
    (clip / CACHE_FILE).write_text(json.dumps({"video": "replaced"}))  # another video: recomputed
    assert shards.clip_voice(clip, SR, "opensmile")[1] and len(calls) == 1
    assert shards.clip_voice(clip, SR, "opensmile", cache=False)[1] and len(calls) == 2


@pytest.mark.parametrize("backend", voice.BACKENDS)
def test_voice_table_names_its_backend_and_keeps_its_columns(tmp_path, backend):
    dirs = {f"c{i}.000": _clip(tmp_path / f"c{i}.000", speech_like(2.0, seed=i)) for i in range(3)}
    parts = [tmp_path / "s0.parquet", tmp_path / "s1.parquet"]
    report = shards.voice_shard({k: dirs[k] for k in ("c0.000", "c2.000")}, SR, backend, parts[0])
    assert report.processed == ["c0.000", "c2.000"]
    shards.voice_shard({"c1.000": dirs["c1.000"]}, SR, backend, parts[1])
    assert tables.backend_of(parts[0]) == backend
    out = tmp_path / "voice.parquet"
    tables.gather_voice(parts, out)
    assert tables.backend_of(out) == backend
    table = pl.read_parquet(out)
    assert table.columns == [*VOICE_KEYS, *voice.columns(backend)]
    assert table["clip_id"].to_list() == sorted(dirs)
    assert shards.voice_shard(dirs, SR, backend, parts[0]).reused == sorted(dirs)  # all cached now


def test_an_empty_shard_still_has_the_backends_columns(tmp_path):
    out = tmp_path / "empty.parquet"
    shards.voice_shard({}, SR, "opensmile", out)
    assert pl.read_parquet(out).columns == [*VOICE_KEYS, *egemaps.feature_names()]


def test_voice_shards_of_two_backends_are_refused(tmp_path):
    dirs = {"c.000": _clip(tmp_path / "c.000", speech_like(1.0))}
    paths = [tmp_path / f"{b}.parquet" for b in voice.BACKENDS]
    for backend, path in zip(voice.BACKENDS, paths):
        shards.voice_shard(dirs, SR, backend, path)
    with pytest.raises(RuntimeError, match="different voice backends"):
        tables.gather_voice(paths, tmp_path / "v.parquet")


def test_a_backend_failing_on_one_clip_gives_nan_not_a_failed_shard(tmp_path, monkeypatch):
    dirs = {"c.000": _clip(tmp_path / "c.000", speech_like(1.0))}

    def broken(*args):
        raise OSError("openSMILE crashed")

    monkeypatch.setattr(egemaps, "describe", broken)
    table = shards.voice_rows(dirs, SR, "opensmile")
    assert table.height == 1 and table["F0semitoneFrom27.5Hz_sma3nz_amean"].is_nan().all()
    assert not (dirs["c.000"] / CACHE_FILES["voice"].format(backend="opensmile")).exists()  # never cached


def test_a_missing_opensmile_wheel_is_named_with_its_install_command(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(egemaps.OpenSmileMissing, match="pip install --no-deps opensmile==2.6.0"):
        egemaps._root()
