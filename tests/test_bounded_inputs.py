"""What the training inputs hold: arrays per item, rows read from files, one float32 feature matrix."""

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from impressions.training import datasets, inputs


def _mapped(path: Path) -> bool:
    return str(path.resolve()) in Path("/proc/self/maps").read_text()


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc/self/maps (Linux)")
def test_row_dataset_reads_file_rows_without_mapping_the_file(tmp_path):
    array = np.random.default_rng(0).normal(size=(6, 50)).astype(np.float32)
    path = tmp_path / "audio_waveform.npy"
    np.save(path, array)
    clips = datasets.Clips([f"c{i}" for i in range(4)], np.zeros((4, 5)))
    rows = datasets.RowDataset(clips, path, [5, -1, 0, 3])
    assert rows.clip_positions.tolist() == [0, 2, 3]
    got = [rows[i] for i in range(len(rows))]
    for (x, _, _), row in zip(got, [5, 0, 3]):
        assert np.array_equal(x.numpy(), array[row])
    assert [pos for _, _, pos in got] == [0, 2, 3]
    # A memory map's touched pages would count in the job's resident set: the file is never mapped.
    assert not _mapped(path)


def test_npy_rows_refuses_truncated_and_fortran_files(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.arange(40, dtype=np.float32).reshape(4, 10))
    path.write_bytes(path.read_bytes()[:-8])  # the last row loses two values
    rows = datasets.NpyRows(path)
    assert np.array_equal(rows[1], np.arange(10, 20))
    with pytest.raises(ValueError, match="truncated at row 3"):
        rows[3]
    with pytest.raises(IndexError):
        rows[4]
    np.save(path, np.asfortranarray(np.ones((3, 4))))
    with pytest.raises(ValueError, match="C-ordered"):
        datasets.NpyRows(path)


def test_frame_dataset_keeps_items_as_one_array(tmp_path):
    ids = ["a", "b", "c"]
    clips = datasets.Clips(ids[:2], np.zeros((2, 5)))  # clip c is not in the split
    dirs = {"a": tmp_path / "a", "c": tmp_path / "c"}  # clip b has no folder
    table = pl.DataFrame(
        {
            "clip_id": ["a", "a", "b", "c", "a"],
            "frame_index": [0, 1, 0, 0, 4],
            "has_face": [True, False, True, True, True],
        },
        schema_overrides={"frame_index": pl.Int32},
    )
    for faces, frames in ((False, [0, 1, 4]), (True, [0, 4])):
        items = datasets.frame_items(table, clips.ids, faces)
        data = datasets.FrameDataset(clips, dirs, items, "frames")
        assert isinstance(data.items, np.ndarray) and data.items.dtype == np.int64
        assert data.items.tolist() == [[0, k] for k in frames]
        assert data.clip_positions.tolist() == [0] * len(frames)
    pairs = datasets.FrameDataset(clips, dirs, [("a", 2), ("b", 1), ("a", 1)], "frames")
    assert pairs.items.tolist() == [[0, 2], [0, 1]]  # the order given, unknown clips dropped
    assert datasets.FrameDataset(clips, dirs, [], "frames").items.shape == (0, 2)


def test_impute_fills_in_place_with_training_means():
    matrix = np.array(
        [[1.0, np.nan, np.nan], [3.0, 4.0, np.nan], [np.nan, 8.0, np.nan], [np.nan, np.nan, np.nan]],
        dtype=np.float32,
    )
    filled, had_nan, col_mean = inputs._impute(matrix, slice(0, 2))
    assert filled is matrix and filled.dtype == np.float32
    assert col_mean.tolist() == [2.0, 4.0, 0.0]  # a column with no training value gets 0
    assert had_nan.tolist() == [True, True, True, True]
    assert filled.tolist() == [[1, 4, 0], [3, 4, 0], [2, 8, 0], [2, 4, 0]]


def test_impute_matches_a_whole_matrix_mean_across_chunks(monkeypatch):
    monkeypatch.setattr(inputs, "_CHUNK", 3)
    rng = np.random.default_rng(1)
    matrix = rng.normal(size=(11, 4)).astype(np.float32)
    matrix[rng.random(matrix.shape) < 0.3] = np.nan
    expected_mean = np.nan_to_num(np.nanmean(matrix[:7].astype(np.float64), axis=0))
    expected = np.where(np.isnan(matrix), expected_mean, matrix).astype(np.float32)
    rows = np.isnan(matrix).any(axis=1)
    filled, had_nan, col_mean = inputs._impute(matrix, slice(0, 7))
    assert np.allclose(col_mean, expected_mean) and np.array_equal(filled, expected)
    assert np.array_equal(had_nan, rows)


def test_npz_shape_reads_the_header_only(tmp_path):
    path = tmp_path / "features.npz"
    np.savez(path, clip_id=np.array(["a", "b"]), features=np.zeros((2, 7), dtype=np.float32))
    assert inputs._npz_shape(path, "features") == (2, 7)
