"""OpenFace 2.x `FeatureExtraction` CSVs: read one, and match its rows to the sampled frames.

OpenFace writes one row per video frame with `frame`, (`face_id`,) `timestamp` (s), `confidence`
(0..1), `success` (0/1), pose, landmarks, `AUxx_r` intensities (0..5) and `AUxx_c` occurrences.
OpenFace 2.0-2.2 separate the fields with ", " (a space after each comma); the header names are
stripped here, so plain-comma files (this project's `export-openface`) read the same.

A sampled frame takes the OpenFace row nearest to it in time, when that row is within `tolerance_s`
and OpenFace tracked the face there (`success` 1 and `confidence` >= `min_confidence`). Frames with
no such row get no AUs: OpenFace itself says its values on failed frames are meaningless.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from impressions.data.defaults import PREPROCESSING
from impressions.schemas import AUS

INTENSITY_COLUMNS = tuple(f"{au}_r" for au in AUS)
"""OpenFace's 17 intensity columns, in `AUS` order."""

_OPTIONS = PREPROCESSING["expressions"]["openface"]  # their one home: the config schema

TOLERANCE_S = float(_OPTIONS["tolerance_s"])
"""Default largest time gap (s) between a sampled frame and its OpenFace row (0.02: under half a
frame at 25 fps, so a nearest-row match never takes a neighbour's row when the frame is there)."""

MIN_CONFIDENCE = float(_OPTIONS["min_confidence"])
"""Default lowest OpenFace `confidence` whose AUs are used (0.8, a common cut-off among OpenFace
users; OpenFace documents none)."""


class OpenFaceCSVError(ValueError):
    """A file that is not a readable OpenFace FeatureExtraction CSV."""


def read_csv(path: str | Path):
    """An OpenFace CSV as a polars DataFrame with stripped column names (Float64 values).

    Raises `OpenFaceCSVError` naming the file when it cannot be parsed or lacks `timestamp` or an
    `AUxx_r` column."""
    import polars as pl

    path = Path(path)
    try:
        table = pl.read_csv(path, infer_schema_length=0)  # all strings: OpenFace's ", " pads every value
    except Exception as error:  # noqa: BLE001 - polars raises several error types for bad CSVs
        raise OpenFaceCSVError(f"{path.name}: not a readable CSV ({error})") from error
    table = table.rename({name: name.strip() for name in table.columns})
    missing = [name for name in ("timestamp", *INTENSITY_COLUMNS) if name not in table.columns]
    if missing:
        raise OpenFaceCSVError(
            f"{path.name}: not OpenFace FeatureExtraction output, lacks {', '.join(missing)}"
        )
    try:
        return table.select(pl.all().str.strip_chars().cast(pl.Float64))
    except Exception as error:  # noqa: BLE001 - a non-numeric cell
        raise OpenFaceCSVError(f"{path.name}: a value is not a number ({error})") from error


@dataclass(frozen=True)
class Matched:
    """AUs (N, 17; NaN where unusable) for N sampled frames, and why frames have none."""

    aus: np.ndarray
    unmatched: int  # no OpenFace row within the tolerance
    failed: int  # a row, but OpenFace's success 0 or confidence below the cut-off

    @property
    def usable(self) -> np.ndarray:
        return ~np.isnan(self.aus).any(axis=1)

    def reason(self) -> str:
        """A QC sentence about the frames without AUs ("" when every frame has them)."""
        n = len(self.aus)
        parts = []
        if self.unmatched:
            parts.append(
                f"{self.unmatched} of {n} face frames have no OpenFace row within the time tolerance"
            )
        if self.failed:
            parts.append(
                f"{self.failed} of {n} face frames were not tracked by OpenFace (success 0 or low confidence)"
            )
        return "; ".join(parts)


def nearest_rows(row_times: np.ndarray, frame_times: np.ndarray, tolerance_s: float) -> np.ndarray:
    """For each frame time, the index of the nearest row time within `tolerance_s`, else -1."""
    row_times = np.asarray(row_times, np.float64)
    frame_times = np.asarray(frame_times, np.float64)
    if len(row_times) == 0:
        return np.full(len(frame_times), -1)
    order = np.argsort(row_times, kind="stable")
    sorted_times = row_times[order]
    right = np.clip(np.searchsorted(sorted_times, frame_times), 0, len(sorted_times) - 1)
    left = np.clip(right - 1, 0, len(sorted_times) - 1)
    pick = np.where(
        np.abs(sorted_times[left] - frame_times) <= np.abs(sorted_times[right] - frame_times), left, right
    )
    found = np.abs(sorted_times[pick] - frame_times) <= tolerance_s
    return np.where(found, order[pick], -1)


def match(
    table,
    frame_times: np.ndarray,
    *,
    tolerance_s: float = TOLERANCE_S,
    min_confidence: float = MIN_CONFIDENCE,
) -> Matched:
    """The AUs of `table` (from `read_csv`) at the sampled `frame_times` (s).

    With several faces per frame (`face_id`, FaceLandmarkVidMulti) the first face's rows are used."""
    import polars as pl

    if "face_id" in table.columns and table.height:
        table = table.filter(pl.col("face_id") == table["face_id"].min())
    rows = nearest_rows(table["timestamp"].to_numpy(), frame_times, tolerance_s)
    values = table.select(INTENSITY_COLUMNS).to_numpy()
    ok = np.ones(table.height, bool)
    if "success" in table.columns:
        ok &= table["success"].fill_null(0).to_numpy() > 0.5
    if "confidence" in table.columns:
        ok &= table["confidence"].fill_null(0).to_numpy() >= min_confidence
    ok &= ~np.isnan(values).any(axis=1)
    aus = np.full((len(rows), len(AUS)), np.nan)
    hit = rows >= 0
    good = hit.copy()
    good[hit] = ok[rows[hit]]
    aus[good] = np.clip(values[rows[good]], 0.0, 5.0)
    return Matched(aus=aus, unmatched=int((~hit).sum()), failed=int((hit & ~good).sum()))
