"""The audio and expression shard jobs' per-clip cache: reuse, recompute, invalidation, atomicity."""

import json
import shutil
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest

from impressions import schemas
from impressions.data import preprocess, preprocess_shard, shards, stage_cache, tables
from impressions.expressions import detector
from impressions.testing import face_clip, ffmpeg, out

SETTINGS = preprocess.Settings(frames_per_clip=3, frame_size=32, identity=False)
AUDIO = {"seconds": 2.0, "n_mels": 16, "n_fbank": 8}
EXPRESSIONS = {"backend": "builtin", "device": "cpu", "batch_size": 64}


class Counting:
    """The builtin backend, recording which clips it scored."""

    def __init__(self, **options):
        self.inner = detector.get_backend("builtin", **options)
        self.name, self.device, self.scored = self.inner.name, self.inner.device, []
        self.sources = self.inner.sources

    def predict(self, crops, landmarks, clip_ids):
        self.scored.append(clip_ids[0])
        return self.inner.predict(crops, landmarks, clip_ids)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Three face clips, a clip with audio and no video (no face: no expression rows) and an empty file."""
    root = tmp_path_factory.mktemp("videos")
    found = {}
    for i, name in enumerate(["a.000", "-b.001", "c.002"]):
        found[name] = root / f"{name}.mp4"
        face_clip(found[name], start=1 + 2 * i, seconds=2)
    found["tone.003"] = root / "tone.003.mp4"
    ffmpeg("-f", "lavfi", "-t", "2", "-i", "sine=frequency=300", "-c:a", "aac", out(found["tone.003"]))
    found["empty.004"] = root / "empty.004.mp4"
    found["empty.004"].write_bytes(b"")
    return found


@pytest.fixture(scope="module")
def backend():
    return Counting(device="cpu", batch_size=64)


@pytest.fixture()
def clips(videos, tmp_path):
    """A preprocessed shard (the clip folders `preprocess_shard` leaves); folders by clip id."""
    preprocess_shard.preprocess_clips(videos, tmp_path / "clips", SETTINGS)
    return {clip_id: tmp_path / "clips" / clip_id for clip_id in videos}


def contents(path):
    """A shard output's bytes: a Parquet file's, an npz's members' (the zip stamps each with its time)."""
    if path.suffix == ".npz":
        with zipfile.ZipFile(path) as z:
            return {name: z.read(name) for name in z.namelist()}
    return path.read_bytes()


def run_audio(folders, tmp_path, name, options=AUDIO, **kwargs):
    table, arrays = tmp_path / f"{name}.parquet", tmp_path / f"{name}.npz"
    report = shards.audio_shard(folders, options, table, arrays, **kwargs)
    return report, contents(table), contents(arrays)


def run_expressions(folders, backend, tmp_path, name, settings=EXPRESSIONS, **kwargs):
    backend.scored.clear()
    table = tmp_path / f"{name}.parquet"
    report = shards.expression_shard(folders, backend, table, settings=settings, **kwargs)
    return report, contents(table)


def test_audio_features_reused_byte_identical_and_invalidated_by_their_own_settings(clips, tmp_path, videos):
    first, *want = run_audio(clips, tmp_path, "first")
    assert sorted(first.processed) == sorted(clips) and first.reused == []
    again, *got = run_audio(clips, tmp_path, "again")
    assert again.processed == [] and again.summary() == "5 clips: 0 processed, 5 reused from the cache"
    assert got == want  # the same bytes, reused or computed
    forced, *got = run_audio(clips, tmp_path, "forced", cache=False)
    assert sorted(forced.processed) == sorted(clips) and got == want

    # a clip whose video is replaced is reprocessed by preprocess_shard, which drops its stored features
    replaced = dict(videos, **{"-b.001": videos["c.002"]})
    preprocess_shard.preprocess_clips(replaced, tmp_path / "clips", SETTINGS)
    assert not (clips["-b.001"] / shards.CACHE_FILES["audio"]).exists()
    run, *got = run_audio(clips, tmp_path, "replaced")
    assert run.processed == ["-b.001"] and run.summary() == "5 clips: 1 processed, 4 reused from the cache"
    assert list(run_audio(clips, tmp_path, "reference", cache=False)[1:]) == got

    # an audio setting recomputes every clip's features (and the new ones are kept)
    wider = run_audio(clips, tmp_path, "wider", options=dict(AUDIO, n_mels=20))[0]
    assert sorted(wider.processed) == sorted(clips)
    assert run_audio(clips, tmp_path, "wider2", options=dict(AUDIO, n_mels=20))[0].processed == []
    # so does the filterbank's implementation (audio.fbank), and its stored features are the new ones
    released = dict(AUDIO, fbank="python_speech_features")
    run, _, arrays = run_audio(clips, tmp_path, "released", options=released)
    assert sorted(run.processed) == sorted(clips) and arrays["logfbank.npy"] != want[1]["logfbank.npy"]
    run, _, again = run_audio(clips, tmp_path, "released2", options=released)
    assert run.processed == [] and again == arrays


def test_expressions_reused_byte_identical_and_invalidated_by_their_own_settings(clips, tmp_path, backend):
    first, want = run_expressions(clips, backend, tmp_path, "first")
    assert sorted(first.processed) == sorted(clips)
    builtin = detector.SOURCES["builtin"]  # the shard names its sources, reused or computed
    named = {
        "expressions_backend": "builtin",
        "au_source": builtin["aus"],
        "emotion_source": builtin["emotions"],
    }
    assert tables.expression_sources(tmp_path / "first.parquet") == named
    assert sorted(backend.scored) == ["-b.001", "a.000", "c.002"]  # the other two have no face
    again, got = run_expressions(clips, backend, tmp_path, "again")
    assert again.summary() == "5 clips: 0 processed, 5 reused from the cache" and backend.scored == []
    assert got == want and tables.expression_sources(tmp_path / "again.parquet") == named
    forced, got = run_expressions(clips, backend, tmp_path, "forced", cache=False)
    assert sorted(forced.processed) == sorted(clips) and got == want

    # an expression setting recomputes every clip's expressions, and no audio feature
    run_audio(clips, tmp_path, "audio")
    batch = run_expressions(clips, backend, tmp_path, "batch", settings=dict(EXPRESSIONS, batch_size=7))[0]
    assert sorted(batch.processed) == sorted(clips)
    assert run_audio(clips, tmp_path, "audio2")[0].processed == []
    # an audio setting recomputes no expression
    run_audio(clips, tmp_path, "audio3", options=dict(AUDIO, hop_ms=20.0))
    assert run_expressions(clips, backend, tmp_path, "batch2", settings=dict(EXPRESSIONS, batch_size=7))[
        0
    ].reused == sorted(clips)


def test_a_half_written_or_stale_result_is_never_trusted(clips, tmp_path, backend, monkeypatch):
    _, want = run_expressions(clips, backend, tmp_path, "want")
    path = {c: clips[c] / shards.CACHE_FILES["expressions"] for c in clips}
    # corrupt bytes at the final name, a stale key, and no preprocessing key (a folder not from a shard job)
    path["a.000"].write_bytes(path["a.000"].read_bytes()[:200])
    with np.load(path["c.002"]) as stored:
        arrays = dict(stored)
    arrays[stage_cache.KEY] = np.array(str(arrays[stage_cache.KEY]).replace('"cpu"', '"cuda"'))
    np.savez(path["c.002"], **arrays)
    (clips["-b.001"] / preprocess_shard.CACHE_FILE).unlink()
    run, got = run_expressions(clips, backend, tmp_path, "repaired")
    assert run.processed == ["-b.001", "a.000", "c.002"] and got == want
    # without a preprocessing key a stored result is never read, so the clip is computed every time
    assert run_expressions(clips, backend, tmp_path, "again")[0].processed == ["-b.001"]

    # a job killed between writing a result and renaming it into place: the scratch file is never read
    calls = []

    def killed(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        shutil.move(src, dst)

    monkeypatch.setattr(stage_cache, "os", SimpleNamespace(replace=killed))
    with pytest.raises(KeyboardInterrupt):
        run_audio(clips, tmp_path, "killed")
    monkeypatch.undo()
    second = calls[1]
    assert second.with_name(second.name + ".partial").exists() and not second.exists()
    run, *got = run_audio(clips, tmp_path, "resumed")
    assert len(run.reused) == 1 and second.parent.name in run.processed
    assert list(run_audio(clips, tmp_path, "reference", cache=False)[1:]) == got


def audio_key(clip_dir):
    return stage_cache.stage_key(
        clip_dir, "audio_features", shards.AUDIO_CACHE_VERSION, AUDIO, tables=shards.AUDIO_CACHE_TABLES
    )


def test_the_key_holds_the_clip_key_the_settings_and_the_version(clips):
    key = json.loads(audio_key(clips["a.000"]))
    assert key["clip"] == json.loads((clips["a.000"] / preprocess_shard.CACHE_FILE).read_text())
    assert key["settings"] == AUDIO and key["version"] == shards.AUDIO_CACHE_VERSION
    assert key["tables"] == schemas.fingerprint("audio")


@pytest.mark.parametrize(
    "tables", [shards.AUDIO_CACHE_TABLES, shards.EXPRESSIONS_CACHE_TABLES], ids=["audio", "expressions"]
)
def test_a_column_added_to_the_stored_table_changes_the_key(tmp_path, monkeypatch, tables):
    (tmp_path / preprocess_shard.CACHE_FILE).write_text(json.dumps({"version": 2}))  # any clip key

    def key():
        return stage_cache.stage_key(tmp_path, "stage", 1, {"option": 1}, tables=tables)

    before = key()
    assert key() == before  # the same inputs, the same key
    for table in tables:
        monkeypatch.setitem(schemas.TABLES, table, {**schemas.TABLES[table], "new_column": "f32"})
        assert key() != before
        monkeypatch.undo()
    assert key() == before
    # a table the stage does not store changes nothing
    others = [t for t in ("audio", "expressions", "faces") if t not in tables]
    for table in others:
        monkeypatch.setitem(schemas.TABLES, table, {**schemas.TABLES[table], "new_column": "f32"})
    assert key() == before
