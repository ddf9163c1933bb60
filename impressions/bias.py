"""The bias audit: whom a model over- or under-rates, and which group differences the labels already hold.

Per group of a person attribute (gender, age group, ethnicity, and the intersections gender x
ethnicity and gender x age group):

- **label level** (kind ``label``): the group's mean label, per trait and ``interview``;
- **signed bias** (kind ``model``): the group's mean prediction minus its mean label, per trait. A
  model that reproduces a label difference exactly has signed bias 0 in every group; one that widens
  it has a positive bias in the group the labels already rate higher.

Each comes with a 95% percentile bootstrap interval that resamples people (``youtube_id``) within
the group, all clips of a drawn person together. The **group gap** of an attribute and trait is the
difference between the highest and the lowest tested group (point estimates): its interval is the
bootstrap of that pair's difference (people resampled within each group), its p-value a permutation
test that shuffles group membership across people (a person keeps all their clips; every group
keeps its number of people), with the range (max - min) over the tested groups as its statistic, so
that choosing the pair is part of the test. p-values are corrected across traits x attributes, one
family per model and split and one for the labels: Holm (family-wise error) and Benjamini-Hochberg
(false discovery rate).

A person's group is the value most of their clips carry (FI gives age groups per clip); a clip with
no value counts as ``unknown``, which is shown but never tested. A group with fewer than
``min_people`` people is shown as ``too few``: counts only, no interval, no test.

Everything runs on per-person sums (people x traits): replicates cost replicates x people of a
group, never clips. A base module beside `impressions.metrics`: the report and the command line use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from impressions.schemas import DEMOGRAPHICS, LABELS, TRAITS, frame

INTERSECTIONS = (("gender", "ethnicity"), ("gender", "age_group"))
"""Pairs of `DEMOGRAPHICS` crossed into one attribute (cells named ``female / Asian``)."""

UNKNOWN = "unknown"
TOO_FEW = "too few"
ALL = "all"
"""The attribute and group of the rows over every clip of the split (the reference level)."""


def attribute_name(attribute: str | Sequence[str]) -> str:
    """``gender`` or ``gender x ethnicity``."""
    return attribute if isinstance(attribute, str) else " x ".join(attribute)


@dataclass
class People:
    """Per person: the sum of a clip value per column, their clip count and their group."""

    ids: np.ndarray  # (people,)
    sums: np.ndarray  # (people, columns)
    counts: np.ndarray  # (people,)
    groups: np.ndarray  # (people,) group names; UNKNOWN when no clip has a value
    mixed: int  # people whose clips carry more than one known value

    def means(self, mask: np.ndarray | None = None) -> np.ndarray:
        """Clip-weighted mean per column over the people in `mask` (all by default)."""
        keep = slice(None) if mask is None else mask
        return self.sums[keep].sum(axis=0) / self.counts[keep].sum()


def people(values, person: Sequence, group: Sequence) -> People:
    """Aggregate per-clip `values` (clips x columns) by person; each person's group is the value most of
    their clips carry (ties: the first in sorted order), `None` counting as unknown."""
    values = np.asarray(values, dtype=np.float64)
    values = values[:, None] if values.ndim == 1 else values
    if not np.isfinite(values).all():
        raise ValueError("bias audit: labels and predictions must be finite (fill missing predictions first)")
    ids, index = np.unique(np.asarray(person, dtype=str), return_inverse=True)
    sums = np.zeros((len(ids), values.shape[1]))
    np.add.at(sums, index, values)
    counts = np.bincount(index, minlength=len(ids)).astype(np.float64)
    names = np.array([UNKNOWN if g is None else str(g) for g in group], dtype=object)
    known = names != UNKNOWN
    labels, code = np.unique(names[known].astype(str), return_inverse=True)
    tally = np.zeros((len(ids), len(labels)), dtype=np.int64)
    np.add.at(tally, (index[known], code), 1)
    has = tally.sum(axis=1) > 0
    groups = np.full(len(ids), UNKNOWN, dtype=object)
    if len(labels):
        groups[has] = labels[tally[has].argmax(axis=1)]
    return People(ids, sums, counts, groups, int(((tally > 0).sum(axis=1) > 1).sum()))


def _means(weights: np.ndarray, sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Clip-weighted means per replicate: weights (replicates x people) -> (replicates x columns)."""
    return (weights @ sums) / (weights @ counts)[:, None]


