"""What the trained networks look at: the interpretation analyses the workflow runs and reports.

Each analysis is one workflow rule per model (rules/interpret.smk) and writes, beside its figures,
every number as CSV or Parquet plus a `section.json` (title, text, figures with captions, tables)
that the report renders (`impressions.report.render`):

- `cam_analysis`: class activation maps per trait (`impressions.explain.cam`; Zhou et al. 2016) on the
  top-scored clips, Grad-CAM beside them, and for whole frames the share of CAM regions that lie on
  the detected face (Ventura et al. 2017 report 72.8% on First Impressions).
- `units_analysis`: units of the last conv layers as face-part detectors
  (`impressions.explain.unit_detectors`;
  after Zhou et al. 2015) and Action-Unit emergence with hypergeometric p-values.
- `au_map_analysis`: AU-codebook maps (`impressions.explain.au_maps`) against each model's CAM.
- `guidance_effect`: accuracy and CAM-AU correlation of a model trained with `au_guidance_weight`
  against the same model trained without it.
- `manifold_analysis`: t-SNE of penultimate features coloured by trait, gender and emotion, with
  trustworthiness (`impressions.explain.manifold`).

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
from impressions.report import figures
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


def _points(values) -> np.ndarray:
    if values is None:
        return np.full((68, 2), np.nan, np.float32)
    return np.asarray(values, np.float32).reshape(-1, 2)


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

    from impressions.explain import au_maps

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
                # placed as training's AU guidance places them (pixel centres to pixel centres)
                decoded = (r["width"], r["height"])
                landmarks.append(au_maps.stored_landmarks(_points(r["landmarks"]), decoded, (size, size)))
                box = [r.get(k) for k in ("box_left", "box_top", "box_right", "box_bottom")]
                boxes.append(
                    np.full(4, np.nan, np.float32)
                    if any(v is None for v in box)
                    else np.array(box, np.float32) * np.array([sx, sy, sx, sy], np.float32)
                )
            au = [r.get(a) for a in AUS]
            aus.append(np.array([np.nan if v is None else v for v in au], np.float32))
            emotions += au_maps.dominant_emotions([r.get(e) for e in EMOTIONS])
    n = len(images)
    size = images[0].shape[0] if n else 0
    return Images(
        kind,
        np.stack(images) if n else np.zeros((0, size, size, 3), np.uint8),
        rows["clip_id"].to_list(),
        rows["frame_index"].to_numpy(),
        np.stack(boxes) if n else np.zeros((0, 4), np.float32),
        np.stack(landmarks).astype(np.float32) if n else np.zeros((0, 68, 2), np.float32),
        np.stack(aus) if n else np.zeros((0, len(AUS)), np.float32),
        emotions,
    )


def load_model(checkpoint: str | Path):
    """(model in eval mode, input side the model was trained at or None, checkpoint dict)."""
    from impressions.models import networks as models

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

    from impressions.training import datasets

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
    """Sections in report order (their `order`, then as given); a missing or unreadable file becomes a
    section saying so, last: an analysis that could not run must not take the report with it."""
    sections = []
    for path in map(Path, paths):
        try:
            section = json.loads(path.read_text())
            if not isinstance(section, dict) or "title" not in section:
                raise ValueError("not a section (no title)")
        except (OSError, ValueError) as err:  # JSONDecodeError is a ValueError
            section = {
                "title": f"Analysis not available: {path.parent.name}/{path.name}",
                "text": f"This analysis wrote no readable section ({type(err).__name__}: {err}); "
                "see its log under results/logs/interpret/.", "figures": [], "tables": [], "order": 99,
            }  # fmt: skip
        sections.append(section)
    return sorted(sections, key=lambda s: s.get("order", 50))


class NotComputable(ValueError):
    """The inputs cannot support an analysis (too few clips, no faces in a split ...): its section says
    why instead of failing the workflow."""


TITLES = {
    "cam": ("Class activation maps: {model}", 20),
    "cam_overlap": ("CAM regions on the face (Ventura et al. 2017): {model}", 25),
    "units": ("Units as face-part and Action-Unit detectors: {model}", 30),
    "au_maps": ("AU-codebook maps against CAM: {model}", 40),
    "guidance": ("AU guidance: its effect on accuracy and on where the model looks", 45),
    "guidance_sweep": ("AU guidance weight sweep", 46),
    "manifold": ("Manifold view of the learned features", 60),
}
"""Analysis -> (section title, report order): also the title of its section when it is not computed."""


def _placeholder(path: Path, reason: str) -> None:
    """A declared output that could not be computed: a figure or a one-row table saying why."""
    import polars as pl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".png":
        _empty_figure(path, "not computed:\n" + "\n".join(_wrap(reason, 60)))
    elif path.suffix == ".csv":
        pl.DataFrame({"not_computed": [reason]}).write_csv(path)
    elif path.suffix == ".parquet":
        pl.DataFrame({"not_computed": [reason]}).write_parquet(path)
    elif path.suffix != ".json":
        path.write_text(f"not computed: {reason}\n")


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width)[:6] or [""]


def not_computed(analysis: str, model: str, reason: str, files: Mapping[str, Path]) -> Section:
    """Write the section of an analysis that could not run, and a placeholder for each declared output
    (so that the rest of the workflow and the report go on and show the gap)."""
    title, order = TITLES.get(analysis, (analysis, 90))
    section = Section(
        title.format(model=model) + " (not computed)",
        f"This analysis could not be computed: {reason}. Its figures and tables are placeholders.",
        order=order,
    )
    for kind, path in files.items():
        if kind != "section":
            _placeholder(Path(path), reason)
    section.write(files["section"])
    return section


def guarded(analysis: str, model: str, files: Mapping[str, Path], fn, *args, **kwargs) -> Section:
    """Run one analysis; if it fails, log the traceback and write its not-computed section instead."""
    try:
        return fn(*args, **kwargs)
    except Exception as error:  # any failure: the report must still be written, saying what is missing
        reason = str(error) if isinstance(error, NotComputable) else f"{type(error).__name__}: {error}"
        log.exception("%s of %s not computed: %s", analysis, model, reason)
        return not_computed(analysis, model, reason, files)


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
    import polars as pl

    from impressions.explain import cam

    model, input_size, _ = load_model(checkpoint)
    if not len(images):
        raise ValueError(f"{name}: no {images.kind} to explain")
    x = model_input(images.images, input_size)
    cams, logits = _batched(lambda b: cam.class_activation_maps(model, b), x)
    grads = _batched(lambda b: cam.grad_cam(model, b), x)
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
        "(impressions.models.networks.DANPlus.activation_maps): with the cam head this is CAM "
        "(Zhou et al. 2016); "
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
        section.text += (
            " The share of CAM regions on the face (Ventura et al. 2017) is measured as published, on a "
            "GAP (cam head) model and test frames only, in the section 'CAM regions on the face'."
        )
    section.write(files["section"])
    return section


REGION_SCHEMA = {
    "model": "String", "clip_id": "String", "frame_index": "Int64", "trait": "String", "region": "Int64",
    "area_px": "Int64", "largest": "Boolean",
}  # fmt: skip
"""cam_regions.parquet: one row per CAM region, plus overlap_<scale> (Float64) per face-box scale."""


def cam_overlap_analysis(
    name: str, checkpoint: Path, images: Images, files: Mapping[str, Path], *, threshold: float = 0.2,
    min_overlap: float = 0.9, scales: Sequence[float] = (1.0, 1.25, 1.5), dataset: str = "",
) -> Section:  # fmt: skip
    """Ventura et al.'s share of CAM regions on the face, as published (`impressions.explain.cam_overlap`).

    `images` are the test split's frames; frames without a detected face are counted, not used."""
    import polars as pl

    from impressions.explain import cam, cam_overlap

    if images.kind != "frames":
        raise NotComputable("the face-overlap test needs whole frames (the image family), not aligned faces")
    if not len(images):
        raise NotComputable("the test split has no frames")
    has_box = ~np.isnan(images.boxes[:, 0])
    if not has_box.any():
        raise NotComputable(f"none of the {len(images)} test frames has a detected face")
    frames = images.subset(has_box)
    model, input_size, _ = load_model(checkpoint)  # after the checks: they need no model
    x = model_input(frames.images, input_size)
    cams, _ = _batched(lambda b: cam.class_activation_maps(model, b), x)
    scales = [float(s) for s in scales]
    schema = _schema(REGION_SCHEMA) | {cam_overlap.overlap_column(s): pl.Float64 for s in scales}
    rows = []
    for i in range(len(frames)):
        up = cam.upsample(cams[i], frames.size)  # one frame at a time: all at once is N x 5 x S x S floats
        for t, trait in enumerate(TRAITS):
            for row in cam_overlap.frame_regions(up[t], frames.boxes[i], threshold, scales):
                rows.append({"model": name, "clip_id": frames.clip_ids[i],
                             "frame_index": int(frames.frame_index[i]), "trait": trait, **row})  # fmt: skip
    regions = pl.DataFrame(rows, schema=schema)
    regions.write_parquet(files["regions"])
    summary = cam_overlap.summarise(regions, min_overlap, scales).with_columns(pl.lit(name).alias("model"))
    summary = summary.select("model", *[c for c in summary.columns if c != "model"])
    summary.write_csv(files["overlap"])
    title = f"{name}: CAM region overlap with the face box (test frames)"
    cam_overlap.plot_histogram(regions, files["histogram"], min_overlap, title=title)
    cam_overlap.plot_scale_sensitivity(summary, files["scales"], title=f"{name}: face-box scale")

    def pooled(variant, scale=1.0):
        row = summary.filter((pl.col("variant") == variant) & (pl.col("box_scale") == scale)
                             & (pl.col("trait") == "all")).row(0, named=True)  # fmt: skip
        return row["share"], row["regions"]

    every, n_every = pooled("every")
    largest, n_largest = pooled("largest")
    head = getattr(model, "head", None)
    clips = len(set(frames.clip_ids))
    comparison = pl.DataFrame(
        [{"source": "published: Ventura et al. 2017 (First Impressions; not measured here)",
          "variant": "not stated", "box_scale": 1.0, "regions": None, "share": cam_overlap.PUBLISHED_SHARE},
         {"source": f"measured: {name} ({dataset or 'this dataset'})", "variant": "every", "box_scale": 1.0,
          "regions": n_every, "share": every},
         {"source": f"measured: {name} ({dataset or 'this dataset'})", "variant": "largest", "box_scale": 1.0,
          "regions": n_largest, "share": largest}],
        schema={"source": pl.String, "variant": pl.String, "box_scale": pl.Float64, "regions": pl.Int64,
                "share": pl.Float64},
    )  # fmt: skip
    comparison.write_csv(files["comparison"])
    if head == "cam":
        protocol = (
            "Protocol: it matches what the paper states - CAM of a GAP -> linear (cam head) image model, "
            f"regions of the map thresholded at {threshold:.0%} of its maximum after min-max normalisation, "
            f"a region on the face when at least {min_overlap:.0%} of it lies in the detected face box, "
            "test frames only. The paper does not state its face detector (here dlib HOG), what a region "
            "is (both readings are reported), nor which frames and traits (here all five traits of every "
            "sampled test frame with a face)."
        )
    else:
        protocol = (
            f"Protocol DEVIATES: the {name} model has the {head!r} head, not the GAP (cam) head CAM is "
            "defined on; its maps include the max-pooled half's peaks. Train it with head: cam to match."
        )
    section = Section(
        TITLES["cam_overlap"][0].format(model=name),
        f"How much of where the {name} model looks lies on the face, on {len(frames)} test frames with a "
        f"detected face from {clips} clips ({len(images) - len(frames)} test frames without a face are left "
        f"out). Every connected region: {every:.1%} of {n_every} regions on the face; largest region per "
        f"map: {largest:.1%} of {n_largest}. Published (Ventura et al. 2017, First Impressions, NOT measured "
        f"here): {cam_overlap.PUBLISHED_SHARE:.1%}. {protocol} The numbers are comparable with the published "
        "one only on the FI test split.",
        order=TITLES["cam_overlap"][1],
    )
    section.figure(
        files["histogram"],
        f"Distribution of the share of each CAM region inside the detected face box (box scale 1.0), every "
        f"connected region (left) and the largest region of each map (right); the dashed line is the "
        f"{min_overlap:g} cut-off. Maps: per trait, upsampled to the frame, min-max normalised, thresholded "
        f"at {threshold:g}.",
    )
    section.figure(
        files["scales"],
        "Sensitivity to the face box: share of regions on the face when the detected box is enlarged about "
        "its centre by 1.0, 1.25 and 1.5 (pooled over traits). The dotted line is the published 72.8% "
        "(Ventura et al. 2017, First Impressions), shown for reference, not measured here.",
    )
    section.table(
        comparison,
        "Measured shares (box scale 1.0) beside the published figure, which is labelled as published.",
        files["comparison"],
    )
    section.table(
        summary,
        f"Share of CAM regions on the face per variant, face-box scale and trait (all: pooled); "
        f"median_overlap is the median share of a region inside the box. Per-region rows: "
        f"{Path(files['regions']).name}.",
        files["overlap"],
    )
    section.write(files["section"])
    return section


