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

Ties and dead units. A top-N set is defined by the values only where the column has at least N
positive values: a dead ReLU unit (all zeros) or an AU present on fewer than N frames would fill it
with tied zeros, and breaking those ties by row order gives two such columns the same earliest rows,
an overlap far above chance (400 frames, an AU on 20 of them, one dead unit: I = 34 for 6.25
expected, p = 5e-23). Such a column is *not tested* (it has no top-N set; there is no threshold to
choose, the rule follows from N) and leaves the correction's family; its AU row says so. Ties among
positive values at the boundary are broken at random, independently per column and seeded, so that
no shared order aligns two columns: an independent uniformly drawn set keeps the hypergeometric null
exact.

Second opinion (`permutation_p`): frames, and clips of one YouTube video, share the person. For the
strongest AU-unit pair, the unit scores are moved as whole YouTube-id blocks (the blocks shuffled,
then laid end to end against the AU's rows), every unit at once, and the observed I_max of that AU
over all tested units is compared with the permuted maxima (the max statistic: it pays for having
picked the best of the units).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from impressions import figures

LEVELS = ("frame", "clip")
CORRECTION = "Benjamini-Hochberg across units x AUs"


TIE_SEED = 0
"""Seed of the random tie-breaking among equal positive values (columns draw independent keys)."""

PERMUTATIONS = 999
"""Block permutations of the YouTube-id null; p = (1 + permuted maxima >= observed) / (1 + 999)."""

MIN_GROUPS = 5
"""YouTube ids the permutation null needs (fewer give too few distinct block orders)."""


def testable(values: np.ndarray, n_top: int) -> np.ndarray:
    """(K,) bool: the columns with at least `n_top` positive values, whose top-`n_top` set the values
    define (the others would be filled with tied zeros)."""
    values = np.asarray(values, dtype=np.float64)
    return (np.nan_to_num(values, nan=0.0) > 0).sum(axis=0) >= n_top


def top_membership(values: np.ndarray, n_top: int, seed: int = TIE_SEED) -> np.ndarray:
    """(F, K) 0/1 float: each column's `n_top` largest values (NaN last; ties broken at random,
    independently per column, with `seed`)."""
    values = np.asarray(values, dtype=np.float64)
    keys = np.random.default_rng(seed).random(values.shape)
    ranked = -np.where(np.isnan(values), -np.inf, values)
    order = np.lexsort((keys, ranked), axis=0)[:n_top]
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
    """Per AU (column of `au`, (M, A)): the best tested unit of `unit` (M, U) with I_max and p values.
    An AU or unit with fewer than `n_top` positive values is not tested (module docstring); an AU's
    row then has unit, I_max and p None and `positive` says why."""
    from scipy.stats import hypergeom

    au = np.asarray(au, dtype=np.float64)
    unit = np.asarray(unit, dtype=np.float64)
    m, n_units = unit.shape
    if au.shape[0] != m:
        raise ValueError(f"AU scores have {au.shape[0]} rows, unit scores {m}")
    if not 1 <= n_top <= m:
        raise ValueError(f"n_top must be in 1..{m}, not {n_top}")
    au_ok, unit_ok = testable(au, n_top), testable(unit, n_top)
    units_tested = np.flatnonzero(unit_ok)
    # AU and unit memberships draw different tie-breaking keys: no shared order can align them.
    au_top = top_membership(au, n_top, seed=TIE_SEED)
    unit_top = top_membership(unit[:, units_tested], n_top, seed=TIE_SEED + 1)
    inter = np.rint(au_top.T @ unit_top).astype(np.int64)  # (A, tested units)
    p = hypergeom.sf(inter - 1, m, n_top, n_top)
    family = p[au_ok]
    p_bh = np.full(p.shape, np.nan)
    p_bh[au_ok] = benjamini_hochberg(family)
    p_bonf = np.minimum(p * family.size, 1.0)
    positive = (np.nan_to_num(au, nan=0.0) > 0).sum(axis=0)
    rows = []
    for a in range(au.shape[1]):
        row = {"au_index": a, "unit": None, "i_max": None, "n_top": int(n_top), "n": int(m),
               "expected": n_top**2 / m, "p_value": None, "p_corrected": None, "p_bonferroni": None,
               "tests": int(family.size), "positive": int(positive[a]),
               "units_tested": int(len(units_tested)), "p_permutation": None}  # fmt: skip
        if au_ok[a] and len(units_tested):
            k = int(np.lexsort((p[a], -inter[a]))[0])
            row |= {"unit": int(units_tested[k]), "i_max": int(inter[a, k]), "p_value": float(p[a, k]),
                    "p_corrected": float(p_bh[a, k]), "p_bonferroni": float(p_bonf[a, k])}  # fmt: skip
        rows.append(row)
    return rows


def block_order(groups: Sequence[str], rng: np.random.Generator) -> np.ndarray:
    """Row indices with the rows of each group kept together and the groups in random order."""
    codes = {g: i for i, g in enumerate(dict.fromkeys(groups))}
    code = np.array([codes[g] for g in groups], dtype=np.int64)
    rank = np.empty(len(codes), dtype=np.int64)
    rank[rng.permutation(len(codes))] = np.arange(len(codes))
    return np.lexsort((np.arange(len(code)), rank[code]))


def permutation_p(
    au: np.ndarray, unit: np.ndarray, n_top: int, groups: Sequence[str], au_index: int,
    permutations: int = PERMUTATIONS, seed: int = 0,
) -> float | None:  # fmt: skip
    """The YouTube-id block permutation p of AU `au_index`'s I_max over the tested units (module
    docstring); None when fewer than `MIN_GROUPS` groups or the AU or no unit is testable."""
    au = np.asarray(au, dtype=np.float64)[:, au_index]
    unit = np.asarray(unit, dtype=np.float64)
    unit = unit[:, testable(unit, n_top)]
    if len(set(groups)) < MIN_GROUPS or not testable(au[:, None], n_top)[0] or not unit.shape[1]:
        return None
    au_rows = np.flatnonzero(top_membership(au[:, None], n_top, seed=TIE_SEED)[:, 0])
    unit_top = top_membership(unit, n_top, seed=TIE_SEED + 1)
    observed = unit_top[au_rows].sum(axis=0).max()
    # Items ordered by group: the AU's rows stay, the units' rows move as shuffled blocks.
    home = block_order(groups, np.random.default_rng(seed))  # a fixed grouped layout (random order)
    position = np.empty(len(home), dtype=np.int64)
    position[home] = np.arange(len(home))
    rng = np.random.default_rng(seed + 1)
    exceed = 0
    for _ in range(permutations):
        moved = block_order(groups, rng)  # row placed at each position of the grouped layout
        exceed += unit_top[moved[position[au_rows]]].sum(axis=0).max() >= observed
    return float((1 + exceed) / (1 + permutations))


def add_permutation_p(rows: list[dict], au, unit, groups: Sequence[str]) -> None:
    """Set `p_permutation` on the strongest tested row of `rows` (smallest p, then largest I)."""
    tested = [r for r in rows if r["p_value"] is not None]
    if not tested:
        return
    best = min(tested, key=lambda r: (r["p_value"], -r["i_max"]))
    best["p_permutation"] = permutation_p(au, unit, best["n_top"], groups, best["au_index"])


def both_levels(
    clip_ids: Sequence[str], au: np.ndarray, unit: np.ndarray, frame_top: int, clip_top: int
) -> tuple[list[dict], list[dict], str]:
    """(frame rows, clip rows, why the clip level was skipped or ""): `n_top` is capped at a quarter
    of the frames or clips; the clip level needs at least 4 clips. Each level's strongest row gets
    the YouTube-id permutation p (`permutation_p`)."""
    from impressions.data.clip_index import youtube_id

    au, unit = np.asarray(au, dtype=np.float64), np.asarray(unit, dtype=np.float64)
    frames = len(au)
    frame_rows = []
    if frames >= 4:
        frame_rows = emergence(au, unit, int(min(frame_top, max(frames // 4, 1))))
        add_permutation_p(frame_rows, au, unit, [youtube_id(c) for c in clip_ids])
    clips, au_c, unit_c = clip_scores(clip_ids, au, unit)
    if len(clips) < 4:
        return frame_rows, [], f"only {len(clips)} clip(s) with expressions (the clip level needs 4)"
    clip_rows = emergence(au_c, unit_c, int(min(clip_top, max(len(clips) // 4, 1))))
    add_permutation_p(clip_rows, au_c, unit_c, [youtube_id(c) for c in clips])
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
        p = {a: v for a, v in zip(part["au"].to_list(), part["p_corrected"].to_list()) if v is not None}
        heights = [-np.log10(max(p[a], 1e-300)) if a in p else 0.0 for a in aus]  # untested: no bar
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
