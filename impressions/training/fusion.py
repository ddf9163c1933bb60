"""Fusion without leakage: learned fusion fitted on held-out component outputs, and plain averages.

Why held-out predictions and not cross-fitting. A learned fusion (the thesis's dense layers over the
audio and visual networks' features) must never be fitted on a component's output for a clip that
component trained on: a component that has memorised its training clips looks perfect there, and the
fusion learns to trust it (METHODS.md, pitfall 10). Two remedies exist: out-of-fold cross-fitting of
the components (train every component k times, each time predicting the clips it left out) or fitting
the fusion on a split no component trained on. This module does the second, on the validation split:

- the components never train on validation clips (they only choose their epoch there: one integer per
  component, negligible next to fitting on its outputs);
- cross-fitting would train every deep component k more times (DAN+ on 6,000 FI clips x 100 frames per
  fold) for a fusion that the papers report gains a few thousandths of accuracy (thesis: 0.9062 visual
  -> 0.9089 audio + visual), while First Impressions has 2,000 validation clips to fit it on;
- the test split stays untouched by every fit and every choice.

Inside the validation split the fusion is cross-fitted itself (`fit_heldout`): clips are grouped by
YouTube id (so one person's clips are never on both sides) into ``folds`` folds (the ``folds``
setting, k); a fusion network is trained on k - 1 folds and early-stopped on the remaining one. The
validation predictions written are these out-of-fold ones (each clip scored by the member that did
not train on it), so the validation figure of a fusion is held-out too; test clips get the mean of
the k members (`FoldEnsemble`). ``fit_on: train`` fits on the training split's component outputs
instead: the leaky variant, kept only to show the difference.

``late_average`` (`late_average`): the equal-weight mean of listed models' clip scores, as the
challenge winner's `fusion.m` did (Zhang et al. 2016: DAN+, DAN, a ResNet and the audio model, 1/4
each). Nothing is fitted.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from impressions import metrics
from impressions.models.tabular import FoldEnsemble
from impressions.schemas import TRAITS
from impressions.training import datasets

log = logging.getLogger(__name__)

FIT_ON = ("heldout", "train")


def group_folds(groups: Sequence[str], k: int, seed: int = 0) -> np.ndarray:
    """Fold index per item; items of one group share a fold. Groups are ordered by a seeded hash and
    dealt largest first to the fold with the fewest items, so fold sizes stay within one group."""
    names, counts = np.unique(np.asarray(groups, dtype=str), return_counts=True)
    if len(names) < k:
        raise ValueError(f"{k} folds need at least {k} groups (people); the fitting split has {len(names)}")
    order = sorted(
        range(len(names)),
        key=lambda i: (-counts[i], hashlib.sha256(f"{seed}:{names[i]}".encode()).hexdigest()),
    )
    sizes, fold_of = np.zeros(k, int), {}
    for i in order:
        f = int(np.argmin(sizes))
        fold_of[names[i]] = f
        sizes[f] += counts[i]
    return np.array([fold_of[g] for g in np.asarray(groups, dtype=str)])


def _average_history(histories: list[list[dict]]) -> list[dict]:
    """Per epoch, the mean over folds of every numeric column (folds that stopped early drop out)."""
    epochs = sorted({r["epoch"] for h in histories for r in h})
    out = []
    for e in epochs:
        rows = [r for h in histories for r in h if r["epoch"] == e]
        keys = [k for k in rows[0] if k not in ("epoch", "best") and isinstance(rows[0][k], (int, float))]
        out.append({"epoch": e, **{k: float(np.nanmean([r[k] for r in rows if k in r])) for k in keys},
                    "folds": len(rows)})  # fmt: skip
    return out


def fit_heldout(
    build, matrix: np.ndarray, clips: datasets.Clips, groups: Sequence[str], settings, device: str,
    folds: int,
) -> tuple[FoldEnsemble, list[dict], np.ndarray, dict]:  # fmt: skip
    """Cross-fit `build()` networks over `folds` group folds of (matrix, clips).

    Returns (ensemble, per-epoch history averaged over folds, out-of-fold predictions (n, 5), extra
    summary: each member's selected epoch and the out-of-fold accuracy)."""
    from impressions.training import loop as training

    if folds < 2:
        raise ValueError(f"folds must be at least 2, not {folds}")
    people = len(set(groups))
    if people < folds:
        if people < 2:
            raise ValueError(
                f"cross-fitting the fusion needs at least 2 people in the validation split, not {people}"
            )
        log.warning("only %d people in the validation split: %d folds instead of %d", people, people, folds)
        folds = people
    fold = group_folds(groups, folds, settings.seed)
    members, histories, selected = [], [], []
    oof = np.full((len(clips), len(TRAITS)), np.nan)
    for f in range(folds):
        fit_rows, held_rows = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
        fit_clips = datasets.Clips([clips.ids[i] for i in fit_rows], clips.labels[fit_rows])
        held_clips = datasets.Clips([clips.ids[i] for i in held_rows], clips.labels[held_rows])
        member = build()
        member.scale.fit(matrix[fit_rows])
        model, history = training.fit(
            member,
            datasets.RowDataset(fit_clips, matrix[fit_rows], np.arange(len(fit_rows))),
            datasets.RowDataset(held_clips, matrix[held_rows], np.arange(len(held_rows))),
            held_clips, settings, training.Prepare("features"), device,
        )  # fmt: skip
        model = model.cpu().eval()
        with torch.no_grad():
            oof[held_rows] = model(torch.from_numpy(matrix[held_rows])).double().numpy()
        best = max(history, key=lambda r: r["val_mean"])
        selected.append(int(best["epoch"]))
        log.info("fusion fold %d/%d: %d clips fitted, %d held out, epoch %d, held-out accuracy %.4f",
                 f + 1, folds, len(fit_rows), len(held_rows), best["epoch"], best["val_mean"])  # fmt: skip
        members.append(model)
        histories.append(history)
    oof_acc = metrics.accuracy(clips.labels, oof)
    extra = {"fit_on": "heldout", "folds": folds, "fold_epochs": selected,
             "out_of_fold_accuracy": {t: float(a) for t, a in zip(TRAITS, oof_acc)}}  # fmt: skip
    return FoldEnsemble(members).eval(), _average_history(histories), oof, extra


# ----------------------------------------------------------------------------------------------------
# Late average


def late_average(prediction_paths: Sequence[str | Path], name: str = "late_average"):
    """The equal-weight mean of several models' clip scores (val and test), per trait.

    Every component must score the same clips (each model scores every clip of val and test, the
    training mean where it had no input): a mismatch is an error, not a silent partial average."""
    import polars as pl

    tables = [pl.read_parquet(p) for p in prediction_paths]
    if len(tables) < 2:
        raise ValueError(f"{name}: average at least two models, got {len(tables)}")
    keys = [set(zip(t["clip_id"], t["split"])) for t in tables]
    for path, k in zip(prediction_paths, keys):
        if k != keys[0]:
            raise ValueError(f"{name}: {path} scores other clips than {prediction_paths[0]}")
    stacked = pl.concat([t.select("clip_id", "split", *TRAITS) for t in tables])
    out = stacked.group_by("clip_id", "split", maintain_order=True).agg(pl.col(t).mean() for t in TRAITS)
    return (
        out.with_columns(pl.lit(name).alias("model"))
        .select("clip_id", "split", "model", *TRAITS)
        .sort("split", "clip_id")
    )


def write_late_average(
    prediction_paths: Sequence[str | Path], clips_path: str | Path, outputs: Mapping[str, str | Path],
    name: str = "late_average",
) -> dict:  # fmt: skip
    """Write the average's predictions, a summary, a one-row metrics table and a bar chart of the
    components' and the average's validation accuracy (what the report shows for each model)."""
    import polars as pl

    components = [Path(p).parent.name for p in prediction_paths]
    table = late_average(prediction_paths, name)
    for path in outputs.values():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    table.write_parquet(outputs["predictions"])
    clips = pl.read_parquet(clips_path)
    val = {}
    for label, preds in [*zip(components, map(pl.read_parquet, prediction_paths)), (name, table)]:
        part = preds.filter(pl.col("split") == "val")
        y, p, _ = metrics.labels_and_predictions(part, clips)
        val[label] = metrics.accuracy(y, p) if len(y) else np.full(len(TRAITS), np.nan)
    mine = val[name]
    history = [
        {"epoch": 0, **{f"val_{t}": float(a) for t, a in zip(TRAITS, mine)}, "val_mean": float(mine.mean())}
    ]
    pl.DataFrame(history).write_csv(outputs["metrics"])
    _bar_chart(val, Path(outputs["curve"]))
    summary = {
        "model": name, "family": "late_average",
        "selected": {"components": len(components), "val_mean": float(mine.mean())},
        "val_accuracy": {t: float(a) for t, a in zip(TRAITS, mine)}, "inputs": components,
        "filled_with_train_mean": {}, "train_seconds": 0.0, "device": "none (nothing fitted)",
    }  # fmt: skip
    Path(outputs["summary"]).write_text(json.dumps(summary, indent=2))
    return summary


def _bar_chart(val: Mapping[str, np.ndarray], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    names = list(val)
    means = [float(np.nanmean(v)) for v in val.values()]
    ax.barh(names, means, color=["tab:blue"] * (len(names) - 1) + ["tab:green"])
    lo = min(means) - 0.02
    ax.set_xlim(lo, max(means) + 0.01)
    ax.set_xlabel("validation mean accuracy (1 - MAE)")
    ax.set_title("late average: the components and their mean", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
