"""The evaluation report: every model's accuracy with confidence intervals, against the train-mean
baseline and published First Impressions figures, broken down by group, with training curves.

Writes `index.html` (self-contained: curves are embedded) and `report.md` (curves linked), plus the
numbers behind them as Parquet: `metrics.parquet` (model, split, metric, trait, value, ci_low,
ci_high, n), `breakdowns.parquet`, `comparisons.parquet`, and the bias audit's `bias_groups.parquet`
and `bias_gaps.parquet` (impressions.bias; val and test; the section shows test).

After the model results come the interpretation sections (`impressions.explain.sections`: each a
`section.json` with text, captioned figures and tables, rendered in order).

Intervals are 95% percentile bootstrap intervals that resample YouTube ids (people), not clips: clips
of one person are not independent. Model comparisons are paired bootstrap tests on the same clips.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from impressions import bias, metrics
from impressions.data import splits as data_splits
from impressions.data import transcripts
from impressions.report import bias as bias_section
from impressions.report import differences
from impressions.report.document import Document, data_uri, relative
from impressions.schemas import DEMOGRAPHICS, TRAITS
from impressions.training import degenerate

BASELINE = "train_mean"
SPLIT_NOTES = {
    "official": "official (the clips table's split column; FI's own, which shares people between splits)",
    "identity": "identity-disjoint re-split (models.split: identity, seed {seed}): every YouTube id in one "
    "split only, at the official split proportions",
}
SPLIT_NOTES["identity_faces"] = (
    "identity-disjoint re-split by face (models.split: identity_faces, seed {seed}): YouTube ids whose "
    "faces cluster as one person, and all clips of a YouTube id, stay in one split, at the official "
    "split proportions"
)
BREAKDOWNS = (*DEMOGRAPHICS, "dominant_emotion")

PUBLISHED = [
    # Test-set accuracy (1 - MAE) reported by the authors on the official FI test split: NOT measured
    # here. Source: Ponce-Lopez et al., "ChaLearn LAP 2016: First Round Challenge on First Impressions -
    # Dataset and Results", ECCV 2016 Workshops (NJU-LAMDA = DAN+, Wei et al., IEEE TAC 2018).
    {"model": "NJU-LAMDA / DAN+ (published, audio+visual)", "openness": 0.9123, "conscientiousness": 0.9166,
     "extraversion": 0.9133, "agreeableness": 0.9126, "neuroticism": 0.9100, "mean": 0.9130},
]  # fmt: skip
"""Reference rows for the report, clearly labelled as published figures (not reproduced here)."""


def _baseline_predictions(clips):
    import polars as pl

    train = clips.filter(pl.col("split") == "train").select(TRAITS).drop_nulls()
    # polars' mean, not metrics.train_mean: its summation order differs in the last bit, and the
    # report's baseline figures are pinned to the digit.
    mean = train.mean().row(0) if train.height else (np.nan,) * len(TRAITS)
    rest = clips.filter(pl.col("split").is_in(["val", "test"])).select("clip_id", "split")
    if not train.height:  # no training mean, no baseline (degenerate.statements says so)
        rest = rest.head(0)
    return rest.with_columns(
        pl.lit(BASELINE).alias("model"), *[pl.lit(v).alias(t) for t, v in zip(TRAITS, mean)]
    )


def evaluate(clips, predictions, expressions=None, n_boot: int = 1000, seed: int = 0):
    """(metrics, breakdowns, comparisons) tables for every model and the baseline on val and test."""
    import polars as pl

    tables = [_baseline_predictions(clips)] + [
        p.select(_baseline_predictions(clips).columns) for p in predictions
    ]
    preds = pl.concat(tables, how="vertical_relaxed")
    if expressions is not None and expressions.height:
        clips = clips.join(metrics.dominant_emotion(expressions), on="clip_id", how="left")
    rows, breakdowns, comparisons = [], [], []
    models = list(dict.fromkeys(preds["model"].to_list()))
    for split in ("val", "test"):
        base, scored = None, {}
        for model in models:
            part = preds.filter((pl.col("model") == model) & (pl.col("split") == split)).sort("clip_id")
            if not part.height:
                continue
            y, p, joined = metrics.labels_and_predictions(part, clips)
            if not len(y):
                continue
            groups = joined["youtube_id"].fill_null(joined["clip_id"]).to_list()
            scored[model] = (joined["clip_id"].to_list(), y, p, groups)
            rows.append(
                metrics.evaluate(y, p, n_boot=n_boot, seed=seed, groups=groups, model=model, split=split)
            )
            if model == BASELINE:
                base = (joined["clip_id"].to_list(), p)
            elif base is not None and base[0] == joined["clip_id"].to_list():
                c = metrics.paired_bootstrap(y, p, base[1], n_boot=n_boot, seed=seed, groups=groups)
                comparisons.append({
                    "split": split, "model": model, "against": BASELINE, "delta": c.delta, "ci_low": c.low,
                    "ci_high": c.high, "p_value": c.p_value, "n": len(y),
                })  # fmt: skip
            if split == "test":
                for by in BREAKDOWNS:
                    if by in clips.columns:
                        table = metrics.breakdown(part, clips, by, n_boot=n_boot, seed=seed)
                        if table.height:
                            breakdowns.append(table.with_columns(pl.lit(model).alias("model")))
        comparisons += _extension_comparisons(scored, split, n_boot, seed)
    metrics_table = pl.concat(rows) if rows else pl.DataFrame()
    breakdown_table = pl.concat(breakdowns, how="vertical_relaxed") if breakdowns else pl.DataFrame()
    return metrics_table, breakdown_table, pl.DataFrame(comparisons)


def _extension_comparisons(scored: Mapping, split: str, n_boot: int, seed: int) -> list[dict]:
    """Each model against the model it extends (registry `extends`: A+V+T against A+V), paired on the
    same clips; skipped when the two scored different clips."""
    from impressions.models import registry

    out = []
    for model, (ids, y, p, groups) in scored.items():
        try:
            base = registry.extended(model)
        except KeyError:  # the baseline and models outside the registry extend nothing
            continue
        if base not in scored or scored[base][0] != ids:
            continue
        c = metrics.paired_bootstrap(y, p, scored[base][2], n_boot=n_boot, seed=seed, groups=groups)
        out.append({"split": split, "model": model, "against": base, "delta": c.delta, "ci_low": c.low,
                    "ci_high": c.high, "p_value": c.p_value, "n": len(y)})  # fmt: skip
    return out


def bias_audit(clips, predictions, min_people: int, permutations: int, n_boot: int = 1000, seed: int = 0):
    """(groups, gaps) bias tables (impressions.bias) of val and test for every model with predictions."""
    import polars as pl

    columns = _baseline_predictions(clips).columns
    preds = (
        pl.concat([p.select(columns) for p in predictions], how="vertical_relaxed") if predictions else None
    )
    if preds is None:
        preds = pl.DataFrame(schema={"model": pl.String, "split": pl.String})
    parts = [bias.audit(clips, preds, min_people=min_people, split=split, n_boot=n_boot,
                        n_perm=permutations, seed=seed) for split in ("val", "test")]  # fmt: skip
    return pl.concat([g for g, _ in parts]), pl.concat([g for _, g in parts])


# ----------------------------------------------------------------------------------------------------
# Rendering


def _results_rows(metrics_table, split: str, metric: str = "accuracy"):
    """(header, rows, row kinds) in the papers' layout: O C E A N mean, published rows first."""
    import polars as pl

    header = ["model", *[metrics.SHORT[t] for t in metrics.PAPER_ORDER], "mean"]
    rows, kinds = [], []
    if metric == "accuracy" and split == "test":
        for ref in PUBLISHED:
            rows.append([ref["model"], *[f"{ref[t]:.4f}" for t in metrics.PAPER_ORDER], f"{ref['mean']:.4f}"])
            kinds.append("published")
    part = metrics_table.filter((pl.col("split") == split) & (pl.col("metric") == metric))
    if part.height:
        wide = metrics.wide(part.drop("split"), metric=metric)
        for row in wide.iter_rows(named=True):
            label = "train-mean baseline" if row["model"] == BASELINE else row["model"]
            rows.append([label, *[row[metrics.SHORT[t]] for t in metrics.PAPER_ORDER], row["mean"]])
            kinds.append("baseline" if row["model"] == BASELINE else "")
    return header, rows, kinds


