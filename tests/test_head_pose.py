"""Head pose, confidence and success (impressions.data.head_pose)."""

import numpy as np
import pytest

from impressions import face_template
from impressions.data import faces, head_pose, video
from impressions.testing import face_clip

ANGLES = [(0, 0, 0), (10, -30, 5), (-20, 25, -15), (15, 30, 10), (-15, -30, 20), (5, 10, -30), (25, 0, 0)]
WIDE = [(15, 40, 10), (-10, -45, 0), (30, 20, -20)]


def project(pitch, yaw, roll, *, iod=80.0, distance_iod=20.0, noise=0.5, seed=0):
    """The 3D template at a pose, seen by a pinhole camera `distance_iod` IODs away, plus pixel noise."""
    camera = face_template.TEMPLATE @ head_pose.rotation_matrix(pitch, yaw, roll).T * iod
    depth = camera[:, 2] + distance_iod * iod
    points = camera[:, :2] * (distance_iod * iod) / depth[:, None] + np.array([320.0, 180.0])
    return points + np.random.default_rng(seed).normal(0, noise, points.shape)


@pytest.mark.parametrize("angles", ANGLES + WIDE)
def test_template_projected_at_known_angles_comes_back_within_2_degrees(angles):
    # a pinhole camera 20 IODs away (a face seen from about 1.3 m): only perspective separates the
    # landmarks from the fitted scaled-orthographic model
    got = head_pose.estimate(project(*angles, noise=0.0)[None])
    recovered = np.array([got["pitch"][0], got["yaw"][0], got["roll"][0]])
    assert np.abs(recovered - np.array(angles)).max() < 2.0, recovered
    assert got["fit_error"][0] < 0.05


@pytest.mark.parametrize("angles", ANGLES)
def test_landmark_noise_moves_the_pose_by_a_few_degrees(angles):
    # 0.5 px of noise on an 80 px IOD (13 rigid points) costs up to about 2.5 degrees
    got = head_pose.estimate(project(*angles, noise=0.5)[None])
    recovered = np.array([got["pitch"][0], got["yaw"][0], got["roll"][0]])
    assert np.abs(recovered - np.array(angles)).max() < 3.0, recovered


def test_euler_angles_invert_rotation_matrix():
    rotations = np.stack([head_pose.rotation_matrix(*a) for a in ANGLES])
    assert np.allclose(head_pose.euler_angles(rotations), np.array(ANGLES, float), atol=1e-9)


def test_points_that_are_no_face_have_a_large_fit_error_and_fail():
    scrambled = project(0, 0, 0)[np.random.default_rng(1).permutation(68)]
    got = head_pose.estimate(scrambled[None])
    assert got["fit_error"][0] > head_pose.MAX_FIT_ERROR
    assert not head_pose.success([True], got["fit_error"], got["off_axis"])[0]


def test_success_needs_a_face_a_close_fit_and_a_moderate_pose():
    ok = head_pose.estimate(np.stack([project(0, 20, 0, noise=0), project(0, 60, 0, noise=0)]))
    assert ok["off_axis"][0] == pytest.approx(20, abs=2) and ok["off_axis"][1] > head_pose.MAX_POSE_DEG
    assert head_pose.success([True, True], ok["fit_error"], ok["off_axis"]).tolist() == [True, False]
    assert not head_pose.success([False], [np.nan], [np.nan])[0]


def test_confidence_mapping_is_monotone_and_documented():
    c = head_pose.confidence([np.nan, 0.0, 0.1, 0.25, 0.5, 1.0, 2.0])
    assert c[0] == 0.0 and c[3] == pytest.approx(0.5)
    assert np.all(np.diff(c[1:]) > 0) and c[-1] > 0.99
    assert c[1] == pytest.approx(0.16, abs=0.01) and c[4] == pytest.approx(0.84, abs=0.01)


def _yaws(path):
    info = video.probe(path)
    images = video.sample_frames(path, info, 6, 640).frames
    found = [faces.detector().detect(image) for image in images]
    assert all(f.found for f in found)
    return head_pose.estimate(np.stack([f.landmarks for f in found]))["yaw"]


def test_a_head_turning_one_way_gives_monotone_yaw_and_its_mirror_the_opposite(tmp_path):
    # In the Wolfgang clip from 6.4 s to 10 s she turns from facing the image's left to the camera.
    clip, mirror = tmp_path / "turn.mp4", tmp_path / "mirror.mp4"
    face_clip(clip, start=6.4, seconds=3.6, audio=False)
    face_clip(mirror, start=6.4, seconds=3.6, audio=False, vf="hflip")
    yaw, mirrored = _yaws(clip), _yaws(mirror)
    assert np.all(np.diff(yaw) < 0), yaw
    assert yaw[0] - yaw[-1] > 10
    # the mirror turns the other way by as much (up to a constant: the template is not exactly symmetric)
    assert np.all(np.diff(mirrored) > 0), mirrored
    assert np.allclose(np.diff(mirrored), -np.diff(yaw), atol=3.0), (yaw, mirrored)


def test_expression_stage_skips_frames_that_failed(tmp_path):
    import polars as pl

    from impressions.data import preprocess, shards
    from impressions.expressions import detector as expressions

    video = tmp_path / "good.000.mp4"
    face_clip(video, start=12, seconds=3, audio=False)
    folder = tmp_path / "good.000"
    preprocess.preprocess_clip(
        "good.000", video, folder, preprocess.Settings(frames_per_clip=3, identity=False)
    )
    table_path = preprocess.output_paths(folder)["table"]
    table = pl.read_parquet(table_path)
    assert table["success"].all()  # a frontal, well-lit face
    # mark the middle frame failed, as a far-off landmark fit or a turned-away head would
    table.with_columns(success=pl.Series([True, False, True])).write_parquet(table_path)
    out = tmp_path / "expressions.parquet"
    shards.expression_shard({"good.000": folder}, expressions.get_backend("builtin", device="cpu"), out)
    assert pl.read_parquet(out)["frame_index"].to_list() == [0, 2]
