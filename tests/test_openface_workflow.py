"""The workflow with `expressions.backend: openface` on CSVs this test writes in OpenFace's format."""

import shutil

import numpy as np
import polars as pl
import pytest
from workflow import run, write_config

from impressions.expressions import openface_csv
from impressions.schemas import AUS
from impressions.testing import clip_id, openface_text, write_fi_annotations

pytestmark = [pytest.mark.workflow, pytest.mark.heavy]  # its own snakemake runs


def test_workflow_takes_openface_values_at_the_sampled_frames(bad_media, tmp_path):
    root = tmp_path / "fi"
    root.mkdir()
    kinds = ("good", "dash", "no_audio")
    for kind in kinds:
        shutil.copy(bad_media[kind], root / bad_media[kind].name)
    ids = {clip_id(bad_media[k]): k for k in kinds}
    write_fi_annotations(root, {"train": list(ids)[:2], "val": list(ids)[2:], "test": []})
    csvs = tmp_path / "openface"
    csvs.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    expressions = {"backend": "openface", "device": "cpu", "openface": {"csv_dir": str(csvs)}}
    write_config(work, data_root=str(root), results_dir="out", expressions=expressions)
    tables = work / "out" / "tables"
    run(work, "--", "out/tables/frames.parquet", "out/tables/faces.parquet")  # targets, not config files

    # OpenFace's rows: one per video frame at the video's rate, known values, for all but the dash clip
    frames = pl.read_parquet(tables / "frames.parquet").filter(pl.col("source_frame") > 0)
    fps = float((frames["source_frame"] / frames["time_s"]).median())
    rng = np.random.default_rng(1)
    written = {}
    for cid, kind in ids.items():
        if kind == "dash":
            continue
        times = np.arange(int(6 * fps)) / fps
        written[cid] = (times, np.round(rng.uniform(0, 5, (len(times), len(AUS))), 2))
        (csvs / f"{cid}.csv").write_text(openface_text(*written[cid]))
    run(work, "--", "out/tables/expressions.parquet")

    table = pl.read_parquet(tables / "expressions.parquet")
    faces = pl.read_parquet(tables / "faces.parquet").filter("has_face", "success")
    faces = faces.join(pl.read_parquet(tables / "frames.parquet"), on=["clip_id", "frame_index"])
    for cid, (times, aus) in written.items():
        ours = table.filter(pl.col("clip_id") == cid).sort("frame_index")
        theirs = faces.filter(pl.col("clip_id") == cid).sort("frame_index")
        rows = openface_csv.nearest_rows(times, theirs["time_s"].to_numpy(), openface_csv.TOLERANCE_S)
        assert ours.height == theirs.height > 0 and (rows >= 0).all()
        np.testing.assert_allclose(ours.select(AUS).to_numpy(), aus[rows], atol=1e-6)
    dash = clip_id(bad_media["dash"])
    assert dash not in set(table["clip_id"])
    qc = {r["clip_id"]: r for r in pl.read_parquet(tables / "expression_qc.parquet").to_dicts()}
    assert qc[dash]["frames_scored"] == 0 and f"{dash}.csv" in qc[dash]["reason"]
    assert "FeatureExtraction" in qc[dash]["reason"] and {qc[c]["reason"] for c in written} == {""}
