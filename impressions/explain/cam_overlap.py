"""Ventura et al.'s (2017) CAM face-overlap test, run as published where the paper says how.

What the paper states: CAM (Zhou et al. 2016: a GAP -> linear network, the `cam` head) of the image
model; regions of the map "overlap" the detected face box; 72.8% of the regions overlap it by at least
0.9 on First Impressions. What it leaves open (region definition, which frames, which traits) is
fixed here and reported both ways:

- each trait's map is upsampled (bilinear) to the frame, **min-max normalised** to 0..1 and
  thresholded at 0.2 of its maximum (so at ``min + 0.2 (max - min)`` of the raw map; the CAM
  paper's rule, Zhou et al. 2016 section 3);
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
from impressions.explain.analyses import BOX_SCALES

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


def regions(cam: np.ndarray, threshold: float = 0.2) -> list[np.ndarray]:
    """8-connected components of ``normalise(cam) >= threshold``, largest first (ties: scan order)."""
    from scipy import ndimage

    norm = normalise(cam)
    if norm is None:
        return []
    labels, n = ndimage.label(norm >= threshold, structure=np.ones((3, 3), dtype=bool))
    masks = [labels == k for k in range(1, n + 1)]
    return sorted(masks, key=lambda m: -int(m.sum()))  # stable: equal areas keep scan order


def scale_box(box: Sequence[float], scale: float) -> np.ndarray:
    """(left, top, right, bottom) enlarged by `scale` about its centre."""
    left, top, right, bottom = (float(v) for v in box)
    cx, cy = (left + right) / 2, (top + bottom) / 2
    hw, hh = (right - left) / 2 * scale, (bottom - top) / 2 * scale
    return np.array([cx - hw, cy - hh, cx + hw, cy + hh])


def frame_regions(
    cam: np.ndarray, box: Sequence[float], threshold: float = 0.2, scales: Sequence[float] = BOX_SCALES
) -> list[dict]:
    """One row per region of one map at image resolution: area, whether largest, overlap per box scale.

    Overlap keys are ``overlap_<scale>`` (e.g. overlap_1.25). A frame without a face (non-finite box)
    has no answer here: ValueError.
    """
    from impressions.explain.cam import box_mask

    if not np.all(np.isfinite(np.asarray(box, dtype=float))):
        raise ValueError("face box is not finite (no face in this frame): skip the frame")
    shape = np.shape(cam)
    faces = {s: box_mask(scale_box(box, s), shape) for s in scales}
    rows = []
    for k, mask in enumerate(regions(cam, threshold)):
        area = int(mask.sum())
        row = {"region": k, "area_px": area, "largest": k == 0}
        for s, face in faces.items():
            row[f"overlap_{s:g}"] = float((mask & face).sum() / area)
        rows.append(row)
    return rows


def overlap_column(scale: float) -> str:
    return f"overlap_{scale:g}"


def summarise(regions_table, min_overlap: float = 0.9, scales: Sequence[float] = BOX_SCALES):
    """Share of regions on the face per variant, box scale and trait (+ "all"), as a polars frame.

    `regions_table` has columns trait, largest and overlap_<scale> (from `frame_regions`)."""
    import polars as pl

    from impressions.schemas import TRAITS

    rows = []
    for variant in VARIANTS:
        part = regions_table if variant == "every" else regions_table.filter(pl.col("largest"))
        for s in scales:
            col = overlap_column(s)
            for trait in [*TRAITS, "all"]:
                sel = part if trait == "all" else part.filter(pl.col("trait") == trait)
                n = sel.height
                on = int((sel[col] >= min_overlap).sum()) if n else 0
                rows.append({
                    "variant": variant, "box_scale": float(s), "trait": trait, "regions": n, "on_face": on,
                    "share": on / n if n else float("nan"),
                    "median_overlap": float(sel[col].median()) if n else float("nan"),
                })  # fmt: skip
    return pl.DataFrame(
        rows,
        schema={"variant": pl.String, "box_scale": pl.Float64, "trait": pl.String, "regions": pl.Int64,
                "on_face": pl.Int64, "share": pl.Float64, "median_overlap": pl.Float64},
    )  # fmt: skip


def plot_histogram(
    regions_table, path, min_overlap: float = 0.9, scale: float = 1.0, title: str = ""
) -> None:
    """Histogram of region overlaps with the face box, every region beside the largest per map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import polars as pl

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
    """Share on the face against the face-box scale, per variant (pooled over traits), with the
    published figure drawn as a labelled reference line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import polars as pl

    fig, ax = plt.subplots(figsize=(4.5, 3), dpi=100)
    for variant in VARIANTS:
        part = summary.filter((pl.col("variant") == variant) & (pl.col("trait") == "all")).sort("box_scale")
        ax.plot(part["box_scale"], part["share"], marker="o", label=f"measured, {variant}")
    ax.axhline(PUBLISHED_SHARE, color="grey", linestyle=":", label="published (Ventura et al. 2017)")
    ax.set_xlabel("face box scale")
    ax.set_ylabel("share of regions on the face")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    figures.save(fig, path)
