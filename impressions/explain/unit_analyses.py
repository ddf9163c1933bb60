"""The units analysis: units of the last conv layers as face-part detectors (after Zhou et al. 2015)
and Action-Unit emergence with hypergeometric p-values (`units_analysis`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from impressions import figures
from impressions.explain import analyses, deviations
from impressions.explain.images import Images, load_model, model_input
from impressions.explain.sections import (
    FIGURE_DPI,
    NotComputable,
    Section,
    clips_used,
    empty_figure,
    polars_types,
)
from impressions.schemas import AUS

# ----------------------------------------------------------------------------------------------------
# Units: face-part detectors and Action-Unit emergence


def _unit_schema(parts, with_chance: bool) -> dict:
    """Column types of the units table, fixed up front: never inferred from the first rows."""
    import polars as pl

    schema = {"model": pl.String, "layer": pl.String, "unit": pl.Int64, "top_value": pl.Float64,
              "n_images": pl.Int64}  # fmt: skip
    schema |= {f"mass_{p}": pl.Float64 for p in parts}
    if with_chance:
        schema |= {f"chance_{p}": pl.Float64 for p in parts} | {f"lift_{p}": pl.Float64 for p in parts}
        schema |= {f"p_{p}": pl.Float64 for p in parts}
        schema |= {"rule_part": pl.String, "p_corrected": pl.Float64}
    return schema | {"part": pl.String}


DETECTOR_ALPHA = 0.05
"""A face-part detector passes the rule and its Benjamini-Hochberg corrected p (over units x parts of
every layer tested) is below this."""


EMERGENCE_SCHEMA = {
    "model": "String", "level": "String", "au": "String", "layer": "String", "unit": "Int64",
    "i_max": "Int64", "n_top": "Int64", "n": "Int64", "expected": "Float64", "p_value": "Float64",
    "p_corrected": "Float64", "p_bonferroni": "Float64", "tests": "Int64", "positive": "Int64",
    "units_tested": "Int64", "p_permutation": "Float64",
}  # fmt: skip
"""au_emergence.csv: one row per level (frame, clip) and AU; n is frames or clips. An AU with fewer
than n_top positive values (`positive`) is not tested: unit, i_max and p are empty. p_permutation:
the YouTube-id block permutation p, on the strongest row of each level only."""


def _layer_detectors(name, acts, size, masks, parts, top, threshold, margin, clip_ids):
    """Per layer: detector rows per unit, chance rows per part, the peak histogram, gallery candidates
    per part and each unit's peak values over the images. A unit's top images come from distinct clips;
    it is a detector when it passes the rule (threshold, margin) and its binomial p, Benjamini-Hochberg
    corrected over units x parts of every layer, is below `DETECTOR_ALPHA`."""
    from impressions.explain import emergence
    from impressions.explain import unit_detectors as units

    unit_rows, chance_rows, hists, gallery = [], [], {}, {part: [] for part in parts}
    peak_values, by_layer, chances = {}, {}, {}
    for layer, a in acts.items():
        values, xy = units.peaks(a, size)
        peak_values[layer] = values
        chances[layer] = units.chance_shares(masks, a.shape[-2:])
        by_layer[layer] = units.find_detectors(
            values, xy, masks, top=top, threshold=threshold, chance=chances[layer], margin=margin,
            clip_ids=clip_ids,
        )  # fmt: skip
        order = units.top_images(values, top, clip_ids)
        top_xy = np.take_along_axis(xy, order[:, :, None], axis=0).reshape(-1, 2)
        # No more bins than the layer has cells: finer bins only show the cell grid as gaps.
        hists[layer] = units.peak_histogram(top_xy, size, bins=min(16, a.shape[-1]))
    every = [row for rows in by_layer.values() for row in rows]
    p = np.array([[row[f"p_{q}"] for q in parts] for row in every]).reshape(len(every), len(parts))
    q = emergence.benjamini_hochberg(p)
    for row, q_row in zip(every, q):
        row["rule_part"] = row["part"]
        row["p_corrected"] = float(q_row[parts.index(row["part"])]) if row["part"] else None
        if row["part"] and not row["p_corrected"] < DETECTOR_ALPHA:
            row["part"] = None
    nan = float("nan")
    for layer, layer_rows in by_layer.items():
        chance = chances[layer]
        k = min((r["n_images"] for r in layer_rows), default=0)
        for row in layer_rows:
            unit_rows.append({"model": name, "layer": layer, **row})
            if row["part"]:
                gallery[row["part"]].append((row[f"mass_{row['part']}"], layer, row["unit"]))
        for part in parts:
            found = [r for r in layer_rows if r["part"] == part]
            required = max(threshold, chance[part] + margin)
            chance_rows.append({
                "model": name, "layer": layer, "part": part, "units": len(layer_rows), "top_clips": k,
                "chance_share": chance[part], "required_share": required,
                "rule_detectors": sum(r["rule_part"] == part for r in layer_rows),
                "expected_null": len(layer_rows) * units.null_pass_probability(k, chance[part], required),
                "detectors": len(found),
                "mean_share": float(np.mean([r[f"mass_{part}"] for r in found])) if found else nan,
                "mean_lift": float(np.mean([r[f"lift_{part}"] for r in found])) if found else nan,
                "best_lift": float(max(r[f"lift_{part}"] for r in layer_rows)) if layer_rows else nan,
            })  # fmt: skip
    return unit_rows, chance_rows, hists, gallery, peak_values


def _emergence_table(name, faces: Images, peak_values, au_top_n, clip_top_n, notes: list):
    """AU emergence on the frames with expressions, at frame and at clip level (notes say what was
    skipped): the table, the clips it used and the number of units tested."""
    import polars as pl

    from impressions.explain import emergence

    with_aus = ~np.isnan(faces.aus).any(axis=1)
    unit_names = [(layer, u) for layer, v in peak_values.items() for u in range(v.shape[1])]
    all_values = np.concatenate([peak_values[layer] for layer in peak_values], axis=1)[with_aus]
    clip_ids = [c for c, keep in zip(faces.clip_ids, with_aus) if keep]
    emergence_rows = []
    if with_aus.sum() < 4:
        notes.append(f"AU emergence not computed: {int(with_aus.sum())} frames have expressions (needs 4).")
        skipped = ""
    else:
        frame_rows, clip_rows, skipped = emergence.both_levels(
            clip_ids, faces.aus[with_aus], all_values, au_top_n, clip_top_n
        )
        for level, level_rows in (("frame", frame_rows), ("clip", clip_rows)):
            for row in level_rows:
                layer, unit = unit_names[row["unit"]] if row["unit"] is not None else (None, None)
                known = {k: row[k] for k in EMERGENCE_SCHEMA if k in row and k != "unit"}
                emergence_rows.append(
                    {"model": name, "level": level, "au": AUS[row["au_index"]], "layer": layer, "unit": unit}
                    | known
                )
        if skipped:
            notes.append(f"Clip-level AU emergence not computed: {skipped}.")
    em = pl.DataFrame(emergence_rows, schema=polars_types(EMERGENCE_SCHEMA))
    return em, clip_ids, len(unit_names)


def units_analysis(
    name: str, checkpoint: Path, images: Images, files: Mapping[str, Path], *, unit_layers: int = 2,
    unit_top: int = 20, detector_threshold: float = 0.5, au_top_n: int = 50, detector_margin: float = 0.25,
    au_top_clips: int = 10, gallery_units: int = 4,
) -> Section:  # fmt: skip
    """Face-part detectors against their chance share, and which units track which AU (frame and clip
    level). The units of the last `unit_layers` conv layers, each on its `unit_top` images; a detector
    peaks inside one part at least `detector_threshold` of the time and `detector_margin` above the
    part's chance share; AU emergence over the top `au_top_n` frames and `au_top_clips` clips. Parts
    that cannot be computed are said so in the section; the tables keep their columns."""
    from impressions.explain import emergence
    from impressions.explain import unit_detectors as units

    parts = list(units.FACE_PARTS)
    model, transform, _ = load_model(checkpoint)
    faces = images.subset(images.has_face)
    if len(faces) < 2:
        raise NotComputable(
            f"{len(faces)} of {len(images)} {images.kind} have a detected face; the unit analysis needs 2"
        )
    acts = units.unit_activations(
        model, units.unit_layers(model, unit_layers), model_input(faces.images, transform)
    )
    masks = units.part_masks(faces.landmarks, faces.size)
    top = min(unit_top, len(faces))
    unit_rows, chance_rows, hists, gallery, peak_values = _layer_detectors(
        name, acts, faces.size, masks, parts, top, detector_threshold, detector_margin, faces.clip_ids
    )
    table, counts, chance_table = _detector_tables(unit_rows, chance_rows, parts)
    table.write_parquet(files["units"])
    last, strongest, notes = _plot_detectors(
        name, faces, acts, masks, hists, gallery, peak_values, chance_table, gallery_units, files
    )
    em, clip_ids, n_units = _emergence_table(name, faces, peak_values, au_top_n, au_top_clips, notes)
    em.write_csv(files["emergence"])
    emergence.plot_levels(em, files["emergence_figure"], title=f"{name}: AU emergence, frame vs clip level")
    section = _units_section(
        name, images, faces, acts, em, chance_table, n_clips=len(set(clip_ids)), n_units=n_units, top=top,
        threshold=detector_threshold, margin=detector_margin, notes=notes,
    )  # fmt: skip
    _unit_figures_and_tables(
        section, files, em, counts, chance_table, last=last, strongest=strongest, n_units=n_units,
        top=top, threshold=detector_threshold, margin=detector_margin, gallery_units=gallery_units,
    )  # fmt: skip
    section.write(files["section"])
    return section


def _detector_tables(unit_rows, chance_rows, parts):
    """(per unit, detectors per layer and part, chance baseline per layer and part) as polars frames."""
    import polars as pl

    table = pl.DataFrame(unit_rows, schema=_unit_schema(parts, True))
    counts = table.group_by("layer", maintain_order=True).agg(
        pl.len().alias("units"),
        *[(pl.col("part") == p).sum().cast(pl.Int64).alias(p) for p in parts],
        pl.col("part").is_not_null().sum().cast(pl.Int64).alias("detectors"),
    )
    chance_table = pl.DataFrame(
        chance_rows,
        schema={"model": pl.String, "layer": pl.String, "part": pl.String, "units": pl.Int64,
                "top_clips": pl.Int64, "chance_share": pl.Float64, "required_share": pl.Float64,
                "rule_detectors": pl.Int64, "expected_null": pl.Float64, "detectors": pl.Int64,
                "mean_share": pl.Float64, "mean_lift": pl.Float64, "best_lift": pl.Float64},
    )  # fmt: skip
    return table, counts, chance_table


def _plot_detectors(
    name, faces: Images, acts, masks, hists, gallery, peak_values, chance_table, gallery_units, files
):
    """The detector figures: lift over chance, peak histograms, the strongest units of the last layer
    and a gallery per part. Returns (the last layer, its strongest units, notes for the section)."""
    from impressions.explain import unit_detectors as units

    parts = list(units.FACE_PARTS)
    _plot_detector_lift(chance_table, files["detector_figure"], f"{name}: face-part detectors against chance")
    units.plot_histograms(
        hists, files["histograms"], masks_mean={p: m.mean(axis=0) for p, m in masks.items()}
    )
    last = list(acts)[-1]
    strongest = np.argsort(-peak_values[last].max(axis=0), kind="stable")[: max(gallery_units, 1)]
    units.plot_top_units(faces.images, acts[last], peak_values[last], list(strongest), files["top_units"])
    notes = []
    _plot_galleries(faces, acts, peak_values, gallery, gallery_units, files)
    missing = [p for p in parts if not gallery[p]]
    if missing:
        notes.append(f"No unit is a detector of: {', '.join(missing)} (their galleries are empty).")
    return last, strongest, notes


def _units_section(
    name: str, images: Images, faces: Images, acts, em, chance_table, *, n_clips: int, n_units: int, top: int,
    threshold: float, margin: float, notes: list[str],
) -> Section:  # fmt: skip
    """The units section's text: detectors found and AUs with a unit beyond chance, at both levels."""
    import polars as pl

    from impressions.explain import unit_detectors as units

    spec = analyses.get("units")
    what = "aligned faces" if images.kind == "faces" else "frames with a face"

    def significant(level):
        part = em.filter(pl.col("level") == level)
        tested = part.filter(pl.col("p_value").is_not_null())
        if not part.height:
            return "none"
        strongest = tested.filter(pl.col("p_permutation").is_not_null())
        perm = (
            f"; YouTube-id permutation p of the strongest, {strongest['au'][0]}: "
            f"{strongest['p_permutation'][0]:.3g}"
            if strongest.height
            else ""
        )
        return (
            f"{int((tested['p_corrected'] < 0.05).sum())} of {tested.height} AUs tested, "
            f"{part.height - tested.height} too rare to rank{perm}"
        )

    return Section(
        spec.title.format(model=name),
        f"Units of the last {len(acts)} conv layers of the {name} model ({n_units} units) on {len(faces)} "
        f"{what} from {len(set(faces.clip_ids))} clips. {int(chance_table['detectors'].sum())} units are "
        f"face-part detectors: their top-{top} images (one per clip, the best) peak inside one part at least "
        f"{threshold:.0%} of the time AND that share exceeds the part's chance share by at least {margin:g} "
        "(the chance share is the share of the layer's peak cells the part covers, averaged over images) "
        f"AND its binomial p under uniformly placed peaks, Benjamini-Hochberg corrected over "
        f"{n_units} units x {len(chance_table['part'].unique())} parts, is below {DETECTOR_ALPHA:g}. The "
        f"rule alone passes {int(chance_table['rule_detectors'].sum())} units, where "
        f"{float(chance_table['expected_null'].fill_nan(0).sum()):.1f} are expected by chance (uniform "
        "peaks; per layer and part: the chance table). AUs with a unit beyond chance "
        f"(Benjamini-Hochberg across the tested units x AUs of {n_units} units x {len(AUS)} AUs, q < 0.05): "
        f"frame level {significant('frame')}, clip level {significant('clip')} ({n_clips} clips). "
        + " ".join([*notes, clips_used(images), deviations.text(deviations.units(units.SEGMENTATION))]),
        order=spec.order + (images.kind == "faces"),
    )


