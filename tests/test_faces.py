import numpy as np
import pytest

from impressions.data import faces, tracking
from impressions.testing import still


def test_single_face_box_landmarks_and_eye_aligned_crop():
    found = faces.detector().detect(still("single_face.jpg"))
    assert found.found and found.n_faces == 1 and found.score > 0.5
    left, top, right, bottom = found.box
    inside = (found.landmarks[:, 0] > left - 10) & (found.landmarks[:, 0] < right + 10)
    assert inside.mean() > 0.9
    assert found.crop.shape == (224, 224, 3) and found.crop.dtype == np.uint8
    eyes = found.landmarks_aligned
    left_eye, right_eye = eyes[36:42].mean(axis=0), eyes[42:48].mean(axis=0)
    assert abs(left_eye[1] - right_eye[1]) < 3  # eye-aligned: the eyes lie on one row
    assert 60 < right_eye[0] - left_eye[0] < 110  # and at a fixed scale
    assert eyes[30, 0] == pytest.approx(111.5, abs=15)  # nose tip near the vertical centre line


def test_several_faces_keep_the_best_scoring_one():
    image = still("multi_face.jpg")
    found = faces.detector().detect(image)
    assert found.n_faces >= 2
    rects, scores, _ = faces.detector().detector.run(image, 0, 0.0)
    assert found.chosen == int(np.argmax(scores)) and found.score == pytest.approx(max(scores))


def test_no_face_is_reported_not_invented():
    found = faces.detector().detect(np.full((360, 640, 3), 127, np.uint8))
    assert not found.found and found.n_faces == 0 and found.crop is None and found.box is None


def test_min_score_discards_weak_detections():
    image = still("multi_face.jpg")
    strict = faces.FaceDetector(min_score=10.0).detect(image)
    assert not strict.found


def test_window_is_twice_the_box_centred_and_clipped():
    assert faces.window((100, 100, 200, 200), 640, 360) == (50, 50, 250, 250)
    assert faces.window((0, 300, 100, 360), 640, 360) == (0, 230, 150, 360)  # clipped at the edges


def test_window_search_finds_the_full_pass_face_in_frame_pixels():
    image = still("single_face.jpg")
    detector = faces.detector()
    (full,) = detector.candidates(image)
    (near,) = detector.candidates_near(image, full.box, 100)
    assert tracking.iou(full.box, near.box) > 0.9
    eyes = np.linalg.norm(full.landmarks[36:42].mean(0) - full.landmarks[42:48].mean(0))
    assert np.sqrt(((full.landmarks - near.landmarks) ** 2).sum(1).mean()) < 0.05 * eyes
    # a window holding no face finds nothing, and one at the frame's corner stays inside it
    assert detector.candidates_near(image, (0, 0, 60, 60), 100) == []
