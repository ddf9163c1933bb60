"""The AU analyses: each trait's CAM against the frame's AU-codebook map (`au_map_analysis`), and the
effect of AU guidance on accuracy and on that correlation (`guidance_effect`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from impressions.explain import analyses, deviations
from impressions.explain.images import Images, batched, load_model, model_input
from impressions.explain.sections import NotComputable, Section, clips_used
from impressions.schemas import TRAITS

# ----------------------------------------------------------------------------------------------------
# AU-codebook maps

_SHAPE_WORDS = {
    "ellipse": "Belharbi et al.'s filled ellipses at their landmark anchors",
    "gaussian": "Gaussian blobs (sigma 0.2 inter-ocular distances) at this project's landmark anchors",
}
"""How a section says each shape of `au_maps.SHAPES` is drawn."""


def cam_au_correlations(model, transform, images: Images, au_map: str | None = None):
    """((n, 5) Pearson r of each trait's CAM with the frame's AU-codebook map, drawn in shape `au_map`
    (`au_maps.SHAPES`, None: the default), (n, 5) their cosine (`cam.map_cosine`, CAM-COS), the AU
    maps, the CAMs).

    Frames without a face or with a neutral (AU-free) dominant emotion get NaN."""
    from impressions.explain import cam
    from impressions.expressions import au_maps

    size = images.size
    targets = au_maps.frame_maps(images.landmarks, images.emotions, size, shape=au_map or au_maps.SHAPE)
    x = model_input(images.images, transform)
    cams, _ = batched(lambda b: cam.class_activation_maps(model, b), x)
    corr = np.full((len(images), len(TRAITS)), np.nan)
    cos = np.full((len(images), len(TRAITS)), np.nan)
    for i in range(len(images)):
        if targets[i].max() > 0:  # compared at image resolution, the CAM upsampled as in the overlays
            up = cam.upsample(cams[i], size)
            corr[i] = [cam.map_correlation(up[t], targets[i]) for t in range(len(TRAITS))]
            cos[i] = [cam.map_cosine(up[t], targets[i]) for t in range(len(TRAITS))]
    return corr, cos, targets, cams


def attention_au_cosines(
    model, transform, images: Images, targets: np.ndarray, layer: int = -1, batch: int = 64
):
    """(n,) ATT-COS: the cosine of each frame's attention at body module `layer` (the guided layer) with
    its AU map `targets` (n, S, S); NaN where the map is empty."""
    import torch

    from impressions.expressions import au_maps

    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):  # the model input a batch at a time: memory by the batch
            x = model_input(images.images[i : i + batch], transform)
            _, features = model.forward_with_features(x, layer=layer)
            out.append(au_maps.attention_au_cosine(features, targets[i : i + batch]))
    return np.concatenate(out) if out else np.zeros(0)


def with_expressions(images: Images) -> Images:
    """The frames an AU map can be drawn for: a face and expressions (a dominant emotion)."""
    return images.subset(images.has_face & np.array([e is not None for e in images.emotions], bool))


def frame_means(values: np.ndarray) -> np.ndarray:
    """(n,) each frame's mean over the traits of its finite (n, 5) `values`; NaN where none is."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    total = np.where(finite, values, 0.0).sum(axis=1)
    count = finite.sum(axis=1)
    return np.divide(total, count, out=np.full(len(values), np.nan), where=count > 0)


def attention_cosines_at(checkpoint: Path, images: Images, au_map: str, layer: int, chunk: int = 256):
    """(n,) ATT-COS of the model in `checkpoint` at body module `layer` on `images` (frames with
    expressions), their AU maps drawn in shape `au_map` `chunk` frames at a time (memory by the chunk)."""
    from impressions.expressions import au_maps

    model, transform, _ = load_model(checkpoint)
    out = [np.zeros(0)]
    for i in range(0, len(images), chunk):
        part = images.subset((np.arange(len(images)) >= i) & (np.arange(len(images)) < i + chunk))
        targets = au_maps.frame_maps(part.landmarks, part.emotions, part.size, shape=au_map)
        out.append(attention_au_cosines(model, transform, part, targets, layer))
    return np.concatenate(out)


