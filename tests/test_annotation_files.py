"""The FI annotation pickles are checked as a whole before any work: every problem listed at once, with
its file, clip and label; a clip listed under some labels only is excluded and recorded in QC."""

import pickle

import numpy as np
import polars as pl
import pytest
from workflow import plan, run, write_config

from impressions.data import annotations, clip_index, fi_pickle, tables
from impressions.schemas import LABELS


def _labels(clips, value=0.5):
    return {label: {f"{c}.mp4": value for c in clips} for label in LABELS}


def _write(root, split, data):
    """`data` pickled as protocol 2 (strings and None need pickle itself; fi_pickle writes floats only)."""
    path = root / annotations.ANNOTATION_FILES[split]
    path.write_bytes(pickle.dumps(data, protocol=2))
    return str(path)


@pytest.fixture
def no_video_search(monkeypatch):
    """Fails the test if indexing goes on to look for videos (the check must come first)."""

    def refuse(root):
        raise AssertionError("videos were searched although the annotation files are bad")

    monkeypatch.setattr(clip_index, "find_videos", refuse)


def _problems(root) -> str:
    with pytest.raises(clip_index.IndexError_) as err:
        clip_index.build(root)
    return str(err.value)


def test_every_problem_of_every_file_is_listed_at_once(tmp_path, no_video_search):
    train = _labels(["ok.000", "a.000", "b.000", "c.000", "d.000", "dup.000"])
    train["openness"]["a.000.mp4"] = "high"
    train["extraversion"]["b.000.mp4"] = None
    train["neuroticism"]["c.000.mp4"] = float("nan")
    train["agreeableness"]["d.000.mp4"] = 1.3
    for label in LABELS:
        train[label]["e.000"] = 0.5  # not a file name
    train["charisma"] = {"ok.000.mp4": 0.5}
    train_file = _write(tmp_path, "train", train)
    val = _labels(["v.000", "dup.000"])
    del val["interview"]
    val["conscientiousness"]["v.000.mp4"] = np.float64(-0.1)
    val_file = _write(tmp_path, "val", val)
    msg = _problems(tmp_path)
    expected = [
        f"{train_file}: clip 'a.000', column 'openness': 'high' is not a number",
        f"{train_file}: clip 'b.000', column 'extraversion': empty, but a train clip needs every trait",
        f"{train_file}: clip 'c.000', column 'neuroticism': nan is not a label",
        f"{train_file}: clip 'd.000', column 'agreeableness': 1.3 is outside [0, 1]",
        f"{train_file}: clip 'e.000', column '{', '.join(LABELS)}': the key is not a '<clip>.mp4' file name",
        f"{train_file}: column 'charisma': unknown label",
        f"{val_file}: column 'interview': missing: the file lists no clip under this label",
        f"{val_file}: clip 'v.000', column 'conscientiousness': -0.1 is outside [0, 1]",
        f"{val_file}: clip 'dup.000': also annotated in {train_file}: a clip belongs to one split",
    ]
    for line in expected:
        assert line in msg, line
    assert msg.startswith(f"{len(expected)} problem(s) in the annotation files; nothing was processed")
    assert "'ok.000'" not in msg and "'v.000', column 'interview'" not in msg


@pytest.mark.parametrize(
    "content, message",
    [
        (b"not a pickle", "not a readable pickle"),
        (pickle.dumps([0.5, 0.5], protocol=2), "expected a dict {label: {'<clip>.mp4': value}}, got list"),
        (pickle.dumps({}, protocol=2), "expected a dict {label: {'<clip>.mp4': value}}, got an empty dict"),
    ],
)
def test_a_file_that_is_no_annotation_dict_is_named(tmp_path, no_video_search, content, message):
    (tmp_path / "annotation_test.pkl").write_bytes(content)
    _write(tmp_path, "train", _labels(["t.000"]) | {"openness": {"t.000.mp4": "x"}})
    msg = _problems(tmp_path)
    assert f"{tmp_path / 'annotation_test.pkl'}: {message}" in msg
    assert f"{tmp_path / 'annotation_training.pkl'}: clip 't.000', column 'openness': 'x' is not" in msg


