"""Evaluation metrics for Big-Five regression, with bootstrap confidence intervals.

The ChaLearn First Impressions challenge scores a trait by its *accuracy*, ``1 - mean |y - p|`` over
clips (labels and predictions in 0..1), and a model by the mean accuracy over the five traits. Beside
it: Pearson's r (PCC), Lin's concordance correlation coefficient (CCC) and R2 (``1 - SSres / SStot``
around the evaluated clips' own mean, so predicting the test mean scores 0 and the train mean a
little less).

Confidence intervals are percentile bootstrap intervals. Every metric is written in terms of weighted
sums, so a bootstrap replicate is a vector of per-clip resampling counts and all replicates are one
matrix product (`counts @ values`): no Python loop over replicates and no (replicates x clips x traits)
array. Passing ``groups`` (e.g. YouTube ids) resamples whole groups instead of clips (a cluster
bootstrap): clips of one person are not independent, and FI's test split shares 1,201 of its 1,455
people with training, so per-clip intervals are too narrow.

A base module at the package's top level, below every stage: training selects epochs and scores the
held-out fusion with it, the analyses score their ablations with it and the report prints it, so it
imports no stage package (the import contracts in pyproject.toml check that).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from impressions.schemas import EMOTIONS, TRAITS

METRICS = ("accuracy", "pcc", "ccc", "r2")
"""Every metric `evaluate` reports; `accuracy` (1 - MAE) is the challenge metric."""

PAPER_ORDER = ("openness", "conscientiousness", "extraversion", "agreeableness", "neuroticism")
"""O C E A N: the column order of the published FI result tables."""

SHORT = {t: t[0].upper() for t in TRAITS}


def _as_2d(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a[:, None] if a.ndim == 1 else a


def _check(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y, p = _as_2d(y_true), _as_2d(y_pred)
    if y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and predictions {p.shape} differ in shape")
    if y.shape[0] == 0:
        raise ValueError("no clips to evaluate")
    if not (np.isfinite(y).all() and np.isfinite(p).all()):
        raise ValueError("labels and predictions must be finite (fill missing predictions first)")
    return y, p


def _weighted(weights: np.ndarray, y: np.ndarray, p: np.ndarray) -> dict[str, np.ndarray]:
    """Every metric for each row of `weights` (replicates x clips): arrays of shape (replicates, traits)."""
    total = weights.sum(axis=1, keepdims=True)

    def mean(values):
        return (weights @ values) / total

    my, mp = mean(y), mean(p)
    vy = np.maximum(mean(y * y) - my**2, 0.0)
    vp = np.maximum(mean(p * p) - mp**2, 0.0)
    cov = mean(y * p) - my * mp
    mse = mean((y - p) ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        # A constant prediction (the baseline) has no correlation: NaN, not a number that looks like one.
        pcc = np.where((vy > 0) & (vp > 0), cov / np.sqrt(vy * vp), np.nan)
        ccc_den = vy + vp + (my - mp) ** 2
        ccc = np.where(ccc_den > 0, 2 * cov / ccc_den, np.nan)
        r2 = np.where(vy > 0, 1 - mse / vy, np.nan)
    return {"accuracy": 1 - mean(np.abs(y - p)), "pcc": pcc, "ccc": ccc, "r2": r2}


def scores(y_true, y_pred) -> dict[str, np.ndarray]:
    """Each metric per trait (column): ``{metric: array of shape (traits,)}``."""
    y, p = _check(y_true, y_pred)
    return {k: v[0] for k, v in _weighted(np.ones((1, y.shape[0])), y, p).items()}


def accuracy(y_true, y_pred) -> np.ndarray:
    """The challenge metric per trait: 1 - mean absolute error."""
    y, p = _check(y_true, y_pred)
    return 1 - np.abs(y - p).mean(axis=0)


def pcc(y_true, y_pred) -> np.ndarray:
    return scores(y_true, y_pred)["pcc"]


def ccc(y_true, y_pred) -> np.ndarray:
    return scores(y_true, y_pred)["ccc"]


def r2(y_true, y_pred) -> np.ndarray:
    return scores(y_true, y_pred)["r2"]


def train_mean(train_labels) -> np.ndarray:
    """Per-trait mean of the training labels (clips x traits), in their own dtype: the value the
    train-mean baseline predicts and training fills clips without input with."""
    return np.asarray(train_labels).mean(axis=0)


def train_mean_baseline(train_labels, n: int) -> np.ndarray:
    """Predict the training mean of every trait for `n` clips (the baseline every FI paper reports)."""
    train = _as_2d(train_labels)
    return np.broadcast_to(train_mean(train), (n, train.shape[1])).copy()


def bootstrap_weights(n: int, n_boot: int, seed: int, groups: Sequence | None = None) -> np.ndarray:
    """Resampling counts per clip, shape (n_boot, n): clips (or whole groups) drawn with replacement."""
    rng = np.random.default_rng(seed)
    if groups is None:
        return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)
    _, index = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    n_groups = int(index.max()) + 1
    drawn = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n_boot)
    return drawn[:, index].astype(np.float64)


@dataclass
class Estimate:
    """A metric per trait plus the trait mean, with its bootstrap interval."""

    value: np.ndarray  # (traits + 1,): per trait, then the mean over traits
    low: np.ndarray
    high: np.ndarray


def _with_mean(per_trait: np.ndarray) -> np.ndarray:
    return np.concatenate([per_trait, per_trait.mean(axis=-1, keepdims=True)], axis=-1)


def bootstrap(
    y_true, y_pred, n_boot: int = 2000, seed: int = 0, level: float = 0.95, groups: Sequence | None = None
) -> dict[str, Estimate]:
    """Every metric per trait and its trait mean, with percentile bootstrap intervals at `level`."""
    y, p = _check(y_true, y_pred)
    point = {k: _with_mean(v) for k, v in scores(y, p).items()}
    if n_boot <= 0:
        return {k: Estimate(v, np.full_like(v, np.nan), np.full_like(v, np.nan)) for k, v in point.items()}
    reps = _weighted(bootstrap_weights(y.shape[0], n_boot, seed, groups), y, p)
    tail = (1 - level) / 2 * 100
    out = {}
    for k, v in reps.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (a constant prediction's PCC)
            low, high = np.nanpercentile(_with_mean(v), [tail, 100 - tail], axis=0)
        out[k] = Estimate(point[k], low, high)
    return out


@dataclass
class Comparison:
    """Model A minus model B on the mean accuracy over traits, on the same clips."""

    delta: float
    low: float
    high: float
    p_value: float  # two-sided: how often resampling sees no difference or the other sign


def paired_bootstrap(
    y_true, pred_a, pred_b, n_boot: int = 2000, seed: int = 0, level: float = 0.95,
    groups: Sequence | None = None,
) -> Comparison:  # fmt: skip
    """Paired bootstrap test of mean accuracy, A against B: both are scored on every replicate's clips.

    ``p = min(1, 2 * min(P(delta* <= 0), P(delta* >= 0)))`` with the usual +1 correction, so it is
    never 0 from a finite number of replicates.
    """
    y, a = _check(y_true, pred_a)
    _, b = _check(y_true, pred_b)
    # Mean accuracy difference per clip is linear in the clip weights: one matrix product.
    per_clip = (np.abs(y - b) - np.abs(y - a)).mean(axis=1)
    delta = float(per_clip.mean())
    w = bootstrap_weights(y.shape[0], n_boot, seed, groups)
    reps = (w @ per_clip) / w.sum(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(reps, [tail, 100 - tail])
    one_sided = min((reps <= 0).sum(), (reps >= 0).sum())
    p = min(1.0, 2 * (one_sided + 1) / (n_boot + 1))
    return Comparison(delta, float(low), float(high), p)


def evaluate(
    y_true, y_pred, traits: Sequence[str] = TRAITS, n_boot: int = 2000, seed: int = 0,
    groups: Sequence | None = None, **labels,
):  # fmt: skip
    """A long table: one row per metric and trait (plus `mean`), with value, ci_low, ci_high and n.

    Extra keyword arguments become constant columns (e.g. ``model="face", split="test"``).
    """
    import polars as pl

    y, _ = _check(y_true, y_pred)
    estimates = bootstrap(y_true, y_pred, n_boot=n_boot, seed=seed, groups=groups)
    names = [*traits, "mean"]
    rows = [
        {**labels, "metric": metric, "trait": trait, "value": float(est.value[i]),
         "ci_low": float(est.low[i]), "ci_high": float(est.high[i]), "n": int(y.shape[0])}
        for metric, est in estimates.items() for i, trait in enumerate(names)
    ]  # fmt: skip
    return pl.DataFrame(rows)


def labels_and_predictions(predictions, clips, traits: Sequence[str] = TRAITS):
    """Join a predictions table onto the clips table by clip_id: (labels, predictions, joined frame)."""
    import polars as pl

    pred_cols = {t: f"pred_{t}" for t in traits}
    if "split" in predictions.columns:
        clips = clips.drop("split", strict=False)
    joined = predictions.rename(pred_cols).join(clips, on="clip_id", how="inner")
    joined = joined.filter(pl.all_horizontal(pl.col(list(traits)).is_not_null()))
    return joined.select(traits).to_numpy(), joined.select(list(pred_cols.values())).to_numpy(), joined


def breakdown(
    predictions, clips, by: str, traits: Sequence[str] = TRAITS, n_boot: int = 1000, seed: int = 0,
    metric: str = "accuracy", cluster: str | None = "youtube_id",
):  # fmt: skip
    """`metric` per group of column `by` (gender, age_group, ethnicity, dominant_emotion...), with CIs.

    Clips whose group is missing form the group ``"unknown"``. Each group is bootstrapped on its own,
    resampling values of column `cluster` (people) when the clips table has it, else clips.
    """
    import polars as pl

    _, _, joined = labels_and_predictions(predictions, clips, traits)
    if by not in joined.columns:
        raise KeyError(f"no column {by!r} to break down by (columns: {joined.columns})")
    joined = joined.with_columns(pl.col(by).cast(pl.String).fill_null("unknown"))
    parts = []
    for (group,), part in joined.group_by(by, maintain_order=True):
        y = part.select(traits).to_numpy()
        p = part.select([f"pred_{t}" for t in traits]).to_numpy()
        groups = part[cluster].fill_null(part["clip_id"]).to_list() if cluster in part.columns else None
        table = evaluate(y, p, traits, n_boot=n_boot, seed=seed, groups=groups, by=by, group=group)
        parts.append(table.filter(pl.col("metric") == metric))
    if not parts:
        return pl.DataFrame()
    return pl.concat(parts).sort("group", "trait")


def dominant_emotion(expressions):
    """Per clip, the emotion with the highest mean probability over its face frames."""
    import polars as pl

    means = expressions.group_by("clip_id").agg([pl.col(e).mean() for e in EMOTIONS]).sort("clip_id")
    if means.height == 0:
        return pl.DataFrame(schema={"clip_id": pl.String, "dominant_emotion": pl.String})
    best = np.asarray(EMOTIONS)[means.select(EMOTIONS).to_numpy().argmax(axis=1)]
    return pl.DataFrame({"clip_id": means["clip_id"], "dominant_emotion": best})


def wide(table, metric: str = "accuracy", order: Sequence[str] = PAPER_ORDER, digits: int = 4):
    """One row per model (and split) in the papers' layout: O C E A N mean, each ``value [low, high]``."""
    import polars as pl

    keys = [c for c in table.columns if c not in ("metric", "trait", "value", "ci_low", "ci_high", "n")]
    rows = []
    for key, part in table.filter(pl.col("metric") == metric).group_by(keys, maintain_order=True):
        row = dict(zip(keys, key))
        by_trait = {r["trait"]: r for r in part.iter_rows(named=True)}
        for trait in [*order, "mean"]:
            r = by_trait[trait]
            name = SHORT.get(trait, trait)
            row[name] = _fmt(r["value"], r["ci_low"], r["ci_high"], digits)
        rows.append(row)
    return pl.DataFrame(rows)


def _fmt(value: float, low: float, high: float, digits: int) -> str:
    if value is None or not np.isfinite(value):
        return "n/a"
    if low is None or not np.isfinite(low):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
