"""Degenerate datasets run to a report that says plainly what could not be computed and why.

Each case is a tiny dataset: the video-free ones start from ready-made dataset tables
(`model_data.build`, edited into the case) and run the model rules and the report, in process in
make test and through Snakemake in make test-all; one case starts from real face clips listed in a
manifest whose test videos are all missing, and some of whose transcripts are empty, and runs the whole
workflow (make test-all).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import model_data
import numpy as np
import polars as pl
import pytest
from model_data import tiny_models
from workflow import run, write_config

from impressions import schemas
from impressions.data import image_store
from impressions.schemas import TRAITS

FAMILIES = ["face", "audio", "au_linear", "fusion_handcrafted"]
TINY = tiny_models(FAMILIES, au_linear={"alphas": [1.0]}, fusion_handcrafted={"hidden": [4, 4]})
MODEL_RULES = ["splits", "train_model", "report"]


def _edit(case: str, tables, clips_dir, arrays) -> None:
    """Turn the synthetic dataset into one degenerate case, in place."""
    read = {
        n: pl.read_parquet(tables / f"{n}.parquet") for n in ("clips", "qc", "faces", "expressions", "audio")
    }
    clips, qc = read["clips"], read["qc"]
    if case == "train_val_only":
        clips = clips.filter(pl.col("split") != "test")
    elif case == "one_per_split":
        keep = clips.group_by("split", maintain_order=True).first()["clip_id"]
        clips = clips.filter(pl.col("clip_id").is_in(keep.to_list()))
    if case in ("single_person", "single_person_constant_labels"):
        clips = clips.with_columns(pl.lit("the-one").alias("youtube_id"))
    if case in ("constant_labels", "single_person_constant_labels"):
        clips = clips.with_columns(*[pl.lit(0.5).alias(t) for t in TRAITS])
    if case in ("no_audio", "no_audio_no_faces"):
        audio = read["audio"].with_columns(
            pl.lit(False).alias("has_audio"), pl.lit(0).cast(pl.Int64).alias("n_samples")
        )
        audio.write_parquet(tables / "audio.parquet")
        for name in ("audio_waveform.npy", "audio_logfbank.npy"):
            np.save(arrays / name, np.zeros_like(np.load(arrays / name)))
        schemas.empty("voice").write_parquet(tables / "voice.parquet")
        qc = qc.with_columns(pl.lit("no_audio").alias("status"), pl.lit(False).alias("has_audio"))
    if case in ("no_faces", "no_audio_no_faces"):
        read["faces"].with_columns(pl.lit(False).alias("has_face")).write_parquet(tables / "faces.parquet")
        schemas.empty("expressions").write_parquet(tables / "expressions.parquet")
        for folder in clips_dir.iterdir():
            image_store.write(folder, "faces", np.zeros(image_store.read(folder, "faces").shape, np.uint8))
        qc = qc.with_columns(
            pl.lit("no_face").alias("status"), pl.lit(0).cast(pl.Int32).alias("frames_with_face")
        )
    qc = qc.with_columns(pl.lit(True).alias("has_video"), pl.col("has_audio").fill_null(True))
    qc.filter(pl.col("clip_id").is_in(clips["clip_id"].to_list())).write_parquet(tables / "qc.parquet")
    clips.write_parquet(tables / "clips.parquet")


# Two pairs of cases share a run to keep the matrix cheap (each run costs about a minute of model jobs);
# every case still has its own statements asserted.
# Each case trains only the families its statements are about (a model job costs 10-60 s of start-up).
CASES = {
    "train_val_only": ["face", "audio", "au_linear"],
    "one_per_split": ["face", "au_linear"],
    "single_person_constant_labels": ["au_linear"],
    "no_audio_no_faces": FAMILIES,
}


def _workflow(work: Path, out: Path, families: list[str]) -> tuple[int, str]:
    """The model rules and the report through Snakemake (make test-all)."""
    clips = pl.read_parquet(out / "tables" / "clips.parquet")
    # The manifest is what the workflow plans with; its rows match the edited clips table.
    (work / "v").mkdir()
    for c in clips["clip_id"]:
        (work / "v" / f"{c}.mp4").write_bytes(b"placeholder: never decoded here")
    manifest = clips.select(pl.concat_str(pl.lit("v/"), "clip_id", pl.lit(".mp4")).alias("path"),
                            "clip_id", "split", *TRAITS, "youtube_id")  # fmt: skip
    manifest.write_csv(work / "manifest.csv")
    models = {**TINY, "families": families}
    write_config(work, manifest=str(work / "manifest.csv"), results_dir="out", models=models)
    proc = run(work, "--nolock", "out/report/index.html", "--allowed-rules", *MODEL_RULES, check=False)
    return proc.returncode, proc.stdout[-3000:] + proc.stderr[-3000:]


def _in_process(work: Path, out: Path, families: list[str]) -> tuple[int, str]:
    """The same scripts' one call each (split table, train_or_explain per family, write_report), in this
    process: no Snakemake, no job start-up (make test)."""
    model_data.train_and_report(out, families, {**TINY, "families": families})
    return 0, ""


# The video-free cases run through Snakemake in make test-all, and in process in make test: the same
# statements are asserted on both.
@pytest.fixture(scope="session", params=["in_process", pytest.param("workflow", marks=pytest.mark.heavy)])
def degenerate_runs(request, tmp_path_factory):
    """{case: (results folder, exit status, output tail)}: every synthetic case run once per mode."""
    runner = {"in_process": _in_process, "workflow": _workflow}[request.param]
    template = model_data.build(tmp_path_factory.mktemp("template") / "out")
    done = {}
    for case, families in CASES.items():
        work = tmp_path_factory.mktemp(f"{case}_{request.param}")
        out = work / "out"
        shutil.copytree(template["root"], out)
        _edit(case, out / "tables", out / "clips", out / "arrays")
        done[case] = (out, *runner(work, out, families))
    return done


def _report(runs, case) -> str:
    out, returncode, tail = runs[case]
    assert returncode == 0, tail
    return (out / "report" / "report.md").read_text()


def test_train_val_only_reports_val_and_says_test_is_missing(degenerate_runs):
    text = _report(degenerate_runs, "train_val_only")
    assert "The dataset has no test split: test accuracy, correlations" in text
    assert "Nothing could be scored on test" in text
    val = text.split("## Accuracy on val")[1].split("##")[0]
    for model in ["train-mean baseline", *CASES["train_val_only"]]:
        assert f"| {model} | 0." in val, model


def test_one_clip_per_split_says_intervals_and_correlations_mean_nothing(degenerate_runs):
    text = _report(degenerate_runs, "one_per_split")
    assert "test has 1 labelled clip(s) of a single person: the 95% intervals resample people" in text
    assert "test has one labelled clip: correlations (PCC, CCC, R2) need two or more (n/a)" in text
    assert "| face | 0." in text.split("## Accuracy on test")[1]


def test_single_person_says_scores_do_not_measure_generalisation(degenerate_runs):
    text = _report(degenerate_runs, "single_person_constant_labels")
    assert "Every clip shows the same person (one YouTube id)" in text
    assert "val has 6 labelled clip(s) of a single person" in text


def test_constant_labels_make_correlations_undefined(degenerate_runs):
    text = _report(degenerate_runs, "single_person_constant_labels")
    assert "Labels are constant in test for extraversion, neuroticism" in text
    assert "| train-mean baseline | 1.0000" in text  # the training mean is exact


def test_no_audio_anywhere_leaves_audio_models_untrained(degenerate_runs):
    text = _report(degenerate_runs, "no_audio_no_faces")
    assert "No clip has an audio track" in text
    assert "Model audio was not trained: no train clip has an audio track" in text
    assert "| audio | not trained: no train clip has an audio track" in text


def test_no_faces_anywhere_leaves_face_and_au_models_untrained(degenerate_runs):
    text = _report(degenerate_runs, "no_audio_no_faces")
    assert "No face was found in any sampled frame" in text
    for model in ("face", "au_linear"):
        assert f"Model {model} was not trained: no face found in any sampled frame of the train clips" in text
    test = text.split("## Accuracy on test")[1].split("## ")[0]
    # fusion still trains on what is left (age group and gender); the untrained models have no row
    assert "| fusion_handcrafted | 0." in test and "| face |" not in test and "| audio |" not in test


# The manifest's transcripts (its `transcript` column): p1's has no words (`empty transcript`), p3's and
# q1's cells are empty (`no transcript`); the test clips have no video.
TRANSCRIBED = {"p0.000": "so happy to meet you all today", "p1.000": "...",
               "p2.000": "I really love my friends", "q0.000": "thank you all so much",
               "r0.000": "never heard", "r1.000": "never heard"}  # fmt: skip
NOTED = {"p1.000": "empty transcript", "p3.000": "no transcript", "q1.000": "no transcript"}


@pytest.fixture(scope="session")
def missing_test_videos(tmp_path_factory):  # the one case that needs videos: a whole workflow run
    """The whole workflow, from real face clips listed in a manifest whose test videos are all missing
    and some of whose transcripts are empty."""
    from impressions.testing import face_clip

    root = tmp_path_factory.mktemp("manifest_no_test")
    ids = {
        "train": [f"p{i}.000" for i in range(4)],
        "val": ["q0.000", "q1.000"],
        "test": ["r0.000", "r1.000"],
    }
    for k, clip in enumerate(ids["train"] + ids["val"]):
        face_clip(root / "videos" / f"{clip}.mp4", start=1.0 + 2.2 * k, seconds=1.0)
    rng = np.random.default_rng(0)
    rows = [{"path": f"videos/{clip}.mp4", "split": split, **{t: float(rng.uniform()) for t in TRAITS},
             "transcript": TRANSCRIBED.get(clip, "")}
            for split, clips in ids.items() for clip in clips]  # fmt: skip
    pl.DataFrame(rows).write_csv(root / "manifest.csv")
    work = tmp_path_factory.mktemp("work_no_test")
    write_config(
        work, manifest=str(root / "manifest.csv"), results_dir="out", shards=1,
        frames={"per_clip": 2, "size": 32, "max_side": 320},
        models={**TINY, "families": ["face", "audio", "au_linear", "text_linear"]},
    )  # fmt: skip
    proc = run(work, check=False)
    return work / "out", proc


@pytest.mark.workflow
@pytest.mark.heavy
def test_split_without_usable_clips_runs_from_videos_to_the_report(missing_test_videos):
    out, proc = missing_test_videos
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = (out / "report" / "report.md").read_text()
    assert "No labelled test clip with a video file (all 2 annotated test clips lack a video file)" in text
    assert "Nothing could be scored on test" in text
    assert "| missing_file | 2 |" in text
    val = text.split("## Accuracy on val")[1].split("##")[0]
    for model in ("train-mean baseline", "face", "audio", "au_linear", "text_linear"):
        assert f"| {model} | 0." in val, model
    preds = pl.read_parquet(out / "models" / "face" / "predictions.parquet")
    assert set(preds["split"]) == {"val"} and preds.height == 2


@pytest.mark.workflow
@pytest.mark.heavy
def test_empty_transcripts_get_a_qc_note_and_the_training_mean_flagged(missing_test_videos):
    out, proc = missing_test_videos
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    tables = out / "tables"
    # the note in the transcripts table and on the clip's QC row
    for name, column in (("transcripts", "qc_note"), ("qc", "transcript_note")):
        notes = dict(pl.read_parquet(tables / f"{name}.parquet").select("clip_id", column).rows())
        assert {c: n for c, n in notes.items() if n is not None} == NOTED, name
    # text_linear predicts those clips as the training mean, and says which it filled
    mean = pl.read_parquet(tables / "clips.parquet").filter(pl.col("split") == "train").select(TRAITS).mean()
    preds = pl.read_parquet(out / "models" / "text_linear" / "predictions.parquet")
    assert sorted(preds["clip_id"]) == ["q0.000", "q1.000"]
    rows = dict(zip(preds["clip_id"], preds.select(TRAITS).to_numpy()))
    assert np.allclose(rows["q1.000"], mean.to_numpy()[0])
    assert not np.allclose(rows["q0.000"], mean.to_numpy()[0])  # a transcript: the ridge's own score
    summary = json.loads((out / "models" / "text_linear" / "summary.json").read_text())
    assert summary["filled_with_train_mean"] == {"train": ["p1.000", "p3.000"], "val": ["q1.000"], "test": []}
    features = np.load(out / "models" / "text_linear" / "features.npz")
    assert dict(zip(features["clip_id"], features["has_input"])) == {
        c: c not in NOTED for c in ["p0.000", "p1.000", "p2.000", "p3.000", "q0.000", "q1.000"]
    }
    # the report counts them in its QC section and under Training
    text = (out / "report" / "report.md").read_text()
    qc_section = text.split("## Dataset and quality control")[1].split("\n## ")[0]
    assert "| usable | 3 |" in qc_section and "| no transcript | 2 |" in qc_section
    assert "| empty transcript | 1 |" in qc_section
    training = text.split("## Training")[1]
    assert (
        "| text_linear | " in training and training.split("| text_linear | ")[1].split("|")[1].strip() == "3"
    )
