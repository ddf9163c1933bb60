"""Training, model selection and per-clip predictions for every model family.

`train_family` is the one entry point the workflow calls. For a family it builds the datasets from the
dataset tables, trains on the train split, selects the epoch (or, for `au_linear`, the ridge penalty)
with the best validation mean accuracy (the challenge metric, on clip scores; the test split is never
looked at), and writes:

- ``checkpoint.pt``: weights, builder options, training mean and preprocessing settings;
- ``predictions.parquet``: per-clip scores for val and test (clip_id, split, model, 5 traits);
- ``features.npz``: per-clip penultimate features for every split (what fusion consumes);
- ``metrics.csv`` and ``curve.png``: per-epoch losses and validation accuracies;
- ``summary.json``: best epoch, validation accuracy, clips filled with the training mean, timings.

A clip a model has no input for (no face in any frame, no frames) gets the training mean of each trait:
the challenge scores every clip, and the mean is what a model knowing nothing predicts.

AU guidance (image and face families, `au_guidance_weight` > 0): every training frame gets an AU map
before training (`impressions.expressions.au_maps`: its landmarks from the faces table and the codebook
AUs of its dominant emotion in the expressions table), and each batch's loss adds weight * the distance
between the CAM layer's attention and that map (`au_maps.guidance_loss`; frames without a face, without
expressions or with a neutral face have no map and add nothing). Maps flip with their images. The
per-epoch mean of the term is the history's `guidance_loss`; `train_loss` stays the trait loss.
With `au_guidance_scale` "init" (the default) the term is normalised at initialisation: multiplied by
(trait loss / guidance term) of the first training batch, so that the weight is relative to the trait
loss (about 0.01 for sigmoid MSE against a term of about 1, which a raw weight of 1 would swamp); the
factor is the history's `guidance_scale`.

Reproducibility: one seed drives Python, numpy, torch, weight init, shuffling, augmentation and the
DataLoader workers; `torch.use_deterministic_algorithms` is on (warn-only, since a few CUDA kernels
have no deterministic version). On a CPU two runs with the same seed and thread count give identical
numbers. On a GPU, mixed precision (bfloat16 where supported, else float16 with loss scaling) is used
when `amp` is on; autocast is never used on a CPU.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from impressions import metrics
from impressions.data import splits as data_splits
from impressions.layout import PREPROCESSING_SECTIONS, Outputs  # noqa: F401 - part of this module's API
from impressions.models import networks as models
from impressions.models import registry, transforms
from impressions.schemas import SPLITS, TRAITS
from impressions.training import datasets

# This module's API gathers the pieces training is made of (tests and scripts use them by these names).
from impressions.training.epochs import EuclideanLoss, Prepare, _loss_fn, fit, predict_clips  # noqa: F401
from impressions.training.guidance import GUIDANCE_MAP_SIZE, guidance_maps, write_guidance_maps  # noqa: F401
from impressions.training.inputs import (  # noqa: F401
    HANDCRAFTED_AGE,
    HANDCRAFTED_GENDER,
    Inputs,
    _audio_sets,
    _clips_by_split,
    _features_matrix,
    _frame_sets,
    _impute,
    _read,
    au_statistics,
    handcrafted_features,
    voice_features,
)
from impressions.training.outputs import (  # noqa: F401
    PREDICTION_COLUMNS,
    _write_all,
    plot_history,
    predictions_frame,
    write_history,
)
from impressions.training.settings import TRAIN_KEYS, Settings, _autocast, resolve_device, seed_everything  # noqa: F401

log = logging.getLogger(__name__)


@dataclass
class _Trained:
    """What a family's training produced, before it is written."""

    model: nn.Module
    builder: dict
    history: list[dict]
    preds: dict  # split -> (clips, 5), training mean where a clip had no input
    feats: dict  # split -> (clips, d) penultimate features
    filled: dict  # split -> bool (clips,): no input, given the training mean
    fills: dict  # for the checkpoint: feature_fill or input_fill
    extra: dict  # for the summary
    x: str = "epoch"


