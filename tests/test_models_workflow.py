"""The model rules end to end on ready-made dataset tables (no video processing), then re-runs."""

import pickle

import model_data
import numpy as np
import polars as pl
import pytest
from model_data import tiny_models
from workflow import by_model, planned, rules, run, write_config

from impressions.schemas import LABELS

pytestmark = pytest.mark.workflow

MODEL_RULES = ["splits", "train_model", "report"]
TINY = tiny_models(
    ["image", "face", "audio", "audio_fbank", "au_linear", "fusion_handcrafted"],
    epochs=2,
    bootstrap=100,
    fusion_handcrafted={"inputs": ["face", "audio"]},
)


def only_models(target: str) -> list[str]:
    """Snakemake arguments: build `target` using the model rules only (the tables are given).

    A flag comes first: `--configfile`, which the harness passes last, would take the path as a file."""
    return ["--nolock", target, "--allowed-rules", *MODEL_RULES]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A FI layout (annotations + placeholder videos) whose dataset tables and arrays already exist."""
    work = tmp_path_factory.mktemp("work")
    data = model_data.build(work / "out")
    clips = pl.read_parquet(data["tables"] / "clips.parquet")
    root = work / "fi"
    (root / "videos").mkdir(parents=True)
    names = {
        "train": "annotation_training.pkl",
        "val": "annotation_validation.pkl",
        "test": "annotation_test.pkl",
    }
    for split, name in names.items():
        part = clips.filter(pl.col("split") == split)
        pickle_data = {label: {f"{c}.mp4": np.float64(v) for c, v in zip(part["clip_id"], part[label])}
                       for label in LABELS}  # fmt: skip
        (root / name).write_bytes(pickle.dumps(pickle_data, protocol=2))
        for clip in part["clip_id"]:
            (root / "videos" / f"{clip}.mp4").write_bytes(b"placeholder: never decoded here")
    write_config(work, data_root=str(root), results_dir="out", models=TINY)
    target = "out/report/index.html"  # relative to the working directory, as the rules name it
    run(work, *only_models(target))
    return work, target


def test_every_model_and_the_report_are_written(work):
    work, _ = work
    models = work / "out" / "models"
    for family in TINY["families"] + ["audio"]:
        preds = pl.read_parquet(models / family / "predictions.parquet")
        assert sorted(preds["split"].unique()) == ["test", "val"], family
        assert (models / family / "curve.png").stat().st_size > 0
    assert not (models / "fusion").exists()  # not asked for
    assert "fusion_handcrafted" in (work / "out" / "report" / "report.md").read_text()
    assert (work / "out" / "logs" / "train" / "face.log").read_text().count("epoch") >= 2


def test_a_model_setting_retrains_that_model_and_what_uses_it(work):
    work, target = work
    assert not planned(work, *only_models(target))
    write_config(work, data_root=str(work / "fi"), results_dir="out", models={**TINY, "face": {"width": 8}})
    try:
        jobs = by_model(planned(work, *only_models(target)))
        assert jobs == {"train_model:face": 1, "train_model:fusion_handcrafted": 1, "report": 1}
    finally:
        write_config(work, data_root=str(work / "fi"), results_dir="out", models=TINY)
    # A new bootstrap count redoes the report only.
    write_config(work, data_root=str(work / "fi"), results_dir="out", models={**TINY, "bootstrap": 50})
    try:
        assert rules(planned(work, *only_models(target))) == {"report": 1}
    finally:
        write_config(work, data_root=str(work / "fi"), results_dir="out", models=TINY)


def test_the_split_setting_retrains_every_model(work):
    work, target = work
    write_config(work, data_root=str(work / "fi"), results_dir="out", models={**TINY, "split": "identity"})
    try:
        jobs = by_model(planned(work, *only_models(target)))
        # the split is computed once (rule splits) and every model and the report read it
        assert jobs == {"splits": 1, "report": 1, **{f"train_model:{m}": 1 for m in TINY["families"]}}
    finally:
        write_config(work, data_root=str(work / "fi"), results_dir="out", models=TINY)
    assert not planned(work, *only_models(target))  # `official`, the default, retrains nothing


def test_snakemake_report_on_a_finished_run(work):
    work, target = work
    out = work / "snakemake_report.html"
    run(work, "--nolock", target, "--report", str(out))
    assert out.stat().st_size > 0
