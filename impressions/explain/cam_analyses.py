"""The CAM analyses: class activation maps and Grad-CAM per trait (`cam_analysis`), and the share of
CAM regions on the face (`cam_overlap_analysis`, Ventura et al. 2017)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from impressions.explain import analyses, deviations
from impressions.explain.images import Images, batched, load_model, model_input
from impressions.explain.sections import (
    NotComputable,
    Section,
    clips_used,
    polars_types,
)
from impressions.schemas import TRAITS

# ----------------------------------------------------------------------------------------------------
# Class activation maps and Grad-CAM


def _clip_scores(clip_ids: Sequence[str], logits: np.ndarray) -> dict[str, np.ndarray]:
    scores: dict[str, list] = {}
    for c, row in zip(clip_ids, 1 / (1 + np.exp(-logits))):
        scores.setdefault(c, []).append(row)
    return {c: np.mean(v, axis=0) for c, v in scores.items()}


def cam_analysis(
    name: str, checkpoint: Path, images: Images, files: Mapping[str, Path], *, top_k: int = 3,
    compare_frames: int = 4,
) -> Section:  # fmt: skip
    """CAM overlays of the top-K clips per trait and CAM against Grad-CAM (the face-overlap test is
    `cam_overlap_analysis`)."""
    if not len(images):
        raise NotComputable(f"no {images.kind} of the splits {', '.join(images.splits)} to explain")
    cams, logits, grads = _cam_maps(checkpoint, images)
    scores = _clip_scores(images.clip_ids, logits)
    _plot_top_clips(name, images, cams, logits, scores, top_k, files["overlays"])
    gradcam_table = _gradcam_table(name, cams, grads)
    pick = np.unique(np.linspace(0, len(images) - 1, min(compare_frames, len(images))).round().astype(int))
    _plot_cam_vs_gradcam(images, cams, grads, pick, files["compare"])
    section = _cam_section(
        name, images, files, gradcam_table, top_k=top_k, clips=len(scores), shown=len(pick)
    )
    section.write(files["section"])
    return section


def _cam_maps(checkpoint: Path, images: Images) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(CAMs (n, 5, h, w), logits (n, 5), Grad-CAMs (n, 5, h, w)) of the model on `images`."""
    from impressions.explain import cam

    model, transform, _ = load_model(checkpoint)
    x = model_input(images.images, transform)
    cams, logits = batched(lambda b: cam.class_activation_maps(model, b), x)
    grads = batched(lambda b: cam.grad_cam(model, b), x)
    return cams, logits, grads


def _plot_top_clips(name: str, images: Images, cams, logits, scores, top_k: int, path: Path) -> None:
    """Overlays: per trait the K clips the model scores highest, each at its highest-scoring frame."""
    from impressions.explain import cam

    ranked = sorted(scores)
    tiles, maps, titles = [], [], []
    for t, trait in enumerate(TRAITS):
        for clip_id in sorted(ranked, key=lambda c: -scores[c][t])[:top_k]:
            rows = [i for i, c in enumerate(images.clip_ids) if c == clip_id]
            i = max(rows, key=lambda r: logits[r, t])
            tiles.append(images.images[i])
            maps.append(cams[i, t])
            titles.append(f"{trait[:5]} {scores[clip_id][t]:.2f}\n{clip_id} #{images.frame_index[i]}")
    cam.plot_overlays(tiles, maps, titles, path, columns=top_k,
                      suptitle=f"{name}: CAM of each trait (rows) on its top-{top_k} clips")  # fmt: skip


def _gradcam_table(name: str, cams, grads):
    """CAM against Grad-CAM on the same frames and traits: Pearson r per trait."""
    import polars as pl

    from impressions.explain import cam

    corr = np.array([[cam.map_correlation(cams[i, t], grads[i, t]) for t in range(len(TRAITS))]
                     for i in range(len(cams))])  # fmt: skip
    rows = [{"model": name, "trait": trait, "frames": int(np.isfinite(corr[:, t]).sum()),
             "mean_r": float(np.nanmean(corr[:, t])) if np.isfinite(corr[:, t]).any() else float("nan"),
             "median_r": float(np.nanmedian(corr[:, t])) if np.isfinite(corr[:, t]).any() else float("nan")}
            for t, trait in enumerate(TRAITS)]  # fmt: skip
    return pl.DataFrame(rows)


