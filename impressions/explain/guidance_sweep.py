"""AU guidance over a range of weights: does interpretability improve without costing accuracy?

Belharbi et al. (FG 2024) claim that aligning attention with AU-codebook maps makes the CAM agree
with the AU map (CAM-COS 0.55 -> 0.70 on RAF-DB) without degrading accuracy (88.20 -> 88.95). Here one
family is trained once per `au_guidance_weight` (the term normalised at initialisation,
`training.Settings.au_guidance_scale`, so weight w weighs it w times the trait loss at the start) and
per seed (`impressions.models.variants.sweep_seeds`: one unless `models.seeds` lists the family) with
everything else equal; per weight and seed we measure test accuracy (mean over traits of 1 - MAE, with
a paired bootstrap interval of its difference from weight 0 at the same seed, resampling clips) and the
mean Pearson r between each trait's CAM and the frame's AU map on test frames with a non-neutral
emotion. With several seeds a pooled row per weight averages each clip's difference over the seeds
before the same bootstrap over clips (the seeds are treated as fixed; the per-seed rows show their
spread).

The claim is judged per weight (on the pooled rows when there are several seeds): interpretability
improves when the interval of the r difference lies above 0; accuracy is kept (non-inferiority) when
the lower end of the 95% interval of (accuracy - accuracy at weight 0) is above -`tolerance`: the data
rule out a loss larger than the tolerance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from impressions import figures

PUBLISHED = (
    "Belharbi et al. 2024 (RAF-DB, ResNet-50, CAM; published, not measured here): accuracy 88.20% -> "
    "88.95%, CAM-AU cosine 0.55 -> 0.70"
)

SCHEMA = {
    "weight": "Float64", "seed": "Int64", "seeds": "Int64", "guidance_scale": "Float64",
    "val_accuracy": "Float64", "test_accuracy": "Float64",
    "test_clips": "Int64", "delta_accuracy": "Float64", "delta_low": "Float64", "delta_high": "Float64",
    "cam_au_r": "Float64", "cam_au_cosine": "Float64", "att_au_cosine": "Float64",
    "cam_au_frames": "Int64", "delta_r": "Float64",
    "delta_r_low": "Float64", "delta_r_high": "Float64", "interpretability_improves": "Boolean",
    "accuracy_kept": "Boolean",
}  # fmt: skip
"""au_guidance_sweep.csv: one row per weight and seed; with several seeds also one pooled row per weight
(seed empty, seeds the number pooled)."""


def accuracy_per_clip(preds, clips):
    """(clip ids, (n, 5) 1 - |error|) of the test clips with labels."""
    from impressions import metrics

    part = preds.filter(preds["split"] == "test").sort("clip_id")
    y, p, joined = metrics.labels_and_predictions(part, clips)
    return joined["clip_id"].to_list(), 1 - np.abs(np.asarray(y) - np.asarray(p))


def paired_bootstrap(a: np.ndarray, b: np.ndarray, n_boot: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% interval of mean(a - b) resampling rows (clips) with replacement."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if len(d) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), (n_boot, len(d)))].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def paired_difference(
    a: Mapping, b: Mapping, n_boot: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """(mean, 95% low, 95% high) of a - b over the clips both per-clip mappings hold (clip -> value),
    the interval a paired bootstrap over those clips; NaN where they share none."""
    common = sorted(set(a) & set(b))
    x = np.array([a[c] for c in common], dtype=np.float64)
    y = np.array([b[c] for c in common], dtype=np.float64)
    mean = float((x - y).mean()) if len(common) else float("nan")
    return (mean, *paired_bootstrap(x, y, n_boot, seed))


def clip_means(values: np.ndarray, clip_ids: Sequence[str]) -> dict[str, float]:
    """clip -> mean of its frames' finite `values` (n,): frames of one clip are alike, so the clip is
    the unit a paired interval resamples."""
    values = np.asarray(values, dtype=np.float64)
    out: dict[str, list[float]] = {}
    for clip, v in zip(clip_ids, values):
        if np.isfinite(v):
            out.setdefault(clip, []).append(float(v))
    return {clip: float(np.mean(v)) for clip, v in out.items()}


def headline(rows: list[dict]) -> list[dict]:
    """The rows the verdict and the figure read: the pooled rows when several seeds were pooled, else
    every row (one seed)."""
    pooled = [r for r in rows if (r.get("seeds") or 1) > 1]
    return pooled or rows


def judge(rows: list[dict], tolerance: float = 0.005) -> list[dict]:
    """Fill each row's verdict columns from its differences from weight 0 (weight 0's rows get none)."""
    base = next((r for r in rows if r["weight"] == 0), None)
    for r in rows:
        if base is None or r["weight"] == 0:
            r["interpretability_improves"] = None
            r["accuracy_kept"] = None
            continue
        # An improvement is an interval above zero (paired over test clips), not any increase.
        low = r.get("delta_r_low", float("nan"))
        r["interpretability_improves"] = bool(low > 0) if low is not None and np.isfinite(low) else None
        r["accuracy_kept"] = bool(r["delta_low"] > -tolerance) if np.isfinite(r["delta_low"]) else None
    return rows


def verdict(rows: list[dict], tolerance: float = 0.005) -> str:
    """One sentence per guided weight (the `headline` rows), then whether the claim holds at any."""
    lines, holds = [], []
    rows = headline(rows)
    seeds = max((r.get("seeds") or 1 for r in rows), default=1)
    base = next((r for r in rows if r["weight"] == 0), rows[0] if rows else None)
    for r in rows:
        if r["weight"] == 0:
            continue
        ok = r["interpretability_improves"] and r["accuracy_kept"]
        holds.append(bool(ok))
        nan = float("nan")
        keys = ("delta_r", "delta_r_low", "delta_r_high", "cam_au_cosine", "att_au_cosine")
        d, lo, hi, cos, att = (r.get(k, nan) for k in keys)
        lines.append(
            f"weight {r['weight']:g}: CAM-AU r {r['cam_au_r']:.3f} (weight 0: {base['cam_au_r']:.3f}; "
            f"difference {d:+.3f} [{lo:+.3f}, {hi:+.3f}]), CAM-COS {cos:.3f}, ATT-COS {att:.3f}, "
            "test "
            f"accuracy {r['delta_accuracy']:+.4f} [{r['delta_low']:+.4f}, {r['delta_high']:+.4f}] -> "
            + ("claim holds" if ok else "claim not supported")
        )
    if not holds:
        return "No guided weight could be compared with weight 0."
    summary = (
        f"The claim holds at {sum(holds)} of {len(holds)} weights"
        if any(holds)
        else "The claim is not supported at any weight tried"
    )
    return (
        f"{summary} (interpretability improves: the 95% paired bootstrap interval of the CAM-AU r "
        f"difference over test clips lies above 0; accuracy kept: the accuracy interval's lower end above "
        f"-{tolerance:g}; {_seeds_words(seeds)}). "
    ) + "; ".join(lines)


def _seeds_words(seeds: int) -> str:
    if seeds <= 1:
        return "one training seed per weight"
    return (
        f"pooled over {seeds} training seeds per weight: each test clip's difference from weight 0 at the "
        "same seed averaged over the seeds, the interval resampling clips with the seeds held fixed"
    )


def plot(table, path, title: str = "") -> None:
    """Test accuracy (with the paired interval around weight 0's) and CAM-AU r against the weight."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if "seeds" in table.columns and (table["seeds"].fill_null(1) > 1).any():
        table = table.filter(table["seeds"].fill_null(1) > 1)  # the pooled rows
    w = np.asarray(table["weight"].to_list(), dtype=float)
    x = np.arange(len(w))
    fig, axes = plt.subplots(1, 2, figsize=(8, 3), dpi=100)
    acc = np.asarray(table["test_accuracy"].to_list(), dtype=float)
    base = acc[w == 0][0] if (w == 0).any() else np.nan
    low = base + np.asarray(table["delta_low"].fill_null(np.nan).to_list(), dtype=float)
    high = base + np.asarray(table["delta_high"].fill_null(np.nan).to_list(), dtype=float)
    axes[0].plot(x, acc, "o-", color="tab:blue")
    ok = np.isfinite(low) & np.isfinite(high)
    axes[0].vlines(x[ok], low[ok], high[ok], color="tab:blue", alpha=0.5)
    axes[0].set_ylabel("test accuracy (1 - MAE)")
    axes[1].plot(x, table["cam_au_r"].to_list(), "o-", color="tab:green")
    axes[1].set_ylabel("CAM-AU map Pearson r (test)")
    for ax in axes:
        ax.set_xticks(x, [f"{v:g}" for v in w])
        ax.set_xlabel("au_guidance_weight (normalised term)")
    figures.save(fig, path, title)


def sweep_analysis(
    family: str, runs: Sequence[tuple[float, int]], checkpoints: Mapping[tuple[float, int], Path],
    predictions: Mapping[tuple[float, int], Path], histories: Mapping[tuple[float, int], Path], clips, frames,
    faces, expressions, clips_dir, files: Mapping[str, Path],
    *, max_frames: int = 2000, tolerance: float = 0.005, n_boot: int = 1000, seed: int = 0,
    au_map: str | None = None,
):  # fmt: skip
    """The sweep's table, figure and report section (an `sections.Section`). `runs` are its (weight,
    training seed) pairs, the mappings keyed by them (`read_runs`); `seed` seeds the bootstrap; `au_map`
    the AU maps' shape (`au_maps.SHAPES`, None: the default)."""
    from impressions.expressions import au_maps

    au_map = au_map or au_maps.SHAPE
    import polars as pl

    from impressions.explain import analyses, au_analyses, interpret, sections
    from impressions.explain.images import load_images

    images = load_images(
        interpret.explained_kind(family), clips, frames, faces, expressions, clips_dir,
        splits=list(analyses.get("au_guidance_sweep").splits), max_frames=max_frames,
    )  # fmt: skip
    usable = au_analyses.with_expressions(images)
    layers: set[int] = set()
    rows, per_clip, r_clips = _weight_rows(
        runs, checkpoints, predictions, histories, clips, usable, au_map, layers
    )
    _accuracy_differences(rows, per_clip, n_boot, seed)
    _paired_differences(rows, r_clips, n_boot, seed, ("delta_r", "delta_r_low", "delta_r_high"))
    rows = judge(rows + _pooled_rows(rows, per_clip, r_clips, n_boot, seed), tolerance)
    weights = sorted({w for w, _ in runs})
    table = pl.DataFrame(rows, schema=sections.polars_types(SCHEMA)).select(list(SCHEMA))
    plot(table, files["figure"], title=f"{family}: AU guidance weight sweep (test split)")
    section = _sweep_section(family, weights, len(usable), rows, table, files, tolerance, au_map, layers)
    section.write(files["section"])
    return section


def _weight_rows(runs, checkpoints, predictions, histories, clips, usable, au_map, layers: set):
    """Per (weight, seed) run (sorted): accuracy on val (selected epoch) and test, the guidance scale,
    CAM-AU r and cosine on the `usable` test frames; and per run, each test clip's accuracy and mean
    CAM-AU r (for the paired intervals). Adds the guided layers of the weights > 0 to `layers`."""
    import polars as pl

    from impressions.explain import au_analyses
    from impressions.explain.images import load_model

    rows, per_clip, r_clips = [], {}, {}
    for run in sorted(runs):
        w = run[0]
        preds = pl.read_parquet(predictions[run])
        ids, acc = accuracy_per_clip(preds, clips)
        per_clip[run] = dict(zip(ids, acc.mean(axis=1)))
        history = pl.read_csv(histories[run])
        best = history.filter(pl.col("best")) if "best" in history.columns else history
        val = float(best["val_mean"].max()) if best.height else float("nan")
        scale = (
            float(history["guidance_scale"].drop_nulls().drop_nans().mean())
            if "guidance_scale" in history.columns and history["guidance_scale"].drop_nulls().len()
            else float("nan")
        )
        r, cos_mean, att_mean, n = float("nan"), float("nan"), float("nan"), 0
        r_clips[run] = {}
        if len(usable):
            model, transform, ckpt = load_model(checkpoints[run])
            layer = au_analyses.guided_layer(ckpt.get("summary", {}).get("settings", {}))
            if w > 0:
                layers.add(layer)
            corr, cos, targets, _ = au_analyses.cam_au_correlations(model, transform, usable, au_map)
            # every weight of the sweep is trained with the same guided layer, so ATT-COS compares alike
            att = au_analyses.attention_au_cosines(model, transform, usable, targets, layer)
            used = np.isfinite(corr).any(axis=1)
            n = int(used.sum())
            r = float(np.nanmean(corr[used])) if n else float("nan")
            cos_mean = float(np.nanmean(cos[used])) if np.isfinite(cos[used]).any() else float("nan")
            att_mean = float(np.nanmean(att[used])) if np.isfinite(att[used]).any() else float("nan")
            r_clips[run] = clip_means(au_analyses.frame_means(corr), usable.clip_ids)
        rows.append({"weight": float(w), "seed": int(run[1]), "seeds": 1, "guidance_scale": scale,
                     "val_accuracy": val,
                     "test_accuracy": float(acc.mean()) if len(acc) else float("nan"), "test_clips": len(ids),
                     "cam_au_r": r, "cam_au_cosine": cos_mean, "att_au_cosine": att_mean,
                     "cam_au_frames": n})  # fmt: skip
    return rows, per_clip, r_clips


def _accuracy_differences(rows: list[dict], per_clip: Mapping[tuple, dict], n_boot: int, seed: int) -> None:
    """Fill each row's difference in test accuracy from weight 0 at its seed, with its paired bootstrap
    interval over the clips both runs scored."""
    _paired_differences(rows, per_clip, n_boot, seed, ("delta_accuracy", "delta_low", "delta_high"))


def _paired_differences(
    rows: list[dict], per_clip: Mapping[tuple, dict], n_boot: int, seed: int, keys
) -> None:
    """Fill `keys` (difference, low, high) of each run's row: the mean difference of its per-clip values
    from weight 0's at the same seed over the clips both have, with the paired bootstrap 95% interval
    over those clips."""
    for r in rows:
        base = per_clip.get((0.0, r["seed"])) or {}
        r.update(zip(keys, paired_difference(per_clip[(r["weight"], r["seed"])], base, n_boot, seed)))


def _pooled_rows(rows: list[dict], per_clip, r_clips, n_boot: int, seed: int) -> list[dict]:
    """With several seeds, one row per weight: the per-seed rows' means, and the differences from weight
    0 with each clip's value averaged over the seeds (clips every run of both weights has) before the
    paired bootstrap over clips. None with one seed."""
    seeds = sorted({r["seed"] for r in rows})
    if len(seeds) < 2:
        return []

    def pooled(values, weight):  # clip -> mean over the seeds of the weight's runs
        runs = [values.get((weight, s)) or {} for s in seeds]
        common = set.intersection(*(set(v) for v in runs))
        return {c: float(np.mean([v[c] for v in runs])) for c in common}

    out = []
    for w in sorted({r["weight"] for r in rows}):
        mine = [r for r in rows if r["weight"] == w]
        row = {"weight": w, "seed": None, "seeds": len(mine)}
        for key in ("guidance_scale", "val_accuracy", "test_accuracy", "cam_au_r", "cam_au_cosine",
                    "att_au_cosine"):  # fmt: skip
            values = np.array([r[key] for r in mine], dtype=np.float64)
            row[key] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
        row["test_clips"] = min(r["test_clips"] for r in mine)
        row["cam_au_frames"] = min(r["cam_au_frames"] for r in mine)
        for values, keys in ((per_clip, ("delta_accuracy", "delta_low", "delta_high")),
                             (r_clips, ("delta_r", "delta_r_low", "delta_r_high"))):  # fmt: skip
            row.update(zip(keys, paired_difference(pooled(values, w), pooled(values, 0.0), n_boot, seed)))
        out.append(row)
    return out


def _sweep_section(family, weights, usable: int, rows, table, files, tolerance: float, au_map: str, layers):
    """The sweep's section: the protocol, the paper's claim and its verdict, the figure and the table."""
    from impressions.explain import analyses, deviations, sections

    spec = analyses.get("au_guidance_sweep")
    # the term was scaled at initialisation where the histories logged a scale
    normalised = any(np.isfinite(r["guidance_scale"]) for r in rows if r["weight"] > 0)
    note = (
        ""
        if usable
        else " No test frame has a face and a non-neutral emotion: CAM-AU r could not be computed."
    )
    section = sections.Section(
        spec.title,
        f"The {family} model trained once per au_guidance_weight in "
        f"{', '.join(f'{w:g}' for w in sorted(weights))} and training seed "
        f"({', '.join(str(s) for s in sorted({r['seed'] for r in rows if r['seed'] is not None}))}) "
        "with all else equal; the guidance term is normalised at initialisation (multiplied by trait loss / "
        "guidance term on the first batch, column guidance_scale), so weight 1 weighs it like the trait loss "
        f"at the start. CAM-AU r is measured on {usable} test frames with a face and expressions.{note} "
        f"Paper's claim: interpretability improves without degrading accuracy; {PUBLISHED}. "
        f"{deviations.text(deviations.guidance(au_map, normalised, sorted(layers)))} Not the paper's "
        "protocol, so its figures are not comparable. The claim's direction, checked here with this "
        "project's measures: " + verdict(rows, tolerance),
        order=spec.order,
    )
    section.figure(
        files["figure"],
        "Test accuracy (left; bars: 95% paired bootstrap interval of the difference from weight 0, placed "
        "around weight 0's accuracy) and the mean Pearson r of each trait's CAM with the frame's AU-codebook "
        "map (right) against the guidance weight.",
    )
    section.table(
        table,
        "One row per weight and seed (and with several seeds a pooled row per weight, seed empty): accuracy "
        "on val (selected epoch) and test, the difference from weight 0 (same seed) with its 95% paired "
        "bootstrap interval over test clips, CAM-AU r on test frames, and the verdicts "
        f"(accuracy_kept: interval lower end above -{tolerance:g}: a larger loss is ruled out).",
        files["table"],
    )
    return section


def read_runs(paths: Sequence[str | Path], seed: int) -> dict[tuple[float, int], Path]:
    """(weight, training seed) -> path from paths under .../w<weight>[_seed<k>]/<file>
    (`impressions.models.variants.sweep_folder`; no seed in the name: `seed`, models.seed)."""
    out = {}
    for p in paths:
        weight, _, other = Path(p).parent.name.removeprefix("w").partition("_seed")
        out[(float(weight), int(other) if other else int(seed))] = Path(p)
    return out


def run(family: str, inputs: Mapping, outputs: Mapping[str, str], options: Mapping, strict: bool = False):
    """The sweep as the workflow calls it: `inputs` holds the sweep's checkpoints, predictions and
    histories (one per weight) and the dataset tables; a sweep that cannot run writes its section
    saying why (an error other than the data's fails it when `strict`)."""
    from impressions.explain import images, interpret, sections

    files = {key: Path(path) for key, path in outputs.items()}
    checkpoints, predictions, histories = (
        read_runs(inputs[k], options["seed"]) for k in ("checkpoints", "predictions", "histories")
    )
    clips, frames, faces, expressions = interpret.read_tables(
        inputs["clips"],
        inputs.get("splits"),
        inputs["frames"],
        inputs["faces"],
        inputs["expressions"],
        lazy=True,  # load_images reads only the rows of the frames it picks
    )
    with images.on_device(images.analysis_device(options)):
        return sections.guarded(
            "au_guidance_sweep", family, files, sweep_analysis, family, list(checkpoints), checkpoints,
            predictions, histories, clips, frames, faces, expressions, options["clips_dir"], files,
            max_frames=options["max_frames"],
            n_boot=options["n_boot"], seed=options["seed"], au_map=options.get("au_map"), strict=strict,
        )  # fmt: skip
