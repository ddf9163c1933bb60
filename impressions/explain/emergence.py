"""Action-Unit emergence at frame level and at clip level, corrected across every (unit, AU) pair.

Ventura et al. (2017) compare, for each AU, its top-N frames with each unit's top-N frames and report
the best unit's intersection I_max with its chance probability. Frames of one clip share the person,
light and expression, so at frame level two top-N sets that both fall on one clip's frames overlap
far beyond the hypergeometric chance although only one "event" agrees. The clip-level variant makes
the clip the unit of evidence: a clip's AU score is its mean intensity over frames, a unit's clip
score is its largest peak activation over the clip's frames, and top-N *clips* are compared with
M = the number of clips.

p of one (unit, AU) pair: P(X >= I), X ~ Hypergeom(M, N, N) (two independent random top-N sets).
Every AU is tested against every unit, so the family is units x AUs pairs; the p values are adjusted
with Benjamini-Hochberg (false discovery rate; ``p_corrected``) and also given Bonferroni-adjusted
(family-wise; ``p_bonferroni``). Each AU's row is its best unit (largest I, then smallest p).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from impressions import figures

LEVELS = ("frame", "clip")
CORRECTION = "Benjamini-Hochberg across units x AUs"


def top_membership(values: np.ndarray, n_top: int) -> np.ndarray:
    """(F, K) 0/1 float: each column's `n_top` largest values (ties by order, NaN last)."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(-np.where(np.isnan(values), -np.inf, values), axis=0, kind="stable")[:n_top]
    chosen = np.zeros(values.shape, dtype=np.float64)
    np.put_along_axis(chosen, order, 1.0, axis=0)
    return chosen


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p values (same shape), monotone and capped at 1."""
    p = np.asarray(p, dtype=np.float64)
    flat = p.ravel()
    m = flat.size
    if m == 0:
        return p.copy()
    order = np.argsort(flat, kind="stable")
    ranked = flat[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out.reshape(p.shape)


def clip_scores(clip_ids: Sequence[str], au: np.ndarray, unit: np.ndarray):
    """(clips in first-seen order, (C, A) mean AU per clip, (C, U) max unit peak per clip)."""
    au, unit = np.asarray(au, dtype=np.float64), np.asarray(unit, dtype=np.float64)
    clips = list(dict.fromkeys(clip_ids))
    index = {c: i for i, c in enumerate(clips)}
    pos = np.array([index[c] for c in clip_ids], dtype=np.int64)
    counts = np.bincount(pos, minlength=len(clips)).astype(np.float64)
    au_mean = np.zeros((len(clips), au.shape[1]))
    np.add.at(au_mean, pos, au)
    au_mean /= counts[:, None]
    unit_max = np.full((len(clips), unit.shape[1]), -np.inf)
    np.maximum.at(unit_max, pos, unit)
    return clips, au_mean, unit_max


def emergence(au: np.ndarray, unit: np.ndarray, n_top: int) -> list[dict]:
    """Per AU (column of `au`, (M, A)): the best unit of `unit` (M, U) with I_max and p values."""
    from scipy.stats import hypergeom

    au = np.asarray(au, dtype=np.float64)
    unit = np.asarray(unit, dtype=np.float64)
    m, n_units = unit.shape
    if au.shape[0] != m:
        raise ValueError(f"AU scores have {au.shape[0]} rows, unit scores {m}")
    if not 1 <= n_top <= m:
        raise ValueError(f"n_top must be in 1..{m}, not {n_top}")
    inter = np.rint(top_membership(au, n_top).T @ top_membership(unit, n_top)).astype(np.int64)  # (A, U)
    p = hypergeom.sf(inter - 1, m, n_top, n_top)
    p_bh = benjamini_hochberg(p)
    p_bonf = np.minimum(p * p.size, 1.0)
    rows = []
    for a in range(inter.shape[0]):
        best = int(np.lexsort((p[a], -inter[a]))[0])
        rows.append({
            "au_index": a, "unit": best, "i_max": int(inter[a, best]), "n_top": int(n_top), "n": int(m),
            "expected": n_top**2 / m, "p_value": float(p[a, best]), "p_corrected": float(p_bh[a, best]),
            "p_bonferroni": float(p_bonf[a, best]), "tests": int(p.size),
        })  # fmt: skip
    return rows


def both_levels(
    clip_ids: Sequence[str], au: np.ndarray, unit: np.ndarray, frame_top: int, clip_top: int
) -> tuple[list[dict], list[dict], str]:
    """(frame rows, clip rows, why the clip level was skipped or ""): `n_top` is capped at a quarter
    of the frames or clips; the clip level needs at least 4 clips."""
    au, unit = np.asarray(au, dtype=np.float64), np.asarray(unit, dtype=np.float64)
    frames = len(au)
    frame_rows = emergence(au, unit, int(min(frame_top, max(frames // 4, 1)))) if frames >= 4 else []
    clips, au_c, unit_c = clip_scores(clip_ids, au, unit)
    if len(clips) < 4:
        return frame_rows, [], f"only {len(clips)} clip(s) with expressions (the clip level needs 4)"
    clip_rows = emergence(au_c, unit_c, int(min(clip_top, max(len(clips) // 4, 1))))
    return frame_rows, clip_rows, ""


def plot_levels(table, path, alpha: float = 0.05, title: str = "") -> None:
    """-log10 corrected p per AU, frame level beside clip level, with the alpha line."""
    import matplotlib

    matplotlib.use("Agg")

    import matplotlib.pyplot as plt
    import polars as pl

    aus = list(dict.fromkeys(table["au"].to_list())) if table.height else []
    fig, ax = plt.subplots(figsize=(max(5, 0.45 * len(aus) + 1.5), 3.2), dpi=100)
    width = 0.4
    x = np.arange(len(aus))
    for k, level in enumerate(LEVELS):
        part = table.filter(pl.col("level") == level)
        p = dict(zip(part["au"].to_list(), part["p_corrected"].to_list()))
        heights = [-np.log10(max(p.get(a, 1.0), 1e-300)) if a in p else 0.0 for a in aus]
        ax.bar(x + (k - 0.5) * width, heights, width, label=f"{level} level")
    ax.axhline(-np.log10(alpha), color="tab:red", linestyle="--", linewidth=1, label=f"p = {alpha:g}")
    ax.set_xticks(x, aus, rotation=60, fontsize=7)
    ax.set_ylabel("-log10 corrected p (BH)")
    ax.legend(fontsize=7)
    if not aus:
        ax.text(0.5, 0.5, "no AU could be tested", ha="center", va="center", transform=ax.transAxes)
    if title:
        ax.set_title(title, fontsize=9)
    figures.save(fig, path)
