import shutil
import time

import polars as pl
import pytest

from impressions.data import clip_index
from impressions.testing import write_fi_annotations


def test_fi_layout_index_reports_missing_and_unannotated(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("-6otZ7M-Mro.003", "abc.001"):
        (tmp_path / "a" / "b" / f"{name}.mp4").write_bytes(b"")
    (tmp_path / "stray.000.mp4").write_bytes(b"")
    write_fi_annotations(tmp_path, {"train": ["-6otZ7M-Mro.003"], "val": ["abc.001"], "test": ["gone.002"]})
    index = clip_index.build(tmp_path)
    table = index.table()
    assert table["clip_id"].to_list() == ["-6otZ7M-Mro.003", "abc.001"]
    assert table["split"].to_list() == ["train", "val"]
    assert table["youtube_id"].to_list() == ["-6otZ7M-Mro", "abc"]
    assert [row["clip_id"] for row in index.missing_files] == ["gone.002"]
    assert [p.endswith("stray.000.mp4") for p in index.unannotated] == [True]


def test_no_annotations_is_a_clear_error(tmp_path):
    with pytest.raises(clip_index.IndexError_, match="no annotation file"):
        clip_index.build(tmp_path)


def test_duplicate_clip_names_are_an_error(tmp_path):
    for folder in ("x", "y"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "dup.000.mp4").write_bytes(b"")
    write_fi_annotations(tmp_path, {"train": ["dup.000"]})
    with pytest.raises(clip_index.IndexError_, match="appears twice"):
        clip_index.build(tmp_path)


def test_manifest_csv(tmp_path):
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "one.mp4").write_bytes(b"")
    pl.DataFrame(
        {"path": ["v/one.mp4", "v/two.mp4"], "split": ["train", "test"]}
        | {t: [0.5, None] for t in ("extraversion", "neuroticism", "agreeableness", "conscientiousness")}
        | {"openness": [0.2, None]}
    ).write_csv(tmp_path / "m.csv")
    index = clip_index.build(manifest=tmp_path / "m.csv")
    assert index.table()["clip_id"].to_list() == ["one"]
    assert index.table()["openness"].to_list() == [0.2]
    assert [row["clip_id"] for row in index.missing_files] == ["two"]


def test_manifest_bad_split_is_named(tmp_path):
    pl.DataFrame({"path": ["a.mp4"], "split": ["training"]}).write_csv(tmp_path / "m.csv")
    with pytest.raises(clip_index.IndexError_, match="training"):
        clip_index.build(manifest=tmp_path / "m.csv")


def test_index_of_full_fi_scale_is_fast(tmp_path, fi_annotations):
    """10,000 annotated clips index without touching any video (all are missing here)."""
    for name in ("annotation_training.pkl", "annotation_validation.pkl", "annotation_test.pkl"):
        shutil.copy(fi_annotations / name, tmp_path / name)
    started = time.perf_counter()
    index = clip_index.build(tmp_path)
    assert len(index.missing_files) == 10000
    print(f"indexed 10,000 FI clips in {time.perf_counter() - started:.2f} s")