def _dataset_summary(clips, qc, faces) -> tuple[list[str], list[list], list[str], list[list], str]:
    import polars as pl

    per_split = clips.group_by("split").len().sort("split")
    split_rows = [[s, n] for s, n in per_split.iter_rows()]
    # ties in count by name: group_by has no stable order, and the report must be reproducible
    status = qc.group_by("status").len().sort(["len", "status"], descending=[True, False])
    qc_rows = [[s, n] for s, n in status.iter_rows()]
    face_share = faces["has_face"].mean() if faces.height else float("nan")
    people = clips["youtube_id"].n_unique() if "youtube_id" in clips.columns else 0
    train_ids = set(clips.filter(pl.col("split") == "train")["youtube_id"].drop_nulls())
    test_ids = set(clips.filter(pl.col("split") == "test")["youtube_id"].drop_nulls())
    note = (
        f"{clips.height} clips of {people} people (YouTube ids); {face_share:.1%} of sampled frames have "
        f"a face; {len(test_ids & train_ids)} of {len(test_ids)} test people also appear in training."
    )
    return ["split", "clips"], split_rows, ["QC status", "clips"], qc_rows, note


def transcript_rows(clips, qc) -> list[list]:
    """The clips table's clips by transcript QC note (the qc table's `transcript_note`): usable, then
    each note; none when no clip has a usable transcript (a dataset without transcripts)."""
    import polars as pl

    if "transcript_note" not in qc.columns:
        return []
    notes = qc.filter(pl.col("clip_id").is_in(clips["clip_id"].implode()))["transcript_note"].to_list()
    usable = notes.count(None)
    if not usable:
        return []
    noted = [[note, notes.count(note)] for note in (transcripts.NO_TRANSCRIPT, transcripts.EMPTY_TRANSCRIPT)]
    return [["usable", usable], *[row for row in noted if row[1]]]


