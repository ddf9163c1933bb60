"""The openface expression backend: OpenFace 2.x FeatureExtraction CSVs (or binary) matched to frames."""

import sys

import numpy as np
import polars as pl
import pytest

from impressions import media
from impressions.data import preprocess, preprocess_shard, shards
from impressions.expressions import detector, openface_csv
from impressions.expressions.openface_backend import OpenFaceBackend
from impressions.schemas import AUS, EMOTIONS
from impressions.testing import face_clip, openface_text

OPENFACE_TEST = media.pyfeat_test_media("OpenFace_Test.csv")  # 100 frames of real OpenFace 2 output


class FakeEmotions:
    """The builtin's emotion CNN stand-in: uniform probabilities, no fusion (keeps unit tests fast)."""

    fusion = 0.0

    def emotion_cnn(self, crops, landmarks):
        return np.full((len(crops), len(EMOTIONS)), 1 / len(EMOTIONS))


def test_real_openface_csv_reads_with_its_padded_header_and_matches_its_own_rows():
    raw_header = OPENFACE_TEST.read_text().splitlines()[0]
    assert ", timestamp, confidence, success" in raw_header  # OpenFace's ", " separators
    table = openface_csv.read_csv(OPENFACE_TEST)
    assert table.height == 100 and {"timestamp", "confidence", "success", "AU45_r"} <= set(table.columns)
    times = table["timestamp"].to_numpy()
    picked = np.array([0, 7, 42, 99])
    matched = openface_csv.match(table, times[picked] + 0.0002, tolerance_s=0.0004)
    want = table.select(openface_csv.INTENSITY_COLUMNS).to_numpy()[picked]
    np.testing.assert_allclose(matched.aus, want)
    assert matched.unmatched == matched.failed == 0 and matched.reason() == ""
    # a frame time further than the tolerance from every row gets no AUs, and says so
    far = openface_csv.match(table, np.array([times[-1] + 1.0]))
    assert far.unmatched == 1 and np.isnan(far.aus).all() and "no OpenFace row" in far.reason()


def test_success_and_confidence_are_honoured(tmp_path):
    times = np.array([0.0, 0.5, 1.0, 1.5])
    aus = np.linspace(0.2, 4.8, 4 * 17).reshape(4, 17)
    path = tmp_path / "x.csv"
    path.write_text(
        openface_text(
            times, aus, confidence=np.array([0.98, 0.3, 0.98, 0.98]), success=np.array([1, 1, 0, 1])
        )
    )
    matched = openface_csv.match(openface_csv.read_csv(path), times + 0.01)
    assert matched.usable.tolist() == [True, False, False, True] and matched.failed == 2
    np.testing.assert_allclose(matched.aus[[0, 3]], aus[[0, 3]], atol=0.005)
    lenient = openface_csv.match(openface_csv.read_csv(path), times, min_confidence=0.2)
    assert lenient.usable.tolist() == [True, True, False, True]


def test_nearest_rows_within_tolerance():
    rows = np.array([0.0, 0.0333, 0.0667, 0.1])
    got = openface_csv.nearest_rows(rows, np.array([0.034, 0.045, 0.099, 0.5, -0.01]), 0.02)
    assert got.tolist() == [1, 1, 3, -1, 0]


