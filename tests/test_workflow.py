"""The shared tiny run: the workflow from videos to the report on an FI-layout folder holding every kind
of bad and awkward input (every rule kind, a handful of jobs), then re-runs."""

import json
import os
import shutil

import numpy as np
import polars as pl
import pytest
from model_data import tiny_models
from workflow import FAST, planned, rules, run, write_config

from impressions.data import egemaps, shards, tables, transcripts
from impressions.data.fi_pickle import fi_transcript_bytes
from impressions.schemas import AUS, EMOTIONS, TABLES, TRAITS
from impressions.testing import BAD_MEDIA_STATUS, clip_id, face_clip, write_fi_annotations

pytestmark = pytest.mark.workflow

SPLITS = {
    "train": ["good", "dash", "unicode", "portrait", "short"],
    "val": ["no_audio", "no_face", "audio_only"],
    "test": ["empty", "text", "truncated"],
}
# Two sample-trained families and their average, the per-model analyses of the face model: every kind
# of rule after the dataset tables runs at least once (tests/test_variants_workflow.py, in the heavy
# tier, covers the variants and the workflow-wide analyses on ready-made tables).
# Text: text_linear, the fusion with it (fusion_text, against fusion) and the average with it.
MODELS = tiny_models(
    ["face", "audio", "text_linear", "fusion", "fusion_text", "late_average"],
    fusion_text={"inputs": ["face", "audio", "text_linear"]},
    late_average={"inputs": ["face", "audio", "text_linear"]},
)  # fmt: skip
# Transcripts of the run's clips: `unicode`'s is empty, `short` and `truncated` are not listed (QC notes,
# the training mean).
TRANSCRIBED = {"good": "so great to be here", "dash": "poor me and the video", "unicode": "",
               "portrait": "great great video", "no_audio": "the poor job", "no_face": "great work",
               "audio_only": "poor poor", "empty": "great", "text": "poor"}  # fmt: skip
INTERPRET = {"models": ["face"], "max_frames": 20, "top_k": 1, "unit_top": 2, "au_top_n": 3,
             "au_top_clips": 1}  # fmt: skip
AFTER_TABLES = {"splits": 1, "train_model": 5, "late_average": 1, "interpret_cam": 1, "interpret_units": 1,
                "interpret_au_maps": 1, "report": 1}  # fmt: skip


# Face search: this run, its re-runs and its incremental checks use `faces.search: tracked` (four
# frames a clip at full_every 5: a whole-frame pass on the first, windows on the other three), so every
# bad-input verdict and incremental plan below holds under tracked too. `make test-all` runs this file
# again with IMPRESSIONS_TEST_SEARCH=full, the default, which the heavy runs also use
# (tests/test_demo_workflow.py, tests/test_real_clips_workflow.py); the SIGKILL resume
# (tests/test_interrupted.py) runs under both.
SEARCH = {"search": os.environ.get("IMPRESSIONS_TEST_SEARCH", "tracked")}
if SEARCH["search"] not in ("full", "tracked"):
    raise ValueError(f"IMPRESSIONS_TEST_SEARCH={SEARCH['search']!r}: full or tracked")


def configure(work, root, **changes):
    """The shared run's config (write_config's tiny preprocessing, SEARCH, MODELS, INTERPRET) with
    `changes`."""
    sections = {"faces": SEARCH, "models": MODELS, "interpret": {**FAST["interpret"], **INTERPRET}} | changes
    write_config(work, data_root=str(root), results_dir="out", **sections)


@pytest.fixture(scope="module")
def done(bad_media, tmp_path_factory):
    """A complete run over a FI layout: all bad media, a missing clip and an unannotated file."""
    root = tmp_path_factory.mktemp("fi")
    for kind, path in bad_media.items():
        target = root / ("zip1" if kind < "n" else "zip2") / "sub" / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    shutil.copy(bad_media["good"], root / "stray.000.mp4")
    ids = {split: [clip_id(bad_media[k]) for k in kinds] for split, kinds in SPLITS.items()}
    ids["test"].append("ghost.000")
    write_fi_annotations(root, ids)
    for split, kinds in SPLITS.items():
        texts = {f"{clip_id(bad_media[k])}.mp4": TRANSCRIBED[k] for k in kinds if k in TRANSCRIBED}
        (root / transcripts.TRANSCRIPT_FILES[split]).write_bytes(fi_transcript_bytes(texts))
    work = tmp_path_factory.mktemp("work")
    configure(work, root)
    run(work)
    return root, work, bad_media