# ----------------------------------------------------------------------------------------------------
# Units: face-part detectors and Action-Unit emergence


def _unit_schema(parts, with_chance: bool) -> dict:
    """Column types of the units table, fixed up front: never inferred from the first rows."""
    import polars as pl

    schema = {"model": pl.String, "layer": pl.String, "unit": pl.Int64, "top_value": pl.Float64}
    schema |= {f"mass_{p}": pl.Float64 for p in parts}
    if with_chance:
        schema |= {f"chance_{p}": pl.Float64 for p in parts} | {f"lift_{p}": pl.Float64 for p in parts}
    return schema | {"part": pl.String}


EMERGENCE_SCHEMA = {
    "model": "String", "level": "String", "au": "String", "layer": "String", "unit": "Int64",
    "i_max": "Int64", "n_top": "Int64", "n": "Int64", "expected": "Float64", "p_value": "Float64",
    "p_corrected": "Float64", "p_bonferroni": "Float64", "tests": "Int64",
}  # fmt: skip
"""au_emergence.csv: one row per level (frame, clip) and AU; n is frames or clips."""


TRUST_SCHEMA = {
    "model": "String", "method": "String", "clips": "Int64", "dimensions": "Int64", "neighbors": "Int64",
    "trustworthiness": "Float64",
}  # fmt: skip