def tracking_note(qc, faces) -> str:
    """One sentence on the tracked person (impressions.data.tracking): multi-person clips, top-face share,
    frames that failed (impressions.data.head_pose.success); empty for tables without those columns."""
    import polars as pl

    if "multi_person" not in qc.columns or "top_face" not in faces.columns:
        return ""
    processed = qc.filter(pl.col("n_tracks").is_not_null())
    multi = int(processed["multi_person"].fill_null(False).sum())
    tracked = faces.filter(pl.col("has_face"))
    top = int(tracked["top_face"].fill_null(False).sum())
    share = top / tracked.height if tracked.height else float("nan")
    failed = int((tracked["success"].fill_null(False) == False).sum())  # noqa: E712
    return (
        f"Tracking: {multi} of {processed.height} processed clips show more than one person "
        f"(multi_person); in {top} of {tracked.height} face frames ({share:.1%}) the tracked person "
        f"was also the detector's top-scoring face; {failed} face frames failed (landmark fit or pose "
        "beyond its limit) and have no expression values."
    )


def _breakdown_rows(breakdowns, by: str):
    """One row per group, one column per model: mean accuracy [95% CI]."""
    import polars as pl

    part = breakdowns.filter((pl.col("by") == by) & (pl.col("trait") == "mean"))
    models = list(dict.fromkeys(part["model"].to_list()))
    header = ["group", "clips", *["train-mean baseline" if m == BASELINE else m for m in models]]
    rows = []
    for (group,), cells in part.group_by("group", maintain_order=True):
        by_model = {r["model"]: r for r in cells.iter_rows(named=True)}
        row = [group, cells["n"].max()]
        for m in models:
            r = by_model.get(m)
            row.append(metrics._fmt(r["value"], r["ci_low"], r["ci_high"], 4) if r else "")
        rows.append(row)
    return header, sorted(rows, key=lambda r: str(r[0]))