def au_map_analysis(name: str, checkpoint: Path, images: Images, files: Mapping[str, Path],
                    examples: int = 4, au_map: str | None = None) -> Section:  # fmt: skip
    """Correlation between each trait's CAM and the AU-codebook map of the frame's emotion, each AU
    drawn in shape `au_map` (``interpret.au_map``; None: `au_maps.SHAPE`)."""
    import polars as pl

    from impressions.expressions import au_maps

    au_map = au_map or au_maps.SHAPE
    model, transform, ckpt = load_model(checkpoint)
    faces = with_expressions(images)
    if not len(faces):
        raise NotComputable(f"{name}: no frames with a face and expressions for AU maps")
    corr, cos, targets, cams = cam_au_correlations(model, transform, faces, au_map)
    frames = pl.DataFrame({
        "model": [name] * len(faces), "clip_id": faces.clip_ids,
        "frame_index": faces.frame_index.astype(np.int64), "emotion": faces.emotions,
        **{t: corr[:, i] for i, t in enumerate(TRAITS)},
        **{f"cos_{t}": cos[:, i] for i, t in enumerate(TRAITS)},
    })  # fmt: skip
    frames.write_parquet(files["frames"])
    used = np.isfinite(corr).any(axis=1)

    def mean(values):
        return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")

    rows = [{"model": name, "trait": t, "frames": int(np.isfinite(corr[:, i]).sum()),
             "mean_r": mean(corr[:, i]), "mean_cosine": mean(cos[:, i])}
            for i, t in enumerate(TRAITS)]  # fmt: skip
    rows.append({"model": name, "trait": "mean", "frames": int(used.sum()), "mean_r": mean(corr[used]),
                 "mean_cosine": mean(cos[used])})  # fmt: skip
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
    trained = ckpt.get("summary", {}).get("settings", {})
    weight = trained.get("au_guidance_weight", 0.0) or 0.0
    what = "aligned faces" if images.kind == "faces" else "frames"
    spec = analyses.get("au_maps")
    section = Section(
        spec.title.format(model=name),
        f"How far the {name} model (au_guidance_weight {weight:g}) looks where the facial expression is. "
        f"Each frame's AU map draws {_SHAPE_WORDS[au_map]} for every Action Unit that the emotion -> AU "
        f"codebook (impressions.expressions.codebook, EMFACS prototypes) lists for the frame's dominant "
        f"emotion; {int(used.sum())} of {len(faces)} {what} have a non-neutral emotion and enter the "
        f"correlation. Mean r over traits: {table['mean_r'][-1]:.3f}; mean cosine (CAM-COS, Belharbi et "
        f"al.'s metric, CAM min-max normalised): {table['mean_cosine'][-1]:.3f}. {clips_used(images)} "
        + deviations.text(deviations.guidance(au_map, None, [guided_layer(trained)] if weight > 0 else [])),
        order=spec.order + (images.kind == "faces"),
    )
    section.figure(
        files["examples"],
        "Examples: the frame, its AU-codebook map for the dominant emotion, and the model's CAM averaged "
        "over the five traits.",
    )
    section.table(
        table,
        "Pearson r between each trait's CAM (upsampled to the image) and the frame's AU map, and their "
        "cosine (the CAM min-max normalised to 0..1), averaged over frames; per-frame values: "
        f"{Path(files['frames']).name}.",
        files["correlation"],
    )
    section.write(files["section"])
    return section


def guided_layer(settings: Mapping) -> int:
    """The body module a model's AU guidance trained (its training settings); checkpoints from before
    the setting guided the last feature map (-1)."""
    return int(settings.get("au_guidance_layer", -1))


def _test_frames(frames_path: Path, clips, split: str = "test"):
    """(clip ids, (n, 5) CAM-AU r, (n, 5) cosine) of the frames of `split`'s clips in an au_maps
    per-frame table: a method is judged on held-out clips only (a guided model was trained to match
    the maps of its training frames)."""
    import polars as pl

    frames = pl.read_parquet(frames_path)
    ids = clips.filter(pl.col("split") == split)["clip_id"].to_list()
    part = frames.filter(pl.col("clip_id").is_in(ids))
    r = part.select(TRAITS).to_numpy().astype(np.float64) if part.height else np.zeros((0, len(TRAITS)))
    cos_cols = [f"cos_{t}" for t in TRAITS]
    cos = (
        part.select(cos_cols).to_numpy().astype(np.float64)
        if part.height and all(c in part.columns for c in cos_cols)
        else np.full(r.shape, np.nan)
    )
    return part["clip_id"].to_list(), r, cos


