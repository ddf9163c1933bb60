"""What the trained networks look at: the interpretation analyses the workflow runs and reports.

Each analysis is one workflow rule per model (rules/interpret.smk) and writes, beside its figures,
every number as CSV or Parquet plus a `section.json` (title, text, figures with captions, tables)
that the report renders (`impressions.report`):

- `cam_analysis`: class activation maps per trait (`impressions.cam`; Zhou et al. 2016) on the
  top-scored clips, Grad-CAM beside them, and for whole frames the share of CAM regions that lie on
  the detected face (Ventura et al. 2017 report 72.8% on First Impressions).
- `units_analysis`: units of the last conv layers as face-part detectors (`impressions.units`; after
  Zhou et al. 2015) and Action-Unit emergence with hypergeometric p-values.
- `au_map_analysis`: AU-codebook maps (`impressions.au_maps`) against each model's CAM.
- `guidance_effect`: accuracy and CAM-AU correlation of a model trained with `au_guidance_weight`
  against the same model trained without it.
- `manifold_analysis`: t-SNE of penultimate features coloured by trait, gender and emotion, with
  trustworthiness (`impressions.manifold`).

Images are read from the per-clip arrays the models were trained on (frames.npy or faces.npy) with
their faces-table landmarks and boxes mapped into the stored image's pixels; `max_frames` caps how
many frames an analysis reads (evenly spaced in (clip, frame) order, so the choice is reproducible).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from impressions import layout
from impressions.schemas import AUS, EMOTIONS, SPLITS, TRAITS

log = logging.getLogger(__name__)

FIGURE_DPI = 100


# ----------------------------------------------------------------------------------------------------
# Inputs


@dataclass
class Images:
    """Frames or aligned faces as a model saw them, with what is known about each."""

    kind: str  # frames or faces
    images: np.ndarray  # uint8 (n, S, S, 3)
    clip_ids: list[str]
    frame_index: np.ndarray  # (n,)
    boxes: np.ndarray  # (n, 4) face box in image pixels, NaN without a face (and for aligned faces)
    landmarks: np.ndarray  # (n, 68, 2) in image pixels, NaN without a face
    aus: np.ndarray  # (n, 17) AU intensities, NaN without expressions
    emotions: list[str | None]  # dominant emotion of the frame, None without expressions

    def __len__(self) -> int:
        return len(self.clip_ids)

    @property
    def size(self) -> int:
        return int(self.images.shape[1]) if len(self.images) else 0

    @property
    def has_face(self) -> np.ndarray:
        return ~np.isnan(self.landmarks[:, 0, 0])

    def subset(self, mask: np.ndarray) -> Images:
        idx = np.flatnonzero(mask)
        return Images(
            self.kind, self.images[idx], [self.clip_ids[i] for i in idx], self.frame_index[idx],
            self.boxes[idx], self.landmarks[idx], self.aus[idx], [self.emotions[i] for i in idx],
        )  # fmt: skip


def _points(values, sx: float = 1.0, sy: float = 1.0) -> np.ndarray:
    if values is None:
        return np.full((68, 2), np.nan, np.float32)
    pts = np.asarray(values, np.float32).reshape(-1, 2)
    return pts * np.array([sx, sy], np.float32)


def load_images(
    kind: str, clips, frames, faces, expressions, clips_dir: str | Path, *, splits: Sequence[str] = SPLITS,
    max_frames: int = 2000,
) -> Images:  # fmt: skip
    """Frames (kind "frames": every sampled frame) or aligned faces ("faces": frames with a face).

    `clips` is the clips table with the split the models used (layout.assign_splits); `frames`,
    `faces`, `expressions` the dataset tables (expressions may be None); `clips_dir` holds the
    per-clip folders.
    """
    import polars as pl

    if kind not in ("frames", "faces"):
        raise ValueError(f"kind must be frames or faces, not {kind!r}")
    keep = clips.filter(pl.col("split").is_in(list(splits)))["clip_id"].to_list()
    rows = (
        frames.select("clip_id", "frame_index", "width", "height")
        .join(faces.drop("width", "height", strict=False), on=["clip_id", "frame_index"], how="left")
        .filter(pl.col("clip_id").is_in(keep))
    )
    if kind == "faces":
        rows = rows.filter(pl.col("has_face").fill_null(False))
    if expressions is not None and expressions.height:
        rows = rows.join(
            expressions.select("clip_id", "frame_index", *AUS, *EMOTIONS),
            on=["clip_id", "frame_index"],
            how="left",
        )
    rows = rows.sort("clip_id", "frame_index")
    if rows.height > max_frames:
        rows = rows[np.unique(np.linspace(0, rows.height - 1, max_frames).round().astype(int)).tolist()]
    array = "faces.npy" if kind == "faces" else "frames.npy"
    images, boxes, landmarks, aus, emotions = [], [], [], [], []
    for (clip_id,), part in rows.group_by("clip_id", maintain_order=True):
        stored = np.load(Path(clips_dir) / clip_id / array, mmap_mode="r")
        size = stored.shape[1]
        for r in part.iter_rows(named=True):
            images.append(np.array(stored[r["frame_index"]]))
            sx, sy = size / max(r["width"] or 1, 1), size / max(r["height"] or 1, 1)
            if kind == "faces":
                landmarks.append(_points(r["landmarks_aligned"]))
                boxes.append(np.full(4, np.nan, np.float32))
            else:
                landmarks.append(_points(r["landmarks"], sx, sy))
                box = [r.get(k) for k in ("box_left", "box_top", "box_right", "box_bottom")]
                boxes.append(
                    np.full(4, np.nan, np.float32)
                    if any(v is None for v in box)
                    else np.array(box, np.float32) * np.array([sx, sy, sx, sy], np.float32)
                )
            au = [r.get(a) for a in AUS]
            aus.append(np.array([np.nan if v is None else v for v in au], np.float32))
            probs = [r.get(e) for e in EMOTIONS]
            emotions.append(None if any(p is None for p in probs) else EMOTIONS[int(np.argmax(probs))])
    n = len(images)
    size = images[0].shape[0] if n else 0
    return Images(
        kind,
        np.stack(images) if n else np.zeros((0, size, size, 3), np.uint8),
        rows["clip_id"].to_list(),
        rows["frame_index"].to_numpy(),
        np.stack(boxes) if n else np.zeros((0, 4), np.float32),
        np.stack(landmarks) if n else np.zeros((0, 68, 2), np.float32),
        np.stack(aus) if n else np.zeros((0, len(AUS)), np.float32),
        emotions,
    )


def load_model(checkpoint: str | Path):
    """(model in eval mode, input side the model was trained at or None, checkpoint dict)."""
    from impressions import models

    model, ckpt = models.load_checkpoint(checkpoint)
    if not hasattr(model, "activation_maps"):
        raise ValueError(
            f"{checkpoint}: a {ckpt['family']} model has no class activation maps; "
            "interpretation needs an image or face model (DAN+)"
        )
    return model, ckpt.get("summary", {}).get("settings", {}).get("input_size"), ckpt


def model_input(images: np.ndarray, input_size: int | None):
    """uint8 (n, S, S, 3) -> float tensor (n, 3, s, s) in 0..1, exactly as in training."""
    import torch

    from impressions import datasets

    return datasets.prepare_images(torch.from_numpy(np.ascontiguousarray(images)), input_size)


def _batched(fn, x, batch_size: int = 64):
    outs = [fn(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    if isinstance(outs[0], tuple):
        return tuple(np.concatenate([o[k] for o in outs]) for k in range(len(outs[0])))
    return np.concatenate(outs)


# ----------------------------------------------------------------------------------------------------
# Sections: what the report renders


class Section:
    """A report section: text, figures with captions and tables, saved as JSON beside the figures."""

    def __init__(self, title: str, text: str = "", order: int = 50):
        self.title, self.text, self.order = title, text, order
        self.figures: list[dict] = []
        self.tables: list[dict] = []

    def figure(self, path: str | Path, caption: str) -> None:
        self.figures.append({"path": str(path), "caption": caption})

    def table(self, frame, caption: str, path: str | Path, digits: int = 3) -> None:
        """Add `frame` (polars) as a table; it is also written to `path` (.csv or .parquet)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(path) if path.suffix == ".parquet" else frame.write_csv(path)
        rows = [[_cell(v, digits) for v in row] for row in frame.iter_rows()]
        self.tables.append({"caption": caption, "path": str(path), "header": frame.columns, "rows": rows})

    def write(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        data = {"title": self.title, "text": self.text, "order": self.order, "figures": self.figures,
                "tables": self.tables}  # fmt: skip
        Path(path).write_text(json.dumps(data, indent=1, default=str))


def _cell(value, digits: int):
    if isinstance(value, float):
        return (
            "n/a"
            if np.isnan(value)
            else f"{value:.{digits}g}"
            if abs(value) < 1e-3
            else f"{value:.{digits}f}"
        )
    return "" if value is None else value


def read_sections(paths: Sequence[str | Path]) -> list[dict]:
    """Sections in report order (their `order`, then as given)."""
    sections = [json.loads(Path(p).read_text()) for p in paths]
    return sorted(sections, key=lambda s: s.get("order", 50))


# ----------------------------------------------------------------------------------------------------
# Class activation maps and Grad-CAM


def _clip_scores(clip_ids: Sequence[str], logits: np.ndarray) -> dict[str, np.ndarray]:
    scores: dict[str, list] = {}
    for c, row in zip(clip_ids, 1 / (1 + np.exp(-logits))):
        scores.setdefault(c, []).append(row)
    return {c: np.mean(v, axis=0) for c, v in scores.items()}


def cam_analysis(
    name: str, checkpoint: Path, images: Images, files: Mapping[str, Path], *, top_k: int = 3,
    threshold: float = 0.2, min_overlap: float = 0.9, compare_frames: int = 4,
) -> Section:  # fmt: skip
    """CAM overlays of the top-K clips per trait, CAM against Grad-CAM, and (frames) CAM on the face."""
    import polars as pl

    from impressions import cam

    model, input_size, _ = load_model(checkpoint)
    if not len(images):
        raise ValueError(f"{name}: no {images.kind} to explain")
    x = model_input(images.images, input_size)
    cams, logits = _batched(lambda b: cam.class_activation_maps(model, b), x)
    grads = _batched(lambda b: cam.grad_cam(model, b), x)
    size = images.size
    what = "whole frames" if images.kind == "frames" else "aligned faces"

    # Overlays: per trait the K clips the model scores highest, each at its highest-scoring frame.
    scores = _clip_scores(images.clip_ids, logits)
    ranked = sorted(scores)
    tiles, maps, titles = [], [], []
    for t, trait in enumerate(TRAITS):
        for clip_id in sorted(ranked, key=lambda c: -scores[c][t])[:top_k]:
            rows = [i for i, c in enumerate(images.clip_ids) if c == clip_id]
            i = max(rows, key=lambda r: logits[r, t])
            tiles.append(images.images[i])
            maps.append(cams[i, t])
            titles.append(f"{trait[:5]} {scores[clip_id][t]:.2f}\n{clip_id} #{images.frame_index[i]}")
    cam.plot_overlays(tiles, maps, titles, files["overlays"], columns=top_k,
                      suptitle=f"{name}: CAM of each trait (rows) on its top-{top_k} clips")  # fmt: skip

    # CAM against Grad-CAM on the same frames and traits.
    corr = np.array([[cam.map_correlation(cams[i, t], grads[i, t]) for t in range(len(TRAITS))]
                     for i in range(len(images))])  # fmt: skip
    rows = [{"model": name, "trait": trait, "frames": int(np.isfinite(corr[:, t]).sum()),
             "mean_r": float(np.nanmean(corr[:, t])) if np.isfinite(corr[:, t]).any() else float("nan"),
             "median_r": float(np.nanmedian(corr[:, t])) if np.isfinite(corr[:, t]).any() else float("nan")}
            for t, trait in enumerate(TRAITS)]  # fmt: skip
    gradcam_table = pl.DataFrame(rows)
    pick = np.unique(np.linspace(0, len(images) - 1, min(compare_frames, len(images))).round().astype(int))
    cam.plot_cam_vs_gradcam(
        [images.images[i] for i in pick], [cams[i, 0] for i in pick], [grads[i, 0] for i in pick],
        [f"{images.clip_ids[i]} #{images.frame_index[i]} ({TRAITS[0]})" for i in pick], files["compare"],
    )  # fmt: skip

    section = Section(
        f"Class activation maps: {name}",
        f"Which parts of the {what} drive each trait's score in the {name} model. The maps are the exact "
        "decomposition of each trait's logit over the last convolutional layer's locations "
        "(impressions.models.DANPlus.activation_maps): with the cam head this is CAM (Zhou et al. 2016); "
        "with the DAN+ head it adds the max-pooled half's contribution at each channel's peak.",
        order=20 + (images.kind == "faces"),
    )
    section.figure(
        files["overlays"],
        f"CAM per trait (rows) for the {top_k} clips with the highest predicted score of that trait among "
        f"the {len(scores)} clips analysed, each at its highest-scoring frame; red is where the trait's "
        "logit gains most, blue where it loses; each map is scaled to its own range.",
    )
    section.figure(
        files["compare"],
        f"CAM (middle) against Grad-CAM (right; Selvaraju et al. 2017: ReLU of the feature maps weighted "
        f"by the spatial mean gradient of the trait output) for {TRAITS[0]} on {len(pick)} evenly spaced "
        "frames.",
    )
    section.table(
        gradcam_table,
        f"Pearson r between CAM and Grad-CAM per trait over {len(images)} {what} (both at the last conv "
        "layer's resolution); frames where either map is constant are left out.",
        files["gradcam"],
    )
    if images.kind == "frames":
        region_rows = []
        for i in np.flatnonzero(~np.isnan(images.boxes[:, 0])):
            up = cam.upsample(cams[i], size)  # one frame at a time: all at once is N x 5 x S x S floats
            for t, trait in enumerate(TRAITS):
                masks = cam.cam_regions(up[t], threshold)
                _, _, overlaps = cam.face_overlap(up[t], images.boxes[i], threshold, min_overlap)
                for k, (mask, overlap) in enumerate(zip(masks, overlaps)):
                    region_rows.append({
                        "model": name, "clip_id": images.clip_ids[i],
                        "frame_index": int(images.frame_index[i]), "trait": trait, "region": k,
                        "area_px": int(mask.sum()), "overlap": float(overlap),
                        "on_face": bool(overlap >= min_overlap),
                    })  # fmt: skip
        regions = pl.DataFrame(
            region_rows,
            schema={"model": pl.String, "clip_id": pl.String, "frame_index": pl.Int64, "trait": pl.String,
                    "region": pl.Int64, "area_px": pl.Int64, "overlap": pl.Float64, "on_face": pl.Boolean},
        )  # fmt: skip
        regions.write_parquet(files["regions"])
        summary = (
            regions.group_by("trait")
            .agg(pl.len().alias("regions"), pl.col("on_face").sum().alias("on_face"))
            .with_columns((pl.col("on_face") / pl.col("regions")).alias("share"))
        )
        order = {t: i for i, t in enumerate(TRAITS)}
        summary = summary.sort(pl.col("trait").replace_strict(order, return_dtype=pl.Int64))
        total = pl.DataFrame({"trait": ["all"], "regions": [regions.height],
                              "on_face": [int(regions["on_face"].sum())]}).with_columns(
            (pl.col("on_face") / pl.col("regions")).alias("share"))  # fmt: skip
        summary = pl.concat([summary, total], how="vertical_relaxed").with_columns(
            pl.lit(name).alias("model")
        )
        frames_used = int((~np.isnan(images.boxes[:, 0])).sum())
        share = total["share"][0] if regions.height else float("nan")
        section.text += (
            f" On {frames_used} frames with a detected face, {share:.1%} of the CAM regions lie on the face "
            f"(Ventura et al. 2017 report 72.8% on First Impressions)."
        )
        section.table(
            summary.select("model", "trait", "regions", "on_face", "share"),
            f"CAM regions on the face: each trait's CAM upsampled to the frame, thresholded at "
            f"{threshold:g} x its maximum, split into connected components; a region is on the face when "
            f"at least {min_overlap:.0%} of its pixels lie in the detected face box. Per-region rows: "
            f"{Path(files['regions']).name}.",
            files["overlap"],
        )
    else:
        # Keep the declared outputs of the rule identical for both kinds: an empty table.
        pl.DataFrame(schema={"model": pl.String, "trait": pl.String}).write_parquet(files["regions"])
        pl.DataFrame(schema={"model": pl.String, "trait": pl.String}).write_csv(files["overlap"])
    section.write(files["section"])
    return section


# ----------------------------------------------------------------------------------------------------
# Units: face-part detectors and Action-Unit emergence


def units_analysis(
    name: str, checkpoint: Path, images: Images, files: Mapping[str, Path], *, n_layers: int = 2,
    top: int = 20, threshold: float = 0.5, au_top_n: int = 50, gallery_units: int = 4,
) -> Section:  # fmt: skip
    """Face-part detectors among the last conv layers' units, and which units track which AU."""
    import polars as pl

    from impressions import units

    model, input_size, _ = load_model(checkpoint)
    faces = images.subset(images.has_face)
    if len(faces) < 2:
        raise ValueError(f"{name}: unit analysis needs frames with faces (found {len(faces)})")
    x = model_input(faces.images, input_size)
    layers = units.unit_layers(model, n_layers)
    acts = units.unit_activations(model, layers, x)
    size = faces.size
    masks_per_image = [units.part_masks(lm, size) for lm in faces.landmarks]
    masks = {part: np.stack([m[part] for m in masks_per_image]) for part in units.FACE_PARTS}
    top = min(top, len(faces))
    what = "aligned faces" if images.kind == "faces" else "frames with a face"

    unit_rows, hists, gallery = [], {}, {part: [] for part in units.FACE_PARTS}
    peak_values = {}
    for layer, a in acts.items():
        values, xy = units.peaks(a, size)
        peak_values[layer] = values
        for row in units.find_detectors(values, xy, masks, top=top, threshold=threshold):
            unit_rows.append({"model": name, "layer": layer, **row})
            if row["part"]:
                gallery[row["part"]].append((row[f"mass_{row['part']}"], layer, row["unit"]))
        # Peak locations of each layer's units' top images, pooled over units.
        order = units.top_images(values, top)
        top_xy = np.take_along_axis(xy, order[:, :, None], axis=0).reshape(-1, 2)
        # No more bins than the layer has cells: finer bins only show the cell grid as gaps.
        hists[layer] = units.peak_histogram(top_xy, size, bins=min(16, a.shape[-1]))
    table = pl.DataFrame(unit_rows).with_columns(pl.col("part").cast(pl.String))
    table.write_parquet(files["units"])
    counts = (
        table.group_by("layer", maintain_order=True)
        .agg(pl.len().alias("units"),
             *[(pl.col("part") == p).sum().alias(p) for p in units.FACE_PARTS],
             pl.col("part").is_not_null().sum().alias("detectors"))
    )  # fmt: skip
    units.plot_histograms(
        hists, files["histograms"], masks_mean={p: m.mean(axis=0) for p, m in masks.items()}
    )
    # The strongest units of the last layer (by top peak value), with their top images segmented.
    last = list(acts)[-1]
    strongest = np.argsort(-peak_values[last].max(axis=0), kind="stable")[: max(gallery_units, 1)]
    units.plot_top_units(faces.images, acts[last], peak_values[last], list(strongest), files["top_units"])
    for part in units.FACE_PARTS:
        chosen = sorted(gallery[part], reverse=True)[:gallery_units]
        if chosen:
            layer = chosen[0][1]
            picked = [u for _, lay, u in chosen if lay == layer]
            units.plot_part_gallery(faces.images, acts[layer], peak_values[layer], picked, part,
                                    files[f"gallery_{part}"])  # fmt: skip
        else:
            _empty_figure(files[f"gallery_{part}"], f"no {part} detector among the units tested")

    # AU emergence on frames with expressions.
    with_aus = ~np.isnan(faces.aus).any(axis=1)
    unit_names = [(layer, u) for layer, v in peak_values.items() for u in range(v.shape[1])]
    all_values = np.concatenate([peak_values[layer] for layer in peak_values], axis=1)[with_aus]
    n_top = int(min(au_top_n, max(with_aus.sum() // 4, 1)))
    emergence_rows = []
    if with_aus.sum() >= 4:
        for row in units.au_emergence(faces.aus[with_aus], all_values, n_top):
            layer, unit = unit_names[row["unit"]]
            emergence_rows.append({"model": name, "au": AUS[row["au_index"]], "layer": layer, "unit": unit,
                                   **{k: row[k] for k in ("i_max", "n_top", "frames", "expected", "p_value",
                                                          "p_corrected")}})  # fmt: skip
    emergence = pl.DataFrame(
        emergence_rows,
        schema={"model": pl.String, "au": pl.String, "layer": pl.String, "unit": pl.Int64, "i_max": pl.Int64,
                "n_top": pl.Int64, "frames": pl.Int64, "expected": pl.Float64, "p_value": pl.Float64,
                "p_corrected": pl.Float64},
    )  # fmt: skip
    n_units = len(unit_names)
    significant = int((emergence["p_corrected"] < 0.05).sum()) if emergence.height else 0

    section = Section(
        f"Units as face-part and Action-Unit detectors: {name}",
        f"Units of the last {len(acts)} conv layers of the {name} model ({n_units} units) on {len(faces)} "
        f"{what}. {int(counts['detectors'].sum())} units are face-part detectors; {significant} of "
        f"{emergence.height} AUs have a unit whose top frames overlap the AU's beyond chance "
        "(Bonferroni-corrected p < 0.05).",
        order=30 + (images.kind == "faces"),
    )
    section.figure(
        files["top_units"],
        f"The {len(strongest)} units of {last} with the highest peak activations: their top images, each "
        "segmented by the unit's receptive field (the activation map upsampled to the image, pixels under "
        "half its maximum darkened; after Zhou et al. 2015).",
    )
    section.figure(
        files["histograms"],
        f"Where units peak: per layer, a 2-D histogram of the peak-activation locations of every unit's "
        f"top-{top} images, with the mean face-part regions drawn from the landmarks.",
    )
    for part in units.FACE_PARTS:
        section.figure(
            files[f"gallery_{part}"],
            f"{part.capitalize()} detectors: the units (up to {gallery_units}, strongest first) whose "
            f"top-{top} images peak inside the {part} region in at least {threshold:.0%} of cases, with "
            "those images segmented by the unit's receptive field.",
        )
    section.table(
        counts,
        f"Face-part detectors per layer. Regions come from each image's 68 landmarks (eyebrows 17-26, eyes "
        f"36-47, nose 27-35, mouth 48-67: convex hulls dilated by 0.1 x the inter-ocular distance); a unit "
        f"detects a part when at least {threshold:.0%} of its top-{top} images (by peak activation) peak "
        f"inside it. Per-unit masses: {Path(files['units']).name}.",
        files["counts"],
    )
    section.table(
        emergence,
        f"Action-Unit emergence: for each AU the {n_top} frames with its highest intensity against each "
        f"unit's {n_top} frames with the highest peak activation, over {int(with_aus.sum())} frames; I_max "
        f"is the largest intersection (by the unit named), `expected` the chance intersection n^2/F, p the "
        f"hypergeometric probability of an intersection at least I_max, corrected for the {n_units} units "
        "tested (Bonferroni). Frames of one clip are alike, and the test treats frames as exchangeable, so p "
        "is optimistic when a few clips supply many of the top frames.",
        files["emergence"],
    )
    section.write(files["section"])
    return section


def _empty_figure(path, text: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 1), dpi=FIGURE_DPI)
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=9)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------------
# AU-codebook maps


def cam_au_correlations(model, input_size, images: Images) -> tuple[np.ndarray, np.ndarray]:
    """(n, 5) Pearson r of each trait's CAM with the frame's AU-codebook map, the AU maps and the CAMs.

    Frames without a face or with a neutral (AU-free) dominant emotion get NaN."""
    from impressions import au_maps, cam

    size = images.size
    targets = au_maps.frame_maps(images.landmarks, images.emotions, size)
    x = model_input(images.images, input_size)
    cams, _ = _batched(lambda b: cam.class_activation_maps(model, b), x)
    corr = np.full((len(images), len(TRAITS)), np.nan)
    for i in range(len(images)):
        if targets[i].max() > 0:  # compared at image resolution, the CAM upsampled as in the overlays
            up = cam.upsample(cams[i], size)
            corr[i] = [cam.map_correlation(up[t], targets[i]) for t in range(len(TRAITS))]
    return corr, targets, cams


def au_map_analysis(name: str, checkpoint: Path, images: Images, files: Mapping[str, Path],
                    examples: int = 4) -> Section:  # fmt: skip
    """Correlation between each trait's CAM and the AU-codebook map of the frame's emotion."""
    import polars as pl

    from impressions import au_maps

    model, input_size, ckpt = load_model(checkpoint)
    faces = images.subset(images.has_face & np.array([e is not None for e in images.emotions], bool))
    if not len(faces):
        raise ValueError(f"{name}: no frames with a face and expressions for AU maps")
    corr, targets, cams = cam_au_correlations(model, input_size, faces)
    frames = pl.DataFrame({
        "model": [name] * len(faces), "clip_id": faces.clip_ids,
        "frame_index": faces.frame_index.astype(np.int64), "emotion": faces.emotions,
        **{t: corr[:, i] for i, t in enumerate(TRAITS)},
    })  # fmt: skip
    frames.write_parquet(files["frames"])
    used = np.isfinite(corr).any(axis=1)
    rows = [{"model": name, "trait": t, "frames": int(np.isfinite(corr[:, i]).sum()),
             "mean_r": float(np.nanmean(corr[:, i])) if used.any() else float("nan")}
            for i, t in enumerate(TRAITS)]  # fmt: skip
    rows.append({"model": name, "trait": "mean", "frames": int(used.sum()),
                 "mean_r": float(np.nanmean(corr[used])) if used.any() else float("nan")})  # fmt: skip
    table = pl.DataFrame(rows)
    pick = np.flatnonzero(used)
    pick = (
        pick[np.unique(np.linspace(0, len(pick) - 1, min(examples, len(pick))).round().astype(int))]
        if len(pick)
        else pick
    )
    au_maps.plot_examples(
        [faces.images[i] for i in pick], [targets[i] for i in pick], [cams[i].mean(axis=0) for i in pick],
        [f"{faces.clip_ids[i]} #{faces.frame_index[i]}: {faces.emotions[i]}" for i in pick],
        files["examples"],
    )  # fmt: skip
    weight = ckpt.get("summary", {}).get("settings", {}).get("au_guidance_weight", 0.0) or 0.0
    what = "aligned faces" if images.kind == "faces" else "frames"
    section = Section(
        f"AU-codebook maps against CAM: {name}",
        f"How far the {name} model (au_guidance_weight {weight:g}) looks where the facial expression is. "
        f"Each frame's AU map places a Gaussian at the landmarks of every Action Unit that the emotion -> AU "
        f"codebook (impressions.au_maps.CODEBOOK, EMFACS prototypes) lists for the frame's dominant "
        f"emotion; {int(used.sum())} of {len(faces)} {what} have a non-neutral emotion and enter the "
        f"correlation. Mean r over traits: {table['mean_r'][-1]:.3f}.",
        order=40 + (images.kind == "faces"),
    )
    section.figure(
        files["examples"],
        "Examples: the frame, its AU-codebook map for the dominant emotion, and the model's CAM averaged "
        "over the five traits.",
    )
    section.table(
        table,
        "Pearson r between each trait's CAM (upsampled to the image) and the frame's AU map, "
        f"averaged over frames; per-frame values: {Path(files['frames']).name}.",
        files["correlation"],
    )
    section.write(files["section"])
    return section


def guidance_effect(
    pairs: Sequence[tuple[str, str]], correlations: Mapping[str, Path], predictions: Mapping[str, Path],
    summaries: Mapping[str, Path], clips, files: Mapping[str, Path],
) -> Section:  # fmt: skip
    """Accuracy and CAM-AU correlation of each guided model against its unguided twin."""
    import polars as pl

    from impressions import metrics

    rows = []
    for base, guided in pairs:
        for name in (base, guided):
            preds = pl.read_parquet(predictions[name])
            summary = json.loads(Path(summaries[name]).read_text())
            corr = pl.read_csv(correlations[name]).filter(pl.col("trait") == "mean")
            weight = float(summary["settings"].get("au_guidance_weight") or 0.0)
            row = {"model": name, "au_guidance_weight": weight, "cam_au_r": float(corr["mean_r"][0])}
            for split in ("val", "test"):
                part = preds.filter(pl.col("split") == split).sort("clip_id")
                y, p, _ = metrics.labels_and_predictions(part, clips)
                row[f"{split}_accuracy"] = float(metrics.accuracy(y, p).mean()) if len(y) else float("nan")
            rows.append(row)
    table = pl.DataFrame(rows)
    lines = []
    for base, guided in pairs:
        b, g = (table.filter(pl.col("model") == m).row(0, named=True) for m in (base, guided))
        lines.append(
            f"{guided} against {base}: CAM-AU r {b['cam_au_r']:.3f} -> {g['cam_au_r']:.3f}, test accuracy "
            f"{b['test_accuracy']:.4f} -> {g['test_accuracy']:.4f}"
        )
    section = Section(
        "AU guidance: its effect on accuracy and on where the model looks",
        "A model trained with au_guidance_weight > 0 adds to its loss the squared distance between its last "
        "conv layer's attention (mean squared activation over channels, L2-normalised) and the frame's "
        "AU-codebook map; its twin is the same family and settings trained without it. "
        + "; ".join(lines)
        + ". Accuracy is the mean over traits of 1 - MAE; the report's accuracy tables hold its confidence "
        "intervals.",
        order=45,
    )
    section.table(table, "Guided against unguided models (same seed, data and settings).", files["table"])
    section.write(files["section"])
    return section


# ----------------------------------------------------------------------------------------------------
# Manifold view


def manifold_analysis(
    feature_files: Mapping[str, Path], clips, expressions, files: Mapping[str, Path], *, method: str = "tsne",
    perplexity: float = 30.0, neighbors: int = 5, seed: int = 0,
) -> Section:  # fmt: skip
    """t-SNE (or PCA) of each model's per-clip penultimate features, coloured by trait, gender, emotion."""
    import polars as pl

    from impressions import manifold, metrics

    info = clips.select("clip_id", *TRAITS, "gender")
    if expressions is not None and expressions.height:
        info = info.join(metrics.dominant_emotion(expressions), on="clip_id", how="left")
    else:
        info = info.with_columns(pl.lit(None, pl.String).alias("dominant_emotion"))
    rows, coords = [], []
    section = Section(
        "Manifold view of the learned features",
        f"Per-clip penultimate features of each model (what late fusion consumes), standardised and embedded "
        f"in 2-D by {method.upper() if method == 'pca' else 't-SNE'} (seed {seed}), coloured by each trait's "
        f"label, gender and the clip's dominant emotion. Trustworthiness (scikit-learn; Venna & Kaski 2001) "
        f"measures how many of each point's {neighbors} nearest 2-D neighbours are true neighbours in the "
        "feature space: 1 is perfect, about 0.5 a random layout.",
        order=60,
    )
    for name, path in feature_files.items():
        with np.load(path) as data:
            ids = data["clip_id"].tolist()
            feats = data["features"].astype(np.float64)
            has = data["has_input"] if "has_input" in data else np.ones(len(ids), bool)
        ids = [c for c, h in zip(ids, has) if h]
        feats = feats[has]
        meta = pl.DataFrame({"clip_id": ids}).join(info, on="clip_id", how="left")
        emb = manifold.embed_2d(feats, method, seed, perplexity)
        trust = manifold.trustworthiness(feats, emb, neighbors)
        colours = {t: meta[t].to_list() for t in TRAITS}
        colours["gender"] = meta["gender"].to_list()
        colours["dominant emotion"] = meta["dominant_emotion"].to_list()
        manifold.plot_manifold(
            emb, colours, files[f"figure_{name}"], title=f"{name}: trustworthiness {trust:.3f}"
        )
        rows.append({"model": name, "method": method, "clips": len(ids), "dimensions": feats.shape[1],
                     "neighbors": neighbors, "trustworthiness": trust})  # fmt: skip
        coords.append(
            pl.DataFrame({"model": [name] * len(ids), "clip_id": ids, "x": emb[:, 0], "y": emb[:, 1]})
        )
        section.figure(
            files[f"figure_{name}"],
            f"{name}: {len(ids)} clips with input, {feats.shape[1]} features; trustworthiness {trust:.3f}. "
            "Grey points have no value for that colouring.",
        )
    pl.concat(coords).write_parquet(files["coordinates"])
    section.table(
        pl.DataFrame(rows),
        f"Trustworthiness of each embedding; 2-D coordinates per clip: {Path(files['coordinates']).name}.",
        files["table"],
    )
    section.write(files["section"])
    return section


# ----------------------------------------------------------------------------------------------------
# Entry point for the workflow's scripts


def read_tables(
    clips_path, frames_path, faces_path, expressions_path, split: str = "official", seed: int = 0
):
    """(clips with the models' split, frames, faces, expressions) as polars frames; None where no path."""
    import polars as pl

    def read(path):
        return pl.read_parquet(path) if path else None

    clips = layout.split_clips(clips_path, split, seed)
    return clips, read(frames_path), read(faces_path), read(expressions_path)


def explained_kind(model_name: str) -> str:
    """frames for the image family (and its guided twin), faces for the face family."""
    family = model_name.removesuffix(layout.GUIDED_SUFFIX)
    if family not in ("image", "face"):
        raise ValueError(f"{model_name}: only image and face models can be explained")
    return "frames" if family == "image" else "faces"


def run(
    analysis: str, model_name: str, inputs: Mapping[str, str], outputs: Mapping[str, str], options: Mapping
):
    """One per-model analysis (cam, units or au_maps) as the workflow calls it.

    `inputs`: checkpoint, clips, frames, faces, expressions; `options`: the config's `interpret`
    section plus clips_dir, split and seed.
    """
    clips, frames, faces, expressions = read_tables(
        inputs["clips"], inputs["frames"], inputs["faces"], inputs.get("expressions"),
        options.get("split", "official"), options.get("seed", 0),
    )  # fmt: skip
    images = load_images(
        explained_kind(model_name), clips, frames, faces, expressions, options["clips_dir"],
        splits=options["splits"], max_frames=options["max_frames"],
    )  # fmt: skip
    log.info("%s of %s on %d %s", analysis, model_name, len(images), images.kind)
    files = {k: Path(v) for k, v in outputs.items()}
    for path in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = Path(inputs["checkpoint"])
    if analysis == "cam":
        return cam_analysis(
            model_name, checkpoint, images, files, top_k=options["top_k"], threshold=options["cam_threshold"],
            min_overlap=options["face_overlap"],
        )  # fmt: skip
    if analysis == "units":
        return units_analysis(
            model_name, checkpoint, images, files, n_layers=options["unit_layers"], top=options["unit_top"],
            threshold=options["detector_threshold"], au_top_n=options["au_top_n"],
        )  # fmt: skip
    if analysis == "au_maps":
        return au_map_analysis(model_name, checkpoint, images, files)
    raise ValueError(f"unknown analysis {analysis!r}; known: {list(layout.INTERPRET_FILES)}")