def _unit_figures_and_tables(
    section: Section, files, em, counts, chance_table, *, last, strongest, n_units, top, threshold, margin,
    gallery_units,
) -> None:  # fmt: skip
    """The units section's figures and tables, with the captions that say how each was made."""
    from impressions.explain import emergence
    from impressions.explain import unit_detectors as units

    section.figure(
        files["detector_figure"],
        f"Detectors per face part and layer (bars) and the chance share of each part (the share of peaks "
        f"a unit with uniformly placed peaks would collect there; text: mean lift = share / chance of the "
        f"detectors found). A detector needs share >= max({threshold:g}, chance + {margin:g}).",
    )
    section.figure(
        files["emergence_figure"],
        "AU emergence at frame level (top-N frames, frames treated as exchangeable) beside clip level "
        "(top-N clips: a clip's mean AU intensity against the unit's largest peak over the clip's frames): "
        "-log10 of the best unit's Benjamini-Hochberg corrected p per AU; bars above the dashed line are "
        "significant at q = 0.05.",
    )
    section.figure(
        files["top_units"],
        f"The {len(strongest)} units of {last} with the highest peak activations: their top images, each "
        f"{units.SEGMENTATION_TEXT}.",
    )
    section.figure(
        files["histograms"],
        f"Where units peak: per layer, a 2-D histogram of the peak-activation locations of every unit's "
        f"top-{top} images, with the mean face-part regions drawn from the landmarks.",
    )
    for part in units.FACE_PARTS:
        section.figure(
            files[f"gallery_{part}"],
            f"{part.capitalize()} detectors: the units (up to {gallery_units}, strongest first) passing the "
            f"detector rule for this part, with their top images {units.SEGMENTATION_TEXT}.",
        )
    section.table(
        counts,
        f"Face-part detectors per layer. Regions come from each image's 68 landmarks (eyebrows 17-26, eyes "
        f"36-47, nose 27-35, mouth 48-67: convex hulls dilated by 0.1 x the inter-ocular distance). "
        f"Per-unit shares, chance and lift: {Path(files['units']).name}.",
        files["counts"],
    )
    section.table(
        chance_table,
        f"Chance baseline per layer and part: chance_share is the share of peak mass a part collects by its "
        f"area alone; required_share = max(threshold {threshold:g}, chance + margin {margin:g}); top_clips "
        "the top images per unit (one per clip); rule_detectors the units passing the rule, expected_null "
        "the number expected to pass it by chance (units x the binomial tail under uniformly placed peaks), "
        f"detectors those also significant after the correction (BH q < {DETECTOR_ALPHA:g}); mean_lift is "
        "the detectors' mean share / chance, best_lift the largest lift of any unit of the layer.",
        files["chance"],
    )
    section.table(
        em,
        "Action-Unit emergence, frame level and clip level. For each AU, I_max is the largest intersection "
        "of the AU's top-N set with a unit's top-N set (the unit named), `expected` the chance intersection "
        "N^2/n, p_value the hypergeometric P(X >= I_max) with n frames or clips, p_corrected "
        f"{emergence.CORRECTION} (`tests`: tested units x tested AUs, at most {n_units * len(AUS)} per "
        "level), p_bonferroni the family-wise "
        "bound. An AU or unit with fewer than N positive values has no top-N set and is not tested "
        "(`positive`; `units_tested`; its p is empty), and ties among positive values are broken at "
        "random: row order cannot align two columns. p_permutation (strongest row of each level): the "
        "unit scores moved as whole YouTube-id blocks, the best unit's I_max against the permuted "
        f"maxima ({emergence.PERMUTATIONS} permutations). Frames of one clip are alike: the frame-level p "
        "is optimistic when a few clips supply the top frames; the clip level is the one to trust.",
        files["emergence"],
    )


