"""The model variants and every analysis end to end on ready-made dataset tables: seeded copies, the
late average, the CAM twin, AU guidance and its sweep, CAM, units, AU maps, CAM-face overlap and the
manifold, through to the report. Tiny settings: a few seconds a job, but about 3 minutes of the fast
tier's 12 on 2 cores, so it runs in `make test-all` (heavy) beside the same analyses on the demo's
real faces (tests/test_demo_workflow.py); `make test` keeps their unit tests and dry-run plans."""

import json

import model_data
import polars as pl
import pytest
from model_data import tiny_models
from workflow import planned, rules, run, write_config

from impressions.explain import analyses
from impressions.schemas import TRAITS

pytestmark = [pytest.mark.workflow, pytest.mark.heavy]

MODELS = tiny_models(
    ["image", "face", "audio", "late_average"],
    late_average={"inputs": ["face", "audio"]},
    # not the sweep's family (face): listed, it would train every sweep weight again per seed, which
    # tests/test_registry.py plans in a dry run and tests/test_interpret.py pools on ready-made runs
    seeds={"values": [0, 1], "families": ["audio"]},
)
INTERPRET = {
    "models": ["image", "face"], "max_frames": 60, "top_k": 2, "unit_top": 3, "au_top_n": 5,
    "au_top_clips": 2,
    "au_guidance": {"weight": 1.0, "models": ["face"], "sweep": [0, 1]},
    "manifold": {"models": ["face", "audio"], "method": "pca", "perplexity": 5, "neighbors": 2},
}  # fmt: skip
# Everything after the dataset tables (which are given): the model, variant, analysis and report rules.
RULES = ["splits", "train_model", "late_average", "train_guidance_sweep", "au_guidance_sweep",
         "au_guidance_effect", "interpret_cam", "interpret_units", "interpret_au_maps",
         "interpret_cam_overlap", "interpret_manifold", "report"]  # fmt: skip
TARGET = "out/report/index.html"


def args() -> list[str]:
    return ["--nolock", TARGET, "--allowed-rules", *RULES]


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    work = tmp_path_factory.mktemp("variants")
    data = model_data.build(work / "out", landmarks=True)
    clips = pl.read_parquet(data["tables"] / "clips.parquet")
    (work / "v").mkdir()
    for c in clips["clip_id"]:
        (work / "v" / f"{c}.mp4").write_bytes(b"placeholder: never decoded here")
    # The manifest is what the workflow plans with; its rows match the ready-made clips table.
    columns = ["clip_id", "split", *TRAITS, "youtube_id"]
    clips.select(pl.concat_str(pl.lit("v/"), "clip_id", pl.lit(".mp4")).alias("path"), *columns).write_csv(
        work / "manifest.csv"
    )
    write_config(
        work, manifest=str(work / "manifest.csv"), results_dir="out", models=MODELS, interpret=INTERPRET
    )
    run(work, *args())
    return work, None


def test_every_variant_is_trained_and_reported(done):
    work, _ = done
    out = work / "out"
    metrics = pl.read_parquet(out / "report" / "metrics.parquet")
    reported = set(metrics["model"])
    for model in ("image", "face", "audio", "late_average", "audio_seed1", "face_au_guided"):
        assert (out / "models" / model / "predictions.parquet").is_file(), model
        assert model in reported, model
    assert (out / "models" / "image_cam" / "checkpoint.pt").is_file()
    sweep = pl.read_csv(out / "interpret" / "au_guidance_sweep" / "au_guidance_sweep.csv")
    # models.seeds does not list the sweep's family: one run per weight at models.seed, no pooled row
    assert sweep.select("weight", "seed").rows() == [(0.0, 0), (1.0, 0)] and sweep["seeds"].to_list() == [
        1,
        1,
    ]
    assert not list((out / "interpret" / "au_guidance_sweep").glob("w*_seed*"))
    guidance = pl.read_csv(out / "interpret" / "au_guidance" / "au_guidance.csv")
    assert guidance["model"].to_list() == ["face", "face_au_guided"]
    # ATT-COS beside CAM-COS, both models read at the guided layer, with the paired differences
    assert guidance["att_layer"].to_list() == [-1, -1] and guidance["att_au_frames"].min() > 0
    assert guidance["att_au_cosine"].is_between(0, 1).all()
    assert guidance["delta_att_low"][1] <= guidance["delta_att"][1] <= guidance["delta_att_high"][1]


def test_every_analysis_writes_its_files_and_its_report_section(done):
    work, _ = done
    out = work / "out"
    report = (out / "report" / "report.md").read_text()
    for model in ("image", "face"):
        for analysis in analyses.names(scope="model"):
            explained = f"{model}_cam" if analysis == "cam_overlap" else model
            if analysis == "cam_overlap" and model == "face":
                continue  # the CAM-face overlap is an image-model analysis (its GAP twin)
            for name in analyses.get(analysis).files.values():
                assert (out / "interpret" / analysis / explained / name).is_file(), (analysis, model, name)
            section = json.loads((out / "interpret" / analysis / explained / "section.json").read_text())
            assert section, (analysis, model)
        assert f"Class activation maps: {model}" in report
    assert "Manifold view" in report and "AU guidance weight sweep" in report
    trust = pl.read_csv(out / "interpret" / "manifold" / "trustworthiness.csv")
    assert trust["model"].to_list() == ["face", "audio"]


def test_nothing_to_do_after_a_complete_run(done):
    work, _ = done
    assert not planned(work, *args())


def test_an_interpretation_setting_reruns_that_analysis_and_the_report_only(done):
    work, _ = done
    changed = {**INTERPRET, "unit_top": 4}
    write_config(
        work, manifest=str(work / "manifest.csv"), results_dir="out", models=MODELS, interpret=changed
    )
    try:
        jobs = rules(planned(work, *args()))
    finally:
        write_config(
            work, manifest=str(work / "manifest.csv"), results_dir="out", models=MODELS, interpret=INTERPRET
        )
    assert jobs == {"interpret_units": 2, "report": 1}
