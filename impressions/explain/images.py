"""What a network saw: the one loader of frames or aligned faces for every analysis, with their
landmarks, boxes, AUs and emotions in the stored image's pixels, and the model input built from them
exactly as in training.

Analyses run on the CPU unless a caller picks a device with `on_device`: the workflow's analyses run
on `models.device` (`analysis_device`: a GPU when there is one), benchmarks/gpu_check.py on its GPU;
`load_model` then puts the network there and `model_input` its input."""

from __future__ import annotations

import contextvars
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from impressions.data import image_store
from impressions.schemas import AUS, EMOTIONS, SPLITS

# ----------------------------------------------------------------------------------------------------
# Inputs


@dataclass
class Images:
    """Frames or aligned faces as a model saw them, with what is known about each."""

    kind: str  # frames or faces
    images: np.ndarray  # uint8 (n, S, S, 3)
    clip_ids: list[str]
    frame_index: np.ndarray  # (n,)
    boxes: np.ndarray  # (n, 4) face box in image pixels, NaN without a face (and for aligned faces)
    landmarks: np.ndarray  # (n, 68, 2) in image pixels, NaN without a face
    aus: np.ndarray  # (n, 17) AU intensities, NaN without expressions
    emotions: list[str | None]  # dominant emotion of the frame, None without expressions
    splits: tuple[str, ...] = ()  # the splits whose clips were read

    def __len__(self) -> int:
        return len(self.clip_ids)

    @property
    def size(self) -> int:
        return int(self.images.shape[1]) if len(self.images) else 0

    @property
    def has_face(self) -> np.ndarray:
        return ~np.isnan(self.landmarks[:, 0, 0])

    def subset(self, mask: np.ndarray) -> Images:
        idx = np.flatnonzero(mask)
        return Images(
            self.kind, self.images[idx], [self.clip_ids[i] for i in idx], self.frame_index[idx],
            self.boxes[idx], self.landmarks[idx], self.aus[idx], [self.emotions[i] for i in idx], self.splits,
        )  # fmt: skip


def _points(values) -> np.ndarray:
    if values is None:
        return np.full((68, 2), np.nan, np.float32)
    return np.asarray(values, np.float32).reshape(-1, 2)


