"""Published First Impressions figures beside this run's, a forest plot of every model, seed spread.

`PUBLISHED` holds the figures the source papers report (from the project's METHODS.md, which cites
each): they are labelled as published everywhere and never mixed with measured numbers. An
experiment config (``experiment.reproduce``) says which model of this run stands for which published
row; the report then prints both, this run's with its bootstrap interval. Published rows are on the
official FI test split (the thesis does not state its split); a run on other data (the demo) is not
comparable, and the table says which data this run used.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

import numpy as np

from impressions.metrics import PAPER_ORDER as _T
from impressions.report import differences  # the order the papers print traits in


def _row(key, label, source, values, mean):
    return {"key": key, "label": label, "source": source,
            "traits": dict(zip(_T, values)) if values else {}, "mean": mean}  # fmt: skip


OCEAN_AI_SOURCE = (
    "Ryumina et al. 2024 (Expert Systems with Applications), OCEAN-AI; figures from its "
    "documentation notebooks on the 2,000 FI test clips (per trait not reported there)"
)

PUBLISHED = {
    r["key"]: r
    for r in [
        _row("zhang2016_challenge", "NJU-LAMDA challenge entry: DAN+, DAN, ResNet, audio, averaged",
             "Zhang et al. 2016 (ECCVW), ChaLearn LAP 2016 1st place; METHODS 1.1",
             (0.9123, 0.9166, 0.9133, 0.9126, 0.9100), 0.9130),
        _row("ventura2017_img_audio_100", "image + audio, 100 frames per clip",
             "Ventura et al. 2017 (CVPRW), results table; METHODS 1.2",
             (0.912, 0.917, 0.913, 0.913, 0.910), 0.913),
        _row("ventura2017_img_10", "image only, 10 frames per clip (DAN+)",
             "Ventura et al. 2017 (CVPRW), results table; METHODS 1.2",
             (0.909, 0.911, 0.909, 0.910, 0.905), 0.909),
        _row("ventura2017_face", "face crops, eye-aligned (DAN+)",
             "Ventura et al. 2017 (CVPRW), results table; METHODS 1.2",
             (0.910, 0.914, 0.915, 0.912, 0.907), 0.912),
        _row("ventura2017_au17", "17 AUs -> linear regressor",
             "Ventura et al. 2017 (CVPRW), AU section; METHODS 1.2 (per trait not reported)", None, 0.886),
        _row("dcc2016_audiovisual", "audiovisual residual network (team DCC)",
             "Gucluturk et al. 2016 (ECCVW), 3rd place; METHODS 1.1 (per trait not found)", None, 0.9109),
        _row("thesis_audio", "audio (first 5 s, raw waveform)",
             "Hernandez thesis, global accuracy table (split not stated); METHODS 1.3",
             (0.87397, 0.87333, 0.87357, 0.87310, 0.87362), 0.87352),
        _row("thesis_visual", "visual (VGG-Face on face crops)",
             "Hernandez thesis, global accuracy table (split not stated); METHODS 1.3",
             (0.90525, 0.91012, 0.90783, 0.90355, 0.90437), 0.90623),
        _row("thesis_audio_visual", "audio + visual",
             "Hernandez thesis, global accuracy table (split not stated); METHODS 1.3",
             (0.90637, 0.91447, 0.91171, 0.90726, 0.90465), 0.90889),
        _row("thesis_av_handcrafted", "audio + visual + age, gender, emotions",
             "Hernandez thesis, global accuracy table (split not stated); METHODS 1.3",
             (0.90623, 0.91433, 0.91174, 0.90753, 0.90480), 0.90893),
        # OCEAN-AI: audio, video and transcript models and their fusions, mean accuracy only.
        *[_row(key, label, OCEAN_AI_SOURCE, None, mean) for key, label, mean in (
            ("ocean_ai_audio", "OCEAN-AI audio", 0.9074),
            ("ocean_ai_video", "OCEAN-AI video", 0.9152),
            ("ocean_ai_text", "OCEAN-AI text (transcripts)", 0.8889),
            ("ocean_ai_audio_video", "OCEAN-AI audio + video", 0.9171),
            ("ocean_ai_audio_video_text", "OCEAN-AI audio + video + text", 0.9245),
        )],
    ]
}  # fmt: skip
"""Published test accuracies (1 - MAE) on First Impressions, by key. NOT measured here."""

NOT_ON_FI = {
    "belharbi2024": "Belharbi et al. 2024 (AU-guided training) report expression accuracy on RAF-DB and "
    "AffectNet (e.g. CAM 88.20 -> 88.95 on RAF-DB), not First Impressions: no figure to set beside",
    "xiao2024": "Xiao 2024 (Grad-CAM, t-SNE) reports Pearson r on the 10k US Adult Faces attributes, "
    "not First Impressions: no figure to set beside",
}
"""Experiments whose papers report no First Impressions accuracy (said so in the table)."""

SEED_NAME = re.compile(r"^(?P<base>.+)_seed(?P<seed>\d+)$")


def _mean_rows(metrics_table, split: str = "test"):
    import polars as pl

    if not metrics_table.height:
        return {}
    part = metrics_table.filter(
        (pl.col("split") == split) & (pl.col("metric") == "accuracy") & (pl.col("trait") == "mean")
    )
    return {r["model"]: r for r in part.iter_rows(named=True)}


def _trait_values(metrics_table, model: str, split: str = "test") -> dict:
    import polars as pl

    part = metrics_table.filter(
        (pl.col("split") == split) & (pl.col("metric") == "accuracy") & (pl.col("model") == model)
    )
    return {r["trait"]: r for r in part.iter_rows(named=True)}


def reproduction_rows(
    metrics_table,
    reproduce: Sequence[Mapping],
    run_label: str = "this run",
    summaries: Mapping = MappingProxyType({}),
):
    """(header, rows, row classes): per mapping, the published row then this run's with intervals and,
    from the model's summary (`summaries`: model -> summary.json), how it differs from the paper's."""
    header = ["figure", "model", "O", "C", "E", "A", "N", "mean", "source"]
    rows, kinds = [], []
    for item in reproduce:
        key, model = item.get("published"), item.get("model", "")
        if key in NOT_ON_FI:
            rows.append([f"published: {key}", "", "", "", "", "", "", "", NOT_ON_FI[key]])
            kinds.append("published")
        elif key is not None:
            if key not in PUBLISHED:
                raise KeyError(f"unknown published figure {key!r}; known: {sorted(PUBLISHED)}")
            pub = PUBLISHED[key]
            cells = [f"{pub['traits'][t]:.4f}" if t in pub["traits"] else "n/a" for t in _T]
            rows.append([published_label(key), "", *cells, f"{pub['mean']:.4f}", pub["source"]])
            kinds.append("published")
        if not model:
            continue
        values = _trait_values(metrics_table, model)
        if not values:
            rows.append([run_label, model, "", "", "", "", "", "not run", ""])
        else:
            cells = [_fmt(values.get(t)) for t in (*_T, "mean")]
            where = f"{values['mean']['n']} test clips"
            # how this run's model differs from the published one: derived from what it was trained with
            differs = differences.differences(key, summaries.get(model, {})) if key else []
            differs += [item["note"]] if item.get("note") else []
            source = f"{where}; differs: {'; '.join(differs)}" if differs else where
            rows.append([run_label, model, *cells, source])
        kinds.append("")
    return header, rows, kinds


def published_label(key: str) -> str:
    """The first cell of a published row: what it is and where it was measured."""
    pub = PUBLISHED[key]
    where = "FI, split not stated" if "split not stated" in pub["source"] else "FI test"
    return f"published ({where}): {pub['label']}"


def _fmt(r) -> str:
    if r is None:
        return ""
    if np.isnan(r["ci_low"]):
        return f"{r['value']:.4f}"
    return f"{r['value']:.4f} [{r['ci_low']:.4f}, {r['ci_high']:.4f}]"


def seed_groups(models: Sequence[str]) -> dict[str, list[str]]:
    """{base model: [base, base_seed1, ...]} for every model trained on several seeds."""
    groups: dict[str, list[str]] = {}
    for m in models:
        match = SEED_NAME.match(m)
        if match:
            groups.setdefault(match["base"], []).append(m)
    return {
        base: [base, *sorted(copies)] if base in models else sorted(copies) for base, copies in groups.items()
    }


def seed_rows(metrics_table, split: str = "test"):
    """(header, rows): per family trained on several seeds, the test mean accuracy's mean and spread
    across seeds beside the bootstrap interval of the primary seed's model."""
    means = _mean_rows(metrics_table, split)
    header = [
        "model",
        "seeds",
        "mean over seeds",
        "SD over seeds",
        "min - max",
        "bootstrap 95% CI (one seed)",
    ]
    rows = []
    for base, names in seed_groups(list(means)).items():
        values = np.array([means[n]["value"] for n in names if n in means])
        if len(values) < 2:
            continue
        first = means[names[0]]
        rows.append([base, len(values), f"{values.mean():.4f}", f"{values.std(ddof=1):.4f}",
                     f"{values.min():.4f} - {values.max():.4f}",
                     f"[{first['ci_low']:.4f}, {first['ci_high']:.4f}] ({names[0]})"])  # fmt: skip
    return header, rows