def _schema(spec: Mapping[str, str]) -> dict:
    import polars as pl

    return {k: getattr(pl, v) for k, v in spec.items()}


def units_analysis(
    name: str, checkpoint: Path, images: Images, files: Mapping[str, Path], *, n_layers: int = 2,
    top: int = 20, threshold: float = 0.5, au_top_n: int = 50, gallery_units: int = 4,
    margin: float = 0.25, clip_top_n: int = 10,
) -> Section:  # fmt: skip
    """Face-part detectors against their chance share, and which units track which AU (frame and clip
    level). Parts that cannot be computed are said so in the section; the tables keep their columns."""
    import polars as pl

    from impressions.explain import emergence
    from impressions.explain import unit_detectors as units

    parts = list(units.FACE_PARTS)
    model, input_size, _ = load_model(checkpoint)
    faces = images.subset(images.has_face)
    if len(faces) < 2:
        raise NotComputable(
            f"{len(faces)} of {len(images)} {images.kind} have a detected face; the unit analysis needs 2"
        )
    x = model_input(faces.images, input_size)
    layers = units.unit_layers(model, n_layers)
    acts = units.unit_activations(model, layers, x)
    size = faces.size
    masks = units.part_masks(faces.landmarks, size)
    top = min(top, len(faces))
    what = "aligned faces" if images.kind == "faces" else "frames with a face"

    unit_rows, chance_rows, hists, gallery = [], [], {}, {part: [] for part in parts}
    peak_values = {}
    for layer, a in acts.items():
        values, xy = units.peaks(a, size)
        peak_values[layer] = values
        chance = units.chance_shares(masks, a.shape[-2:])
        layer_rows = units.find_detectors(values, xy, masks, top=top, threshold=threshold, chance=chance,
                                          margin=margin)  # fmt: skip
        for row in layer_rows:
            unit_rows.append({"model": name, "layer": layer, **row})
            if row["part"]:
                gallery[row["part"]].append((row[f"mass_{row['part']}"], layer, row["unit"]))
        for p in parts:
            found = [r for r in layer_rows if r["part"] == p]
            chance_rows.append({
                "model": name, "layer": layer, "part": p, "units": len(layer_rows), "chance_share": chance[p],
                "required_share": max(threshold, chance[p] + margin), "detectors": len(found),
                "mean_share": float(np.mean([r[f"mass_{p}"] for r in found])) if found else float("nan"),
                "mean_lift": float(np.mean([r[f"lift_{p}"] for r in found])) if found else float("nan"),
                "best_lift": float(max(r[f"lift_{p}"] for r in layer_rows)) if layer_rows else float("nan"),
            })  # fmt: skip
        order = units.top_images(values, top)
        top_xy = np.take_along_axis(xy, order[:, :, None], axis=0).reshape(-1, 2)
        # No more bins than the layer has cells: finer bins only show the cell grid as gaps.
        hists[layer] = units.peak_histogram(top_xy, size, bins=min(16, a.shape[-1]))
    table = pl.DataFrame(unit_rows, schema=_unit_schema(parts, True))
    table.write_parquet(files["units"])
    counts = table.group_by("layer", maintain_order=True).agg(
        pl.len().alias("units"),
        *[(pl.col("part") == p).sum().cast(pl.Int64).alias(p) for p in parts],
        pl.col("part").is_not_null().sum().cast(pl.Int64).alias("detectors"),
    )
    chance_table = pl.DataFrame(
        chance_rows,
        schema={"model": pl.String, "layer": pl.String, "part": pl.String, "units": pl.Int64,
                "chance_share": pl.Float64, "required_share": pl.Float64, "detectors": pl.Int64,
                "mean_share": pl.Float64, "mean_lift": pl.Float64, "best_lift": pl.Float64},
    )  # fmt: skip
    _plot_detector_lift(chance_table, files["detector_figure"], f"{name}: face-part detectors against chance")
    units.plot_histograms(
        hists, files["histograms"], masks_mean={p: m.mean(axis=0) for p, m in masks.items()}
    )
    last = list(acts)[-1]
    strongest = np.argsort(-peak_values[last].max(axis=0), kind="stable")[: max(gallery_units, 1)]
    units.plot_top_units(faces.images, acts[last], peak_values[last], list(strongest), files["top_units"])
    notes = []
    for part in parts:
        chosen = sorted(gallery[part], reverse=True)[:gallery_units]
        if chosen:
            layer = chosen[0][1]
            picked = [u for _, lay, u in chosen if lay == layer]
            units.plot_part_gallery(faces.images, acts[layer], peak_values[layer], picked, part,
                                    files[f"gallery_{part}"])  # fmt: skip
        else:
            _empty_figure(files[f"gallery_{part}"], f"no {part} detector among the units tested")
    missing = [p for p in parts if not gallery[p]]
    if missing:
        notes.append(f"No unit is a detector of: {', '.join(missing)} (their galleries are empty).")

    # AU emergence on frames with expressions, at frame and at clip level.
    with_aus = ~np.isnan(faces.aus).any(axis=1)
    unit_names = [(layer, u) for layer, v in peak_values.items() for u in range(v.shape[1])]
    all_values = np.concatenate([peak_values[layer] for layer in peak_values], axis=1)[with_aus]
    clip_ids = [c for c, keep in zip(faces.clip_ids, with_aus) if keep]
    emergence_rows = []
    if with_aus.sum() < 4:
        notes.append(f"AU emergence not computed: {int(with_aus.sum())} frames have expressions (needs 4).")
        skipped = ""
    else:
        frame_rows, clip_rows, skipped = emergence.both_levels(
            clip_ids, faces.aus[with_aus], all_values, au_top_n, clip_top_n
        )
        for level, level_rows in (("frame", frame_rows), ("clip", clip_rows)):
            for row in level_rows:
                layer, unit = unit_names[row["unit"]]
                known = {k: row[k] for k in EMERGENCE_SCHEMA if k in row}
                emergence_rows.append(
                    {"model": name, "level": level, "au": AUS[row["au_index"]], "layer": layer, "unit": unit}
                    | known
                )
        if skipped:
            notes.append(f"Clip-level AU emergence not computed: {skipped}.")
    em = pl.DataFrame(emergence_rows, schema=_schema(EMERGENCE_SCHEMA))
    em.write_csv(files["emergence"])
    emergence.plot_levels(em, files["emergence_figure"], title=f"{name}: AU emergence, frame vs clip level")
    n_units = len(unit_names)

    def significant(level):
        part = em.filter(pl.col("level") == level)
        return f"{int((part['p_corrected'] < 0.05).sum())} of {part.height}" if part.height else "none"

    n_clips = len(set(clip_ids))
    section = Section(
        TITLES["units"][0].format(model=name),
        f"Units of the last {len(acts)} conv layers of the {name} model ({n_units} units) on {len(faces)} "
        f"{what} from {len(set(faces.clip_ids))} clips. {int(counts['detectors'].sum())} units are face-part "
        f"detectors: their top-{top} images peak inside one part at least {threshold:.0%} of the time AND "
        f"that share exceeds the part's chance share by at least {margin:g} (the chance share is the share "
        "of the layer's peak cells the part covers, averaged over images). AUs with a unit beyond chance "
        "(Benjamini-Hochberg across "
        f"{n_units} units x {len(AUS)} AUs, q < 0.05): frame level {significant('frame')}, clip level "
        f"{significant('clip')} ({n_clips} clips). " + " ".join(notes),
        order=30 + (images.kind == "faces"),
    )
    section.figure(
        files["detector_figure"],
        f"Detectors per face part and layer (bars) and the chance share of each part (the share of peaks "
        f"a unit with uniformly placed peaks would collect there; text: mean lift = share / chance of the "
        f"detectors found). A detector needs share >= max({threshold:g}, chance + {margin:g}).",
    )
    section.figure(
        files["emergence_figure"],
        "AU emergence at frame level (top-N frames, frames treated as exchangeable) beside clip level "
        "(top-N clips: a clip's mean AU intensity against the unit's largest peak over the clip's frames): "
        "-log10 of the best unit's Benjamini-Hochberg corrected p per AU; bars above the dashed line are "
        "significant at q = 0.05.",
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
    for part in parts:
        section.figure(
            files[f"gallery_{part}"],
            f"{part.capitalize()} detectors: the units (up to {gallery_units}, strongest first) passing the "
            "detector rule for this part, with their top images segmented by the unit's receptive field.",
        )
    section.table(
        counts,
        f"Face-part detectors per layer. Regions come from each image's 68 landmarks (eyebrows 17-26, eyes "
        f"36-47, nose 27-35, mouth 48-67: convex hulls dilated by 0.1 x the inter-ocular distance). "
        f"Per-unit shares, chance and lift: {Path(files['units']).name}.",
        files["counts"],
    )
    section.table(
        chance_table,
        f"Chance baseline per layer and part: chance_share is the share of peak mass a part collects by its "
        f"area alone; required_share = max(threshold {threshold:g}, chance + margin {margin:g}); mean_lift "
        "is the detectors' mean share / chance, best_lift the largest lift of any unit of the layer.",
        files["chance"],
    )
    section.table(
        em,
        "Action-Unit emergence, frame level and clip level. For each AU, I_max is the largest intersection "
        "of the AU's top-N set with a unit's top-N set (the unit named), `expected` the chance intersection "
        "N^2/n, p_value the hypergeometric P(X >= I_max) with n frames or clips, p_corrected "
        f"{emergence.CORRECTION} ({n_units * len(AUS)} tests per level), p_bonferroni the family-wise "
        "bound. Frames of one clip are alike: the frame-level p is optimistic when a few clips supply the "
        "top frames; the clip level is the one to trust.",
        files["emergence"],
    )
    section.write(files["section"])
    return section


def _plot_detector_lift(chance_table, path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import polars as pl

    layers = list(dict.fromkeys(chance_table["layer"].to_list()))
    fig, axes = plt.subplots(1, max(len(layers), 1), figsize=(4 * max(len(layers), 1), 3), dpi=FIGURE_DPI,
                             squeeze=False)  # fmt: skip
    for ax, layer in zip(axes[0], layers):
        part = chance_table.filter(pl.col("layer") == layer)
        x = np.arange(part.height)
        ax.bar(x, part["detectors"].to_list(), color="tab:blue")
        ax.set_xticks(x, part["part"].to_list(), fontsize=8)
        ax.set_ylabel("detectors", fontsize=8)
        twin = ax.twinx()
        twin.plot(x, part["chance_share"].to_list(), "o", color="tab:orange", label="chance share")
        twin.set_ylim(0, 1)
        twin.set_ylabel("chance share", fontsize=8)
        for xi, lift in zip(x, part["mean_lift"].to_list()):
            if lift is not None and np.isfinite(lift):
                ax.text(xi, 0, f"x{lift:.1f}", ha="center", va="bottom", fontsize=7, color="white")
        ax.set_title(f"{layer} ({int(part['units'][0])} units)", fontsize=9)
    figures.save(fig, path, title)


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
    from impressions.explain import au_maps, cam

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

    from impressions.explain import au_maps

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
        f"codebook (impressions.expressions.codebook, EMFACS prototypes) lists for the frame's dominant "
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

    from impressions.report import metrics

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
        TITLES["guidance"][0],
        "A model trained with au_guidance_weight > 0 adds to its loss the squared distance between its last "
        "conv layer's attention (mean squared activation over channels, L2-normalised) and the frame's "
        "AU-codebook map, times the weight and (au_guidance_scale init, the default) the ratio of trait loss "
        "to that term on the first batch, so weight 1 weighs it like the trait loss at the start; its twin "
        "is the same family and settings trained without it. The sweep over weights is its own section. "
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
    perplexity: float = 30.0, neighbors: int = 5, seed: int = 0, splits: Sequence[str] = ("test",),
) -> Section:  # fmt: skip
    """t-SNE (or PCA) of each model's per-clip penultimate features on held-out clips (`splits`: training
    clips would show how well the model fitted them, not how traits separate), coloured by trait,
    gender and emotion. A model with too few held-out clips gets a note, not an embedding."""
    import polars as pl

    from impressions.explain import manifold
    from impressions.report import metrics

    held_out = set(clips.filter(pl.col("split").is_in(list(splits)))["clip_id"].to_list())
    info = clips.select("clip_id", *TRAITS, "gender")
    if expressions is not None and expressions.height:
        info = info.join(metrics.dominant_emotion(expressions), on="clip_id", how="left")
    else:
        info = info.with_columns(pl.lit(None, pl.String).alias("dominant_emotion"))
    rows, coords = [], []
    section = Section(
        "Manifold view of the learned features",
        f"Per-clip penultimate features of each model (what late fusion consumes) on the {'/'.join(splits)} "
        f"split only ({len(held_out)} clips), standardised and embedded "
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
        keep = np.array([bool(h) and c in held_out for c, h in zip(ids, has)], dtype=bool)
        ids = [c for c, k in zip(ids, keep) if k]
        feats = feats[keep]
        if len(ids) < 4:
            reason = f"{name}: {len(ids)} held-out clips with input (a manifold view needs 4)"
            section.text += f" Not computed for {reason}."
            _placeholder(files[f"figure_{name}"], reason)
            rows.append({"model": name, "method": method, "clips": len(ids), "dimensions": feats.shape[1],
                         "neighbors": neighbors, "trustworthiness": float("nan")})  # fmt: skip
            continue
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
    coord_schema = {"model": pl.String, "clip_id": pl.String, "x": pl.Float32, "y": pl.Float32}
    (pl.concat(coords) if coords else pl.DataFrame(schema=coord_schema)).write_parquet(files["coordinates"])
    section.table(
        pl.DataFrame(rows, schema=_schema(TRUST_SCHEMA)),
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
    family = model_name.removesuffix(layout.GUIDED_SUFFIX).removesuffix(layout.CAM_SUFFIX)
    if family not in ("image", "face"):
        raise ValueError(f"{model_name}: only image and face models can be explained")
    return "frames" if family == "image" else "faces"


def run(
    analysis: str, model_name: str, inputs: Mapping[str, str], outputs: Mapping[str, str], options: Mapping
):
    """One per-model analysis (cam, cam_overlap, units or au_maps) as the workflow calls it.

    `inputs`: checkpoint, clips, frames, faces, expressions; `options`: the config's `interpret`
    section plus clips_dir, split and seed. An analysis that cannot be computed writes its section
    saying why (and placeholders for its other outputs) instead of failing the workflow.
    """
    files = {k: Path(v) for k, v in outputs.items()}
    for path in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    if analysis not in layout.INTERPRET_FILES:
        raise ValueError(f"unknown analysis {analysis!r}; known: {list(layout.INTERPRET_FILES)}")
    return guarded(analysis, model_name, files, _run, analysis, model_name, inputs, files, options)


def _run(analysis: str, model_name: str, inputs: Mapping[str, str], files: Mapping[str, Path], options):
    clips, frames, faces, expressions = read_tables(
        inputs["clips"], inputs["frames"], inputs["faces"], inputs.get("expressions"),
        options.get("split", "official"), options.get("seed", 0),
    )  # fmt: skip
    kind = explained_kind(model_name)
    # The published face-overlap test uses held-out frames only, whatever `splits` says.
    splits = ["test"] if analysis == "cam_overlap" else options["splits"]
    images = load_images(
        kind, clips, frames, faces, expressions, options["clips_dir"], splits=splits,
        max_frames=options["max_frames"],
    )  # fmt: skip
    log.info("%s of %s on %d %s", analysis, model_name, len(images), images.kind)
    checkpoint = Path(inputs["checkpoint"])
    if analysis == "cam":
        if not len(images):
            raise NotComputable(f"no {images.kind} of the splits {', '.join(splits)} to explain")
        return cam_analysis(model_name, checkpoint, images, files, top_k=options["top_k"])
    if analysis == "cam_overlap":
        return cam_overlap_analysis(
            model_name, checkpoint, images, files, threshold=options["cam_threshold"],
            min_overlap=options["face_overlap"], scales=options.get("box_scales", (1.0, 1.25, 1.5)),
            dataset=options.get("dataset", ""),
        )  # fmt: skip
    if analysis == "units":
        return units_analysis(
            model_name, checkpoint, images, files, n_layers=options["unit_layers"], top=options["unit_top"],
            threshold=options["detector_threshold"], au_top_n=options["au_top_n"],
            margin=options.get("detector_margin", 0.25), clip_top_n=options.get("au_top_clips", 10),
        )  # fmt: skip
    return au_map_analysis(model_name, checkpoint, images, files)
