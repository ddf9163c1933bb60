"""The report's bias section and the tables `impressions bias` prints: one figure, then tables.

The statistics are `impressions.bias`'s; this module lays them out. The figure shows, per trait
(rows) and attribute (columns), every model's signed bias per tested group with its 95% interval,
side by side, over a grey bar per group: the labels' own difference, group mean label minus the
mean label of the split, the reference a model that only reproduces the labels would show as signed
bias 0. `tables` gives the same rows to the report and to the command line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from impressions import bias, metrics
from impressions.schemas import TRAITS

ORDER = (*metrics.PAPER_ORDER, "interview")


def _fmt(value, low, high, digits: int = 3, sign: str = "+") -> str:
    """``value [low, high]``; `sign` "+" writes signed numbers (differences), "" plain ones (means)."""
    if value is None or not np.isfinite(value):
        return "n/a"
    spec = f"{sign}.{digits}f"
    if low is None or not np.isfinite(low):
        return f"{value:{spec}}"
    return f"{value:{spec}} [{low:{spec}}, {high:{spec}}]"


def _p(value) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.3g}"


def models(groups) -> list[str]:
    """The models with rows, in the order the report lists them."""
    import polars as pl

    return list(dict.fromkeys(groups.filter(pl.col("kind") == "model")["model"].to_list()))


def attributes(groups) -> list[str]:
    """Attributes with rows (singles first, then intersections), without the overall rows."""
    names = [a for a in dict.fromkeys(groups["attribute"].to_list()) if a != bias.ALL]
    return sorted(names, key=lambda a: (" x " in a, names.index(a)))


def group_rows(groups, attribute: str):
    """(header, rows): per group and label, people, clips, the mean label and each model's signed bias."""
    import polars as pl

    part = groups.filter(pl.col("attribute") == attribute)
    names = models(groups)
    header = ["group", "trait", "people", "clips", "mean label [95% CI]",
              *[f"{m}: signed bias [95% CI]" for m in names]]  # fmt: skip
    cells = {(r["kind"], r["model"], r["group"], r["trait"]): r for r in part.iter_rows(named=True)}
    group_names = list(dict.fromkeys(part["group"].to_list()))
    traits = [t for t in ORDER if t in set(part["trait"].to_list())]
    rows = []
    for group in group_names:
        for trait in traits:
            label = cells.get(("label", "labels", group, trait))
            if label is None:
                continue
            row = [group, trait, label["people"], label["clips"], _cell(label)]
            row += [_cell(cells[("model", m, group, trait)]) if ("model", m, group, trait) in cells else ""
                    for m in names]  # fmt: skip
            rows.append(row)
    return header, rows


def _cell(r) -> str:
    sign = "" if r["kind"] == "label" else "+"
    if r["tested"]:
        return _fmt(r["value"], r["ci_low"], r["ci_high"], sign=sign)
    if r["group"] == bias.UNKNOWN:
        return f"{_fmt(r['value'], None, None, sign=sign)} (unknown: not tested)"
    return bias.TOO_FEW


def gap_rows(gaps):
    """(header, rows): per attribute and label, the labels' gap and each model's gap with their tests."""
    names = ["labels", *[m for m in dict.fromkeys(gaps["model"].to_list()) if m != "labels"]]
    header = ["attribute", "trait", *[f"{m}: high - low, gap [95% CI]; p, Holm, BH" for m in names]]
    cells = {(r["model"], r["attribute"], r["trait"]): r for r in gaps.iter_rows(named=True)}
    rows = []
    for attribute in dict.fromkeys(gaps["attribute"].to_list()):
        for trait in ORDER:
            if ("labels", attribute, trait) not in cells:
                continue
            row = [attribute, trait]
            for m in names:
                r = cells.get((m, attribute, trait))
                row.append(_gap_cell(r) if r else "")
            rows.append(row)
    return header, rows