def test_not_an_openface_csv_is_a_specific_error(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("frame, timestamp, AU01_r\n1, 0.0, 1.0\n")
    with pytest.raises(openface_csv.OpenFaceCSVError, match="other.csv: .*lacks AU02_r"):
        openface_csv.read_csv(path)


def clip(tmp_path, clip_id="-dash.001", video=None):
    return shards.Clip(clip_id, tmp_path / clip_id, np.array([0.0, 0.5]), video)


def test_missing_csv_and_binary_is_a_reason_naming_both(tmp_path):
    backend = OpenFaceBackend(
        csv_dir=tmp_path / "csvs", binary=tmp_path / "nope" / "FeatureExtraction", emotions=FakeEmotions()
    )
    table, keep, reason = backend.predict_clip(np.zeros((2, 8, 8, 3)), np.zeros((2, 68, 2)), clip(tmp_path))
    assert table.height == 2 and not keep.any()
    assert str(tmp_path / "csvs" / "-dash.001.csv") in reason and "nope/FeatureExtraction not found" in reason


def test_binary_is_run_on_the_clip_with_absolute_paths(tmp_path):
    """A stand-in FeatureExtraction records its argv and writes a CSV where OpenFace would."""
    log = tmp_path / "argv.txt"
    fake = tmp_path / "FeatureExtraction"
    csv = openface_text([0.0, 0.5], np.full((2, 17), 2.0))
    fake.write_text(
        f"#!{sys.executable}\nimport sys, pathlib\n"
        f"pathlib.Path({str(log)!r}).write_text('\\n'.join(sys.argv[1:]))\n"
        "args = dict(zip(sys.argv[1::2], sys.argv[2::2]))\n"
        "out = pathlib.Path(args['-out_dir']) / (pathlib.Path(args['-f']).stem + '.csv')\n"
        f"out.write_text({csv!r})\n"
    )
    fake.chmod(0o755)
    video = tmp_path / "-dash.001.mp4"
    video.write_bytes(b"not read by the stand-in")
    backend = OpenFaceBackend(binary=fake, emotions=FakeEmotions())
    table, keep, reason = backend.predict_clip(
        np.zeros((2, 8, 8, 3)), np.zeros((2, 68, 2)), clip(tmp_path, video=video)
    )
    assert keep.all() and reason == "" and table["AU12"].to_list() == [2.0, 2.0]
    argv = log.read_text().splitlines()
    assert argv[:2] == ["-f", str(video.resolve())] and "-out_dir" in argv
    assert all(a.startswith("/") for a in argv[1::2])  # no path can be read as an option
    assert (tmp_path / "-dash.001" / "openface" / "-dash.001.csv").is_file()  # in the clip's folder

    failing = tmp_path / "broken"
    failing.write_text("#!/bin/sh\necho 'could not open video' >&2\nexit 3\n")
    failing.chmod(0o755)
    backend = OpenFaceBackend(binary=failing, emotions=FakeEmotions())
    _, keep, reason = backend.predict_clip(
        np.zeros((2, 8, 8, 3)), np.zeros((2, 68, 2)), clip(tmp_path, "b.002", video)
    )
    assert not keep.any() and "exited 3" in reason and "could not open video" in reason


def test_config_section_reaches_only_its_backend(tmp_path):
    backend = detector.get_backend(
        "openface", device="cpu", batch_size=4, openface={"csv_dir": str(tmp_path), "tolerance_s": 0.1}
    )
    assert backend.csv_dir == tmp_path and backend.tolerance_s == 0.1
    options = {"backend": "builtin", "device": "cpu", "openface": {"csv_dir": "x"}, "pyfeat": {}}
    assert detector.backend_settings(options) == {"backend": "builtin", "device": "cpu"}
    assert backend.sources["aus"] == "openface (OpenFace 2 FeatureExtraction AUxx_r)"


def test_expression_stage_takes_the_csv_values_at_the_sampled_frames(tmp_path):
    """The expression stage (as the workflow runs it) on two real clips: one with a CSV in OpenFace's
    format holding known AU values at every video frame, one without; the first's AUs are the CSV's
    at its sampled frames, the second has no rows and a QC reason naming its missing CSV."""
    videos = {}
    for clip_id, start in (("a.000", 12), ("-b.001", 3)):
        videos[clip_id] = tmp_path / f"{clip_id}.mp4"
        face_clip(videos[clip_id], start=start, seconds=2, audio=False)
    settings = preprocess.Settings(frames_per_clip=4, identity=False)
    preprocess_shard.preprocess_clips(
        videos, tmp_path / "clips", settings
    )  # with cache keys, as the workflow
    folders = {clip_id: tmp_path / "clips" / clip_id for clip_id in videos}
    faces = pl.read_parquet(preprocess.output_paths(folders["a.000"])["table"]).filter("has_face", "success")
    assert faces.height >= 3
    frames = faces.filter(pl.col("source_frame") > 0)
    fps = float((frames["source_frame"] / frames["time_s"]).median())  # the video's own frame rate
    times = np.arange(int(2 * fps)) / fps  # OpenFace writes a row per video frame
    rng = np.random.default_rng(0)
    aus = np.round(rng.uniform(0, 5, (len(times), 17)), 2)
    csvs = tmp_path / "openface_csvs"
    csvs.mkdir()
    (csvs / "a.000.csv").write_text(openface_text(times, aus))

    backend = detector.get_backend("openface", device="cpu", openface={"csv_dir": str(csvs)})
    out, qc = tmp_path / "expressions.parquet", tmp_path / "expression_qc.parquet"
    shards.expression_shard(folders, backend, out, out_qc=qc, settings={"backend": "openface"})
    table = pl.read_parquet(out).sort("frame_index")
    assert table["clip_id"].unique().to_list() == ["a.000"]
    rows = openface_csv.nearest_rows(times, faces.sort("frame_index")["time_s"].to_numpy(), 0.02)
    assert (rows >= 0).all() and table.height == faces.height
    np.testing.assert_allclose(table.select(AUS).to_numpy(), aus[rows], atol=1e-6)
    np.testing.assert_allclose(table.select(EMOTIONS).to_numpy().sum(axis=1), 1.0, atol=1e-5)
    qc_rows = {r["clip_id"]: r for r in pl.read_parquet(qc).to_dicts()}
    assert (
        qc_rows["a.000"]["reason"] == ""
        and qc_rows["a.000"]["au_source"] == detector.SOURCES["openface"]["aus"]
    )
    assert qc_rows["-b.001"]["frames_scored"] == 0
    assert str(csvs / "-b.001.csv") in qc_rows["-b.001"]["reason"]
    # the reason survives the per-clip cache, and an edited CSV is read again
    again = tmp_path / "again_qc.parquet"
    report = shards.expression_shard(folders, backend, out, out_qc=again, settings={"backend": "openface"})
    assert report.processed == [] and pl.read_parquet(again).equals(pl.read_parquet(qc))
    (csvs / "a.000.csv").write_text(openface_text(times, np.clip(aus + 0.5, 0, 5)))
    report = shards.expression_shard(folders, backend, out, out_qc=again, settings={"backend": "openface"})
    assert report.processed == ["a.000"]