def _plot_cam_vs_gradcam(images: Images, cams, grads, pick, path: Path) -> None:
    from impressions.explain import cam

    cam.plot_cam_vs_gradcam(
        [images.images[i] for i in pick], [cams[i, 0] for i in pick], [grads[i, 0] for i in pick],
        [f"{images.clip_ids[i]} #{images.frame_index[i]} ({TRAITS[0]})" for i in pick], path,
    )  # fmt: skip


def _cam_section(
    name: str, images: Images, files: Mapping[str, Path], gradcam_table, *, top_k: int, clips: int, shown: int
) -> Section:
    """The CAM section: what the maps are, the overlays, CAM against Grad-CAM."""
    spec = analyses.get("cam")
    what = "whole frames" if images.kind == "frames" else "aligned faces"
    section = Section(
        spec.title.format(model=name),
        f"Which parts of the {what} drive each trait's score in the {name} model. The maps are the exact "
        "decomposition of each trait's logit over the last convolutional layer's locations "
        "(impressions.models.networks.DANPlus.activation_maps): with the cam head this is CAM "
        "(Zhou et al. 2016); "
        "with the DAN+ head it adds the max-pooled half's contribution at each channel's peak. "
        + clips_used(images),
        order=spec.order + (images.kind == "faces"),
    )
    section.figure(
        files["overlays"],
        f"CAM per trait (rows) for the {top_k} clips with the highest predicted score of that trait among "
        f"the {clips} clips analysed, each at its highest-scoring frame; red is where the trait's "
        "logit gains most, blue where it loses; each map is scaled to its own range.",
    )
    section.figure(
        files["compare"],
        f"CAM (middle) against Grad-CAM (right; Selvaraju et al. 2017: ReLU of the feature maps weighted "
        f"by the spatial mean gradient of the trait output) for {TRAITS[0]} on {shown} evenly spaced "
        "frames.",
    )
    section.table(
        gradcam_table,
        f"Pearson r between CAM and Grad-CAM per trait over {len(images)} {what} (both at the last conv "
        "layer's resolution); frames where either map is constant are left out.",
        files["gradcam"],
    )
    if images.kind == "frames":
        section.text += (
            " The share of CAM regions on the face (Ventura et al. 2017) is measured as published, on a "
            "GAP (cam head) model and test frames only, in the section 'CAM regions on the face'."
        )
    return section


REGION_SCHEMA = {
    "model": "String", "clip_id": "String", "frame_index": "Int64", "trait": "String", "rule": "String",
    "region": "Int64", "area_px": "Int64", "largest": "Boolean",
}  # fmt: skip
"""cam_regions.parquet: one row per region rule (`analyses.REGION_RULES`) and CAM region, plus
overlap_<scale> (Float64) per face-box scale."""


def _published_comparison(name: str, dataset: str, summary, rule: str):
    """The measured shares (box scale 1.0, pooled over traits) of both region rules, the headline
    `rule` first, beside the published one, labelled as such: (comparison table, share and regions of
    every region, share and regions of the largest, both of the headline rule)."""
    import polars as pl

    from impressions.explain import cam_overlap

    def pooled(rule, variant, scale=1.0):
        keep = (pl.col("rule") == rule) & (pl.col("variant") == variant) & (pl.col("box_scale") == scale)
        row = summary.filter(keep & (pl.col("trait") == "all")).row(0, named=True)
        return row["share"], row["regions"]

    rows = [{"source": "published: Ventura et al. 2017 (First Impressions; not measured here)",
             "rule": "not stated", "variant": "not stated", "box_scale": 1.0, "regions": None,
             "share": cam_overlap.PUBLISHED_SHARE}]  # fmt: skip
    for r in [rule, *[x for x in analyses.REGION_RULES if x != rule]]:
        for variant in cam_overlap.VARIANTS:
            share, n = pooled(r, variant)
            rows.append({"source": f"measured: {name} ({dataset or 'this dataset'})", "rule": r,
                         "variant": variant, "box_scale": 1.0, "regions": n, "share": share})  # fmt: skip
    comparison = pl.DataFrame(
        rows,
        schema={"source": pl.String, "rule": pl.String, "variant": pl.String, "box_scale": pl.Float64,
                "regions": pl.Int64, "share": pl.Float64},
    )  # fmt: skip
    every, n_every = pooled(rule, "every")
    largest, n_largest = pooled(rule, "largest")
    return comparison, every, n_every, largest, n_largest


