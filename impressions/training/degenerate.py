"""Degenerate datasets: what cannot be trained or measured on them, and why, in plain words.

A dataset can lack a split (an FI layout whose test videos are missing, a manifest with only train
and val), have one clip or one person per split, constant labels, no audio or no face anywhere.
Nothing here raises on such data: `train_or_explain` trains a model family when the data allow it and
otherwise writes the family's outputs as "not trained" with the reason (empty predictions, zero-width
features, a checkpoint that says so), so the workflow still reaches the report; `statements` lists
what the report cannot compute for the dataset and why, and the report prints them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from impressions.models import registry
from impressions.schemas import SPLITS, TRAITS, polars_schema

NOT_TRAINED = "not_trained"
"""Summary and checkpoint key holding the reason a family was not trained."""


# ----------------------------------------------------------------------------------------------------
# Training


def _labelled(clips, split: str):
    import polars as pl

    return clips.filter((pl.col("split") == split) & pl.all_horizontal(pl.col(list(TRAITS)).is_not_null()))


def why_not_trainable(
    family: str, inputs, clips, options: Mapping, untrained: Mapping[str, str]
) -> str | None:
    """The reason `family` cannot be trained on these inputs, or None when it can.

    `clips` is the clips table with the split the models use; `untrained` maps component models
    already known to be untrained to their reasons (fusion needs at least one input with data).
    """
    import polars as pl

    train, val = _labelled(clips, "train"), _labelled(clips, "val")
    if not train.height:
        return "no labelled train clip with a video file: nothing to learn from"
    if not val.height:
        return "no labelled val clip with a video file: the epoch (or ridge penalty) is selected on val"
    train_ids = train["clip_id"].to_list()
    spec = registry.get(family)
    if spec.face_only:  # face crops (the faces table is its `frames`) or AUs only
        faces_path = inputs.frames if spec.sample_kind == "faces" else inputs.expressions
        table = pl.read_parquet(faces_path).filter(pl.col("clip_id").is_in(train_ids))
        found = table.filter(pl.col("has_face")).height if "has_face" in table.columns else table.height
        if not found:
            return "no face found in any sampled frame of the train clips"
    if float(options.get("au_guidance_weight") or 0) > 0 and inputs.expressions is not None:
        expressions = pl.read_parquet(inputs.expressions).filter(pl.col("clip_id").is_in(train_ids))
        if not expressions.height:
            return "AU guidance needs facial expressions, and no train clip has any (no face found)"
    if spec.sample_kind in ("waveform", "logfbank"):
        audio = pl.read_parquet(inputs.audio_table).filter(pl.col("clip_id").is_in(train_ids))
        if not audio.filter(pl.col("has_audio")).height:
            return "no train clip has an audio track (the inputs would be silence only)"
    if spec.sample_kind == "frames":
        frames = pl.read_parquet(inputs.frames).filter(pl.col("clip_id").is_in(train_ids))
        if not frames.height:
            return "no frame could be decoded from any train clip"
    if "transcript" in spec.inputs:
        table = pl.read_parquet(inputs.transcripts, columns=["clip_id", "has_transcript"])
        for split, rows in (("train", train), ("val", val)):
            ids = rows["clip_id"].to_list()
            if not table.filter(pl.col("clip_id").is_in(ids) & pl.col("has_transcript")).height:
                return f"no labelled {split} clip has a transcript (results/tables/transcripts.parquet)"
    if spec.trainer == "fusion":
        components = list(options.get("inputs", []))
        usable = [m for m in components if m not in untrained]
        if set(spec.inputs) == {"features"} and not usable:  # nothing but its components' features
            listed = "; ".join(f"{m}: {untrained[m]}" for m in components)
            return f"none of its component models was trained ({listed})"
    return None


def untrained_components(inputs) -> dict[str, str]:
    """{component model: reason} for fusion inputs whose features.npz says it was not trained."""
    out = {}
    for name, path in (inputs.features or {}).items():
        with np.load(path) as data:
            if NOT_TRAINED in data.files:
                out[name] = str(data[NOT_TRAINED])
    return out


def write_untrained(
    name: str, family: str, outputs, clips, reason: str, preprocessing: Mapping | None = None
) -> dict:
    """Write a family's outputs as not trained, with the reason: what the report, fusion and predict read."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import polars as pl
    import torch

    for path in (outputs.checkpoint, outputs.predictions, outputs.features, outputs.metrics):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame([], schema=polars_schema("predictions")).write_parquet(outputs.predictions)
    ids = [c for s in SPLITS for c in clips.filter(pl.col("split") == s)["clip_id"].to_list()]
    splits = [s for s in SPLITS for _ in clips.filter(pl.col("split") == s)["clip_id"]]
    np.savez(
        outputs.features, clip_id=np.array(ids, dtype=str), split=np.array(splits, dtype=str),
        features=np.zeros((len(ids), 0), np.float32), has_input=np.zeros(len(ids), bool),
        not_trained=np.array(reason),
    )  # fmt: skip
    Path(outputs.metrics).write_text("epoch,train_loss,val_loss,val_mean\n")
    fig, ax = plt.subplots(figsize=(5, 1.2))
    ax.axis("off")
    ax.text(0.0, 0.5, f"{name}: not trained\n{reason}", va="center", wrap=True, fontsize=9)
    fig.savefig(outputs.curve)
    plt.close(fig)
    summary = {
        "model": name, "family": family, NOT_TRAINED: reason, "selected": {}, "val_accuracy": {},
        "filled_with_train_mean": {}, "clips": {s: splits.count(s) for s in SPLITS}, "device": "",
        "train_seconds": 0.0, "preprocessing": dict(preprocessing or {}),
    }  # fmt: skip
    torch.save({"family": family, NOT_TRAINED: reason, "summary": summary}, outputs.checkpoint)
    Path(outputs.summary).write_text(json.dumps(summary, indent=2, default=str))
    return summary


