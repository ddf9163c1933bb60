"""Ventura et al.'s (2017) CAM face-overlap test, run as published where the paper says how.

What the paper states: CAM (Zhou et al. 2016: a GAP -> linear network, the `cam` head) of the image
model; regions of the map "overlap" the detected face box; 72.8% of the regions overlap it by at least
0.9 on First Impressions. What it leaves open (region definition, which frames, which traits) is
fixed here and reported both ways:

- each trait's map is upsampled (bilinear) to the frame and thresholded by two rules
  (`analyses.REGION_RULES`), both tabled: ``raw_max`` keeps pixels >= 0.2 x the map's maximum (the
  CAM paper's rule, Zhou et al. 2016 section 3; the default headline), ``min_max`` min-max
  normalises first (so keeps ``min + 0.2 (max - min)``); on a signed regression CAM they differ;
- regions are the 8-connected components of that mask; variant ``every`` keeps them all, variant
  ``largest`` only the largest (the CAM paper's box uses the largest component);
- a region's overlap is ``|region ∩ box| / |region|``; it is on the face when that is >= 0.9;
- the face box is also enlarged about its centre (`BOX_SCALES`: 1.0, 1.25, 1.5 by default) to show how
  much the statistic depends on how tight the detector's box is (dlib's HOG box is tight).

Only test-split frames with a detected face enter the statistic (the caller filters them).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from impressions import figures
from impressions.explain.analyses import BOX_SCALES, REGION_RULES

PUBLISHED_SHARE = 0.728
"""Ventura et al. 2017: share of CAM regions with overlap >= 0.9 with the face box on FI (published)."""

VARIANTS = ("every", "largest")


def normalise(cam: np.ndarray) -> np.ndarray | None:
    """Min-max normalised map in 0..1 (float64); None for a constant or non-finite map (no regions)."""
    cam = np.asarray(cam, dtype=np.float64)
    if not np.isfinite(cam).all():
        return None
    low, high = cam.min(), cam.max()
    if not high > low:
        return None
    return (cam - low) / (high - low)


def regions(cam: np.ndarray, threshold: float = 0.2, rule: str = REGION_RULES[0]) -> list[np.ndarray]:
    """8-connected components of the thresholded map, largest first (ties: scan order): ``raw_max``
    ``cam >= threshold * max(cam)`` (none without a positive maximum), ``min_max``
    ``normalise(cam) >= threshold`` (none for a constant map)."""
    from scipy import ndimage

    from impressions.explain.cam import cam_regions

    if rule == "raw_max":
        masks = cam_regions(cam, threshold)
    elif rule == "min_max":
        norm = normalise(cam)
        if norm is None:
            return []
        labels, n = ndimage.label(norm >= threshold, structure=np.ones((3, 3), dtype=bool))
        masks = [labels == k for k in range(1, n + 1)]
    else:
        raise ValueError(f"unknown CAM region rule {rule!r}; known: {REGION_RULES}")
    return sorted(masks, key=lambda m: -int(m.sum()))  # stable: equal areas keep scan order


def scale_box(box: Sequence[float], scale: float) -> np.ndarray:
    """(left, top, right, bottom) enlarged by `scale` about its centre."""
    left, top, right, bottom = (float(v) for v in box)
    cx, cy = (left + right) / 2, (top + bottom) / 2
    hw, hh = (right - left) / 2 * scale, (bottom - top) / 2 * scale
    return np.array([cx - hw, cy - hh, cx + hw, cy + hh])


def frame_regions(
    cam: np.ndarray, box: Sequence[float], threshold: float = 0.2, scales: Sequence[float] = BOX_SCALES,
    rules: Sequence[str] = REGION_RULES,
) -> list[dict]:  # fmt: skip
    """One row per rule and region of one map at image resolution: the rule, area, whether largest,
    overlap per box scale.

    Overlap keys are ``overlap_<scale>`` (e.g. overlap_1.25). A frame without a face (non-finite box)
    has no answer here: ValueError.
    """
    from impressions.explain.cam import box_mask

    if not np.all(np.isfinite(np.asarray(box, dtype=float))):
        raise ValueError("face box is not finite (no face in this frame): skip the frame")
    shape = np.shape(cam)
    faces = {s: box_mask(scale_box(box, s), shape) for s in scales}
    rows = []
    for rule in rules:
        for k, mask in enumerate(regions(cam, threshold, rule)):
            area = int(mask.sum())
            row = {"rule": rule, "region": k, "area_px": area, "largest": k == 0}
            for s, face in faces.items():
                row[f"overlap_{s:g}"] = float((mask & face).sum() / area)
            rows.append(row)
    return rows


def overlap_column(scale: float) -> str:
    return f"overlap_{scale:g}"


def summarise(regions_table, min_overlap: float = 0.9, scales: Sequence[float] = BOX_SCALES):
    """Share of regions on the face per rule, variant, box scale and trait (+ "all"), as a polars frame.

    `regions_table` has columns rule, trait, largest and overlap_<scale> (from `frame_regions`)."""
    import polars as pl

    from impressions.schemas import TRAITS

    rows = []
    for rule in REGION_RULES:
        by_rule = regions_table.filter(pl.col("rule") == rule)
        for variant in VARIANTS:
            part = by_rule if variant == "every" else by_rule.filter(pl.col("largest"))
            for s in scales:
                col = overlap_column(s)
                for trait in [*TRAITS, "all"]:
                    sel = part if trait == "all" else part.filter(pl.col("trait") == trait)
                    n = sel.height
                    on = int((sel[col] >= min_overlap).sum()) if n else 0
                    rows.append({
                        "rule": rule, "variant": variant, "box_scale": float(s), "trait": trait, "regions": n,
                        "on_face": on, "share": on / n if n else float("nan"),
                        "median_overlap": float(sel[col].median()) if n else float("nan"),
                    })  # fmt: skip
    return pl.DataFrame(
        rows,
        schema={"rule": pl.String, "variant": pl.String, "box_scale": pl.Float64, "trait": pl.String,
                "regions": pl.Int64, "on_face": pl.Int64, "share": pl.Float64, "median_overlap": pl.Float64},
    )  # fmt: skip


def plot_histogram(
    regions_table, path, min_overlap: float = 0.9, scale: float = 1.0, title: str = "",
    rule: str = REGION_RULES[0],
) -> None:  # fmt: skip
    """Histogram of region overlaps with the face box (regions of `rule`), every region beside the
    largest per map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import polars as pl

    regions_table = regions_table.filter(pl.col("rule") == rule)
    col = overlap_column(scale)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3), dpi=100, sharey=False)
    bins = np.linspace(0, 1, 21)
    for ax, variant in zip(axes, VARIANTS):
        part = regions_table if variant == "every" else regions_table.filter(pl.col("largest"))
        values = part[col].to_numpy() if part.height else np.zeros(0)
        ax.hist(values, bins=bins, color="tab:blue")
        ax.axvline(min_overlap, color="tab:red", linestyle="--", linewidth=1)
        share = float((values >= min_overlap).mean()) if len(values) else float("nan")
        ax.set_title(f"{variant} region(s): {len(values)}, {share:.1%} >= {min_overlap:g}", fontsize=9)
        ax.set_xlabel("share of region inside the face box")
        ax.set_ylabel("regions")
    figures.save(fig, path, title)


def plot_scale_sensitivity(summary, path, title: str = "") -> None:
    """Share on the face against the face-box scale, per rule and variant (pooled over traits), with
    the published figure drawn as a labelled reference line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import polars as pl

    fig, ax = plt.subplots(figsize=(4.5, 3), dpi=100)
    for rule in REGION_RULES:
        for variant in VARIANTS:
            part = summary.filter(
                (pl.col("rule") == rule) & (pl.col("variant") == variant) & (pl.col("trait") == "all")
            ).sort("box_scale")
            style = "-" if rule == REGION_RULES[0] else "--"
            ax.plot(part["box_scale"], part["share"], style, marker="o", label=f"measured, {rule}, {variant}")
    ax.axhline(PUBLISHED_SHARE, color="grey", linestyle=":", label="published (Ventura et al. 2017)")
    ax.set_xlabel("face box scale")
    ax.set_ylabel("share of regions on the face")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    figures.save(fig, path)