def held_out_similarity(r: np.ndarray, cos: np.ndarray) -> dict:
    """Mean CAM-AU Pearson r and cosine over the traits and the frames that have them (the (n, 5)
    arrays `_test_frames` reads: held-out frames), with the number of frames."""
    used = np.isfinite(r).any(axis=1)
    return {
        "cam_au_r": float(np.nanmean(r[used])) if used.any() else float("nan"),
        "cam_au_cosine": float(np.nanmean(cos[used])) if np.isfinite(cos[used]).any() else float("nan"),
        "cam_au_frames": int(used.sum()),
    }


EFFECT_DIFFERENCES = {
    "accuracy": ("delta_accuracy", "delta_low", "delta_high"),
    "cam_au_r": ("delta_r", "delta_r_low", "delta_r_high"),
    "att_au_cosine": ("delta_att", "delta_att_low", "delta_att_high"),
}
"""The effect table's paired differences (guided minus its twin, on the guided model's row): per-clip
measure -> (difference, 95% low, 95% high), named as in the sweep's table."""


def guidance_effect(
    pairs: Sequence[tuple[str, str]], au_frames: Mapping[str, Path], predictions: Mapping[str, Path],
    summaries: Mapping[str, Path], checkpoints: Mapping[str, Path], images: Mapping[str, Images], clips,
    files: Mapping[str, Path], au_map: str | None = None, n_boot: int = 1000, seed: int = 0,
) -> Section:  # fmt: skip
    """Accuracy, CAM-AU similarity (`au_frames`: each model's au_maps per-frame table, its maps drawn
    in shape `au_map`) and ATT-COS of each guided model against its unguided twin, on test clips only.

    `images`: the test frames by kind (`interpret.explained_kind`); ATT-COS reads both models'
    attention at the layer the guided model was guided at, on that kind's frames with expressions.
    Each difference has a paired bootstrap interval over the test clips (`n_boot`, `seed`)."""
    import polars as pl

    from impressions import metrics
    from impressions.explain import guidance_sweep, interpret
    from impressions.expressions import au_maps

    au_map = au_map or au_maps.SHAPE
    rows, layers, att_frames = [], set(), {}
    for base, guided in pairs:
        guided_settings = json.loads(Path(summaries[guided]).read_text())["settings"]
        layer = guided_layer(guided_settings)  # the twin's attention is read where the guided was guided
        usable = with_expressions(images[interpret.explained_kind(base)])
        per_clip = {}
        for name in (base, guided):
            preds = pl.read_parquet(predictions[name])
            summary = json.loads(Path(summaries[name]).read_text())
            weight = float(summary["settings"].get("au_guidance_weight") or 0.0)
            if weight > 0:
                layers.add(guided_layer(summary["settings"]))
            ids, r, cos = _test_frames(au_frames[name], clips)
            att = (
                attention_cosines_at(checkpoints[name], usable, au_map, layer) if len(usable) else np.zeros(0)
            )
            att_frames[name] = int(np.isfinite(att).sum())
            test_ids, acc = guidance_sweep.accuracy_per_clip(preds, clips)
            per_clip[name] = {
                "accuracy": dict(zip(test_ids, acc.mean(axis=1))),
                "cam_au_r": guidance_sweep.clip_means(frame_means(r), ids),
                "att_au_cosine": guidance_sweep.clip_means(att, usable.clip_ids),
            }
            row = {"model": name, "au_guidance_weight": weight, **held_out_similarity(r, cos),
                   "att_au_cosine": float(np.nanmean(att)) if att_frames[name] else float("nan"),
                   "att_au_frames": att_frames[name], "att_layer": layer}  # fmt: skip
            for split in ("val", "test"):
                part = preds.filter(pl.col("split") == split).sort("clip_id")
                y, p, _ = metrics.labels_and_predictions(part, clips)
                row[f"{split}_accuracy"] = float(metrics.accuracy(y, p).mean()) if len(y) else float("nan")
            rows.append(row)
        for measure, keys in EFFECT_DIFFERENCES.items():
            difference = guidance_sweep.paired_difference(
                per_clip[guided][measure], per_clip[base][measure], n_boot, seed
            )
            rows[-2].update(dict.fromkeys(keys))  # the twin's row: no difference of its own
            rows[-1].update(zip(keys, difference))
    table = pl.DataFrame(rows, infer_schema_length=None)
    lines = []
    for base, guided in pairs:
        b, g = (table.filter(pl.col("model") == m).row(0, named=True) for m in (base, guided))
        lines.append(
            f"{guided} against {base}: CAM-AU r {b['cam_au_r']:.3f} -> {g['cam_au_r']:.3f} (difference "
            f"{g['delta_r']:+.3f} [{g['delta_r_low']:+.3f}, {g['delta_r_high']:+.3f}]), CAM-COS "
            f"{b['cam_au_cosine']:.3f} -> {g['cam_au_cosine']:.3f} ({g['cam_au_frames']} test frames), "
            f"ATT-COS at body module {g['att_layer']} {b['att_au_cosine']:.3f} -> {g['att_au_cosine']:.3f} "
            "(difference "
            f"{g['delta_att']:+.3f} [{g['delta_att_low']:+.3f}, {g['delta_att_high']:+.3f}]; "
            f"{g['att_au_frames']} test frames), test accuracy {b['test_accuracy']:.4f} -> "
            f"{g['test_accuracy']:.4f} (difference {g['delta_accuracy']:+.4f} [{g['delta_low']:+.4f}, "
            f"{g['delta_high']:+.4f}])"
        )
    spec = analyses.get("au_guidance")
    section = Section(
        spec.title,
        "A model trained with au_guidance_weight > 0 adds to its loss the squared distance between its "
        "guided layer's attention (mean squared activation over channels, L2-normalised; au_guidance_layer, "
        "by default -1, the last conv feature map) and the frame's AU-codebook map, times the weight and "
        "(au_guidance_scale init, the default) the ratio of trait loss to that term on the first batch, "
        "so weight 1 weighs it like the trait loss at the start; its twin is the same family and settings "
        "trained without it. The sweep over weights is its own section. "
        + "; ".join(lines)
        + ". Every figure here is on test clips only: CAM-AU r (Pearson) and cosine (CAM-COS, Belharbi et "
        "al.'s metric) over the test frames with a face and a non-neutral emotion; ATT-COS (Belharbi et "
        "al.'s cosine of the guided layer's attention with the AU map, the similarity guidance trains) with "
        "both models' attention read at the guided model's layer; accuracy the mean over traits of 1 - MAE "
        "(the report's accuracy tables hold its confidence intervals). Differences are guided minus twin, "
        "with 95% paired bootstrap intervals over the test clips both models scored. "
        + deviations.text(deviations.guidance(au_map, None, sorted(layers))),
        order=spec.order,
    )
    section.table(
        table,
        "Guided against unguided models (same seed, data and settings); test clips only. The guided "
        "model's row holds its differences from its twin (delta_*) with their 95% paired bootstrap "
        "intervals over test clips; att_layer is the body module both models' ATT-COS is read at.",
        files["table"],
    )
    section.write(files["section"])
    return section


