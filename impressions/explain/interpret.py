"""What the trained networks look at: the interpretation analyses the workflow runs and reports.

Every analysis is an entry of `impressions.explain.analyses` (its function, files, settings, report
section and models). Each writes, beside its figures, every number as CSV or Parquet plus a
`section.json` (title, text, figures with captions, tables) that the report renders
(`impressions.report.render`). The built-in ones:

- `cam_analysis`: class activation maps per trait (`impressions.explain.cam`; Zhou et al. 2016) on the
  top-scored clips, Grad-CAM beside them;
- `cam_overlap_analysis`: the share of CAM regions that lie on the detected face, as Ventura et al.
  2017 measured it (72.8% on First Impressions);
- `units_analysis`: units of the last conv layers as face-part detectors
  (`impressions.explain.unit_detectors`; after Zhou et al. 2015) and Action-Unit emergence with
  hypergeometric p-values;
- `au_map_analysis`: AU-codebook maps (`impressions.expressions.au_maps`) against each model's CAM;
- `guidance_effect`: accuracy and CAM-AU correlation of a model trained with `au_guidance_weight`
  against the same model trained without it; `guidance_sweep.sweep_analysis` the same per weight;
- `manifold_analysis`: t-SNE of penultimate features coloured by trait, gender and emotion, with
  trustworthiness (`impressions.explain.manifold`).

The analyses live in `cam_analyses`, `unit_analyses`, `au_analyses` and `guidance_sweep`, their
sections in `sections`; this module runs the per-model ones (`run`: one workflow job per analysis and
model, dispatched by the registry) and holds the manifold view.

Images are read (`images.load_images`) from the per-clip frames or faces the models were trained on
(`impressions.data.image_store`) with their faces-table landmarks and boxes mapped into the stored
image's pixels; `max_frames` caps how many frames an analysis reads (evenly spaced in (clip, frame)
order, so the choice is reproducible).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from impressions.data import splits
from impressions.explain import analyses
from impressions.explain.images import analysis_device, load_images, on_device
from impressions.explain.sections import (
    Section,
    guarded,
    placeholder,
    polars_types,
)
from impressions.models import registry, variants
from impressions.schemas import TRAITS

log = logging.getLogger(__name__)


TRUST_SCHEMA = {
    "model": "String", "method": "String", "clips": "Int64", "dimensions": "Int64", "neighbors": "Int64",
    "trustworthiness": "Float64",
}  # fmt: skip


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

    from impressions import metrics
    from impressions.explain import manifold

    held_out = set(clips.filter(pl.col("split").is_in(list(splits)))["clip_id"].to_list())
    info = clips.select("clip_id", *TRAITS, "gender")
    if expressions is not None and expressions.height:
        info = info.join(metrics.dominant_emotion(expressions), on="clip_id", how="left")
    else:
        info = info.with_columns(pl.lit(None, pl.String).alias("dominant_emotion"))
    rows, coords = [], []
    spec = analyses.get("manifold")
    section = Section(
        spec.title,
        f"Per-clip penultimate features of each model (what late fusion consumes) on the {'/'.join(splits)} "
        f"split only ({len(held_out)} clips), standardised and embedded "
        f"in 2-D by {method.upper() if method == 'pca' else 't-SNE'} (seed {seed}), coloured by each trait's "
        f"label, gender and the clip's dominant emotion. Trustworthiness (scikit-learn; Venna & Kaski 2001) "
        f"measures how many of each point's {neighbors} nearest 2-D neighbours are true neighbours in the "
        "feature space: 1 is perfect, about 0.5 a random layout.",
        order=spec.order,
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
            placeholder(files[f"figure_{name}"], reason)
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
        pl.DataFrame(rows, schema=polars_types(TRUST_SCHEMA)),
        f"Trustworthiness of each embedding; 2-D coordinates per clip: {Path(files['coordinates']).name}.",
        files["table"],
    )
    section.write(files["section"])
    return section


# ----------------------------------------------------------------------------------------------------
# Entry point for the workflow's scripts


def read_tables(
    clips_path, splits_path, frames_path=None, faces_path=None, expressions_path=None, lazy: bool = False
):
    """(clips with the models' split, frames, faces, expressions) as polars frames; None where no path.
    The split is the splits table's (`splits_path`: the one every model trained on), else the clips
    table's own. With `lazy`, frames, faces and expressions are scans (LazyFrames), read only where
    used (`images.load_images` reads the rows of the frames it picks)."""
    import polars as pl

    def read(path):
        return (pl.scan_parquet(path) if lazy else pl.read_parquet(path)) if path else None

    clips = splits.read_clips(clips_path, splits_path)
    return clips, read(frames_path), read(faces_path), read(expressions_path)


def explained_kind(model_name: str) -> str:
    """What a CAM-explainable model looks at (its family's sample kind): frames for the image family
    and its variants (AU-guided, cam head), faces for the face family's."""
    family = variants.parse(model_name).family
    if not family.cam or family.sample_kind not in registry.IMAGE_KINDS:
        raise ValueError(
            f"{model_name}: only models of CAM-explainable families ({', '.join(registry.names(cam=True))}) "
            "can be explained"
        )
    return family.sample_kind


def run(
    analysis: str,
    model_name: str,
    inputs: Mapping[str, str],
    outputs: Mapping[str, str],
    options: Mapping,
    strict: bool = False,
):
    """One per-model analysis (a registry entry of scope ``model``: cam, cam_overlap, units, au_maps ...)
    as the workflow calls it.

    `inputs`: checkpoint, clips, frames, faces, expressions (and splits); `options`: the settings the
    analysis reads (`impressions.explain.analyses.Analysis.job_options`) plus clips_dir.
    The frames or faces the model saw are read here, from the analysis's splits, and handed to its
    function. An analysis that cannot be computed writes its section saying why (and placeholders for
    its other outputs) instead of failing the workflow; any other error fails it when `strict`
    (`impressions.explain.sections.guarded`).
    """
    spec = analyses.ANALYSES.get(analysis)
    if spec is None or spec.scope != "model":
        raise ValueError(f"unknown per-model analysis {analysis!r}; known: {analyses.names(scope='model')}")
    files = {k: Path(v) for k, v in outputs.items()}
    for path in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    return guarded(analysis, model_name, files, _run, spec, model_name, inputs, files, options, strict=strict)


def _run(
    spec: analyses.Analysis, model_name: str, inputs: Mapping[str, str], files: Mapping[str, Path], options
):
    clips, frames, faces, expressions = read_tables(
        inputs["clips"], inputs.get("splits"), inputs["frames"], inputs["faces"], inputs.get("expressions"),
        lazy=True,
    )  # fmt: skip
    kind = explained_kind(model_name)
    splits = list(spec.splits) if spec.splits is not None else options["splits"]
    images = load_images(
        kind, clips, frames, faces, expressions, options["clips_dir"], splits=splits,
        max_frames=options["max_frames"],
    )  # fmt: skip
    device = analysis_device(options)
    log.info("%s of %s on %d %s, on %s", spec.name, model_name, len(images), images.kind, device)
    compute = analyses.function(spec.name)
    with on_device(device):
        return compute(model_name, Path(inputs["checkpoint"]), images, files, **spec.arguments(options))