def _other_metrics_rows(metrics_table, split: str):
    import polars as pl

    part = metrics_table.filter((pl.col("split") == split) & (pl.col("trait") == "mean"))
    rows = []
    for model in list(dict.fromkeys(part["model"].to_list())):
        cells = []
        for metric in ("pcc", "ccc", "r2"):
            r = part.filter((pl.col("model") == model) & (pl.col("metric") == metric)).row(0, named=True)
            cells.append(metrics._fmt(r["value"], r["ci_low"], r["ci_high"], 3))
        rows.append(["train-mean baseline" if model == BASELINE else model, *cells])
    return ["model", "PCC (mean over traits)", "CCC", "R2"], rows


def _result_first(doc: Document, table, outputs, reproduce, experiment, dataset, summaries=()) -> None:
    """The forest plot, the reproduction table and the spread over seeds (impressions.report.reproduction)."""
    from impressions.report import reproduction

    if not table.height:
        return
    report_dir = Path(outputs["html"]).parent
    forest = reproduction.forest_plot(table, outputs.get("forest") or report_dir / "forest.png")
    doc.section("Every model against the baseline (test)",
                "Mean accuracy with 95% bootstrap intervals; dashed: always predicting the training mean "
                "(its interval shaded). A model whose interval overlaps the shaded band is not "
                "distinguishable from the baseline on these clips.")  # fmt: skip
    doc.md.append(f"![forest plot of every model's test mean accuracy]({forest.name})\n")
    caption = "Test mean accuracy of every model (95% bootstrap intervals) against the train-mean baseline."
    doc.body.append(
        f"<figure><img alt='forest plot' src='{data_uri(forest)}'><figcaption>{caption}</figcaption></figure>"
    )
    if reproduce:
        title = f"Reproduction: {experiment}" if experiment else "Reproduction"
        doc.section(title, "Published rows are figures reported by the authors on First Impressions (test "
                    "split unless noted), NOT measured here. This run's rows: test accuracy with 95% "
                    f"bootstrap intervals on {dataset or 'this dataset'}; comparable to the published "
                    "figures only on the official FI test split. 'differs' says how this run's model "
                    "differs from the paper's, read from what it was trained with "
                    "(impressions/report/differences.py).")  # fmt: skip
        by_model = {s.get("model"): s for s in summaries}
        doc.table(*reproduction.reproduction_rows(table, reproduce, summaries=by_model))
    header, rows = reproduction.seed_rows(table)
    if rows:
        doc.section("Spread across training seeds (test mean accuracy)",
                    "The bootstrap interval covers the sampling of test people for one trained model; the "
                    "spread over seeds covers training randomness (initialisation, order, augmentation): "
                    "every seed copy trains, is fused and is scored on the same split (models.seed's, "
                    "results/tables/splits.parquet). Both matter when comparing models.")  # fmt: skip
        doc.table(header, rows)


def _dataset_sections(doc: Document, clips, qc, faces, summaries) -> None:
    """Splits and QC statuses, the tracked-person note, and what the dataset does not allow."""
    split_header, split_rows, qc_header, qc_rows, note = _dataset_summary(clips, qc, faces)
    doc.section("Dataset and quality control", note)
    doc.table(split_header, split_rows)
    doc.table(qc_header, qc_rows)
    texts = transcript_rows(clips, qc)
    if texts:
        doc.paragraph(
            "Transcripts: text_linear gives a clip without a usable transcript the training mean, flagged "
            "in its summary (filled_with_train_mean) and counted under Training; a fusion that takes "
            "text_linear reads that mean as the clip's text scores."
        )
        doc.table(["transcript QC", "clips"], texts)
    tracking = tracking_note(qc, faces)
    if tracking:
        doc.paragraph(tracking)
    limits = degenerate.statements(clips, qc, faces, summaries)
    if limits:
        doc.section("What this dataset does not allow")
        doc.bullets(limits)