RULE_TEXT = {
    "raw_max": "thresholded at {threshold:.0%} of its maximum (Zhou et al. 2016's rule)",
    "min_max": "min-max normalised and thresholded at {threshold:.0%} (min + {threshold:g} (max - min), "
    "a variant of Zhou et al. 2016's rule, which thresholds the raw maximum)",
}
"""How each CAM region rule (`analyses.REGION_RULES`) reads in the report."""


def _overlap_protocol(name: str, head, threshold: float, min_overlap: float, rule: str) -> str:
    """How this run's protocol compares with what the paper states."""
    if head == "cam":
        return (
            "Protocol: it matches what the paper states - CAM of a GAP -> linear (cam head) image model, "
            f"regions of the map {RULE_TEXT[rule].format(threshold=threshold)}, "
            f"a region on the face when at least {min_overlap:.0%} of it lies in the detected face box, "
            "test frames only. The paper does not state its face detector (here dlib HOG), what a region "
            "is (both readings are reported), nor which frames and traits (here all five traits of every "
            "sampled test frame with a face)."
        )
    return (
        f"Protocol DEVIATES: the {name} model has the {head!r} head, not the GAP (cam) head CAM is "
        "defined on; its maps include the max-pooled half's peaks. Train it with head: cam to match."
    )


def cam_overlap_analysis(
    name: str, checkpoint: Path, images: Images, files: Mapping[str, Path], *, cam_threshold: float = 0.2,
    face_overlap: float = 0.9, box_scales: Sequence[float] = analyses.BOX_SCALES, dataset: str = "",
    region_rule: str = analyses.REGION_RULES[0],
) -> Section:  # fmt: skip
    """Ventura et al.'s share of CAM regions on the face, as published (`impressions.explain.cam_overlap`):
    regions of each map thresholded at `cam_threshold` by both rules (`region_rule` the headline), on
    the face when `face_overlap` of a region lies in the detected face box, the box also enlarged by
    each of `box_scales`.

    `images` are the test split's frames; frames without a detected face are counted, not used."""
    import polars as pl

    from impressions.explain import cam_overlap

    if images.kind != "frames":
        raise NotComputable("the face-overlap test needs whole frames (the image family), not aligned faces")
    if not len(images):
        raise NotComputable("the test split has no frames")
    has_box = ~np.isnan(images.boxes[:, 0])
    if not has_box.any():
        raise NotComputable(f"none of the {len(images)} test frames has a detected face")
    frames = images.subset(has_box)
    scales = [float(s) for s in box_scales]
    regions, head = _cam_regions(name, checkpoint, frames, cam_threshold, scales)
    regions.write_parquet(files["regions"])
    summary = cam_overlap.summarise(regions, face_overlap, scales).with_columns(pl.lit(name).alias("model"))
    summary = summary.select("model", *[c for c in summary.columns if c != "model"])
    summary.write_csv(files["overlap"])
    title = f"{name}: CAM region overlap with the face box (test frames)"
    cam_overlap.plot_histogram(regions, files["histogram"], face_overlap, title=title, rule=region_rule)
    cam_overlap.plot_scale_sensitivity(summary, files["scales"], title=f"{name}: face-box scale")
    comparison, every, n_every, largest, n_largest = _published_comparison(
        name, dataset, summary, region_rule
    )
    comparison.write_csv(files["comparison"])
    section = _overlap_section(
        name, images, frames, files, summary, comparison, shares=(every, n_every, largest, n_largest),
        protocol=_overlap_protocol(name, head, cam_threshold, face_overlap, region_rule),
        threshold=cam_threshold, min_overlap=face_overlap, scales=scales, rule=region_rule, head=head,
    )  # fmt: skip
    section.write(files["section"])
    return section


