"""Where the model stage writes its files: imported by the workflow's rules, so it imports nothing heavy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MODEL_FILES = {
    "checkpoint": "checkpoint.pt",  # weights, builder options, training mean, preprocessing settings
    "predictions": "predictions.parquet",  # per clip of val and test: clip_id, split, model, 5 traits
    "features": "features.npz",  # per clip of every split: penultimate features (fusion inputs)
    "metrics": "metrics.csv",  # per epoch (or ridge penalty): losses and validation accuracies
    "curve": "curve.png",  # the same as a plot
    "summary": "summary.json",  # selection, clips given the training mean, settings, timings
}

PREPROCESSING_SECTIONS = ("frames", "faces", "audio", "expressions")
"""Config sections stored in each checkpoint so that new clips can be preprocessed the same way."""


@dataclass
class Outputs:
    """A trained model's files (the training rule's outputs)."""

    checkpoint: Path
    predictions: Path
    features: Path
    metrics: Path
    curve: Path
    summary: Path

    @classmethod
    def in_folder(cls, folder: str | Path) -> Outputs:
        return cls(**{kind: Path(folder) / name for kind, name in MODEL_FILES.items()})


SPLIT_MODES = ("official", "identity", "identity_faces")
"""`models.split`: the clips table's split column, or an identity-disjoint re-split of it (by YouTube
id, or by face clusters joined with YouTube ids: `impressions.data.identity.identity_groups`)."""


def assign_splits(clips, mode: str = "official", seed: int = 0):
    """The clips table with the split every model and the report use (`models.split`).

    ``official`` returns the table unchanged (First Impressions' own split, in which clips of one
    YouTube id, one person, can sit in train and test). ``identity`` re-assigns train/val/test so that
    all clips of one ``youtube_id`` land in one split, keeping the official proportions:

    1. Clips with a split (train, val or test) are grouped by ``youtube_id`` (a clip without one is a
       group of its own). Target sizes are the official split sizes (they already sum to the total).
    2. Groups are ordered by size, largest first, ties broken by a SHA-256 hash of ``"{seed}:{id}"``:
       deterministic for a seed, independent of the table's row order, different per seed.
    3. Greedily, each group goes to the split furthest below its target (most clips missing; ties
       in train, val, test order). A split only overshoots when it received a group while furthest
       below target, and then by less than that group, so each final size is within one group of its
       target; placing large groups first keeps the last, small groups for the fine balance.

    Clips without a split (unlabelled) keep it. `polars` is imported here so that the workflow's rules
    can import this module cheaply.
    """
    import hashlib

    import polars as pl

    if mode == "official":
        return clips
    if mode not in SPLIT_MODES:
        raise ValueError(f"unknown split mode {mode!r}; known: {SPLIT_MODES}")
    order = ("train", "val", "test")
    labelled = clips.filter(pl.col("split").is_in(order))
    key = (
        pl.coalesce(pl.col("youtube_id"), pl.col("clip_id"))
        if "youtube_id" in clips.columns
        else pl.col("clip_id")
    )
    if mode == "identity_faces":  # the groups come with the table: identity.identity_groups
        if "identity_group" not in clips.columns:
            raise ValueError("split identity_faces needs the clips joined with identity.identity_groups")
        key = pl.col("identity_group")
    groups = labelled.group_by(key.alias("_group")).len()
    targets = {s: labelled.filter(pl.col("split") == s).height for s in order}

    def rank(row):
        digest = hashlib.sha256(f"{seed}:{row[0]}".encode()).hexdigest()
        return (-row[1], digest)

    sizes = dict.fromkeys(order, 0)
    chosen = {}
    for group, n in sorted(groups.iter_rows(), key=rank):
        split = max(order, key=lambda s: (targets[s] - sizes[s], -order.index(s)))
        chosen[group] = split
        sizes[split] += n
    new = key.replace_strict(chosen, default=None, return_dtype=pl.String)
    return clips.with_columns(
        pl.when(pl.col("split").is_in(order)).then(new).otherwise(pl.col("split")).alias("split")
    )


def split_clips(clips_path: str | Path, mode: str = "official", seed: int = 0):
    """The clips table at `clips_path` with the split of `assign_splits`.

    ``identity_faces`` first joins the face clusters of the identities table beside it
    (`identities.parquet`, written with the faces table; `impressions.data.identity.identity_groups`).
    """
    import polars as pl

    clips = pl.read_parquet(clips_path)
    if mode == "identity_faces":
        from impressions.data import identity

        path = Path(clips_path).with_name("identities.parquet")
        if not path.is_file():
            raise FileNotFoundError(f"models.split identity_faces needs {path} (written by gather_clips)")
        clips = identity.identity_groups(clips, pl.read_parquet(path, columns=["clip_id", "person"]))
    return assign_splits(clips, mode, seed)


FACE_PARTS = ("eyebrows", "eyes", "nose", "mouth")
"""Face parts the unit analysis looks for (defined by landmarks in
impressions.explain.unit_detectors.FACE_PARTS)."""

INTERPRET_FILES = {
    "cam": {
        "section": "section.json",
        "overlays": "cam_overlays.png",  # CAM per trait on the top-K clips
        "compare": "cam_vs_gradcam.png",
        "gradcam": "cam_vs_gradcam.csv",  # Pearson r of CAM and Grad-CAM per trait
    },
    "cam_overlap": {  # Ventura et al.'s face-overlap test, on a GAP (cam head) model, test frames
        "section": "section.json",
        "regions": "cam_regions.parquet",  # per CAM region: area, largest, overlap per box scale
        "overlap": "cam_face_overlap.csv",  # share on the face per variant, box scale and trait
        "comparison": "published_comparison.csv",  # measured shares beside the published 72.8%
        "histogram": "overlap_histogram.png",
        "scales": "box_scale_sensitivity.png",
    },
    "units": {
        "section": "section.json",
        "units": "units.parquet",  # per unit: peak value, mass per face part, detected part
        "counts": "detector_counts.csv",  # detectors per layer and part
        "chance": "detector_chance.csv",  # per layer and part: chance share, detectors, lift over chance
        "detector_figure": "detector_lift.png",
        "emergence": "au_emergence.csv",  # per level (frame, clip) and AU: best unit, I_max, corrected p
        "emergence_figure": "au_emergence.png",
        "top_units": "top_units.png",
        "histograms": "peak_histograms.png",
        **{f"gallery_{part}": f"gallery_{part}.png" for part in FACE_PARTS},
    },
    "au_maps": {
        "section": "section.json",
        "correlation": "cam_au_correlation.csv",  # per trait: mean Pearson r of CAM and AU map
        "frames": "cam_au_frames.parquet",  # per frame
        "examples": "au_map_examples.png",
    },
}
"""Files of each per-model interpretation analysis, under results/interpret/<analysis>/<model>/."""

GUIDED_SUFFIX = "_au_guided"
"""A model trained with `au_guidance_weight` is named after its family plus this suffix."""

CAM_SUFFIX = "_cam"
"""An image model trained again with the GAP (cam) head for the published CAM face-overlap test."""
