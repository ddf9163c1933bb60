"""OpenFace-compatible CSV export (impressions.data.openface, `impressions export-openface`)."""

import numpy as np
import polars as pl
import pytest

from impressions import cli, schemas
from impressions.data import openface, preprocess
from impressions.schemas import AUS
from impressions.testing import face_clip


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Dataset tables of one real clip and one clip without a face, with made-up AU values."""
    root = tmp_path_factory.mktemp("openface")
    video = root / "good.000.mp4"
    face_clip(video, start=12, seconds=3)
    preprocess.preprocess_clip(
        "good.000", video, root / "clips" / "good.000", preprocess.Settings(frames_per_clip=4)
    )
    table = pl.read_parquet(preprocess.output_paths(root / "clips" / "good.000")["table"])
    faceless = table.with_columns(
        clip_id=pl.lit("-dash.001"), has_face=pl.lit(False), success=pl.lit(False), landmarks=pl.lit(None)
    )
    table = pl.concat([table, faceless])
    tables = root / "results" / "tables"
    tables.mkdir(parents=True)
    table.select(list(schemas.TABLES["frames"])).write_parquet(tables / "frames.parquet")
    table.select(list(schemas.TABLES["faces"])).write_parquet(tables / "faces.parquet")
    ok = table.filter(pl.col("clip_id") == "good.000")
    expressions = {"clip_id": ok["clip_id"], "frame_index": ok["frame_index"]}
    expressions |= {au: np.linspace(0.0, 4.5, ok.height) for au in AUS}
    expressions |= {e: np.full(ok.height, 1 / 7) for e in schemas.EMOTIONS}
    schemas.frame("expressions", expressions).write_parquet(tables / "expressions.parquet")
    return root / "results", ok


def test_one_csv_per_clip_with_openface_columns(results, tmp_path):
    path, ok = results
    assert cli.main(["export-openface", str(path), str(tmp_path / "of")]) == 0
    good = pl.read_csv(tmp_path / "of" / "good.000.csv")
    assert good.columns == openface.columns()
    for name in (
        "frame",
        "timestamp",
        "confidence",
        "success",
        "pose_Rx",
        "pose_Ry",
        "pose_Rz",
        "AU12_r",
        "AU45_c",
    ):
        assert name in good.columns
    assert good["frame"].to_list() == [1, 2, 3, 4]
    assert np.allclose(good["timestamp"].to_numpy(), ok["time_s"].to_numpy(), atol=1e-5)
    assert good["success"].to_list() == [int(s) for s in ok["success"]]
    assert np.allclose(good["pose_Ry"].to_numpy(), np.deg2rad(ok["yaw"].to_numpy()), atol=1e-5)
    assert np.allclose(good["x_30"].to_numpy(), [lm[60] for lm in ok["landmarks"]], atol=1e-3)
    intensity = np.linspace(0.0, 4.5, 4)
    assert np.allclose(good["AU12_r"].to_numpy(), intensity, atol=1e-5)
    assert good["AU12_c"].to_list() == [int(v >= openface.PRESENCE) for v in intensity] == [0, 1, 1, 1]
    faceless = pl.read_csv(tmp_path / "of" / "-dash.001.csv")
    assert (
        faceless["success"].sum() == 0 and faceless["confidence"].sum() == 0 and faceless["AU12_r"].sum() == 0
    )


def test_presence_threshold_can_be_changed(results, tmp_path):
    path, _ = results
    openface.export(path, tmp_path / "of", threshold=4.0)
    assert pl.read_csv(tmp_path / "of" / "good.000.csv")["AU01_c"].to_list() == [0, 0, 0, 1]


def test_missing_tables_are_named(tmp_path):
    with pytest.raises(SystemExit, match="missing dataset tables"):
        openface.export(tmp_path, tmp_path / "of")


def test_export_reads_back_through_the_openface_backend_reader(results, tmp_path):
    """The export and the `openface` backend's reader agree: the exported AUs come back at the frames'
    times, and frames the export marks failed (success 0) give none."""
    from impressions.expressions import openface_csv

    path, ok = results
    openface.export(path, tmp_path / "of")
    table = openface_csv.read_csv(tmp_path / "of" / "good.000.csv")
    confidence = float(table["confidence"].min())
    matched = openface_csv.match(table, ok["time_s"].to_numpy(), min_confidence=confidence)
    assert matched.usable.all()
    np.testing.assert_allclose(matched.aus[:, AUS.index("AU12")], np.linspace(0.0, 4.5, 4), atol=1e-5)
    faceless = openface_csv.read_csv(tmp_path / "of" / "-dash.001.csv")
    assert not openface_csv.match(faceless, ok["time_s"].to_numpy(), min_confidence=0.0).usable.any()