def table(work, name):
    return pl.read_parquet(work / "out" / "tables" / f"{name}.parquet")


def test_all_tables_written_with_their_schemas(done):
    _, work, _ = done
    for name, columns in TABLES.items():
        assert table(work, name).columns == list(columns), name


def test_every_clip_has_one_qc_row_with_reason(done):
    _, work, media = done
    qc = table(work, "qc")
    assert qc["clip_id"].n_unique() == qc.height == len(media) + 2  # + missing + unannotated
    status = dict(zip(qc["clip_id"], qc["status"]))
    for kind, path in media.items():
        assert status[clip_id(path)] == BAD_MEDIA_STATUS[kind], kind
    assert status["ghost.000"] == "missing_file" and status["stray.000"] == "unannotated"
    assert qc["reason"].str.len_chars().min() > 20


def test_the_shared_run_used_the_face_search_it_names(done):
    _, work, media = done
    key = json.loads((work / "out" / "clips" / clip_id(media["good"]) / "cache.json").read_text())
    assert key["settings"]["face_search"] == SEARCH["search"]
    if SEARCH["search"] == "tracked":
        assert key["settings"]["full_every"] > 1  # windows between the whole-frame passes


def test_good_clips_processed_bad_clips_left_out(done):
    _, work, media = done
    faces = table(work, "faces")
    with_face = set(faces.filter("has_face")["clip_id"])
    for kind in ("good", "dash", "unicode", "portrait", "short", "no_audio"):
        assert clip_id(media[kind]) in with_face, kind
    for kind in ("no_face", "audio_only", "empty", "text", "truncated"):
        assert clip_id(media[kind]) not in with_face, kind
    expressions = table(work, "expressions")
    assert set(expressions["clip_id"]) == with_face
    keyed = faces.filter("has_face").select("clip_id", "frame_index").sort("clip_id", "frame_index")
    assert expressions.select("clip_id", "frame_index").equals(keyed)
    values = expressions.select(AUS + EMOTIONS).to_numpy()
    assert np.isfinite(values).all()
    assert np.allclose(expressions.select(EMOTIONS).to_numpy().sum(axis=1), 1, atol=1e-3)


def test_expression_rows_name_their_backend(done):
    """tables/expression_qc: one row per clip the expression stage saw, naming the AU and emotion
    sources; the report's training table has the column that names them for models reading them."""
    from impressions.expressions.detector import SOURCES

    _, work, media = done
    qc = table(work, "expression_qc")
    assert set(qc["backend"]) == {"builtin"} and set(qc["au_source"]) == {SOURCES["builtin"]["aus"]}
    assert set(qc["emotion_source"]) == {SOURCES["builtin"]["emotions"]}
    scored = dict(zip(qc["clip_id"], qc["frames_scored"]))
    expressions = table(work, "expressions")
    assert (
        scored[clip_id(media["good"])]
        == expressions.filter(pl.col("clip_id") == clip_id(media["good"])).height
    )
    assert set(qc["reason"]) == {""}  # the builtin scores every face frame
    report = (work / "out" / "report" / "report.md").read_text()
    assert "AU, emotion and voice source" in report  # the training table's column (no model here reads AUs)


def test_audio_table_and_arrays_line_up(done):
    _, work, media = done
    audio = table(work, "audio")
    logmel = np.load(work / "out" / "arrays" / "audio_logmel.npy", mmap_mode="r")
    assert logmel.shape == (audio.height, 64, 501)
    rows = dict(zip(audio["clip_id"], audio.iter_rows(named=True)))
    assert rows[clip_id(media["no_audio"])]["has_audio"] is False
    assert rows[clip_id(media["short"])]["padded"] is True
    assert rows[clip_id(media["good"])]["loudness_db"] > -40  # the 220 Hz tone mixed into test clips
    assert rows[clip_id(media["good"])]["pitch_hz"] == pytest.approx(220, rel=0.05)