def _plot_galleries(faces: Images, acts, peak_values, gallery, gallery_units, files) -> None:
    """Per face part, the strongest detector units' top images (an empty figure when there is none)."""
    from impressions.explain import unit_detectors as units

    for part in units.FACE_PARTS:
        chosen = sorted(gallery[part], reverse=True)[:gallery_units]
        if chosen:
            layer = chosen[0][1]
            picked = [u for _, lay, u in chosen if lay == layer]
            units.plot_part_gallery(faces.images, acts[layer], peak_values[layer], picked, part,
                                    files[f"gallery_{part}"])  # fmt: skip
        else:
            empty_figure(files[f"gallery_{part}"], f"no {part} detector among the units tested")


def _plot_detector_lift(chance_table, path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import polars as pl

    layers = list(dict.fromkeys(chance_table["layer"].to_list()))
    fig, axes = plt.subplots(1, max(len(layers), 1), figsize=(4 * max(len(layers), 1), 3), dpi=FIGURE_DPI,
                             squeeze=False)  # fmt: skip
    for ax, layer in zip(axes[0], layers):
        part = chance_table.filter(pl.col("layer") == layer)
        x = np.arange(part.height)
        ax.bar(x, part["detectors"].to_list(), color="tab:blue")
        ax.set_xticks(x, part["part"].to_list(), fontsize=8)
        ax.set_ylabel("detectors", fontsize=8)
        twin = ax.twinx()
        twin.plot(x, part["chance_share"].to_list(), "o", color="tab:orange", label="chance share")
        twin.set_ylim(0, 1)
        twin.set_ylabel("chance share", fontsize=8)
        for xi, lift in zip(x, part["mean_lift"].to_list()):
            if lift is not None and np.isfinite(lift):
                ax.text(xi, 0, f"x{lift:.1f}", ha="center", va="bottom", fontsize=7, color="white")
        ax.set_title(f"{layer} ({int(part['units'][0])} units)", fontsize=9)
    figures.save(fig, path, title)
