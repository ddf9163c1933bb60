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
before training (`impressions.explain.au_maps`: its landmarks from the faces table and the codebook AUs of its
dominant emotion in the expressions table), and each batch's loss adds weight * the distance between
the CAM layer's attention and that map (`au_maps.guidance_loss`; frames without a face, without
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

import copy
import json
import logging
import os
import random
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from impressions import logs
from impressions.data import splits as data_splits
from impressions.explain import au_maps
from impressions.layout import PREPROCESSING_SECTIONS, Outputs  # noqa: F401 - part of this module's API
from impressions.models import networks as models
from impressions.report import metrics
from impressions.schemas import AUS, EMOTIONS, OUTPUTS, SPLITS, TRAITS, polars_schema
from impressions.training import datasets

log = logging.getLogger(__name__)

PREDICTION_COLUMNS = OUTPUTS["predictions"]
"""Schema of every model's predictions.parquet (`schemas.OUTPUTS`; one row per clip of val and test)."""

TRAIN_KEYS = frozenset(
    {"epochs", "batch_size", "lr", "weight_decay", "patience", "loss", "input_size", "augment", "alphas",
     "inputs", "eval_batch_size", "au_guidance_weight", "fit_on", "folds", "crop_seconds",
     "au_guidance_scale"}
)  # fmt: skip
"""Per-family config keys that configure training; every other key is a builder option."""

AU_FAMILIES = ("au_linear", "au_linear_published")
"""Closed-form linear models on per-clip AU features."""

HANDCRAFTED_AGE = ("0-6", "7-13", "14-18", "19-24", "25-32", "33-45", "46-60", "61+")
HANDCRAFTED_GENDER = ("male", "female")


@dataclass
class Settings:
    """Training settings: workflow-wide ones (seed, device...) and one family's (epochs, lr...)."""

    seed: int = 0
    device: str = "auto"
    amp: bool = True
    num_workers: int = 0
    split: str = "official"  # official or identity: impressions.data.splits (seeded by seed)
    threads: int = 0  # torch CPU threads; 0 leaves torch's default
    epochs: int = 10
    batch_size: int = 32
    eval_batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 5  # epochs without a better validation accuracy before stopping
    loss: str = "mse"  # mse, l1 (the challenge metric is an L1 error) or l2dist (DAN+'s Euclidean loss)
    input_size: int | None = None  # images are resized to this side on the device
    augment: bool = True  # random horizontal flips of training images
    alphas: list[float] = field(default_factory=lambda: [0.1, 1.0, 10.0, 100.0, 1000.0])  # au_linear
    inputs: list[str] = field(default_factory=lambda: ["image", "face", "audio"])  # fusion components
    au_guidance_weight: float = 0.0  # image / face: weight of the attention-to-AU-map term (0: off)
    # init: the term is multiplied by trait loss / guidance term on the first batch (at initialisation),
    # so weight 1 weighs it like the trait loss when training starts; none: the raw term.
    au_guidance_scale: str = "init"
    # fusion: fit on held-out component outputs (val, cross-fitted in `folds` group folds) or, leaky and
    # for comparison only, on the training split's (impressions.training.fusion)
    fit_on: str = "heldout"
    folds: int = 5
    # audio (waveform): train on random crops of this many seconds and score whole clips (their real
    # samples); None trains and scores on the stored window as is (the thesis's first 5 s)
    crop_seconds: float | None = None

    @classmethod
    def from_options(cls, common: Mapping, family_options: Mapping) -> tuple[Settings, dict]:
        """(training settings, builder options) from the config's `models` section and a family's keys."""
        known = set(cls.__dataclass_fields__)
        train = {k: v for k, v in family_options.items() if k in TRAIN_KEYS}
        builder = {k: v for k, v in family_options.items() if k not in TRAIN_KEYS}
        return cls(**{k: v for k, v in common.items() if k in known}, **train), builder


