"""Families the data cannot train, and report sections that are missing, are explained, not fatal."""

import json

import model_data
import numpy as np
import polars as pl
import pytest

from impressions import layout, predict
from impressions.report import render as report
from impressions.training import degenerate
from impressions.training import loop as training


@pytest.fixture(scope="module")
def no_val(tmp_path_factory):
    """The synthetic dataset with its val clips unlabelled."""
    data = model_data.build(tmp_path_factory.mktemp("results"))
    path = data["tables"] / "clips.parquet"
    clips = pl.read_parquet(path)
    clips.with_columns(
        *[
            pl.when(pl.col("split") == "val").then(None).otherwise(pl.col(t)).alias(t)
            for t in model_data.TRAITS
        ]
    ).write_parquet(path)
    return data


def test_family_without_val_labels_is_written_as_not_trained(no_val, tmp_path):
    inputs = training.Inputs(
        clips=no_val["tables"] / "clips.parquet", expressions=no_val["tables"] / "expressions.parquet"
    )
    outputs = layout.Outputs.in_folder(tmp_path / "au_linear")
    summary = degenerate.train_or_explain("au_linear", inputs, outputs, {"device": "cpu"}, {"alphas": [1.0]})
    reason = "no labelled val clip with a video file: the epoch (or ridge penalty) is selected on val"
    assert summary[degenerate.NOT_TRAINED] == reason
    assert json.loads(outputs.summary.read_text())[degenerate.NOT_TRAINED] == reason
    assert pl.read_parquet(outputs.predictions).height == 0
    with np.load(outputs.features) as f:
        assert f["features"].shape == (28, 0) and not f["has_input"].any()
    assert outputs.curve.stat().st_size > 0
    loaded = predict.load_models(tmp_path)
    model, ckpt = loaded["au_linear"]
    assert model is None and ckpt[degenerate.NOT_TRAINED] == reason
    # training itself still refuses, with its own message (the workflow goes through train_or_explain)
    with pytest.raises(ValueError, match="need labelled train and val clips"):
        training.train_family("au_linear", inputs, outputs, {"device": "cpu"}, {"alphas": [1.0]})


def test_statements_name_what_an_unlabelled_split_prevents(no_val):
    t = no_val["tables"]
    clips, qc, faces = (pl.read_parquet(t / f"{n}.parquet") for n in ("clips", "qc", "faces"))
    lines = degenerate.statements(clips, qc, faces, [{"model": "face", degenerate.NOT_TRAINED: "why"}])
    assert lines[0] == (
        "No labelled val clip with a video file (6 val clips have a video file but none is labelled): no "
        "model can be trained (the epoch or penalty is selected on val) and val is not scored."
    )
    assert lines[-1] == "Model face was not trained: why."


def test_statements_are_empty_for_a_healthy_dataset(trained):
    data, _ = trained
    t = data["tables"]
    clips, qc, faces = (pl.read_parquet(t / f"{n}.parquet") for n in ("clips", "qc", "faces"))
    assert degenerate.statements(clips, qc, faces) == []


def test_report_marks_a_missing_or_broken_analysis_and_goes_on(trained, tmp_path):
    data, outs = trained
    t = data["tables"]
    broken = tmp_path / "cam_face" / "section.json"
    broken.parent.mkdir()
    broken.write_text("{not json")
    names = {"html": "index.html", "markdown": "report.md", "metrics": "m.parquet", "breakdowns": "b.parquet",
             "comparisons": "c.parquet"}  # fmt: skip
    outputs = {k: tmp_path / "report" / v for k, v in names.items()}
    report.write_report(
        t / "clips.parquet", t / "qc.parquet", t / "faces.parquet", t / "expressions.parquet",
        [o.predictions for o in outs], [o.summary for o in outs], [o.curve for o in outs], outputs,
        n_boot=20, sections=[broken, tmp_path / "units_face" / "section.json"],
    )  # fmt: skip
    md = outputs["markdown"].read_text()
    assert "## Analysis not available: cam_face/section.json" in md and "JSONDecodeError" in md
    assert "## Analysis not available: units_face/section.json" in md and "FileNotFoundError" in md
    assert "## Accuracy on test" in md and "What this dataset does not allow" not in md


def test_predict_says_a_model_was_not_trained(no_val, tmp_path, bad_media):
    inputs = training.Inputs(
        clips=no_val["tables"] / "clips.parquet", expressions=no_val["tables"] / "expressions.parquet"
    )
    degenerate.train_or_explain(
        "au_linear",
        inputs,
        layout.Outputs.in_folder(tmp_path / "au_linear"),
        {"device": "cpu"},
        {"alphas": [1.0]},
    )
    result = predict.predict_paths([bad_media["good"]], tmp_path, device="cpu")
    row = result.table.row(0, named=True)
    assert row["model"] == "au_linear" and not row["has_input"] and row["openness"] is None
    assert row["note"].startswith("not trained: no labelled val clip") and row["status"] == "ok"


def test_statements_say_when_a_split_could_not_be_decoded(no_val):
    t = no_val["tables"]
    clips, qc, faces = (pl.read_parquet(t / f"{n}.parquet") for n in ("clips", "qc", "faces"))
    test_ids = clips.filter(pl.col("split") == "test")["clip_id"].to_list()
    all_bad = qc.with_columns(
        pl.when(pl.col("clip_id").is_in(test_ids)).then(pl.lit("corrupt")).otherwise("status").alias("status")
    )
    assert any(line.startswith("None of the 6 labelled test clips could be decoded") for line in
               degenerate.statements(clips, all_bad, faces))  # fmt: skip
    one_bad = qc.with_columns(
        pl.when(pl.col("clip_id") == test_ids[0]).then(pl.lit("no_video")).otherwise("status").alias("status")
    )
    assert any(line.startswith("1 of 6 labelled test clips could not be decoded") for line in
               degenerate.statements(clips, one_bad, faces))  # fmt: skip


def test_au_guidance_without_any_expressions_is_not_trained(no_val, tmp_path):
    t = no_val["tables"]
    clips = pl.read_parquet(t / "clips.parquet")
    labelled = clips.with_columns(*[pl.col(t).fill_null(0.5) for t in model_data.TRAITS])
    labelled.write_parquet(tmp_path / "clips.parquet")
    pl.read_parquet(t / "expressions.parquet").head(0).write_parquet(tmp_path / "expressions.parquet")
    inputs = training.Inputs(
        clips=tmp_path / "clips.parquet", frames=t / "faces.parquet", faces=t / "faces.parquet",
        expressions=tmp_path / "expressions.parquet",
    )  # fmt: skip
    outputs = layout.Outputs.in_folder(tmp_path / "face_au_guided")
    summary = degenerate.train_or_explain(
        "face",
        inputs,
        outputs,
        {"device": "cpu"},
        {"au_guidance_weight": 1.0, "epochs": 1},
        name="face_au_guided",
    )
    assert summary[degenerate.NOT_TRAINED].startswith("AU guidance needs facial expressions")
