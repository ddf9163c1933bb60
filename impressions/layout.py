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

PREPROCESSING_SECTIONS = ("frames", "faces", "audio", "voice", "expressions")
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


GUIDED_SUFFIX = "_au_guided"
"""A model trained with `au_guidance_weight` is named after its family plus this suffix."""

CAM_SUFFIX = "_cam"
"""An image model trained again with the GAP (cam) head for the published CAM face-overlap test."""