@dataclass
class Inputs:
    """What a family reads; unused fields stay None."""

    clips: Path
    frames: Path | None = None  # frames table (image) or faces table (face)
    clip_dirs: Mapping[str, Path] | None = None  # per-clip folders holding frames.npy / faces.npy
    audio_table: Path | None = None
    audio_array: Path | None = None  # audio_waveform.npy or audio_logfbank.npy, rows = audio table rows
    expressions: Path | None = None
    features: Mapping[str, Path] | None = None  # component model -> features.npz (fusion)
    faces: Path | None = None  # faces table: landmarks for AU guidance (the face family's `frames` has them)
    voice: Path | None = None  # voice table: voice_linear, and fusion_handcrafted's voice columns when given
    splits: Path | None = None  # the workflow's splits.parquet (impressions.data.splits); else computed

    @classmethod
    def from_files(
        cls, files: Mapping[str, str | Sequence[str]], clips_dir: str | Path | None = None
    ) -> Inputs:
        """From a rule's named inputs: `arrays` are per-clip files (their folders become `clip_dirs`)
        or, without them, the per-clip folders are read under `clips_dir`; `features` are component
        models' features.npz files (named by their model folder)."""

        def one(key):
            return Path(files[key]) if key in files else None

        arrays = files.get("arrays")
        features = files.get("features")
        return cls(
            clips=Path(files["clips"]),
            frames=one("frames"),
            clip_dirs=logs.clip_dirs(arrays)
            if arrays
            else logs.ClipFolders(clips_dir)
            if clips_dir
            else None,
            audio_table=one("audio_table"),
            audio_array=one("audio_array"),
            expressions=one("expressions"),
            features={Path(f).parent.name: Path(f) for f in features} if features else None,
            faces=one("faces"),
            voice=one("voice"),
            splits=one("splits"),
        )


# ----------------------------------------------------------------------------------------------------
# Reproducibility and devices


from impressions.devices import resolve_device  # noqa: E402, F401 - the one device rule, used below


def seed_everything(seed: int, threads: int = 0) -> None:
    """Seed every generator and make torch pick deterministic kernels."""
    # cuBLAS needs this before its first call to be deterministic; harmless on a CPU.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    if threads:
        torch.set_num_threads(threads)


def _autocast(device: str, amp: bool):
    if device.startswith("cuda") and amp:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype), dtype == torch.float16
    return torch.autocast("cpu", enabled=False), False


# ----------------------------------------------------------------------------------------------------
# The training loop


class Prepare:
    """Turns a loader batch into model input on the device (images: to float, resize, flip)."""

    def __init__(self, kind: str, input_size: int | None = None, augment: bool = False, seed: int = 0):
        self.kind, self.input_size, self.augment = kind, input_size, augment
        self.generator = torch.Generator().manual_seed(seed + 1)

    def __call__(self, x: torch.Tensor, device: str, train: bool, maps: torch.Tensor | None = None):
        """Model input; with `maps` (N, m, m) AU maps, (input, maps flipped with their images)."""
        x = x.to(device, non_blocking=True)
        if self.kind in ("frames", "faces"):
            flip = None
            if train and self.augment:
                flip = (torch.rand(x.shape[0], generator=self.generator) < 0.5).to(device)
            images = datasets.prepare_images(x, self.input_size, flip)
            if maps is None:
                return images
            # A map covers the whole stored image, so mirroring the image mirrors its map.
            maps = maps.to(device, non_blocking=True).float()
            return images, maps if flip is None else torch.where(flip.view(-1, 1, 1), maps.flip(-1), maps)
        return x.float()