def _accuracy_sections(
    doc: Document, table, breakdowns, comparisons, n_boot: int, emotion_source: str = ""
) -> None:
    """Accuracy per split, correlation metrics, the paired comparison with the baseline, breakdowns."""
    import polars as pl

    method = (
        "Accuracy is 1 - mean absolute error (the ChaLearn First Impressions metric); brackets hold 95% "
        f"bootstrap intervals from {n_boot} replicates resampling people (YouTube ids), not clips. "
        "The baseline always predicts the training mean. Published rows are figures reported by their "
        "authors on the official FI test split, NOT measured here; they are comparable only when this "
        "report evaluates the official FI test split."
    )
    for split in ("test", "val"):
        unscored = degenerate.unscored_note(split, table)
        doc.section(f"Accuracy on {split} (O C E A N, mean)", unscored or (method if split == "test" else ""))
        if not unscored:
            doc.table(*_results_rows(table, split))
    doc.section(
        "Correlation metrics on test",
        "Mean over traits of Pearson's r, Lin's CCC and R2 (n/a: a constant prediction).",
    )
    unscored_test = degenerate.unscored_note("test", table)
    if unscored_test:
        doc.paragraph(unscored_test)
    else:
        doc.table(*_other_metrics_rows(table, "test"))
    if comparisons.height:
        doc.section("Against the baseline (paired bootstrap, test)",
                    "Difference in mean accuracy, model minus train-mean baseline, on the same clips; "
                    "two-sided p-value.")  # fmt: skip
        rows = [
            [r["model"], f"{r['delta']:+.4f}", f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]",
             f"{r['p_value']:.3g}", r["n"]]
            for r in comparisons.filter((pl.col("split") == "test") & (pl.col("against") == BASELINE))
            .iter_rows(named=True)
        ]  # fmt: skip
        doc.table(["model", "delta", "95% CI", "p", "clips"], rows)
        extended = comparisons.filter((pl.col("split") == "test") & (pl.col("against") != BASELINE))
        if extended.height:
            doc.section("Added modality (paired bootstrap, test)",
                        "Difference in mean accuracy, a model minus the model it adds one input to (e.g. "
                        "fusion_text, audio + visual + text, minus fusion, audio + visual), on the same "
                        "clips; two-sided p-value.")  # fmt: skip
            rows = [
                [r["model"], r["against"], f"{r['delta']:+.4f}", f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]",
                 f"{r['p_value']:.3g}", r["n"]]
                for r in extended.iter_rows(named=True)
            ]  # fmt: skip
            doc.table(["model", "against", "delta", "95% CI", "p", "clips"], rows)
    if breakdowns.height:
        for by in BREAKDOWNS:
            if by in breakdowns["by"].unique().to_list():
                note = f"Each clip's most probable mean emotion, from {emotion_source}." if (
                    by == "dominant_emotion" and emotion_source
                ) else ""  # fmt: skip
                doc.section(f"Test accuracy by {by.replace('_', ' ')}", note)
                doc.table(*_breakdown_rows(breakdowns, by))


def _training_section(doc: Document, summaries, curve_paths, report_dir: Path) -> None:
    """What each model selected on validation, clips without input, time, device; training curves."""
    doc.section("Training", "Model selection used the validation split only (best epoch or ridge penalty).")
    rows = []
    for s in summaries:
        filled = sum(len(v) for v in s.get("filled_with_train_mean", {}).values())
        selected = ", ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in s["selected"].items()
        )
        if s.get(degenerate.NOT_TRAINED):
            selected = f"not trained: {s[degenerate.NOT_TRAINED]}"
        time = f"{s.get('train_seconds', float('nan')):.0f} s"
        rows.append([s["model"], selected, filled, time, s.get("device", ""), differences.input_sources(s)])
    header = ["model", "selected (validation)", "clips given the train mean (no input)", "training time",
              "device", "AU, emotion and voice source"]  # fmt: skip
    doc.table(header, rows)
    for s, curve in zip(summaries, curve_paths):
        curve = Path(curve)
        rel = relative(curve, report_dir)
        doc.md.append(f"\n### {s['model']}\n\n![{s['model']} training curve]({rel.as_posix()})\n")
        data = base64.b64encode(curve.read_bytes()).decode()
        doc.body.append(
            f"<h3>{html.escape(s['model'])}</h3><img alt='training curve' src='data:image/png;base64,{data}'>"
        )