def train_family(
    family: str, inputs: Inputs, outputs: Outputs, common: Mapping, options: Mapping, name: str | None = None,
    preprocessing: Mapping | None = None,
) -> dict:  # fmt: skip
    """Train one model family end to end and write its outputs (see the module docstring)."""
    name = name or family
    spec = registry.get(family)
    if not spec.trained:
        raise ValueError(f"{family}: nothing is fitted for this family (trainer {spec.trainer})")
    # the registry's fixed settings win over the config's (au_linear_published: no ridge penalty)
    settings, builder = Settings.from_options(common, {**options, **spec.fixed})
    seed_everything(settings.seed, settings.threads)
    device = resolve_device(settings.device)
    clips_table = data_splits.read_clips(inputs.clips, inputs.splits, settings.split, settings.seed)
    splits = _clips_by_split(clips_table)
    sizes = [len(c) for c in splits.values()]
    if not sizes[0] or not sizes[1]:
        raise ValueError(f"{family}: need labelled train and val clips (have train/val/test {sizes})")
    log.info("%s (%s): %s clips train/val/test (%s split) on %s", name, family, sizes, settings.split, device)
    if settings.au_guidance_weight < 0:
        raise ValueError(f"au_guidance_weight must be >= 0, not {settings.au_guidance_weight}")
    if settings.au_guidance_scale not in ("init", "none"):
        raise ValueError(f"au_guidance_scale must be init or none, not {settings.au_guidance_scale!r}")
    if settings.au_guidance_weight > 0 and not spec.cam:
        cam = " and ".join(registry.names(cam=True))
        raise ValueError(f"{family}: au_guidance_weight applies to the {cam} families only (CAM-explainable)")
    start = time.perf_counter()
    if spec.trainer == "samples":
        done = _train_on_samples(family, inputs, splits, settings, builder, device)
    elif spec.trainer == "text":
        from impressions.training.text import train_text

        done = _Trained(*train_text(inputs, splits, settings, builder), x="setting")
    else:
        done = _train_on_table(family, inputs, clips_table, splits, settings, builder, device)
    extra = {"device": device, "preprocessing": dict(preprocessing or {}), **done.extra,
             "train_seconds": time.perf_counter() - start}  # fmt: skip
    summary = _write_all(
        name, family, outputs, splits, done.preds, done.feats, done.filled, done.history, done.model.cpu(),
        done.builder, settings, extra, done.x, done.fills,
    )  # fmt: skip
    log.info("%s: validation mean accuracy %.4f (selected %s)", name, summary["selected"]["val_mean"],
             summary["selected"])  # fmt: skip
    return summary


def _train_on_samples(family, inputs, splits, settings, builder, device) -> _Trained:
    """Networks on frames, faces or audio arrays: fit, then per-clip means over each clip's samples."""
    kind = registry.get(family).sample_kind
    if kind in registry.IMAGE_KINDS:
        sets = _frame_sets(family, inputs, splits)
    else:
        sets = _audio_sets(inputs, splits, settings.crop_seconds)
        if settings.crop_seconds:  # whole clips differ in length: score them one at a time
            settings = Settings(**{**asdict(settings), "eval_batch_size": 1})
    if kind == "logfbank":
        n_filters, n_frames = np.load(inputs.audio_array, mmap_mode="r").shape[1:]
        builder = {"n_filters": int(n_filters), "n_frames": int(n_frames), **builder}
    if len(sets["train"]) == 0:
        raise ValueError(f"{family}: no training samples (no {kind} for any training clip)")
    # An image network carries its input transform (resize, scale; it normalises itself), reused by
    # prediction and interpretation through the checkpoint.
    model = transforms.attach(models.build(family, **builder), settings.input_size)
    prepare = Prepare(kind, getattr(model, "transform", settings.input_size), settings.augment, settings.seed)
    extra: dict = {}
    if kind == "waveform":
        extra["audio_samples"] = (
            f"random {settings.crop_seconds:g} s crops for training, whole clips (one at a time) for scoring"
            if settings.crop_seconds
            else "the stored window for training and scoring"
        )
    train_set = sets["train"]
    if kind in registry.IMAGE_KINDS:
        extra["au_guidance_weight"] = float(settings.au_guidance_weight)
    with tempfile.TemporaryDirectory(prefix="impressions-au-maps-") as scratch:
        if settings.au_guidance_weight > 0:
            # on disk, read back row by row: FI's 600,000 training frames have 1.2 GB of maps
            path = Path(scratch) / "au_maps.npy"
            guided = write_guidance_maps(path, family, inputs, sets["train"], shape=settings.au_map)
            if not guided:
                raise ValueError(f"{family}: au_guidance_weight > 0 but no training frame has an AU map "
                                 "(no landmarks, or no non-neutral emotion)")  # fmt: skip
            log.info("AU guidance (weight %g): %d of %d training frames have an AU map",
                     settings.au_guidance_weight, guided, len(sets["train"]))  # fmt: skip
            extra["au_guidance_samples"] = guided
            train_set = datasets.AUMapDataset(sets["train"], datasets.NpyRows(path))
        model, history = fit(model, train_set, sets["val"], splits["val"], settings, prepare, device)
    train_mean = metrics.train_mean(splits["train"].labels)
    preds, feats, filled = {}, {}, {}
    for s, clips in splits.items():
        p, f, counts = predict_clips(
            model, sets[s], len(clips), prepare, device, settings.eval_batch_size, settings.amp,
            settings.num_workers,
        )  # fmt: skip
        filled[s] = counts == 0
        preds[s] = np.where(filled[s][:, None], train_mean, p)
        feats[s] = f
    # Clips without input get the training mean of the features too, so fusion sees a neutral value.
    train_feats = feats["train"][~filled["train"]]
    feat_mean = train_feats.mean(axis=0) if len(train_feats) else np.zeros(feats["train"].shape[1])
    feats = {s: np.where(filled[s][:, None], feat_mean, f) for s, f in feats.items()}
    extra = {"samples": {s: len(d) for s, d in sets.items()}, "input_size": settings.input_size, **extra}
    fills = {"feature_fill": feat_mean.astype(float).tolist()}
    return _Trained(model, builder, history, preds, feats, filled, fills, extra)