class EuclideanLoss(nn.Module):
    """Batch mean of the unsquared Euclidean distance of the 5-d error: DAN+'s ``pdist`` loss (p = 2,
    root taken; Zhang et al. 2016), whose solver divides the batch sum by the batch size."""

    def forward(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(((out - target) ** 2).sum(dim=1).clamp_min(1e-12)).mean()


def _loss_fn(name: str) -> nn.Module:
    if name not in ("mse", "l1", "l2dist"):
        raise ValueError(f"loss must be mse, l1 or l2dist, not {name!r}")
    return {"mse": nn.MSELoss, "l1": nn.L1Loss, "l2dist": EuclideanLoss}[name]()


@torch.no_grad()
def predict_clips(
    model: nn.Module, dataset, n_clips: int, prepare: Prepare, device: str, batch_size: int = 128,
    amp: bool = False, num_workers: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Per-clip mean scores (n_clips, 5) and penultimate features, NaN where a clip has no samples; counts."""
    model.eval()
    scores, embeds, positions = [], [], []
    if len(dataset):
        batches = datasets.loader(
            dataset, batch_size, shuffle=False, seed=0, device=device, num_workers=num_workers
        )
        autocast, _ = _autocast(device, amp)
        for x, _, pos in batches:
            with autocast:
                # Every network family ends in embed -> (dropout) -> fc -> sigmoid; dropout is off in eval.
                emb = model.embed(prepare(x, device, train=False))
                out = torch.sigmoid(model.fc(emb))
            scores.append(out.float().cpu())
            embeds.append(emb.float().cpu())
            positions.append(pos)
    if not positions:
        dim = getattr(model, "feature_dim", 1)
        nan = np.full((n_clips, len(TRAITS)), np.nan)
        return nan, np.full((n_clips, dim), np.nan, dtype=np.float32), np.zeros(n_clips, dtype=np.int64)
    pos = torch.cat(positions)
    score, counts = datasets.clip_means(torch.cat(scores), pos, n_clips)
    emb, _ = datasets.clip_means(torch.cat(embeds), pos, n_clips)
    return score.numpy(), emb.numpy().astype(np.float32), counts.numpy()


def fit(
    model: nn.Module, train_set, val_set, val_clips: datasets.Clips, settings: Settings, prepare: Prepare,
    device: str,
) -> tuple[nn.Module, list[dict]]:  # fmt: skip
    """Train with Adam(W); keep the weights of the epoch with the best validation mean accuracy.

    With `settings.au_guidance_weight` > 0, `train_set` yields (x, y, position, AU map) (an
    `datasets.AUMapDataset`) and the loss adds weight * `au_maps.guidance_loss` on the model's
    feature maps (`model.forward_with_features`: one pass for both)."""
    from tqdm.auto import tqdm

    weight = float(settings.au_guidance_weight)
    guided = weight > 0
    if guided and not isinstance(train_set, datasets.AUMapDataset):
        raise ValueError("au_guidance_weight > 0 needs a training set with AU maps (datasets.AUMapDataset)")

    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    criterion = _loss_fn(settings.loss)
    autocast, use_scaler = _autocast(device, settings.amp)
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
    batches = datasets.loader(
        train_set, settings.batch_size, shuffle=True, seed=settings.seed, device=device,
        num_workers=settings.num_workers,
    )  # fmt: skip
    fill = metrics.train_mean(train_set.clips.labels)  # what clips without samples get, as in the end
    history: list[dict] = []
    best_acc, best_state, stale = -np.inf, None, 0
    scale = None  # the guidance term's normalisation, fixed on the first batch that has AU maps
    bar = tqdm(range(1, settings.epochs + 1), desc="epochs", unit="epoch", mininterval=5)
    for epoch in bar:
        start = time.perf_counter()
        model.train()
        total, seen = 0.0, 0
        guide_total, guide_seen = 0.0, 0
        for batch in batches:
            if guided:
                x, y, _, maps = batch
                (x, maps), y = prepare(x, device, train=True, maps=maps), y.to(device, non_blocking=True)
            else:
                x, y, _ = batch
                x, y = prepare(x, device, train=True), y.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            with autocast:
                if guided:
                    out, features = model.forward_with_features(x)
                else:
                    out = model(x)
            loss = criterion(out.float(), y)
            objective = loss
            if guided:
                guidance = au_maps.guidance_loss(features, maps)
                if scale is None and float(guidance.detach()) > 0:
                    scale = (
                        float(loss.detach()) / float(guidance.detach())
                        if settings.au_guidance_scale == "init"
                        else 1.0
                    )
                objective = loss + weight * (1.0 if scale is None else scale) * guidance
                n_guided = int(au_maps.has_target(maps).sum())
                guide_total += float(guidance.detach()) * n_guided
                guide_seen += n_guided
            scaler.scale(objective).backward()
            scaler.step(optimizer)
            scaler.update()
            total += float(loss.detach()) * len(y)
            seen += len(y)
        pred, _, counts = predict_clips(
            model, val_set, len(val_clips), prepare, device, settings.eval_batch_size, settings.amp,
            settings.num_workers,
        )  # fmt: skip
        has = counts > 0
        val_loss = (
            float(criterion(torch.from_numpy(pred[has]), torch.from_numpy(val_clips.labels[has]).double()))
            if has.any()
            else float("nan")
        )
        pred = np.where(has[:, None], pred, fill)
        acc = metrics.accuracy(val_clips.labels, pred)
        guide = (
            {"guidance_loss": guide_total / guide_seen if guide_seen else float("nan"),
             "guidance_scale": float("nan") if scale is None else scale}
            if guided
            else {}
        )  # fmt: skip
        row = {"epoch": epoch, "train_loss": total / max(seen, 1), **guide, "val_loss": val_loss,
               **{f"val_{t}": float(a) for t, a in zip(TRAITS, acc)}, "val_mean": float(acc.mean()),
               "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - start}  # fmt: skip
        improved = row["val_mean"] > best_acc
        row["best"] = improved
        history.append(row)
        log.info(
            "epoch %d: train loss %.5f, val loss %.5f, val mean accuracy %.4f%s%s",
            *(epoch, row["train_loss"], val_loss, row["val_mean"], " (best)" if improved else ""),
            f", AU guidance loss {row['guidance_loss']:.4f}" if guided else "",
        )
        bar.set_postfix(train_loss=f"{row['train_loss']:.4f}", val_acc=f"{row['val_mean']:.4f}")
        if improved:
            best_acc, best_state, stale = row["val_mean"], copy.deepcopy(model.state_dict()), 0
        else:
            stale += 1
            if stale >= settings.patience:
                log.info("no better validation accuracy for %d epochs: stopping", stale)
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    return model, history


# ----------------------------------------------------------------------------------------------------
# Family data


def _read(path):
    import polars as pl

    return pl.read_parquet(path)


def _clips_by_split(clips_table) -> dict[str, datasets.Clips]:
    return {s: datasets.Clips.from_table(clips_table, s) for s in SPLITS}


def _frame_sets(family: str, inputs: Inputs, splits: dict[str, datasets.Clips]) -> dict:
    faces = family == "face"
    table = _read(inputs.frames)
    if faces and "has_face" not in table.columns:
        raise ValueError(f"{inputs.frames} has no has_face column: the face model needs the faces table")
    array = "faces.npy" if faces else "frames.npy"
    return {
        s: datasets.FrameDataset(c, inputs.clip_dirs, datasets.frame_items(table, c.ids, faces), array)
        for s, c in splits.items()
    }


GUIDANCE_MAP_SIZE = 32
"""Side of the AU maps kept per training frame (float16): guidance resizes them to the feature map."""


def guidance_maps(
    family: str, inputs: Inputs, dataset: datasets.FrameDataset, size: int = GUIDANCE_MAP_SIZE,
    sigma: float = au_maps.SIGMA,
) -> np.ndarray:  # fmt: skip
    """(len(dataset), size, size) float16 AU maps of a frame dataset's items, in stored-image coordinates.

    Landmarks come from the faces table (`inputs.faces`; for the face family its `frames` input is
    the faces table): `landmarks_aligned` for face crops (crop pixels; crops are stored at the aligner's
    size), `landmarks` for frames, rescaled from the decoded frame (`width`, `height` of the frames
    table) to the stored square. The emotion is the frame's most probable one in the expressions table.
    Items without a face, without an expressions row or with a neutral face get all-zero maps."""
    import polars as pl

    faces_path = inputs.faces or (inputs.frames if family == "face" else None)
    missing = [what for what, path in (("faces table (faces=, for landmarks)", faces_path),
                                       ("expressions table (expressions=, for emotions)", inputs.expressions))
               if path is None]  # fmt: skip
    if missing:
        raise ValueError(f"{family}: au_guidance_weight > 0 needs the {' and the '.join(missing)}")
    column = "landmarks_aligned" if family == "face" else "landmarks"
    faces = _read(faces_path)
    if column not in faces.columns:
        raise ValueError(f"{faces_path} has no {column} column: AU guidance needs the faces table")
    keys = pl.DataFrame(
        {"clip_id": [dataset.clips.ids[pos] for pos, _ in dataset.items],
         "frame_index": [k for _, k in dataset.items]},
        schema={"clip_id": pl.String, "frame_index": pl.Int32},
    ).with_row_index("item")  # fmt: skip
    on = ["clip_id", "frame_index"]
    expressions = _read(inputs.expressions).select(*on, *EMOTIONS)
    table = keys.join(faces.select(*on, column), on=on, how="left").join(expressions, on=on, how="left")
    if family == "image":
        table = table.join(_read(inputs.frames).select(*on, "width", "height"), on=on, how="left")
    table = table.sort("item")
    points = np.full((len(keys), 68, 2), np.nan)
    for i, value in enumerate(table[column].to_list()):
        if value is not None and len(value) == 136:
            points[i] = np.asarray(value, dtype=np.float64).reshape(68, 2)
    shape = dataset.image_shape()
    if shape is not None:
        stored = np.array([shape[1], shape[0]], np.float64)  # (width, height)
        if family == "image":
            points = au_maps.stored_landmarks(points, table.select("width", "height").to_numpy(), stored)
        points = au_maps.rescale_points(points, stored, (size, size))
    emotions = au_maps.dominant_emotions(table.select(EMOTIONS).to_numpy())
    return au_maps.frame_maps(points, emotions, size, sigma).astype(np.float16)


def _audio_sets(inputs: Inputs, splits: dict[str, datasets.Clips], crop_seconds: float | None = None) -> dict:
    """Audio rows per split; with `crop_seconds`, random crops for training and whole clips elsewhere."""
    table = _read(inputs.audio_table)
    row_ids = table["clip_id"].to_list()
    array = np.load(inputs.audio_array, mmap_mode="r")
    if array.shape[0] != len(row_ids):
        raise ValueError(f"{inputs.audio_array} has {array.shape[0]} rows, the audio table {len(row_ids)}")
    sets = {
        s: datasets.RowDataset(c, inputs.audio_array, datasets.rows_for(c.ids, row_ids))
        for s, c in splits.items()
    }
    if crop_seconds:
        if array.ndim != 2:
            raise ValueError("crop_seconds applies to the waveform model (audio) only")
        rate = int(table["sample_rate"][0]) if table.height else 16000
        crop = int(round(crop_seconds * rate))
        lengths = table["n_samples"].to_list()
        sets = {
            s: datasets.RandomCrop(d, lengths, crop) if s == "train" else datasets.WholeClip(d, lengths, crop)
            for s, d in sets.items()
        }
    return sets


def au_statistics(expressions) -> tuple[list[str], np.ndarray, list[str]]:
    """Per clip: mean, std and max of each AU over its face frames -> (clip ids, (n, 51), column names)."""
    import polars as pl

    aggs = [pl.col(a).mean().alias(f"{a}_mean") for a in AUS]
    aggs += [pl.col(a).std(ddof=0).alias(f"{a}_std") for a in AUS]
    aggs += [pl.col(a).max().alias(f"{a}_max") for a in AUS]
    stats = expressions.group_by("clip_id").agg(aggs).sort("clip_id")
    names = [c for c in stats.columns if c != "clip_id"]
    return stats["clip_id"].to_list(), stats.select(names).to_numpy().astype(np.float64), names


def handcrafted_features(clips_table, expressions) -> tuple[list[str], np.ndarray, list[str]]:
    """Per clip: age group and gender one-hot (all zeros when unknown) and mean emotion probabilities."""
    import polars as pl

    emotions = expressions.group_by("clip_id").agg([pl.col(e).mean() for e in EMOTIONS])
    table = (
        clips_table.select("clip_id", "age_group", "gender")
        .join(emotions, on="clip_id", how="left")
        .sort("clip_id")
    )
    cols = [
        (pl.col("age_group") == a).fill_null(False).cast(pl.Float64).alias(f"age_{a}")
        for a in HANDCRAFTED_AGE
    ]
    cols += [
        (pl.col("gender") == g).fill_null(False).cast(pl.Float64).alias(f"gender_{g}")
        for g in HANDCRAFTED_GENDER
    ]
    cols += [
        pl.col(e).cast(pl.Float64).alias(f"emotion_{e}") for e in EMOTIONS
    ]  # null without a face: imputed later
    out = table.select("clip_id", *cols)
    names = out.columns[1:]
    return out["clip_id"].to_list(), out.select(names).to_numpy().astype(np.float64), names


RIDGE_FAMILIES = (*AU_FAMILIES, "voice_linear")
"""Families fitted in closed form (ridge penalty chosen on validation); a clip whose inputs are all
imputed gets the training mean."""


def voice_features(voice) -> tuple[list[str], np.ndarray, list[str]]:
    """Per clip: the voice table's descriptors (impressions.data.voice), NaN where undefined (no voiced
    frame) -> (clip ids, (n, 14), names prefixed `voice_`)."""
    from impressions.schemas import VOICE

    table = voice.sort("clip_id")
    values = table.select(list(VOICE)).to_numpy().astype(np.float64)
    return table["clip_id"].to_list(), values, [f"voice_{v}" for v in VOICE]


def _features_matrix(family: str, settings: Settings, inputs: Inputs, clips_table, all_ids):
    """(n_all_clips, d) float matrix with NaN where a component has nothing for a clip, and its names."""
    blocks, names = [], []
    if family in ("fusion", "fusion_handcrafted"):
        missing = [m for m in settings.inputs if m not in (inputs.features or {})]
        if missing:
            raise ValueError(f"{family}: no features given for component models {missing}")
        for name in settings.inputs:
            with np.load(inputs.features[name]) as data:
                rows = datasets.rows_for(all_ids, data["clip_id"].tolist())
                feats = data["features"].astype(np.float64)
            block = np.full((len(all_ids), feats.shape[1]), np.nan)
            block[rows >= 0] = feats[rows[rows >= 0]]
            blocks.append(block)
            names += [f"{name}_{i}" for i in range(feats.shape[1])]
    if family == "voice_linear" or (family == "fusion_handcrafted" and inputs.voice is not None):
        if inputs.voice is None:
            raise ValueError("voice_linear needs the voice table (results/tables/voice.parquet)")
        ids, values, cols = voice_features(_read(inputs.voice))
        rows = datasets.rows_for(all_ids, ids)
        block = np.full((len(all_ids), values.shape[1]), np.nan)
        block[rows >= 0] = values[rows[rows >= 0]]
        blocks.append(block)
        names += cols
    if family in ("fusion_handcrafted", *AU_FAMILIES):
        expressions = _read(inputs.expressions)
        if family == "au_linear_published":  # the 17 per-clip means only (Ventura et al. 2017)
            ids, values, cols = au_statistics(expressions)
            values, cols = values[:, : len(AUS)], cols[: len(AUS)]
        elif family == "au_linear":
            ids, values, cols = au_statistics(expressions)
        else:
            ids, values, cols = handcrafted_features(clips_table, expressions)
        rows = datasets.rows_for(all_ids, ids)
        block = np.full((len(all_ids), values.shape[1]), np.nan)
        block[rows >= 0] = values[rows[rows >= 0]]
        blocks.append(block)
        names += cols
    return np.concatenate(blocks, axis=1), names


def _impute(matrix: np.ndarray, train_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NaN -> the training column mean (0 where a column is NaN on every training clip).

    Returns the filled matrix, which rows had a NaN, and the column means used."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a column with no training value: mean of nothing
        col_mean = np.nan_to_num(np.nanmean(matrix[train_rows], axis=0))
    missing = np.isnan(matrix)
    filled = np.where(missing, col_mean, matrix)
    return filled.astype(np.float32), missing.any(axis=1), col_mean


# ----------------------------------------------------------------------------------------------------
# Writing results


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
    summary = {
        "model": name, "family": family, "selected": {k: best[k] for k in (x, "val_mean")},
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


# ----------------------------------------------------------------------------------------------------
# Entry point


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
    if family not in models.FAMILIES:
        raise KeyError(f"unknown model family {family!r}; known: {models.list_models()}")
    settings, builder = Settings.from_options(common, options)
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
    if settings.au_guidance_weight > 0 and models.INPUTS[family] not in ("frames", "faces"):
        raise ValueError(f"{family}: au_guidance_weight applies to the image and face families only")
    start = time.perf_counter()
    if models.INPUTS[family] in ("frames", "faces", "waveform", "logfbank"):
        done = _train_on_samples(family, inputs, splits, settings, builder, device)
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
    kind = models.INPUTS[family]
    if kind in ("frames", "faces"):
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
    model = models.build(family, **builder)
    prepare = Prepare(kind, settings.input_size, settings.augment, settings.seed)
    extra: dict = {}
    if kind == "waveform":
        extra["audio_samples"] = (
            f"random {settings.crop_seconds:g} s crops for training, whole clips (one at a time) for scoring"
            if settings.crop_seconds
            else "the stored window for training and scoring"
        )
    train_set = sets["train"]
    if kind in ("frames", "faces"):
        extra["au_guidance_weight"] = float(settings.au_guidance_weight)
    if settings.au_guidance_weight > 0:
        maps = guidance_maps(family, inputs, sets["train"])
        guided = int(au_maps.has_target(torch.from_numpy(maps)).sum()) if len(maps) else 0
        if not guided:
            raise ValueError(f"{family}: au_guidance_weight > 0 but no training frame has an AU map "
                             "(no landmarks, or no non-neutral emotion)")  # fmt: skip
        log.info("AU guidance (weight %g): %d of %d training frames have an AU map",
                 settings.au_guidance_weight, guided, len(maps))  # fmt: skip
        extra["au_guidance_samples"] = guided
        train_set = datasets.AUMapDataset(sets["train"], maps)
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
    matrix, imputed, col_mean = _impute(matrix, np.arange(bounds[0], bounds[1]))
    oof, fit_extra = None, {}
    if family in RIDGE_FAMILIES:
        if family == "au_linear_published":
            settings = Settings(**{**asdict(settings), "alphas": [0.0]})  # plain least squares
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
            filled[s] = imputed[per_split[s]] if family in RIDGE_FAMILIES else np.zeros(len(splits[s]), bool)
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