def bootstrap_means(sums, counts, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Replicates (n_boot x columns) of the clip-weighted mean, drawing people with replacement."""
    k = len(counts)
    drawn = rng.integers(0, k, size=(n_boot, k)) + k * np.arange(n_boot)[:, None]
    weights = np.bincount(drawn.ravel(), minlength=n_boot * k).reshape(n_boot, k).astype(np.float64)
    return _means(weights, np.asarray(sums), np.asarray(counts))


CHUNK_CELLS = 4_000_000
"""Permutations x groups x people per chunk of the permutation test."""


def shuffled_groups(codes: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` permutations of the per-person group codes (n x people): membership shuffled across people,
    so a person's clips move together and each group keeps its number of people."""
    return rng.permuted(np.broadcast_to(codes, (n, len(codes))), axis=1)


def _group_means(sums: np.ndarray, counts: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Clip-weighted group means for each row of `codes` (rows x people): (rows, groups, columns).
    One product of a (rows x groups) x people indicator with the sums serves every column at once."""
    rows, n = codes.shape
    member = (codes[:, None, :] == np.arange(n_groups)[None, :, None]).reshape(rows * n_groups, n)
    member = member.astype(np.float64)
    return ((member @ sums) / (member @ counts)[:, None]).reshape(rows, n_groups, sums.shape[1])


def group_range(sums, counts, codes, n_groups: int) -> np.ndarray:
    """Per column, max - min over groups of the clip-weighted group mean (`codes`: a group per person)."""
    means = _group_means(
        np.asarray(sums, float), np.asarray(counts, float), np.asarray(codes)[None], n_groups
    )[0]
    return means.max(axis=0) - means.min(axis=0)


def permutation_p(sums, counts, codes, n_perm: int, rng: np.random.Generator) -> np.ndarray:
    """Per column, the permutation p-value of the group range: ``(1 + #{range* >= range}) / (1 + n_perm)``,
    shuffling group membership across people (`shuffled_groups`). Chunked: the indicator of a chunk
    of permutations holds at most `CHUNK_CELLS` values (32 MB), whatever the number of people."""
    sums, counts, codes = np.asarray(sums, float), np.asarray(counts, float), np.asarray(codes)
    n_groups = int(codes.max()) + 1
    chunk = max(1, CHUNK_CELLS // (n_groups * len(codes)))
    observed = group_range(sums, counts, codes, n_groups)
    tol = 1e-12 * max(1.0, float(np.abs(observed).max()))  # ties of the identity permutation count
    exceed = np.zeros(sums.shape[1])
    done = 0
    while done < n_perm:
        m = min(chunk, n_perm - done)
        means = _group_means(sums, counts, shuffled_groups(codes, m, rng), n_groups)
        exceed += ((means.max(axis=1) - means.min(axis=1)) >= observed - tol).sum(axis=0)
        done += m
    return (1 + exceed) / (1 + n_perm)


def _adjusted(p, adjust) -> np.ndarray:
    """`adjust` (sorted finite p-values -> adjusted ones) applied to the finite entries of `p`; NaN
    (untested) entries stay NaN and do not count in the family."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if len(ok):
        order = ok[np.argsort(p[ok], kind="stable")]
        out[order] = np.minimum(adjust(p[order]), 1.0)
    return out


def holm(p) -> np.ndarray:
    """Holm's step-down adjusted p-values; NaN (untested) entries stay NaN and do not count."""
    return _adjusted(p, lambda s: np.maximum.accumulate((len(s) - np.arange(len(s))) * s))


def benjamini_hochberg(p) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values); NaN entries stay NaN and do not count."""
    return _adjusted(p, lambda s: np.minimum.accumulate((s * len(s) / np.arange(1, len(s) + 1))[::-1])[::-1])


@dataclass
class Audit:
    """The per-group rows and the per-(attribute, column) gap rows of one attribute."""

    groups: list[dict]
    gaps: list[dict]


def audit_attribute(
    pp: People, columns: Sequence[str], min_people: int, n_boot: int = 1000,
    n_perm: int = 2000, seed: int = 0, level: float = 0.95,
) -> Audit:  # fmt: skip
    """Per-group estimates with intervals and the gap between the highest and lowest tested group.

    The same `seed` gives the same resampled people to every model of one attribute (paired draws)."""
    rng = np.random.default_rng(seed)
    tail = (1 - level) / 2 * 100
    names = sorted(set(pp.groups.tolist()) - {UNKNOWN}) + ([UNKNOWN] if UNKNOWN in pp.groups else [])
    rows, reps, values = [], {}, {}
    for name in names:
        mask = pp.groups == name
        n_people = int(mask.sum())
        tested = name != UNKNOWN and n_people >= max(min_people, 2)
        value = pp.means(mask)
        low = high = np.full(len(columns), np.nan)
        if tested:
            values[name] = value
            if n_boot > 0:
                reps[name] = bootstrap_means(pp.sums[mask], pp.counts[mask], n_boot, rng)
                low, high = np.percentile(reps[name], [tail, 100 - tail], axis=0)
        for j, col in enumerate(columns):
            rows.append({"group": name, "trait": col, "value": float(value[j]), "ci_low": float(low[j]),
                         "ci_high": float(high[j]), "people": n_people, "clips": int(pp.counts[mask].sum()),
                         "tested": tested})  # fmt: skip
    tested_names = list(values)
    in_test = np.isin(pp.groups, tested_names)
    gaps = []
    if len(tested_names) >= 2:
        codes = np.searchsorted(np.array(tested_names), pp.groups[in_test].astype(str))
        p = permutation_p(pp.sums[in_test], pp.counts[in_test], codes, n_perm, rng) if n_perm > 0 else None
    for j, col in enumerate(columns):
        row = {"trait": col, "high": None, "low": None, "gap": np.nan, "ci_low": np.nan,
               "ci_high": np.nan, "p_value": np.nan, "groups_tested": len(tested_names),
               "people": int(in_test.sum())}  # fmt: skip
        if len(tested_names) >= 2:
            by = np.array([values[n][j] for n in tested_names])
            order = np.argsort(by, kind="stable")  # all equal: still two distinct groups
            high, low = tested_names[int(order[-1])], tested_names[int(order[0])]
            row.update(high=high, low=low, gap=float(by.max() - by.min()))
            if reps:
                diff = reps[high][:, j] - reps[low][:, j]
                row["ci_low"], row["ci_high"] = (float(v) for v in np.percentile(diff, [tail, 100 - tail]))
            if p is not None:
                row["p_value"] = float(p[j])
        gaps.append(row)
    return Audit(rows, gaps)


def _group_column(clips, attribute):
    """The clips' group under `attribute` (a column, or a tuple crossed as ``a / b``); None: unknown."""
    import polars as pl

    parts = [attribute] if isinstance(attribute, str) else list(attribute)
    cols = [pl.col(c).cast(pl.String) for c in parts]
    if len(cols) == 1:
        return clips.select(cols[0].alias("g"))["g"].to_list()
    return clips.select(pl.concat_str(cols, separator=" / ").alias("g"))["g"].to_list()  # null if any null


def _attributes(clips, attributes, intersections) -> list:
    have = [a for a in attributes if a in clips.columns and clips[a].drop_nulls().len()]
    return have + [pair for pair in intersections if all(a in have for a in pair)]


def _audit_values(clips, values, columns, split, attrs, min_people, n_boot, n_perm, seed):
    """Group and (uncorrected) gap rows of every attribute for per-clip `values` of the `clips` frame
    (one row per clip, same order); `columns` names each value column as (kind, model, trait). Columns
    on the same clips go through one call: the same resampled and shuffled people serve them all."""
    person = (
        clips["youtube_id"].fill_null(clips["clip_id"]) if "youtube_id" in clips.columns else clips["clip_id"]
    )
    person = person.to_list()
    everyone = people(values, person, [ALL] * len(person))
    found = [(ALL, audit_attribute(everyone, columns, min_people=2, n_boot=n_boot, n_perm=0, seed=seed))]
    for attr in attrs:
        res = audit_attribute(people(values, person, _group_column(clips, attr)), columns,
                              min_people=min_people, n_boot=n_boot, n_perm=n_perm, seed=seed)  # fmt: skip
        found.append((attribute_name(attr), res))

    def row(name, r):
        kind, model, trait = r["trait"]
        return {"split": split, "kind": kind, "model": model, "attribute": name, **r, "trait": trait}

    groups = [row(name, r) for name, res in found for r in res.groups]
    gaps = [row(name, r) for name, res in found[1:] for r in res.gaps]
    return groups, gaps


def _corrected(gaps: list[dict]) -> list[dict]:
    """`gaps` with Holm and BH p-values, one family per (kind, model): its traits x attributes."""
    families: dict[tuple, list[int]] = {}
    for i, r in enumerate(gaps):
        families.setdefault((r["kind"], r["model"]), []).append(i)
    out = [dict(r) for r in gaps]
    for members in families.values():
        p = np.array([gaps[i]["p_value"] for i in members], dtype=np.float64)
        for i, h, b in zip(members, holm(p), benjamini_hochberg(p)):
            out[i].update(p_holm=float(h), p_bh=float(b))
    return out


def audit(
    clips, predictions, min_people: int, split: str = "test", n_boot: int = 1000,
    n_perm: int = 2000, seed: int = 0, attributes: Sequence[str] = DEMOGRAPHICS,
    intersections: Sequence[tuple[str, str]] = INTERSECTIONS,
):  # fmt: skip
    """(groups, gaps) tables (`schemas.OUTPUTS["bias_groups"]`, `["bias_gaps"]`) of one split.

    `clips`: the clips table with the models' split; `predictions`: a predictions table holding every
    model (column ``model``; one appears per distinct value, so a new family needs no edit here). The
    labels' rows (kind ``label``, model ``labels``) cover every labelled clip of the split and each
    label with a value on all of them (the five traits, and ``interview`` where given); the models'
    rows cover their predicted traits on the clips they have a prediction for."""
    import polars as pl

    part = clips.filter(pl.col("split") == split).drop_nulls(list(TRAITS)).sort("clip_id")
    if not part.height:
        return frame("bias_groups", []), frame("bias_gaps", [])
    attrs = _attributes(part, attributes, intersections)
    labels = [c for c in LABELS if c in part.columns and part[c].null_count() == 0]
    # Every set of clips with its value columns: the labels and each model predicting all of the
    # split's clips share one (the usual case: models fill clips without input), others get their own.
    sets = {
        tuple(part["clip_id"]): (
            part,
            [part.select(labels).to_numpy()],
            [("label", "labels", c) for c in labels],
        )
    }
    preds = predictions.filter(pl.col("split") == split) if "split" in predictions.columns else predictions
    for model in dict.fromkeys(preds["model"].to_list()):
        mine = preds.filter(pl.col("model") == model).drop("split", strict=False)
        joined = mine.rename({t: f"pred_{t}" for t in TRAITS}).join(part, on="clip_id", how="inner")
        joined = joined.drop_nulls([f"pred_{t}" for t in TRAITS]).sort("clip_id")
        if not joined.height:
            continue
        error = joined.select([f"pred_{t}" for t in TRAITS]).to_numpy() - joined.select(TRAITS).to_numpy()
        entry = sets.setdefault(tuple(joined["clip_id"]), (joined, [], []))
        entry[1].append(error)
        entry[2].extend(("model", model, t) for t in TRAITS)
    groups, gaps = [], []
    for rows, values, columns in sets.values():
        g, p = _audit_values(rows, np.hstack(values), columns, split, attrs, min_people, n_boot, n_perm, seed)
        groups += g
        gaps += p
    order = {
        ("label", "labels"): -1,
        **{("model", m): i for i, m in enumerate(dict.fromkeys(preds["model"]))},
    }
    key = lambda r: (order[(r["kind"], r["model"])],)  # noqa: E731
    return frame("bias_groups", sorted(groups, key=key)), frame(
        "bias_gaps", sorted(_corrected(gaps), key=key)
    )


def mixed_people(clips, split: str = "test", attributes: Sequence[str] = DEMOGRAPHICS) -> dict[str, int]:
    """Per attribute, the people of `split` whose clips carry more than one value (given their most
    frequent one): what the report notes under the tables."""
    import polars as pl

    part = clips.filter(pl.col("split") == split)
    person = part["youtube_id"].fill_null(part["clip_id"]).to_list() if "youtube_id" in part.columns else None
    if person is None:
        return {}
    out = {}
    for attr in _attributes(part, attributes, ()):
        out[attr] = people(np.zeros(part.height), person, _group_column(part, attr)).mixed
    return out
