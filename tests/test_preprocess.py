import json

import numpy as np
import polars as pl
import pytest

from impressions.data import image_store, preprocess
from impressions.schemas import QC_STATUSES
from impressions.testing import BAD_MEDIA_STATUS, clip_id


@pytest.fixture(scope="module", params=["full", "tracked"])
def processed(bad_media, tmp_path_factory, request):
    """Every bad-media clip under each face search (`faces.search`)."""
    out = tmp_path_factory.mktemp("clips")
    settings = preprocess.Settings(frames_per_clip=6, face_search=request.param)
    return {
        kind: (preprocess.preprocess_clip(clip_id(path), path, out / kind, settings), out / kind)
        for kind, path in bad_media.items()
    }


@pytest.mark.parametrize("kind", sorted(BAD_MEDIA_STATUS))
def test_every_input_gets_a_qc_record_with_a_reason(processed, kind):
    qc, folder = processed[kind]
    assert qc["status"] == BAD_MEDIA_STATUS[kind], qc["reason"]
    assert qc["status"] in QC_STATUSES and len(qc["reason"]) > 20
    assert json.loads((folder / "qc.json").read_text()) == qc
    for name in preprocess.OUTPUT_FILES.values():
        assert (folder / name).is_file()  # bad clips still get (empty) outputs, so gathering never breaks


@pytest.mark.parametrize("kind", ["good", "dash", "unicode", "portrait"])
def test_good_clips_have_frames_faces_and_audio(processed, kind):
    qc, folder = processed[kind]
    frames, faces = image_store.read(folder, "frames").all(), image_store.read(folder, "faces").all()
    assert frames.shape == (6, 224, 224, 3) and faces.shape == (6, 224, 224, 3)
    table = pl.read_parquet(folder / "frames.parquet")
    assert table["has_face"].all() and table["frame_index"].to_list() == list(range(6))
    assert len(table["landmarks"][0]) == 136 and table["score"].min() > 0
    # the box lies inside the frame and the landmarks inside the box (give or take the chin)
    row = table.row(0, named=True)
    assert 0 <= row["box_left"] < row["box_right"] <= row["width"] + 20
    xs = np.array(row["landmarks"][0::2])
    assert row["box_left"] - 20 < xs.mean() < row["box_right"] + 20
    waveform = np.load(folder / "waveform.npy")
    assert waveform.shape == (80000,) and np.abs(waveform).max() > 0.01


def test_portrait_clip_keeps_portrait_geometry(processed):
    qc, folder = processed["portrait"]
    assert (qc["width"], qc["height"]) == (320, 568)
    assert pl.read_parquet(folder / "frames.parquet")["height"][0] == 568


def test_no_face_frames_get_zero_crops_and_null_boxes(processed):
    qc, folder = processed["no_face"]
    assert qc["frames_decoded"] == 6 and qc["frames_with_face"] == 0
    table = pl.read_parquet(folder / "frames.parquet")
    assert not table["has_face"].any() and table["box_left"].null_count() == 6
    assert image_store.read(folder, "faces").all().max() == 0


def test_short_clip_is_zero_padded(processed):
    qc, folder = processed["short"]
    waveform = np.load(folder / "waveform.npy")
    assert qc["audio_samples"] == pytest.approx(2.5 * 16000, rel=0.02)
    assert np.abs(waveform[qc["audio_samples"] :]).max() == 0


def test_unexpected_failure_becomes_error_record(tmp_path, bad_media, monkeypatch):
    def boom(*args, **kwargs):
        raise ZeroDivisionError("simulated bug")

    monkeypatch.setattr(preprocess, "_frames_and_faces", boom)
    qc = preprocess.preprocess_clip("x", bad_media["good"], tmp_path, preprocess.Settings())
    assert qc["status"] == "error" and "simulated bug" in qc["reason"]


def test_command_runs_one_clip_as_the_workflow_job_does(bad_media, tmp_path):
    # FI clip ids may start with a dash (YouTube ids do)
    qc_path, log = tmp_path / "-my.clip" / "qc.json", tmp_path / "logs" / "-my.clip.log"
    settings = {
        "frames": {"per_clip": 3, "size": 32, "max_side": 640},
        "faces": {"upsample": 0, "min_score": 0.0, "size": 48, "padding": 0.25},
        "audio": {"seconds": 1.0, "sample_rate": 8000},
    }
    args = ["--settings", json.dumps(settings), f"--log={log}", "--", str(bad_media["good"]), str(qc_path)]
    assert preprocess.main(args) == 0
    qc = json.loads(qc_path.read_text())
    assert qc["clip_id"] == "-my.clip" and qc["status"] == "ok"  # the id defaults to the folder's name
    assert image_store.read(qc_path.parent, "frames").shape == (3, 32, 32, 3)
    assert image_store.read(qc_path.parent, "faces").shape == (3, 48, 48, 3)
    assert np.load(qc_path.parent / "waveform.npy").shape == (8000,)
    assert log.is_file()
    with pytest.raises(SystemExit):
        preprocess.main([str(bad_media["good"]), str(tmp_path / "other.json")])


@pytest.mark.parametrize("search", ["full", "tracked"])  # faces.search
def test_frame_timing_comes_from_the_video_stream(tmp_path, bad_media, search):
    """A still with longer audio keeps its one frame; a cut file is `truncated`, not misdated."""
    from impressions.testing import ffmpeg, out

    still, fast, cut = tmp_path / "still.mp4", tmp_path / "fast.mp4", tmp_path / "cut.000.mp4"
    one = tmp_path / "one.mp4"
    ffmpeg("-ss", "1", "-i", out(bad_media["good"]), "-frames:v", "1", "-an", "-c:v", "libx264", out(one))
    ffmpeg("-i", out(one), "-f", "lavfi", "-t", "5", "-i", "sine=frequency=220", "-map", "0:v", "-map", "1:a",
           "-c:v", "copy", "-c:a", "aac", out(still))  # fmt: skip
    settings = preprocess.Settings(frames_per_clip=6, face_search=search)
    qc = preprocess.preprocess_clip("still", still, tmp_path / "s", settings)
    assert qc["status"] not in ("corrupt", "truncated"), qc["reason"]
    assert qc["frames_decoded"] == 1 and "could be decoded" not in qc["reason"]
    ffmpeg("-i", out(bad_media["good"]), "-c", "copy", "-movflags", "+faststart", out(fast))
    cut.write_bytes(fast.read_bytes()[: fast.stat().st_size // 2])
    qc = preprocess.preprocess_clip("cut", cut, tmp_path / "c", settings)
    assert qc["status"] == "truncated" and "the file ends early or is damaged" in qc["reason"]
    table = pl.read_parquet(tmp_path / "c" / "frames.parquet")
    assert table["time_s"].max() < 3.5  # only the first half is there; samples spread over it