def test_clips_table_has_splits_and_youtube_ids(done):
    _, work, media = done
    clips = table(work, "clips")
    row = clips.filter(pl.col("clip_id") == clip_id(media["dash"])).row(0, named=True)
    assert row["split"] == "train" and row["youtube_id"] == "-6otZ7M-Mro"


def test_the_run_reaches_the_report_through_every_kind_of_rule(done):
    _, work, _ = done
    out = work / "out"
    ran = {p.parent.name for p in (out / "logs").glob("*/*.log")} | {
        p.stem for p in (out / "logs").glob("*.log")
    }
    assert {"preprocess_shard", "audio_shard", "expression_shard", "train", "interpret"} <= ran, ran
    for model in ("face", "audio", "late_average"):
        preds = pl.read_parquet(out / "models" / model / "predictions.parquet")
        assert preds.height and set(preds["model"]) == {model}
    for analysis in ("cam", "units", "au_maps"):
        assert (out / "interpret" / analysis / "face" / "section.json").is_file()
    report = (out / "report" / "report.md").read_text()
    assert {"clip_index", "gather_clips", "gather_audio", "gather_expressions", "splits", "report"} <= ran
    # the test split holds only bad clips: the report says its scores are the baseline's
    assert "None of the 3 labelled test clips could be decoded" in report
    assert "| this run | face |" in report and "| this run | late_average |" in report
    # the bias section renders; these clips carry no demographics, so it has the overall rows only
    assert "## Bias audit: whom the models over- and under-rate (test)" in report
    assert "carry no gender, age group or ethnicity" in report and "*All clips (test): mean label" in report
    groups = pl.read_parquet(out / "report" / "bias_groups.parquet")
    assert set(groups["model"]) == {"labels", *MODELS["families"]}
    assert (out / "report" / "bias.png").is_file()
    # text: its own row beside the published one, and the paired A+V+T against A+V comparison
    assert "| this run | text_linear |" in report and "OCEAN-AI text" in report
    assert "## Added modality (paired bootstrap, test)" in report and "| fusion_text | fusion |" in report


def test_clips_without_a_transcript_get_a_qc_note_and_the_training_mean(done):
    _, work, media = done
    notes = dict(table(work, "transcripts").select("clip_id", "qc_note").iter_rows())
    assert notes[clip_id(media["unicode"])] == "empty transcript"
    assert notes[clip_id(media["short"])] == notes[clip_id(media["truncated"])] == "no transcript"
    assert sum(n is None for n in notes.values()) == sum(bool(t) for t in TRANSCRIBED.values())
    # the same notes on the clips' QC rows, counted in the report's QC section
    qc = table(work, "qc")
    assert (
        dict(qc.filter(pl.col("clip_id").is_in(list(notes))).select("clip_id", "transcript_note").rows())
        == notes
    )
    report = (work / "out" / "report" / "report.md").read_text()
    qc_section = report.split("## Dataset and quality control")[1].split("\n## ")[0]
    assert "| transcript QC | clips |" in qc_section and "| usable | 8 |" in qc_section
    assert "| no transcript | 2 |" in qc_section and "| empty transcript | 1 |" in qc_section
    summary = json.loads((work / "out" / "models" / "text_linear" / "summary.json").read_text())
    filled = summary["filled_with_train_mean"]
    assert sorted(filled["train"]) == sorted([clip_id(media["unicode"]), clip_id(media["short"])])
    assert filled["test"] == [clip_id(media["truncated"])]
    mean = table(work, "clips").filter(pl.col("split") == "train").select(TRAITS).mean().to_numpy()[0]
    preds = pl.read_parquet(work / "out" / "models" / "text_linear" / "predictions.parquet")
    row = preds.filter(pl.col("clip_id") == clip_id(media["truncated"])).select(TRAITS).to_numpy()[0]
    assert np.allclose(row, mean)
    history = pl.read_csv(work / "out" / "models" / "text_linear" / "metrics.csv")
    assert {"features", "alpha", "val_mean"} <= set(history.columns) and summary["selected"]["features"]