def _train_on_table(family, inputs, clips_table, splits, settings, builder, device) -> _Trained:
    """au_linear and the fusion models: one row of features per clip."""
    all_ids = [c for s in SPLITS for c in splits[s].ids]
    bounds = np.cumsum([0] + [len(splits[s]) for s in SPLITS])
    per_split = {s: slice(bounds[i], bounds[i + 1]) for i, s in enumerate(SPLITS)}
    matrix, names = _features_matrix(family, settings, inputs, clips_table, all_ids)
    matrix, imputed, col_mean = _impute(matrix, per_split["train"])
    oof, fit_extra = None, {}
    ridge = registry.get(family).trainer == "ridge"
    if ridge:
        model, history = _fit_ridge(matrix, per_split, splits, settings)
        x = "alpha"
    elif settings.fit_on == "heldout":
        # No fusion weight sees a component's output for a clip it trained on (impressions.training.fusion).
        from impressions.training import fusion

        youtube = dict(zip(clips_table["clip_id"].to_list(), clips_table["youtube_id"].to_list()))
        groups = [youtube.get(c) or c for c in splits["val"].ids]
        model, history, oof, fit_extra = fusion.fit_heldout(
            lambda: models.build(family, in_dim=matrix.shape[1], **builder), matrix[per_split["val"]],
            splits["val"], groups, settings, device, settings.folds,
        )  # fmt: skip
        x = "epoch"
    elif settings.fit_on != "train":
        raise ValueError(f"{family}: fit_on must be heldout or train, not {settings.fit_on!r}")
    else:
        model = models.build(family, in_dim=matrix.shape[1], **builder)
        model.scale.fit(matrix[per_split["train"]])
        sets = {
            s: datasets.RowDataset(splits[s], matrix[per_split[s]], np.arange(len(splits[s]))) for s in SPLITS
        }
        model, history = fit(
            model, sets["train"], sets["val"], splits["val"], settings, Prepare("features"), device
        )
        x = "epoch"
    model = model.cpu().eval()
    train_mean = metrics.train_mean(splits["train"].labels)
    preds, feats, filled = {}, {}, {}
    with torch.no_grad():
        for s in SPLITS:
            xs = torch.from_numpy(matrix[per_split[s]])
            feats[s] = model.embed(xs).numpy()
            # au_linear: a clip without any face frame has nothing but imputed inputs. Fusion models
            # always have their components' features (themselves the training mean where missing).
            filled[s] = imputed[per_split[s]] if ridge else np.zeros(len(splits[s]), bool)
            preds[s] = np.where(filled[s][:, None], train_mean, model(xs).double().numpy())
    if oof is not None:
        preds["val"] = oof  # each validation clip scored by the fold member that did not fit on it
    builder = {"in_dim": int(matrix.shape[1]), **builder}
    if isinstance(model, nn.Module) and hasattr(model, "members"):
        builder["members"] = len(model.members)
    fills = {"input_fill": col_mean.astype(float).tolist()}
    extra = {"feature_names": names, **fit_extra}
    return _Trained(model, builder, history, preds, feats, filled, fills, extra, x)


def _fit_ridge(matrix: np.ndarray, per_split: dict, splits: dict, settings: Settings):
    """Closed-form ridge for each penalty in `alphas`; keep the best on validation mean accuracy."""
    x_train, y_train = matrix[per_split["train"]], splits["train"].labels
    x_val, y_val = torch.from_numpy(matrix[per_split["val"]]), splits["val"].labels
    history, best = [], None
    for alpha in sorted(settings.alphas):
        model = models.RidgeRegression(matrix.shape[1]).fit(x_train, y_train, alpha)
        with torch.no_grad():
            pred = model(x_val).double().numpy()
            train_pred = model(torch.from_numpy(x_train)).double().numpy()
        acc = metrics.accuracy(y_val, pred)
        row = {
            "alpha": alpha,
            "train_loss": float(((train_pred - y_train) ** 2).mean()),
            "val_loss": float(((pred - y_val) ** 2).mean()),
            **{f"val_{t}": float(a) for t, a in zip(TRAITS, acc)},
            "val_mean": float(acc.mean()),
        }
        history.append(row)
        if best is None or row["val_mean"] > best[0]:
            best = (row["val_mean"], model)
    return best[1], history