def train_or_explain(
    family: str, inputs, outputs, common: Mapping, options: Mapping, name: str | None = None,
    preprocessing: Mapping | None = None,
) -> dict:  # fmt: skip
    """`training.train_family` when the data allow it, else the outputs of an untrained family."""
    import logging

    from impressions.data import splits
    from impressions.training import loop as training

    name = name or family
    settings, _ = training.Settings.from_options(common, options)
    clips = splits.read_clips(inputs.clips, inputs.splits, settings.split, settings.seed)
    reason = why_not_trainable(family, inputs, clips, options, untrained_components(inputs))
    if reason is None:
        return training.train_family(family, inputs, outputs, common, options, name, preprocessing)
    logging.getLogger(__name__).warning("%s: not trained: %s", name, reason)
    return write_untrained(name, family, outputs, clips, reason, preprocessing)


# ----------------------------------------------------------------------------------------------------
# What the report cannot compute


def statements(clips, qc, faces, summaries=(), audio=None) -> list[str]:
    """Plain sentences on what the report cannot compute for this dataset and why (empty: nothing)."""
    import polars as pl

    out: list[str] = []
    index_qc = qc.filter(pl.col("status") == "missing_file") if "status" in qc.columns else qc.head(0)
    for split in SPLITS:
        rows = clips.filter(pl.col("split") == split)
        labelled = _labelled(clips, split)
        missing = index_qc.filter(pl.col("split") == split).height if "split" in index_qc.columns else 0
        if not rows.height and not missing:
            if split == "test":
                out.append(
                    "The dataset has no test split: test accuracy, correlations, the comparison with the "
                    "baseline and the breakdowns cannot be computed; the val figures are the only ones."
                )
            else:
                out.append(f"The dataset has no {split} split: {_split_consequence(split)}")
            continue
        if not labelled.height:
            why = (
                f"all {missing} annotated {split} clips lack a video file"
                if missing and not rows.height
                else f"{rows.height} {split} clips have a video file but none is labelled"
                + (f", {missing} more lack one" if missing else "")
            )
            out.append(f"No labelled {split} clip with a video file ({why}): {_split_consequence(split)}")
            continue
        unusable = _unusable(labelled, qc)
        if unusable == labelled.height:
            out.append(
                f"None of the {labelled.height} labelled {split} clips could be decoded (QC corrupt, "
                f"no_video or error): every model's {split} predictions are the training mean, so its "
                f"{split} scores equal the baseline's and say nothing about the model."
            )
        elif unusable:
            out.append(
                f"{unusable} of {labelled.height} labelled {split} clips could not be decoded (QC corrupt, "
                f"no_video or error): every model scores them with the training mean."
            )
        people = labelled["youtube_id"].fill_null(labelled["clip_id"]).n_unique()
        if split in ("val", "test") and people < 2:
            out.append(
                f"{split} has {labelled.height} labelled clip(s) of a single person: the 95% intervals "
                "resample people, so they collapse to the point estimate and say nothing about uncertainty."
            )
        constant = [t for t in TRAITS if labelled[t].n_unique() == 1]
        if constant and labelled.height > 1:
            out.append(
                f"Labels are constant in {split} for {', '.join(constant)}: Pearson's r and CCC are "
                "undefined there (n/a) and R2 is undefined or meaningless."
            )
        elif labelled.height == 1 and split in ("val", "test"):
            out.append(f"{split} has one labelled clip: correlations (PCC, CCC, R2) need two or more (n/a).")
    people = clips["youtube_id"].fill_null(clips["clip_id"]).n_unique() if clips.height else 0
    if people == 1:
        out.append(
            "Every clip shows the same person (one YouTube id): test scores measure how well a model "
            "recalls that person's labels, not how it generalises to new people."
        )
    processed = qc.filter(pl.col("has_video").fill_null(False)) if "has_video" in qc.columns else qc.head(0)
    if processed.height and not processed["has_audio"].fill_null(False).any():
        out.append(
            "No clip has an audio track: the audio features are those of silence, so the audio models "
            "are not trained and fusion uses no audio."
        )
    if faces.height == 0 or not faces["has_face"].any():
        out.append(
            "No face was found in any sampled frame: the face and AU models are not trained, there are no "
            "AU or emotion statistics, and the dominant-emotion breakdown is empty."
        )
    for s in summaries:
        if s.get(NOT_TRAINED):
            out.append(f"Model {s['model']} was not trained: {s[NOT_TRAINED]}.")
    return out


UNUSABLE = ("corrupt", "no_video", "error")
"""QC statuses of clips no model has any input for."""


def _unusable(clips, qc) -> int:
    import polars as pl

    if "status" not in qc.columns or not clips.height:
        return 0
    bad = qc.filter(pl.col("status").is_in(UNUSABLE))["clip_id"]
    return clips.filter(pl.col("clip_id").is_in(bad.to_list())).height


def _split_consequence(split: str) -> str:
    if split == "train":
        return "no model can be trained and the baseline has no training mean."
    if split == "val":
        return "no model can be trained (the epoch or penalty is selected on val) and val is not scored."
    return (
        "test accuracy, correlations, the comparison with the baseline and the breakdowns cannot be computed."
    )


def unscored_note(split: str, metrics_table) -> str | None:
    """A sentence for an accuracy section with nothing measured on `split`, else None."""
    import polars as pl

    if metrics_table.height and metrics_table.filter(pl.col("split") == split).height:
        return None
    return (
        f"Nothing could be scored on {split}: no labelled {split} clip with a video file "
        "(see 'What this dataset does not allow' above)."
    )