def forest_plot(metrics_table, path: str | Path, baseline: str = "train_mean", split: str = "test") -> Path:
    """Every model's mean accuracy with its 95% interval, against the train-mean baseline (dashed
    line, its interval shaded), best at the top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    means = _mean_rows(metrics_table, split)
    base = means.pop(baseline, None)
    order = sorted(means.values(), key=lambda r: r["value"])
    fig, ax = plt.subplots(figsize=(7, 0.9 + 0.32 * max(len(order), 1)), dpi=100)
    if base is not None:
        ax.axvspan(base["ci_low"], base["ci_high"], color="0.9", zorder=0)
        ax.axvline(base["value"], color="0.3", linestyle="--", linewidth=1,
                   label=f"train-mean baseline {base['value']:.4f}")  # fmt: skip
    ys = np.arange(len(order))
    values = np.array([r["value"] for r in order])
    low = values - np.array([r["ci_low"] for r in order])
    high = np.array([r["ci_high"] for r in order]) - values
    ax.errorbar(values, ys, xerr=np.nan_to_num(np.vstack([low, high])), fmt="o", color="tab:blue",
                capsize=3, markersize=4, label="model (95% bootstrap interval)")  # fmt: skip
    ax.set_yticks(ys, [r["model"] for r in order], fontsize=8)
    ax.set_xlabel(f"{split} mean accuracy (1 - MAE)")
    ax.legend(loc="lower right", fontsize=7)
    ax.set_title("Every model against always predicting the training mean", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def summarize(paths: Sequence[str | Path]) -> str:
    """Per report metrics table: each model's test mean accuracy [95% CI] and, for families trained on
    several seeds, the mean and SD over seeds (what benchmarks/demo_comparison/README.md quotes)."""
    import polars as pl

    lines = []
    for path in paths:
        table = pl.read_parquet(path)
        lines.append(f"## {Path(path).stem}")
        for model, r in sorted(_mean_rows(table).items()):
            lines.append(f"{model:28s} {r['value']:.4f} [{r['ci_low']:.4f}, {r['ci_high']:.4f}]")
        for row in seed_rows(table)[1]:
            lines.append(f"{row[0]:28s} over {row[1]} seeds: mean {row[2]}, SD {row[3]}, range {row[4]}")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(summarize(sys.argv[1:]))
