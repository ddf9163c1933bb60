"""Identity descriptors, people clustered across YouTube ids, face-based leakage (data.identity)."""

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from impressions import cli
from impressions.data import demo, identity, preprocess, shards, splits, tables


def _unit(v):
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def test_cluster_links_chains_and_leaves_faceless_rows_out():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=128), rng.normal(size=128)
    a, b = _unit(a) * 2, _unit(b) * 2  # far apart (distance ~2.8)
    step = _unit(rng.normal(size=128)) * 0.3
    x = np.stack([a, a + step, a + 2 * step, b, np.full(128, np.nan), b + step / 3])
    labels = identity.cluster(x, threshold=0.4)
    # a, a+step, a+2step chain (each step 0.3 < 0.4) although a and a+2step are 0.6 apart
    assert labels.tolist() == [0, 0, 0, 1, -1, 1]


def test_cluster_people_averages_each_youtube_id_first():
    rng = np.random.default_rng(1)
    person_a, person_b = _unit(rng.normal(size=128)), _unit(rng.normal(size=128))
    noise = [_unit(rng.normal(size=128)) * 0.35 for _ in range(4)]
    # one person's two clips under id x are 0.7 apart, too far to link clip by clip; their mean is
    # near the mean of the same person's id y; person b (id z) stays apart; the faceless clip gets -1
    x = np.stack([person_a + noise[0], person_a - noise[0], person_a + noise[1], person_a - noise[1],
                  person_b + noise[2], np.full(128, np.nan)])  # fmt: skip
    groups = ["x", "x", "y", "y", "z", "z"]
    assert identity.cluster(x[:4], threshold=0.3).tolist() == [0, 1, 2, 3]
    assert identity.cluster_people(x, groups, threshold=0.3).tolist() == [0, 0, 0, 0, 1, -1]
    assert identity.cluster_people(x, [None] * 6, threshold=0.3).tolist() == [0, 1, 2, 3, 4, -1]


def test_identity_groups_join_people_and_youtube_ids():
    clips = pl.DataFrame({
        "clip_id": ["a.0", "a.1", "b.0", "c.0", "d.0"], "youtube_id": ["a", "a", "b", "c", "d"],
        "split": ["train", "train", "test", "test", "val"],
    })  # fmt: skip
    people = pl.DataFrame({"clip_id": ["a.0", "a.1", "b.0", "c.0", "d.0"], "person": [0, -1, 0, 1, 2]})
    groups = identity.identity_groups(clips, people)["identity_group"].to_list()
    # a.1 has no face but shares a's YouTube id; b.0 is a's person under another id
    assert groups[0] == groups[1] == groups[2] and len({groups[0], groups[3], groups[4]}) == 3
    split = splits.assign_splits(groups_table := identity.identity_groups(clips, people), "identity_faces")
    by_group = split.group_by("identity_group").agg(pl.col("split").n_unique())
    assert (by_group["split"] == 1).all() and groups_table.height == split.height


def test_face_leakage_counts_people_not_youtube_ids(tmp_path, capsys):
    table = pl.DataFrame({
        "clip_id": ["a.0", "b.0", "c.0", "d.0", "e.0"], "youtube_id": ["a", "b", "c", "d", "e"],
        "split": ["train", "test", "test", "test", "val"], "has_identity": [True, True, True, False, True],
        "person": [0, 0, 1, -1, 0], "descriptor": [[0.0] * 128] * 3 + [None] + [[0.0] * 128],
    }, schema_overrides={"person": pl.Int32, "descriptor": pl.List(pl.Float32)})  # fmt: skip
    rows = {r["split"]: r for r in identity.leakage_rows(table)}
    assert (
        rows["test"]["people"] == 2 and rows["test"]["in_train"] == 1 and rows["test"]["clips_in_train"] == 1
    )
    assert rows["val"]["in_train"] == 1 and rows["train"]["people"] == 1
    assert identity.multi_id_people(table) == (1, 2)
    path = tmp_path / "identities.parquet"
    table.write_parquet(path)
    assert cli.main(["leakage", "--faces", str(path)]) == 0
    out = capsys.readouterr().out
    assert "test: 1 of 2 people (50.0%) also appear in train" in out
    assert "1 of 2 people appear under more than one YouTube id" in out
    with pytest.raises(SystemExit):
        cli.main(["leakage"])
    table.with_columns(has_identity=False).write_parquet(path)
    with pytest.raises(SystemExit, match="faces.identity: true"):
        cli.main(["leakage", "--faces", str(path)])