def _interpretation_sections(doc: Document, sections: Sequence[Path], report_dir: Path) -> None:
    """The analyses' sections (impressions.explain.sections), in order, after the model results."""
    from impressions.explain.sections import read_sections

    doc.chapter("What the networks look at")
    for sec in read_sections(sections):
        doc.section(sec["title"], sec["text"])
        for fig in sec["figures"]:
            path = Path(fig["path"])
            doc.figure(path, relative(path, report_dir).as_posix(), fig["caption"], alt=path.name)
        for tab in sec["tables"]:
            doc.caption(f"{tab['caption']} (table: {relative(Path(tab['path']), report_dir).as_posix()})")
            doc.table(tab["header"], tab["rows"])


def write_report(
    clips_path: Path, qc_path: Path, faces_path: Path, expressions_path: Path | None,
    prediction_paths: Sequence[Path], summary_paths: Sequence[Path], curve_paths: Sequence[Path],
    outputs: Mapping[str, Path], n_boot: int = 1000, seed: int = 0, dataset: str = "",
    sections: Sequence[Path] = (), reproduce: Sequence[Mapping] = (), experiment: str = "",
    splits_path: Path | None = None, bias_settings: Mapping | None = None,
) -> None:  # fmt: skip
    """Evaluate every model and write the HTML and Markdown report and its tables (see the docstring).
    `splits_path`: the workflow's splits table, the split every model trained on and its note (else
    the clips table's own split); `seed` seeds the bootstrap; `bias_settings`: the config's `bias`
    section (min_people, permutations); the bias section is left out without it."""
    import polars as pl

    clips, qc, faces = (pl.read_parquet(p) for p in (clips_path, qc_path, faces_path))
    clips = data_splits.read_clips(clips_path, splits_path)  # the models' split
    split, split_seed = data_splits.made_with(splits_path) if splits_path else ("official", 0)
    expressions = pl.read_parquet(expressions_path) if expressions_path else None
    predictions = [pl.read_parquet(p) for p in prediction_paths]
    table, breakdowns, comparisons = evaluate(clips, predictions, expressions, n_boot=n_boot, seed=seed)
    for key, frame in (("metrics", table), ("breakdowns", breakdowns), ("comparisons", comparisons)):
        Path(outputs[key]).parent.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(outputs[key])
    summaries = [json.loads(Path(p).read_text()) for p in summary_paths]
    report_dir = Path(outputs["html"]).parent

    doc = Document("Apparent personality: model evaluation")
    if dataset:
        doc.labelled("Dataset", dataset)
    doc.labelled("Split", SPLIT_NOTES[split].format(seed=split_seed))
    _dataset_sections(doc, clips, qc, faces, summaries)
    _result_first(doc, table, outputs, reproduce, experiment, dataset, summaries)
    _accuracy_sections(doc, table, breakdowns, comparisons, n_boot, differences.run_emotion_source(summaries))
    if bias_settings is not None:
        settings = dict(bias_settings)
        groups, gaps = bias_audit(clips, predictions, settings["min_people"], settings["permutations"],
                                  n_boot=n_boot, seed=seed)  # fmt: skip
        for key, frame in (("bias_groups", groups), ("bias_gaps", gaps)):
            frame.write_parquet(outputs[key])
        note = SPLIT_NOTES[split].format(seed=split_seed)
        figure = bias_section.figure(groups, outputs["bias_figure"], "test", split)
        bias_section.section(doc, groups.filter(pl.col("split") == "test"), gaps, figure, "test", note,
                             settings, bias.mixed_people(clips, "test"))  # fmt: skip
    _training_section(doc, summaries, curve_paths, report_dir)
    if sections:
        _interpretation_sections(doc, sections, report_dir)
    doc.write(outputs["markdown"], outputs["html"])