def _gap_cell(r) -> str:
    if r["groups_tested"] < 2:
        return f"{bias.TOO_FEW} ({r['groups_tested']} group(s) with enough people)"
    return (
        f"{r['high']} - {r['low']}: {_fmt(r['gap'], r['ci_low'], r['ci_high'])}; "
        f"p {_p(r['p_value'])}, Holm {_p(r['p_holm'])}, BH {_p(r['p_bh'])}"
    )


def significant(gaps, split: str, alpha: float = 0.05) -> list[str]:
    """One line per source (the labels, then each model): its gaps with a Holm-corrected p below
    `alpha`, so a reader sees which modality carries which gap and whether the labels already do."""
    import polars as pl

    part = gaps.filter(pl.col("split") == split)
    lines = []
    for model in dict.fromkeys(part["model"].to_list()):
        hits = part.filter((pl.col("model") == model) & (pl.col("p_holm") < alpha))
        found = [
            f"{r['attribute']} {r['trait']} ({r['high']} - {r['low']} {r['gap']:+.3f}, "
            f"Holm p {_p(r['p_holm'])})"
            for r in hits.iter_rows(named=True)
        ]
        lines.append(f"{model}: " + ("; ".join(found) if found else f"no gap with Holm p < {alpha}"))
    return lines


def tables(groups, gaps, split: str) -> list[tuple[str, list[str], list[list]]]:
    """(title, header, rows) of every table of one split: the gaps, then signed bias per attribute."""
    import polars as pl

    groups = groups.filter(pl.col("split") == split)
    gaps = gaps.filter(pl.col("split") == split)
    if not groups.height:
        return []
    out = [(f"Group gaps ({split}): labels and every model", *gap_rows(gaps))] if gaps.height else []
    for attribute in [bias.ALL, *attributes(groups)]:
        title = "All clips" if attribute == bias.ALL else f"By {attribute.replace('_', ' ')}"
        out.append((f"{title} ({split}): mean label and signed bias (prediction - label)",
                    *group_rows(groups, attribute)))  # fmt: skip
    return out


