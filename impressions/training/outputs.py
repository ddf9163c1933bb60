"""A trained family's files: predictions, features, history and its plot, checkpoint and summary."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
from torch import nn

from impressions import metrics
from impressions.layout import Outputs
from impressions.models import networks as models
from impressions.schemas import OUTPUTS, SPLITS, TRAITS, polars_schema
from impressions.training import datasets
from impressions.training.settings import Settings

PREDICTION_COLUMNS = OUTPUTS["predictions"]
"""Schema of every model's predictions.parquet (`schemas.OUTPUTS`; one row per clip of val and test)."""


_CHOSEN = ("features", "alpha")
"""Columns of a history row that name what was chosen besides its x (text_linear: features, penalty)."""


def predictions_frame(name: str, split_preds: Mapping[str, tuple[Sequence[str], np.ndarray]]):
    import polars as pl

    parts = []
    for split, (ids, pred) in split_preds.items():
        data = {"clip_id": list(ids), "split": [split] * len(ids), "model": [name] * len(ids)}
        data |= {t: pred[:, i].astype(np.float64) for i, t in enumerate(TRAITS)}
        parts.append(pl.DataFrame(data, schema=polars_schema("predictions")))
    return pl.concat(parts)


def write_history(history: list[dict], csv_path: Path, png_path: Path, x: str = "epoch") -> None:
    import polars as pl

    csv_path.parent.mkdir(parents=True, exist_ok=True)
    table = pl.DataFrame(history)
    table.write_csv(csv_path)
    plot_history(table, png_path, x)


def plot_history(table, png_path: Path, x: str = "epoch") -> None:
    """Loss curves (left axis) and validation mean accuracy (right axis) per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    xs = table[x].to_numpy()
    for col, style in (("train_loss", "-"), ("val_loss", "--")):
        if col in table.columns:
            ax.plot(xs, table[col].to_numpy(), style, label=col.replace("_", " "))
    if x == "alpha" and (xs > 0).all():
        ax.set_xscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel("loss")
    acc = ax.twinx() if "train_loss" in table.columns else ax
    acc.plot(
        xs, table["val_mean"].to_numpy(), "o-", color="tab:green", label="val mean accuracy", markersize=3
    )
    acc.set_ylabel("validation mean accuracy (1 - MAE)")
    best = int(np.nanargmax(table["val_mean"].to_numpy()))
    ax.axvline(xs[best], color="grey", linestyle=":", linewidth=1, label=f"selected ({x} {xs[best]:g})")
    handles = ax.get_legend_handles_labels()
    if acc is not ax:
        extra = acc.get_legend_handles_labels()
        handles = (handles[0] + extra[0], handles[1] + extra[1])
    ax.legend(*handles, loc="best", fontsize=8)
    fig.tight_layout()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path)
    plt.close(fig)


def _write_all(
    name: str, family: str, outputs: Outputs, splits: dict[str, datasets.Clips], preds: dict, feats: dict,
    filled: dict, history: list[dict], model: nn.Module, builder: dict, settings: Settings, extra: dict,
    x: str = "epoch", fills: Mapping | None = None,
) -> dict:  # fmt: skip
    """Write predictions, features, checkpoint, history and summary; return the summary.

    `fills` go into the checkpoint: what a clip without input gets at prediction time (the training
    mean of the features, `feature_fill`, and of the input columns, `input_fill`)."""
    fills = dict(fills or {})
    for path in asdict(outputs).values():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    predictions_frame(name, {s: (splits[s].ids, preds[s]) for s in ("val", "test")}).write_parquet(
        outputs.predictions
    )
    ids = [c for s in SPLITS for c in splits[s].ids]
    np.savez(
        outputs.features, clip_id=np.array(ids, dtype=str),
        split=np.array([s for s in SPLITS for _ in splits[s].ids], dtype=str),
        features=np.concatenate([feats[s] for s in SPLITS]).astype(np.float32),
        has_input=~np.concatenate([filled[s] for s in SPLITS]),
    )  # fmt: skip
    write_history(history, outputs.metrics, outputs.curve, x)
    best = max(history, key=lambda r: r["val_mean"])
    selected = {k: best[k] for k in (x, *_CHOSEN, "val_mean") if k in best}
    summary = {
        "model": name, "family": family, "selected": selected,
        "val_accuracy": {t: best[f"val_{t}"] for t in TRAITS},
        "filled_with_train_mean": {s: [c for c, f in zip(splits[s].ids, filled[s]) if f] for s in SPLITS},
        "clips": {s: len(splits[s]) for s in SPLITS}, "settings": asdict(settings), "options": builder,
        **extra,
    }  # fmt: skip
    models.save_checkpoint(
        outputs.checkpoint, model, family, builder,
        train_mean=metrics.train_mean(splits["train"].labels).tolist(),
        summary=json.loads(json.dumps(summary, default=str)), **fills,
    )  # fmt: skip
    outputs.summary.write_text(json.dumps(summary, indent=2, default=str))
    return summary