def _cam_regions(name: str, checkpoint: Path, frames: Images, threshold: float, scales: Sequence[float]):
    """(one row per CAM region of every trait's map on every frame (`REGION_SCHEMA` plus the overlap per
    box scale), the model's head)."""
    import polars as pl

    from impressions.explain import cam, cam_overlap

    model, transform, _ = load_model(checkpoint)  # after the checks: they need no model
    x = model_input(frames.images, transform)
    cams, _ = batched(lambda b: cam.class_activation_maps(model, b), x)
    schema = polars_types(REGION_SCHEMA) | {cam_overlap.overlap_column(s): pl.Float64 for s in scales}
    rows = []
    for i in range(len(frames)):
        up = cam.upsample(cams[i], frames.size)  # one frame at a time: all at once is N x 5 x S x S floats
        for t, trait in enumerate(TRAITS):
            for row in cam_overlap.frame_regions(up[t], frames.boxes[i], threshold, scales):
                rows.append({"model": name, "clip_id": frames.clip_ids[i],
                             "frame_index": int(frames.frame_index[i]), "trait": trait, **row})  # fmt: skip
    return pl.DataFrame(rows, schema=schema), getattr(model, "head", None)


def _overlap_section(
    name: str, images: Images, frames: Images, files: Mapping[str, Path], summary, comparison, *, shares,
    protocol: str, threshold: float, min_overlap: float, scales: Sequence[float], rule: str, head,
) -> Section:  # fmt: skip
    """The face-overlap section: the measured shares beside the published one, the protocol, the figures
    and tables."""
    from impressions.explain import cam_overlap

    spec = analyses.get("cam_overlap")
    every, n_every, largest, n_largest = shares
    clips = len(set(frames.clip_ids))
    section = Section(
        spec.title.format(model=name),
        f"How much of where the {name} model looks lies on the face, on {len(frames)} test frames with a "
        f"detected face from {clips} clips ({len(images) - len(frames)} test frames without a face are left "
        f"out). Regions by the {rule} rule: every connected region: {every:.1%} of {n_every} regions on the "
        f"face; largest region per map: {largest:.1%} of {n_largest} (the other rule: comparison table). "
        "Published (Ventura et al. 2017, First Impressions, NOT measured here): "
        f"{cam_overlap.PUBLISHED_SHARE:.1%}. {protocol} The numbers are comparable with the published "
        "one only on the FI test split. " + deviations.text(deviations.cam_overlap(rule, head, threshold)),
        order=spec.order,
    )
    section.figure(
        files["histogram"],
        f"Distribution of the share of each CAM region inside the detected face box (box scale 1.0), every "
        f"connected region (left) and the largest region of each map (right); the dashed line is the "
        f"{min_overlap:g} cut-off. Maps: per trait, upsampled to the frame, regions "
        f"{RULE_TEXT[rule].format(threshold=threshold)} (rule {rule}).",
    )
    section.figure(
        files["scales"],
        "Sensitivity to the face box: share of regions on the face when the detected box is enlarged "
        f"about its centre by {', '.join(f'{s:g}' for s in scales)} (pooled over traits). The dotted line "
        "is the published 72.8% (Ventura et al. 2017, First Impressions), shown for reference, not measured "
        "here.",
    )
    section.table(
        comparison,
        "Measured shares (box scale 1.0) of both region rules (raw_max: pixels >= threshold x max, Zhou et "
        "al. 2016; min_max: min-max normalised first) beside the published figure, which is labelled as "
        "published.",
        files["comparison"],
    )
    section.table(
        summary,
        f"Share of CAM regions on the face per region rule (raw_max, min_max), variant, face-box scale and "
        f"trait (all: pooled); "
        f"median_overlap is the median share of a region inside the box. Per-region rows: "
        f"{Path(files['regions']).name}.",
        files["overlap"],
    )
    return section