def load_images(
    kind: str, clips, frames, faces, expressions, clips_dir: str | Path, *, splits: Sequence[str] = SPLITS,
    max_frames: int = 2000,
) -> Images:  # fmt: skip
    """Frames (kind "frames": every sampled frame) or aligned faces ("faces": frames with a face).

    `clips` is the clips table with the split the models used (`impressions.data.splits.read_clips`);
    `frames`, `faces`, `expressions` the dataset tables (expressions may be None); `clips_dir` holds
    the per-clip folders.
    """
    import polars as pl

    from impressions.expressions import au_maps

    if kind not in ("frames", "faces"):
        raise ValueError(f"kind must be frames or faces, not {kind!r}")
    on = ["clip_id", "frame_index"]
    keep = clips.filter(pl.col("split").is_in(list(splits)))["clip_id"].to_list()
    # The frames are picked from the key columns alone; only their rows of the other columns are read
    # (the tables may be LazyFrames: interpret.run scans them). Joined whole before the cut, the tables
    # took about 4 GB at FI's 1,000,000 frames, most of it the faces table's landmark lists.
    frames, faces = frames.lazy(), faces.lazy()
    picked = frames.select(*on).filter(pl.col("clip_id").is_in(keep))
    if kind == "faces":
        has_face = faces.select(*on, "has_face")
        picked = picked.join(has_face, on=on, how="left").filter(pl.col("has_face").fill_null(False))
    picked = picked.select(*on).sort(*on).collect()
    if picked.height > max_frames:
        picked = picked[np.unique(np.linspace(0, picked.height - 1, max_frames).round().astype(int)).tolist()]
    chosen = pl.struct(*on).is_in(picked.select(pl.struct(*on)).to_series().implode())
    # one table at a time: scanned in one query, the three are decoded at once
    parts = [
        frames.filter(chosen).select(*on, "width", "height"),
        faces.filter(chosen).drop("width", "height", strict=False),
    ]
    if expressions is not None and (isinstance(expressions, pl.LazyFrame) or expressions.height):
        parts.append(expressions.lazy().filter(chosen).select(*on, *AUS, *EMOTIONS))
    rows = picked
    for part in parts:
        rows = rows.join(part.collect(), on=on, how="left")
    rows = rows.sort(*on)
    images, boxes, landmarks, aus, emotions = [], [], [], [], []
    for (clip_id,), part in rows.group_by("clip_id", maintain_order=True):
        stored = image_store.read(Path(clips_dir) / clip_id, kind)
        size = stored.size[0]
        images += list(stored.batch(part["frame_index"].to_numpy()))
        for r in part.iter_rows(named=True):
            sx, sy = size / max(r["width"] or 1, 1), size / max(r["height"] or 1, 1)
            if kind == "faces":
                landmarks.append(_points(r["landmarks_aligned"]))
                boxes.append(np.full(4, np.nan, np.float32))
            else:
                # placed as training's AU guidance places them (pixel centres to pixel centres)
                decoded = (r["width"], r["height"])
                landmarks.append(au_maps.stored_landmarks(_points(r["landmarks"]), decoded, (size, size)))
                box = [r.get(k) for k in ("box_left", "box_top", "box_right", "box_bottom")]
                boxes.append(
                    np.full(4, np.nan, np.float32)
                    if any(v is None for v in box)
                    else np.array(box, np.float32) * np.array([sx, sy, sx, sy], np.float32)
                )
            au = [r.get(a) for a in AUS]
            aus.append(np.array([np.nan if v is None else v for v in au], np.float32))
            emotions += au_maps.dominant_emotions([r.get(e) for e in EMOTIONS])
    n = len(images)
    size = images[0].shape[0] if n else 0
    return Images(
        kind,
        np.stack(images) if n else np.zeros((0, size, size, 3), np.uint8),
        rows["clip_id"].to_list(),
        rows["frame_index"].to_numpy(),
        np.stack(boxes) if n else np.zeros((0, 4), np.float32),
        np.stack(landmarks).astype(np.float32) if n else np.zeros((0, 68, 2), np.float32),
        np.stack(aus) if n else np.zeros((0, len(AUS)), np.float32),
        emotions,
        tuple(splits),
    )


_DEVICE: contextvars.ContextVar[str] = contextvars.ContextVar("explain_device", default="cpu")


@contextmanager
def on_device(device: str):
    """Within the block, `load_model` and `model_input` place models and inputs on `device`."""
    token = _DEVICE.set(device)
    try:
        yield device
    finally:
        _DEVICE.reset(token)


def analysis_device(options: Mapping) -> str:
    """The device the workflow's analyses run on: `options["device"]` (the config's `models.device`:
    auto is a GPU when torch sees one), resolved as training resolves it."""
    from impressions.devices import resolve_device

    return resolve_device(options.get("device", "auto"))


def load_model(checkpoint: str | Path):
    """(model in eval mode, its input transform (impressions.models.transforms), checkpoint dict), on
    the device `on_device` picked (the CPU by default)."""
    from impressions.models import networks as models

    model, ckpt = models.load_checkpoint(checkpoint)
    model.to(_DEVICE.get())
    if not hasattr(model, "activation_maps"):
        raise ValueError(
            f"{checkpoint}: a {ckpt['family']} model has no class activation maps; "
            "interpretation needs an image or face model (DAN+)"
        )
    return model, model.transform, ckpt


def model_input(images: np.ndarray, transform):
    """uint8 (n, S, S, 3) -> float tensor (n, 3, s, s) in 0..1 by the model's own input transform
    (`model.transform`, recorded with its checkpoint: impressions.models.transforms), as in training;
    on the device `on_device` picked."""
    return transform(images).to(_DEVICE.get())


def batched(fn, x, batch_size: int = 64):
    outs = [fn(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    if isinstance(outs[0], tuple):
        return tuple(np.concatenate([o[k] for o in outs]) for k in range(len(outs[0])))
    return np.concatenate(outs)