def test_a_clip_missing_some_labels_is_excluded_and_recorded(tmp_path):
    """FI's reported case: one clip absent from some labels. The run goes on without it, with a QC row."""
    clips = ["xyWpSrfFlQw.004", "a.000", "b.000"]
    data = _labels(clips)
    for label in ("openness", "interview"):
        del data[label]["xyWpSrfFlQw.004.mp4"]
    (tmp_path / "annotation_training.pkl").write_bytes(fi_pickle.fi_pickle_bytes(data))
    for clip in clips:
        (tmp_path / f"{clip}.mp4").write_bytes(b"")
    index = clip_index.build(tmp_path)
    assert [row["clip_id"] for row in index.clips] == ["a.000", "b.000"]
    assert index.unannotated == [] and index.missing_files == []
    assert index.partially_labelled == [
        annotations.PartialClip("xyWpSrfFlQw.004", "train", str(tmp_path / "annotation_training.pkl"),
                                ("openness", "interview"))
    ]  # fmt: skip
    assert "1 clips excluded as listed under some labels only" in index.summary()
    tables.write_index(index, tmp_path / "clips.parquet", tmp_path / "qc.parquet")
    assert pl.read_parquet(tmp_path / "clips.parquet")["clip_id"].to_list() == ["a.000", "b.000"]
    qc = pl.read_parquet(tmp_path / "qc.parquet").row(0, named=True)
    assert (qc["clip_id"], qc["split"], qc["status"]) == ("xyWpSrfFlQw.004", "train", "partial_labels")
    assert "annotation_training.pkl does not list it under openness, interview" in qc["reason"]


def test_many_partly_listed_clips_mean_a_damaged_file(tmp_path, no_video_search):
    """Beyond PARTIAL_TOLERANCE (one clip here, of three) each partly listed clip is an error."""
    data = _labels(["p.000", "q.000", "r.000"])
    del data["openness"]["p.000.mp4"]
    del data["extraversion"]["q.000.mp4"], data["neuroticism"]["q.000.mp4"]
    path = _write(tmp_path, "test", data)
    msg = _problems(tmp_path)
    assert msg.startswith("3 problem(s)")
    assert f"{path}: 2 of 3 clips are listed under some labels only, more than the 1 tolerated" in msg
    assert f"{path}: clip 'p.000', column 'openness': not listed under this label" in msg
    assert f"{path}: clip 'q.000', column 'extraversion, neuroticism': not listed under this label" in msg


def test_real_fi_pickles_pass_whole(fi_annotations):
    """The public copies list every clip under every label: no problem and nothing excluded."""
    found = annotations.read_split_files(fi_annotations)
    assert len(found.clips) == 10000 and found.partial == []
    assert found.clips["xyWpSrfFlQw.004"][0] == "train"


def test_real_fi_file_lacking_the_reported_clip_still_runs(fi_annotations, tmp_path):
    """The release DeepPersonality's users describe: xyWpSrfFlQw.004 absent from a label."""
    real = pickle.loads((fi_annotations / "annotation_training.pkl").read_bytes(), encoding="latin1")
    del real["openness"]["xyWpSrfFlQw.004.mp4"]
    (tmp_path / "annotation_training.pkl").write_bytes(fi_pickle.fi_pickle_bytes(real))
    found = annotations.read_split_files(tmp_path)
    assert len(found.clips) == 5999 and "xyWpSrfFlQw.004" not in found.clips
    assert [(p.clip_id, p.missing) for p in found.partial] == [("xyWpSrfFlQw.004", ("openness",))]


def test_workflow_stops_before_any_job_with_every_annotation_problem(tmp_path):
    data = _labels(["a.000", "b.000"])
    data["openness"]["a.000.mp4"] = "high"
    data["extraversion"]["b"] = 0.5
    path = _write(tmp_path, "train", data)
    (tmp_path / "a.000.mp4").write_bytes(b"")
    (tmp_path / "test_config.yaml").write_text("{}\n")  # the harness layers it; the demo config otherwise
    proc = run(tmp_path, "--config", f"data_root={tmp_path}", "results_dir=results", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "2 problem(s) in the annotation files; nothing was processed" in out
    assert f"{path}: clip 'a.000', column 'openness': 'high' is not a number" in out
    assert f"{path}: clip 'b', column 'extraversion': the key is not a '<clip>.mp4' file name" in out
    assert not (tmp_path / "results").exists()


def test_workflow_plans_without_a_partly_listed_clip_and_says_so(tmp_path):
    data = _labels(["a.000", "b.000"])
    del data["openness"]["b.000.mp4"]
    (tmp_path / "annotation_training.pkl").write_bytes(fi_pickle.fi_pickle_bytes(data))
    for clip in ("a.000", "b.000"):
        (tmp_path / f"{clip}.mp4").write_bytes(b"")
    write_config(tmp_path, data_root=str(tmp_path), results_dir="results", shards=1)
    proc = run(tmp_path, "--dry-run")
    assert "note: 1 clip(s) excluded as listed under some labels only" in proc.stderr
    shard_inputs = [job["input"] for rule, job in plan(tmp_path) if rule == "preprocess_shard"]
    assert len(shard_inputs) == 1 and "a.000.mp4" in shard_inputs[0] and "b.000.mp4" not in shard_inputs[0]
    assert not (tmp_path / "results").exists()
