"""models.split: the official split, or an identity-disjoint re-split (impressions.data.splits)."""

import numpy as np
import polars as pl
import pytest

from impressions.data.splits import assign_splits


def toy_clips(seed: int = 0) -> pl.DataFrame:
    """~500 clips of 120 people, 1-7 clips each, the official split leaking people across splits."""
    rng = np.random.default_rng(seed)
    rows = []
    for person in range(120):
        for k in range(int(rng.integers(1, 8))):
            split = rng.choice(["train", "train", "train", "val", "test"])
            rows.append({"clip_id": f"p{person:03d}.{k:03d}", "youtube_id": f"p{person:03d}", "split": split})
    rows.append({"clip_id": "solo.000", "youtube_id": None, "split": "test"})
    rows.append({"clip_id": "unlabelled.000", "youtube_id": "p000", "split": None})
    return pl.DataFrame(rows, schema={"clip_id": pl.String, "youtube_id": pl.String, "split": pl.String})


def counts(table: pl.DataFrame) -> dict:
    return dict(table.drop_nulls("split").group_by("split").len().iter_rows())


def test_official_leaves_the_split_unchanged():
    clips = toy_clips()
    assert assign_splits(clips, "official", seed=3).equals(clips)


def test_identity_keeps_each_person_in_one_split_at_the_official_sizes():
    clips = toy_clips()
    labelled = clips.drop_nulls("split")
    assert labelled.group_by("youtube_id").agg(pl.col("split").n_unique()).filter(pl.col("split") > 1).height
    new = assign_splits(clips, "identity", seed=0)
    assert new.select("clip_id").equals(clips.select("clip_id"))  # same rows, same order
    spans = new.drop_nulls(["split", "youtube_id"]).group_by("youtube_id").agg(pl.col("split").n_unique())
    assert spans["split"].max() == 1
    largest = labelled.group_by("youtube_id").len()["len"].max()
    official, resplit = counts(clips), counts(new)
    assert sum(resplit.values()) == sum(official.values())
    for split, target in official.items():
        assert abs(resplit[split] - target) <= largest, (split, resplit, official)
    assert new.filter(pl.col("clip_id") == "unlabelled.000")["split"].to_list() == [None]


def test_identity_is_deterministic_per_seed_and_ignores_row_order():
    clips = toy_clips()
    first = assign_splits(clips, "identity", seed=7)
    assert assign_splits(clips, "identity", seed=7).equals(first)
    shuffled = assign_splits(clips.sample(fraction=1.0, shuffle=True, seed=1), "identity", seed=7)
    assert shuffled.sort("clip_id").equals(first.sort("clip_id"))
    assert not assign_splits(clips, "identity", seed=8)["split"].equals(first["split"])


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="unknown split mode"):
        assign_splits(toy_clips(), "random")


def test_the_splits_table_is_what_every_consumer_reads(tmp_path):
    """splits.parquet holds the assignment once; read_clips puts it on the clips table unchanged
    whatever mode and seed the caller has (a seed copy shares it), and says what it was made with."""
    from impressions import schemas
    from impressions.data import splits

    clips = toy_clips()
    clips.write_parquet(tmp_path / "clips.parquet")
    table = splits.split_table(tmp_path / "clips.parquet", "identity", seed=5)
    assert table.schema == schemas.polars_schema("splits") and table["clip_id"].equals(clips["clip_id"])
    assert table["split"].equals(assign_splits(clips, "identity", seed=5)["split"])
    table.write_parquet(tmp_path / "splits.parquet")
    read = splits.read_clips(tmp_path / "clips.parquet", tmp_path / "splits.parquet", "identity", 5)
    assert read.equals(assign_splits(clips, "identity", seed=5))
    # The stored table wins over a re-derivation: an edited split is what consumers see.
    edited = table.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("test")).otherwise("split"))
    edited.write_parquet(tmp_path / "edited.parquet")
    assert splits.read_clips(tmp_path / "clips.parquet", tmp_path / "edited.parquet", "identity", 5)[
        "split"
    ].equals(edited["split"])
    # A seed copy of a model (models.seeds) reads the stored split, not its own seed's re-split: seed
    # copies are trained, fused and scored on one split.
    assert not assign_splits(clips, "identity", seed=6)["split"].equals(read["split"])  # seeds differ here
    other = splits.read_clips(tmp_path / "clips.parquet", tmp_path / "splits.parquet", "identity", 6)
    assert other.equals(read)
    assert splits.made_with(tmp_path / "splits.parquet") == ("identity", 5)
    official = splits.split_table(tmp_path / "clips.parquet")
    official.write_parquet(tmp_path / "official.parquet")
    assert splits.read_clips(tmp_path / "clips.parquet", tmp_path / "official.parquet", seed=3).equals(clips)
    with pytest.raises(ValueError, match="re-run the splits rule"):
        clips.head(3).write_parquet(tmp_path / "fewer.parquet")
        splits.read_clips(tmp_path / "fewer.parquet", tmp_path / "splits.parquet", "identity", 5)
