"""Head pose, face confidence and a per-frame success flag, from the 68 landmarks and the detector.

Pose. The 3D face template (`impressions.face_template.TEMPLATE`, in units of the inter-ocular
distance, IOD) is fitted to a frame's rigid landmarks (nose 27-35, eye corners) by scaled orthography,
with `face_template.head_pose` (the same fit the AU geometry uses, here without its 45-degree cap).
The rotation R maps template coordinates to camera coordinates, both with x to the image's right,
y down and z away from the camera (OpenFace's camera axes), and is reported as Euler angles in
degrees with R = Rx(pitch) @ Ry(yaw) @ Rz(roll), OpenFace's order (its pose_Rx, pose_Ry, pose_Rz,
which it gives in radians):

- ``pitch`` > 0: the head tilts down (the nose tip moves down in the image);
- ``yaw`` > 0: the head turns toward the image's left (the subject's right);
- ``roll`` > 0: the head tilts clockwise in the image (the image-right eye goes down).

Orthography ignores perspective; at interview distances (the face a tenth of the camera distance
or less) that costs under 2 degrees (tests/test_head_pose.py projects the template with perspective).

Fit error. The root-mean-square distance between the rigid landmarks and the fitted template's
projection, divided by the fitted scale: in IOD units, independent of face size. Real detected faces
sit around 0.03-0.06 (the template is one average face); landmarks that do not form a face (a
detector false positive, a fit that slid off) exceed `MAX_FIT_ERROR`.

Confidence. dlib's HOG detector gives a margin (the linear classifier's score; 0 is its threshold,
clear frontal faces score 1-3). Confidence = 1 / (1 + exp(-(margin - CONFIDENCE_MID) / CONFIDENCE_WIDTH)),
so margin 0 maps to 0.16, 0.25 to 0.5, 0.5 to 0.84 and 1 to 0.99; the false positives the upsampled
detector fires on shoulders (margin about 0.1) get about 0.27. No face: confidence 0.

Success (OpenFace's flag): a face was found, its fit error is at most `MAX_FIT_ERROR`, and the face
is turned at most `MAX_POSE_DEG` away from the camera (the angle between the face's forward axis and
the camera axis: yaw and pitch combined, roll excluded). Beyond that limit the expression stage's
frontalisation is capped (`impressions.face_template.MAX_ANGLE`), so its AUs would be
unreliable; frames that fail get no expression row.
"""

from __future__ import annotations

import numpy as np

from impressions.face_template import RIGID, TEMPLATE, head_pose

CONFIDENCE_MID = 0.25
"""Detector margin mapped to confidence 0.5."""

CONFIDENCE_WIDTH = 0.15
"""Logistic width of the margin-to-confidence mapping (margin units)."""

MAX_FIT_ERROR = 0.15
"""Largest rigid-landmark fit error (IOD units) of a successful frame."""

MAX_POSE_DEG = 45.0
"""Largest out-of-plane rotation (degrees) of a successful frame; `face_template.MAX_ANGLE` too."""


def rotation_matrix(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """R = Rx(pitch) @ Ry(yaw) @ Rz(roll) from angles in degrees (the inverse of `euler_angles`)."""
    a, b, c = np.deg2rad([pitch, yaw, roll])
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rx @ ry @ rz


def euler_angles(rotation: np.ndarray) -> np.ndarray:
    """(N, 3) pitch, yaw, roll in degrees from rotations (N, 3, 3) = Rx(pitch) Ry(yaw) Rz(roll)."""
    r = np.asarray(rotation, dtype=np.float64)
    pitch = np.arctan2(-r[:, 1, 2], r[:, 2, 2])
    yaw = np.arctan2(r[:, 0, 2], np.hypot(r[:, 0, 0], r[:, 0, 1]))
    roll = np.arctan2(-r[:, 0, 1], r[:, 0, 0])
    return np.rad2deg(np.stack([pitch, yaw, roll], axis=1))


def confidence(margin) -> np.ndarray:
    """Detector margin -> confidence in 0..1 (module docstring); NaN margin (no face) -> 0."""
    margin = np.asarray(margin, dtype=np.float64)
    out = 1.0 / (1.0 + np.exp(-(margin - CONFIDENCE_MID) / CONFIDENCE_WIDTH))
    return np.where(np.isnan(margin), 0.0, out)


def estimate(landmarks: np.ndarray) -> dict[str, np.ndarray]:
    """Pose of each face (N, 68, 2 frame pixels): pitch, yaw, roll (deg), off_axis (deg), fit_error (IOD)."""
    landmarks = np.asarray(landmarks, dtype=np.float64).reshape(-1, 68, 2)
    if len(landmarks) == 0:
        empty = np.zeros(0)
        return dict(pitch=empty, yaw=empty, roll=empty, off_axis=empty, fit_error=empty)
    rotation, scale, shift = head_pose(landmarks, clamp=False)
    projected = (
        scale[:, None, None] * np.einsum("ncj,kj->nkc", rotation[:, :2], TEMPLATE[RIGID]) + shift[:, None]
    )
    residual = np.linalg.norm(landmarks[:, RIGID] - projected, axis=2)
    angles = euler_angles(rotation)
    return dict(
        pitch=angles[:, 0],
        yaw=angles[:, 1],
        roll=angles[:, 2],
        off_axis=np.rad2deg(np.arccos(np.clip(rotation[:, 2, 2], -1.0, 1.0))),
        fit_error=np.sqrt((residual**2).mean(axis=1)) / np.maximum(scale, 1e-9),
    )


def success(found, fit_error, off_axis) -> np.ndarray:
    """OpenFace-style success per frame: a face, a close landmark fit, a pose within MAX_POSE_DEG."""
    found = np.asarray(found, dtype=bool)
    fit_error = np.nan_to_num(np.asarray(fit_error, dtype=np.float64), nan=np.inf)
    off_axis = np.nan_to_num(np.asarray(off_axis, dtype=np.float64), nan=np.inf)
    return found & (fit_error <= MAX_FIT_ERROR) & (off_axis <= MAX_POSE_DEG)