def test_nothing_to_do_after_a_complete_run(done):
    _, work, _ = done
    assert not planned(work)


def test_expression_setting_reruns_only_expressions(done):
    root, work, _ = done
    # the AU baseline too (its default, population, is what the AU-linear families read)
    for changed in ({"batch_size": 7}, {"baseline": "clip"}):
        configure(work, root, expressions={"device": "cpu", **changed})
        try:
            assert rules(planned(work)) == {
                "expression_shard": 2, "gather_expressions": 1, "all": 1,
                # the analyses read the expressions table, and the report its emotions
                "interpret_cam": 1, "interpret_units": 1, "interpret_au_maps": 1, "report": 1,
            }, changed  # fmt: skip
        finally:
            configure(work, root)


def test_audio_feature_setting_reruns_only_audio_features(done):
    _, work, _ = done
    configure(work, done[0], audio={"n_mels": 40})
    try:
        assert rules(planned(work)) == {
            "audio_shard": 2, "gather_audio": 1, "all": 1,
            "train_model": 3, "late_average": 1, "report": 1,  # the audio model, the fusions, the average
        }  # fmt: skip
    finally:
        configure(work, done[0])


SHARD_RULES = ("preprocess_shard", "audio_shard", "voice_shard", "expression_shard")


def shard_log(work, shard, rule="preprocess_shard"):
    return (work / "out" / "logs" / rule / f"{shard}.log").read_text()


def assert_one_clip_processed(work, shard, n, cid):
    """Every shard job of the shard computed that one clip and reused the rest from its per-clip cache."""
    for rule in SHARD_RULES:
        assert f"{n} clips: 1 processed, {n - 1} reused from the cache" in shard_log(work, shard, rule), rule
        assert f"processed {cid}" in shard_log(work, shard, rule), rule


def test_frame_setting_reprocesses_every_clip(done):
    root, work, _ = done
    configure(work, root, frames={"per_clip": 3, "size": 64, "max_side": 640})
    try:
        jobs = rules(planned(work))
    finally:
        configure(work, root)
    assert jobs["preprocess_shard"] == 2 and jobs["audio_shard"] == jobs["expression_shard"] == 2
    # that every clip's cache key changes with a frame setting: tests/test_preprocess_shard.py


def jobs_after_tables(jobs) -> dict[str, int]:
    """The planned rules that read the gathered tables (and the final target), with their counts."""
    before = {*SHARD_RULES, "clip_index", "transcripts"}
    return {
        rule: n for rule, n in rules(jobs).items() if rule not in before and not rule.startswith("gather_")
    }


def test_replaced_clip_file_reruns_only_its_own_jobs(done):
    root, work, media = done
    target = next(root.rglob(media["good"].name))
    shutil.copy(media["dash"], target)  # new content, newer mtime
    cid = clip_id(media["good"])
    shard = shards.shard_of(cid, 2)
    jobs = planned(work)
    # its shard's jobs, the gathers, and everything after the tables but the splits (same clips)
    assert rules(jobs) == {
        "preprocess_shard": 1, "audio_shard": 1, "voice_shard": 1, "expression_shard": 1,
        "gather_clips": 1, "gather_audio": 1, "gather_voice": 1, "gather_expressions": 1, "all": 1,
        # not the splits (same clips), nor text_linear (same transcripts)
        **{rule: n for rule, n in AFTER_TABLES.items() if rule != "splits"}, "train_model": 4,
    }  # fmt: skip
    for rule in SHARD_RULES:
        assert (rule, f"shard={shard}") in jobs
    # Up to the tables only: the models and analyses after them are left for the next test's run,
    # which plans them anyway (its added clip changes the tables again), saving a round of training.
    gathers = [rule for rule in rules(jobs) if rule.startswith("gather_")]
    run(work, "--until", *gathers)
    n = sum(shards.shard_of(clip_id(p), 2) == shard for p in media.values())
    assert_one_clip_processed(work, shard, n, cid)
    left = planned(work)
    assert rules(left) == jobs_after_tables(left) == jobs_after_tables(jobs)


