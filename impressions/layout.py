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
