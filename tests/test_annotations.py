import pickle

import numpy as np
import pytest

from impressions.data import annotations, fi_pickle, manifest
from impressions.schemas import LABELS, TRAITS


def test_real_fi_pickles_load(fi_annotations):
    clips = annotations.load_split_labels(fi_annotations)
    splits = [split for split, _ in clips.values()]
    assert (splits.count("train"), splits.count("val"), splits.count("test")) == (6000, 2000, 2000)
    assert "-6otZ7M-Mro.003" in clips or any(c.startswith("-") for c in clips)
    split, labels = clips["J4GQm9j0JZ0.003"]
    assert set(labels) == set(LABELS) and all(0 <= v <= 1 for v in labels.values())


def test_train_mean_baseline_matches_published_figure(fi_annotations):
    """Predicting the training mean scores 0.8814 mean accuracy on test (1 - MAE)."""
    clips = annotations.load_split_labels(fi_annotations)
    train = np.array([[lab[t] for t in TRAITS] for s, lab in clips.values() if s == "train"])
    test = np.array([[lab[t] for t in TRAITS] for s, lab in clips.values() if s == "test"])
    accuracy = 1 - np.abs(test - train.mean(axis=0)).mean(axis=0)
    assert accuracy.mean() == pytest.approx(0.8814, abs=5e-5)


def test_written_pickles_are_laid_out_as_the_released_files(fi_annotations, tmp_path):
    """The writer the demo, tests and benchmarks use: same label order, value types and values."""
    real = pickle.loads((fi_annotations / "annotation_validation.pkl").read_bytes(), encoding="latin1")
    written = pickle.loads(fi_pickle.fi_pickle_bytes(real), encoding="latin1")
    assert list(written) == list(real) == list(fi_pickle.FI_LABEL_ORDER)
    for label in real:
        assert {type(v) for v in written[label].values()} == {type(v) for v in real[label].values()}, label
        assert written[label] == real[label]
    # shuffled labels are written in the released order; values survive the restricted reader exactly
    shuffled = dict(reversed(real.items()))
    (tmp_path / "annotation_validation.pkl").write_bytes(fi_pickle.fi_pickle_bytes(shuffled))
    assert annotations.load_split_labels(tmp_path) == {
        k: v for k, v in annotations.load_split_labels(fi_annotations).items() if v[0] == "val"
    }


def test_written_pickle_keeps_non_ascii_clip_names(tmp_path):
    """FI's names are ASCII; another dataset's may not be: those are written as Python 2 unicode."""
    values = {label: {"Zoë_Ångström.001.mp4": 0.5, "plain.000.mp4": 0.25} for label in LABELS}
    path = tmp_path / "annotation_training.pkl"
    path.write_bytes(fi_pickle.fi_pickle_bytes(values))
    assert annotations.load_pickle(path)["openness"] == {"Zoë_Ångström.001": 0.5, "plain.000": 0.25}


def test_pickle_written_by_python3_numpy2_loads(tmp_path):
    """A file re-saved with pickle.dump today names numpy._core and _codecs.encode: still accepted."""
    path = tmp_path / "annotation_test.pkl"
    data = {label: {"x.000.mp4": np.float64(0.25), "y.001.mp4": 0.75} for label in LABELS}
    path.write_bytes(pickle.dumps(data, protocol=2))
    assert annotations.load_pickle(path) == {label: {"x.000": 0.25, "y.001": 0.75} for label in LABELS}


class Payload:
    """Unpickling this would create the marker file: the restricted loader must refuse first."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickle_that_would_run_code_is_refused_before_running(tmp_path):
    marker = tmp_path / "payload-ran"
    bad = tmp_path / "annotation_training.pkl"
    data = {label: {"x.000.mp4": np.float64(0.5)} for label in LABELS}
    data["openness"]["x.000.mp4"] = Payload(marker)
    bad.write_bytes(pickle.dumps(data, protocol=2))
    with pytest.raises(annotations.UnsafePickleError, match=r"refusing to load .*open"):
        annotations.load_pickle(bad)
    assert not marker.exists()


def test_pickle_missing_labels_is_named(tmp_path):
    path = tmp_path / "annotation_test.pkl"
    path.write_bytes(pickle.dumps({"openness": {"a.mp4": np.float64(0.1)}}, protocol=2))
    with pytest.raises(manifest.ManifestError) as err:
        annotations.load_pickle(path)
    assert str(err.value).startswith(f"5 problem(s) in annotation file {path}")
    for label in set(LABELS) - {"openness"}:
        assert f"{path}: column {label!r}: missing: the file lists no clip under this label" in str(err.value)


def test_demographics_and_age_files(tmp_path):
    (tmp_path / "eth_gender_annotations_dev.csv").write_text(
        "VideoName;YouTubeID;Ethnicity;Gender\n-abc.001.mp4;-abc;2;2\nxyz.002.mp4;xyz;3;1\n"
    )
    (tmp_path / "age_annotations.csv").write_text("VideoName;AgeGroup\n-abc.001.mp4;5\n")
    demo = annotations.load_demographics(tmp_path)
    assert demo["-abc.001"] == {
        "youtube_id": "-abc",
        "ethnicity": "caucasian",
        "gender": "female",
        "age_group": "25-32",
    }
    assert demo["xyz.002"]["gender"] == "male" and "age_group" not in demo["xyz.002"]