def test_added_clip_reruns_only_its_own_jobs(done, tmp_path):
    root, work, media = done
    new = root / "zip3" / "new_clip.007.mp4"
    face_clip(new, start=15, seconds=3)
    ids = {split: [clip_id(media[k]) for k in kinds] for split, kinds in SPLITS.items()}
    ids["train"].append("new_clip.007")
    write_fi_annotations(root, ids)
    shard = shards.shard_of("new_clip.007", 2)
    jobs = planned(work)
    assert rules(jobs) == {
        "clip_index": 1, "transcripts": 1, "preprocess_shard": 1, "audio_shard": 1, "voice_shard": 1,
        "expression_shard": 1,
        "gather_clips": 1, "gather_audio": 1, "gather_voice": 1, "gather_expressions": 1, "all": 1,
        **AFTER_TABLES,
    }  # fmt: skip
    for rule in SHARD_RULES:
        assert (rule, f"shard={shard}") in jobs
    run(work)
    n = 1 + sum(shards.shard_of(clip_id(p), 2) == shard for p in media.values())
    assert_one_clip_processed(work, shard, n, "new_clip.007")
    assert "new_clip.007" in set(table(work, "qc")["clip_id"])
    assert not planned(work)  # up to date for the tests after this one


def test_bad_config_key_and_value_are_named(tmp_path):
    write_config(tmp_path, data_root="demo", frams={"per_clip": 3})
    proc = run(tmp_path, "--dry-run", check=False)
    assert proc.returncode != 0 and "frams" in proc.stdout + proc.stderr
    write_config(tmp_path, data_root="demo", expressions={"backend": "libreface", "device": "cpu"})
    proc = run(tmp_path, "--dry-run", check=False)
    assert proc.returncode != 0 and "libreface" in proc.stdout + proc.stderr


def test_unsafe_annotation_pickle_stops_the_run_before_anything_runs(tmp_path):
    root = tmp_path / "fi"
    root.mkdir()
    marker = tmp_path / "payload-ran"
    payload = (
        b"\x80\x02cbuiltins\nopen\nq\x00X" + len(str(marker)).to_bytes(4, "little") + str(marker).encode()
        + b"X\x01\x00\x00\x00w\x86R."
    )  # fmt: skip
    (root / "annotation_training.pkl").write_bytes(payload)
    write_config(tmp_path, data_root=str(root), results_dir="out")
    proc = run(tmp_path, "--dry-run", check=False)
    assert proc.returncode != 0
    assert "refusing to load builtins.open" in proc.stdout + proc.stderr
    assert not marker.exists() and not os.path.exists(tmp_path / "out")


def test_voice_backend_switch_reruns_only_the_voice_table_which_names_its_backend(done):
    root, work, _ = done
    voice_table = work / "out" / "tables" / "voice.parquet"
    assert tables.backend_of(voice_table) == "builtin" and table(work, "voice").columns == list(
        TABLES["voice"]
    )
    configure(work, root, voice={"backend": "opensmile"})
    try:
        assert rules(planned(work)) == {"voice_shard": 2, "gather_voice": 1, "all": 1}
        run(work)
        smile = table(work, "voice")
        assert tables.backend_of(voice_table) == "opensmile"
        assert smile.columns == ["clip_id", "voice_seconds", *egemaps.feature_names()]
        assert len(smile.columns) == 2 + 88 and "F0semitoneFrom27.5Hz_sma3nz_amean" in smile.columns
        assert (
            smile["clip_id"].to_list()
            == table(work, "qc")
            .filter(pl.col("status").is_in(["missing_file", "unannotated", "partial_labels"]).not_())[
                "clip_id"
            ]
            .sort()
            .to_list()
        )
        good = smile.filter(pl.col("clip_id") == clip_id(done[2]["good"])).row(0, named=True)
        assert np.isfinite(good["equivalentSoundLevel_dBp"]) and good["voice_seconds"] > 0
    finally:
        configure(work, root)
    # back to the builtin (the same jobs again): its descriptors are still cached in every clip's folder
    run(work)
    assert tables.backend_of(voice_table) == "builtin" and table(work, "voice").columns == list(
        TABLES["voice"]
    )
    for shard in range(2):
        assert " 0 processed," in shard_log(work, shard, "voice_shard")