@pytest.mark.parametrize(
    ("choice", "split", "computed"),
    [("auto", "official", False), ("auto", "identity", False), ("auto", "identity_faces", True),
     (True, "official", True), (False, "identity_faces", False)],
)  # fmt: skip
def test_identity_descriptor_is_computed_only_when_asked_or_read(choice, split, computed):
    config = {"faces": {"identity": choice}, "models": {"split": split}}
    assert preprocess.wants_identity(config) is computed


@pytest.fixture(scope="module")
def demo_signals(demo_root, tmp_path_factory):
    """Every demo clip preprocessed (default 10 frames), and its voice and identity descriptors."""
    root = demo_root
    out = tmp_path_factory.mktemp("clips")
    clips = demo.demo_clips()
    settings = preprocess.Settings()
    for clip in clips:
        preprocess.preprocess_clip(clip.clip_id, root / clip.relpath, out / clip.clip_id, settings)
    dirs = {c.clip_id: out / c.clip_id for c in clips}
    shard = tmp_path_factory.mktemp("shard")
    tables.clip_shard(dirs, shard / "frames.parquet", shard / "qc.parquet", shard / "signals.parquet")
    index = pl.DataFrame({
        "clip_id": [c.clip_id for c in clips], "split": [c.split for c in clips],
        "youtube_id": [c.youtube_id for c in clips],
    })  # fmt: skip
    index.write_parquet(shard / "clips.parquet")
    tables.gather_signals([shard / "signals.parquet"], shard / "clips.parquet", shard / "identities.parquet")
    shards.voice_shard(dirs, settings.sample_rate, "builtin", shard / "voice.parquet")
    return clips, out, shard


def test_demo_clips_of_one_source_cluster_together_and_different_people_do_not(demo_signals):
    clips, _, shard = demo_signals
    person = {c.clip_id: c.person for c in clips}
    table = pl.read_parquet(shard / "identities.parquet").filter(pl.col("person") >= 0)
    assert table.height >= 50  # all but the two faceless clips (and at most a couple of misses)
    truth = [person[c] for c in table["clip_id"]]
    clusters = table["person"].to_list()
    by_person = {p: {k for k, q in zip(clusters, truth) if q == p} for p in set(truth)}
    by_cluster = {
        k: {p for k, p in zip(clusters, truth) if k == cluster}
        for cluster in set(clusters)
        for k in [cluster]
    }
    assert all(len(ks) == 1 for ks in by_person.values()), by_person  # one source, one cluster
    assert all(len(ps) == 1 for ps in by_cluster.values()), by_cluster  # one cluster, one person
    assert len(by_person) == 8


def test_demo_voice_table_has_a_voice_where_one_was_mixed_in(demo_signals):
    clips, _, shard = demo_signals
    voice = pl.read_parquet(shard / "voice.parquet")
    kinds = {c.clip_id: c for c in clips}
    voiced = voice.filter(pl.col("clip_id").is_in([c.clip_id for c in clips if c.audio == "voice"]))
    assert voiced.height > 40 and (voiced["voiced_ratio"] > 0.2).all()
    # the generated voice's mean pitch follows the clip's f0 (within a semitone and a half)
    f0 = np.array([kinds[c].f0 for c in voiced["clip_id"]])
    assert np.median(np.abs(12 * np.log2(voiced["f0_mean_hz"].to_numpy() / f0))) < 1.5
    silent = voice.filter(pl.col("clip_id").is_in([c.clip_id for c in clips if c.audio == "none"]))
    assert (silent["voiced_ratio"] == 0).all()


def test_demo_qc_records_tracking(demo_signals):
    clips, out, _ = demo_signals
    records = [json.loads((out / c.clip_id / "qc.json").read_text()) for c in clips]
    assert all(r["n_tracks"] is not None and r["top_face_frames"] <= r["frames_with_face"] for r in records)
    assert all(
        np.isnan(np.load(Path(out / c.clip_id / "identity.npy"))).all() for c in clips if c.person is None
    )
