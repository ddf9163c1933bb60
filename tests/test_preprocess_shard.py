"""The shard job's per-clip cache: what it reuses, what it processes again, and what it never trusts."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from impressions import schemas
from impressions.data import image_store, preprocess, preprocess_shard
from impressions.testing import face_clip

SETTINGS = preprocess.Settings(frames_per_clip=3, frame_size=32, identity=False)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    out = {}
    for i, name in enumerate(["a.000", "-b.001", "c.002"]):
        out[name] = root / f"{name}.mp4"
        face_clip(out[name], start=1 + 2 * i, seconds=2)
    return out


def arrays(clips_dir, clip_id):
    found = {kind: image_store.read(clips_dir / clip_id, kind).all() for kind in ("frames", "faces")}
    return {**found, "waveform": np.load(clips_dir / clip_id / "waveform.npy")}


SEARCHES = pytest.mark.parametrize("search", ["full", "tracked"])  # faces.search


@SEARCHES
def test_unchanged_clips_are_reused_and_changed_ones_processed(videos, tmp_path, search):
    clips = tmp_path / "clips"
    settings = dataclasses.replace(SETTINGS, face_search=search)
    first = preprocess_shard.preprocess_clips(videos, clips, settings)
    assert sorted(first.processed) == sorted(videos) and first.reused == []
    before = {c: arrays(clips, c) for c in videos}
    again = preprocess_shard.preprocess_clips(videos, clips, settings)
    assert again.processed == [] and sorted(again.reused) == sorted(videos)
    assert "0 processed, 3 reused" in again.summary()

    # a touched file (new mtime, same bytes) is the same clip; a replaced one is not
    os.utime(videos["a.000"], (1, 1))
    replaced = tmp_path / "replaced.mp4"
    shutil.copy(videos["c.002"], replaced)
    changed = dict(videos, **{"-b.001": replaced})
    run = preprocess_shard.preprocess_clips(changed, clips, settings)
    assert run.processed == ["-b.001"] and sorted(run.reused) == ["a.000", "c.002"]
    assert np.array_equal(arrays(clips, "-b.001")["frames"], before["c.002"]["frames"])
    assert not (clips / preprocess_shard.PARTIAL).exists()

    # a frame setting changes every clip's key; without the cache everything is processed
    wider = dataclasses.replace(settings, frames_per_clip=4)
    assert sorted(preprocess_shard.preprocess_clips(videos, clips, wider).processed) == sorted(videos)
    assert arrays(clips, "a.000")["frames"].shape[0] == 4
    forced = preprocess_shard.preprocess_clips(videos, clips, wider, cache=False)
    assert sorted(forced.processed) == sorted(videos) and forced.reused == []


@SEARCHES
def test_a_half_written_clip_is_never_trusted(videos, tmp_path, search):
    clips = tmp_path / "clips"
    settings = dataclasses.replace(SETTINGS, face_search=search)
    preprocess_shard.preprocess_clips(videos, clips, settings)
    want = arrays(clips, "a.000")
    # what a job killed mid-write could leave: a clip folder without its key, a scratch folder
    (clips / "a.000" / preprocess_shard.CACHE_FILE).unlink()
    (clips / "a.000" / "faces.tar").write_bytes(b"half a tar")
    scratch = clips / preprocess_shard.PARTIAL / "job" / "c.002"
    scratch.mkdir(parents=True)
    (scratch / "qc.json").write_text("{}")
    # and a key that does not match (another setting) with every file present
    key = json.loads((clips / "-b.001" / preprocess_shard.CACHE_FILE).read_text())
    key["settings"]["frames_per_clip"] = 99
    (clips / "-b.001" / preprocess_shard.CACHE_FILE).write_text(json.dumps(key))
    run = preprocess_shard.preprocess_clips(videos, clips, settings)
    assert sorted(run.processed) == ["-b.001", "a.000"] and run.reused == ["c.002"]
    got = arrays(clips, "a.000")
    assert all(np.array_equal(got[k], want[k]) for k in want)
    assert not (clips / preprocess_shard.PARTIAL).exists()


def test_stale_folders_of_the_shard_are_removed(videos, tmp_path):
    clips = tmp_path / "clips"
    preprocess_shard.preprocess_clips(videos, clips, SETTINGS)
    kept = {k: v for k, v in videos.items() if k != "c.002"}
    run = preprocess_shard.preprocess_clips(kept, clips, SETTINGS, stale=lambda c: c != "-b.001")
    assert run.pruned == ["c.002"] and sorted(p.name for p in clips.iterdir()) == ["-b.001", "a.000"]


def test_fingerprint_reads_content(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"x" * 3_000_000)
    b.write_bytes(b"x" * 2_999_999 + b"y")  # same size, one byte differs at the end
    assert preprocess_shard.fingerprint(a)["size"] == preprocess_shard.fingerprint(b)["size"]
    assert preprocess_shard.fingerprint(a) != preprocess_shard.fingerprint(b)


def test_the_key_follows_the_stored_columns_and_the_settings_fields(tmp_path, monkeypatch):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"not decoded: the key reads bytes only")
    key = preprocess_shard.cache_key(video, SETTINGS)
    assert preprocess_shard.cache_key(video, SETTINGS) == key  # the same inputs, the same key
    assert json.loads(json.dumps(key)) == key  # what cache.json stores compares equal
    for table in preprocess_shard.CLIP_TABLES:
        monkeypatch.setitem(schemas.TABLES, table, {**schemas.TABLES[table], "new_column": "f32"})
        assert preprocess_shard.cache_key(video, SETTINGS) != key, f"a new {table} column kept the key"
        monkeypatch.undo()
    retyped = {**schemas.TABLES["frames"], "time_s": "f32"}
    monkeypatch.setitem(schemas.TABLES, "frames", retyped)
    assert preprocess_shard.cache_key(video, SETTINGS) != key
    monkeypatch.undo()
    # a table no clip folder stores changes no clip key
    monkeypatch.setitem(schemas.TABLES, "audio", {**schemas.TABLES["audio"], "new_column": "f32"})
    assert preprocess_shard.cache_key(video, SETTINGS) == key
    monkeypatch.undo()
    # a new Settings field (at its default) changes every key
    wider = dataclasses.make_dataclass(
        "Wider", [("new_option", int, 1)], bases=(preprocess.Settings,), frozen=True
    )
    assert preprocess_shard.cache_key(video, wider(**dataclasses.asdict(SETTINGS))) != key
    # where the detector looks is part of the key: each face-search setting reprocesses the clips
    for change in ({"face_search": "tracked"}, {"full_every": 3}, {"window_face": 120}):
        assert preprocess_shard.cache_key(video, dataclasses.replace(SETTINGS, **change)) != key, change


def test_the_key_is_the_same_in_another_process(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"bytes")
    code = (
        "import json, sys; from impressions.data import preprocess, preprocess_shard; "
        "s = preprocess.Settings(frames_per_clip=3, frame_size=32, identity=False); "
        "print(json.dumps(preprocess_shard.cache_key(sys.argv[1], s)))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    out = subprocess.run([sys.executable, "-c", code, str(video)], env=env, capture_output=True, text=True)
    assert json.loads(out.stdout) == preprocess_shard.cache_key(video, SETTINGS), out.stderr