def guidance_run(pairs, inputs: Mapping, outputs: Mapping[str, str], options: Mapping, strict: bool = False):
    """The guidance effect as the workflow calls it: `inputs` holds the pairs' au_maps per-frame
    tables, predictions, summaries and checkpoints (paths under a folder named after the model) and
    the dataset tables; the test frames of each pair's kind are read here (up to `max_frames`)."""
    from impressions.explain import images as loader
    from impressions.explain import interpret, sections

    def by_model(paths):  # .../<model>/<file>
        return {Path(p).parent.name: Path(p) for p in paths}

    files = {key: Path(path) for key, path in outputs.items()}
    clips, frames, faces, expressions = interpret.read_tables(
        inputs["clips"], inputs.get("splits"), inputs["frames"], inputs["faces"], inputs["expressions"],
        lazy=True,
    )  # fmt: skip

    def compute():
        test = list(analyses.get("au_guidance").splits)
        kinds = {interpret.explained_kind(base) for base, _ in pairs}
        images = {
            kind: loader.load_images(kind, clips, frames, faces, expressions, options["clips_dir"],
                                     splits=test, max_frames=options["max_frames"])
            for kind in sorted(kinds)
        }  # fmt: skip
        return guidance_effect(
            [tuple(p) for p in pairs], by_model(inputs["au_frames"]), by_model(inputs["predictions"]),
            by_model(inputs["summaries"]), by_model(inputs["checkpoints"]), images, clips, files,
            au_map=options.get("au_map"), n_boot=options["n_boot"], seed=options["seed"],
        )  # fmt: skip

    with loader.on_device(loader.analysis_device(options)):
        return sections.guarded("au_guidance", "", files, compute, strict=strict)