def figure(groups, path: str | Path, split: str, split_label: str) -> Path | None:
    """The signed-bias figure of one split (see the module docstring) at `path`; None when no group is
    tested (the file then says so, so that the workflow's output always exists)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import polars as pl

    from impressions import figures

    part = groups.filter((pl.col("split") == split) & pl.col("tested"))
    singles = [a for a in attributes(part) if " x " not in a]
    names = models(part)
    if not singles or not names:
        fig, ax = plt.subplots(figsize=(5, 1))
        ax.axis("off")
        ax.text(0.5, 0.5, f"bias audit ({split}): no group with enough people to test", ha="center")
        figures.save(fig, path)
        return None
    overall = {r["trait"]: r["value"] for r in part.filter(
        (pl.col("attribute") == bias.ALL) & (pl.col("kind") == "label")).iter_rows(named=True)}  # fmt: skip
    traits = [t for t in metrics.PAPER_ORDER if t in TRAITS]
    size = (3.6 * len(singles) + 1, 1.9 * len(traits) + 1)
    fig, axes = plt.subplots(len(traits), len(singles), figsize=size, squeeze=False, sharey="row")
    colours = plt.get_cmap("tab10")
    width = 0.8 / len(names)
    for i, trait in enumerate(traits):
        for j, attribute in enumerate(singles):
            ax = axes[i][j]
            cells = part.filter((pl.col("attribute") == attribute) & (pl.col("trait") == trait))
            group_names = sorted(set(cells["group"].to_list()))
            labels = {
                r["group"]: r["value"] for r in cells.filter(pl.col("kind") == "label").iter_rows(named=True)
            }
            for x, g in enumerate(group_names):
                if g in labels:
                    ax.bar(x, labels[g] - overall[trait], width=0.9, color="0.85",
                           label="labels: group mean - all" if x == 0 else None)  # fmt: skip
            for k, m in enumerate(names):
                rows = {r["group"]: r for r in cells.filter(pl.col("model") == m).iter_rows(named=True)}
                xs = [x for x, g in enumerate(group_names) if g in rows]
                shown = [rows[group_names[x]] for x in xs]
                vals = np.array([r["value"] for r in shown])
                err = np.array([[r["value"] - r["ci_low"], r["ci_high"] - r["value"]] for r in shown])
                offsets = np.array(xs) - 0.4 + width * (k + 0.5)
                ax.errorbar(offsets, vals, yerr=err.T if len(xs) else None, fmt="o", ms=3, capsize=2,
                            color=colours(k % 10), label=m)  # fmt: skip
            ax.axhline(0, color="k", lw=0.6)
            ax.set_xticks(range(len(group_names)), group_names, fontsize=7, rotation=20)
            ax.tick_params(axis="y", labelsize=7)
            if i == 0:
                ax.set_title(attribute.replace("_", " "), fontsize=9)
            if j == 0:
                ax.set_ylabel(trait, fontsize=8)
    axes[0][0].legend(fontsize=6, loc="best")
    title = f"Signed bias (prediction - label) per group, 95% intervals over people ({split}, {split_label})"
    return figures.save(fig, path, title=title)


def section(doc, groups, gaps, figure_path: Path | None, split: str, split_note: str, settings: dict,
            mixed: dict[str, int]) -> None:  # fmt: skip
    """The report's bias section for one split: what is computed, the figure, then the tables."""
    doc.section(
        f"Bias audit: whom the models over- and under-rate ({split})",
        "Per group of gender, age group and ethnicity (and gender x ethnicity, gender x age group): the "
        "mean label, and every model's signed bias, mean prediction minus mean label (positive: the model "
        "rates the group higher than its labels do). A model that reproduces a label difference has "
        "signed bias 0 in every group; the label gaps are a finding about the labels, not the model. "
        "Brackets: 95% bootstrap intervals resampling people (YouTube ids) within each group. A group "
        "gap is the highest minus the lowest tested group; its p-value is a permutation test "
        f"({settings['permutations']} shuffles of group membership across people, each keeping all "
        "their clips), corrected across traits x attributes per model and for the labels: Holm "
        "(family-wise) and BH (Benjamini-Hochberg, false discovery rate). Groups with fewer than "
        f"{settings['min_people']} people (bias.min_people) are 'too few': not tested; 'unknown' "
        "(no value) is shown but never tested. Models predict the five traits; interview is a label "
        f"only. Split: {split_note}; these figures stand on its {split} clips.",
    )
    if not groups.height:
        doc.paragraph(f"No labelled {split} clips: nothing to audit.")
        return
    if figure_path is not None:
        caption = (f"Signed bias per group (dots, 95% intervals over people), models side by side; grey "
                   f"bars: the labels' own difference, group mean label minus the {split} mean label. "
                   f"Tested groups only ({split} split; {split_note}).")  # fmt: skip
        doc.figure(figure_path, figure_path.name, caption, alt="signed bias per group")
    elif set(groups["attribute"]) == {bias.ALL}:
        doc.paragraph(f"The {split} clips carry no gender, age group or ethnicity: only the overall rows.")
    else:
        doc.paragraph(f"No group has {settings['min_people']} people or more in any attribute: no figure.")
    notes = [f"{n} people carry more than one {a.replace('_', ' ')} over their clips; each is counted in "
             "the group most of their clips carry" for a, n in mixed.items() if n]  # fmt: skip
    if notes:
        doc.bullets(notes)
    summary = significant(gaps, split)
    if summary:
        doc.paragraph(f"Gaps significant after Holm correction ({split}), labels first, then every model:")
        doc.bullets(summary)
    for title, header, rows in tables(groups, gaps, split):
        doc.caption(title)
        doc.table(header, rows)
