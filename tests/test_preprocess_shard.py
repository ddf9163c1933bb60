"""The shard job's per-clip cache: what it reuses, what it processes again, and what it never trusts."""

import dataclasses
import json
import os
import shutil

import numpy as np
import pytest

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


def test_unchanged_clips_are_reused_and_changed_ones_processed(videos, tmp_path):
    clips = tmp_path / "clips"
    first = preprocess_shard.preprocess_clips(videos, clips, SETTINGS)
    assert sorted(first.processed) == sorted(videos) and first.reused == []
    before = {c: arrays(clips, c) for c in videos}
    again = preprocess_shard.preprocess_clips(videos, clips, SETTINGS)
    assert again.processed == [] and sorted(again.reused) == sorted(videos)
    assert "0 processed, 3 reused" in again.summary()

    # a touched file (new mtime, same bytes) is the same clip; a replaced one is not
    os.utime(videos["a.000"], (1, 1))
    replaced = tmp_path / "replaced.mp4"
    shutil.copy(videos["c.002"], replaced)
    changed = dict(videos, **{"-b.001": replaced})
    run = preprocess_shard.preprocess_clips(changed, clips, SETTINGS)
    assert run.processed == ["-b.001"] and sorted(run.reused) == ["a.000", "c.002"]
    assert np.array_equal(arrays(clips, "-b.001")["frames"], before["c.002"]["frames"])
    assert not (clips / preprocess_shard.PARTIAL).exists()

    # a frame setting changes every clip's key; without the cache everything is processed
    wider = dataclasses.replace(SETTINGS, frames_per_clip=4)
    assert sorted(preprocess_shard.preprocess_clips(videos, clips, wider).processed) == sorted(videos)
    assert arrays(clips, "a.000")["frames"].shape[0] == 4
    forced = preprocess_shard.preprocess_clips(videos, clips, wider, cache=False)
    assert sorted(forced.processed) == sorted(videos) and forced.reused == []


def test_a_half_written_clip_is_never_trusted(videos, tmp_path):
    clips = tmp_path / "clips"
    preprocess_shard.preprocess_clips(videos, clips, SETTINGS)
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
    run = preprocess_shard.preprocess_clips(videos, clips, SETTINGS)
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
