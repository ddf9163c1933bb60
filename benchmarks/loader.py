"""Images per second of the face model's training data loader alone (no model, no device copy).

    .venv/bin/python benchmarks/loader.py [--clips 200] [--frames 10] [--size 224] [--batches 300]
                                          [--batch-size 64] [--workers 0 2 4] [--repeats 3]
                                          [--storage jpeg npy] [--source real|noise]

Writes FI-sized per-clip data to a temporary folder with the workflow's own writer
(`impressions.data.image_store.write`: `clips/<id>/faces.tar`, JPEG q90, or `faces.npy`, raw uint8,
per `--storage`) plus the clips and faces tables. `--source real` (the default) fills the clips
with aligned faces of a 15 s clip of real face video (preprocessed at 100 frames, cycled); `noise`
with uniform noise (JPEG's worst case, as large as npy). The datasets and loaders are built exactly
as `train_face` builds them (`impressions.training.inputs` turns the tables into per-split
`FrameDataset`s, `impressions.training.datasets.loader` makes the shuffled, seeded DataLoader with
persistent workers) on `device="cpu"`, so memory is not pinned. Each (storage, worker count) iterates
`--batches` batches (epochs repeat as needed); the first batch (worker start-up and the first file
opens) is timed apart from the steady state; the table gives the median and range of `--repeats`
runs (interleaved, since a shared machine's load drifts). The files were just written, so they are
read from the page cache: a cold disk would give less.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import polars as pl

from impressions import schemas
from impressions.schemas import TRAITS
from impressions.training import datasets
from impressions.training import loop as training


def build(
    root: Path, n_clips: int, n_frames: int, size: int, seed: int = 0, *, storage: str = "npy",
    images: np.ndarray | None = None,
) -> training.Inputs:  # fmt: skip
    """Per-clip faces under root/clips (`storage` layout) and the clips and faces tables; all in train.

    `images` (m, size, size, 3) uint8 are cycled through the clips; None: uniform noise.
    """
    from impressions.data import image_store

    rng = np.random.default_rng(seed)
    ids = [f"clip{i:05d}.000" for i in range(n_clips)]
    clip_dirs = {}
    for c, clip in enumerate(ids):
        folder = root / "clips" / clip
        folder.mkdir(parents=True)
        if images is None:
            faces = rng.integers(0, 256, (n_frames, size, size, 3), dtype=np.uint8)
        else:
            faces = images[np.arange(c * n_frames, (c + 1) * n_frames) % len(images)]
        image_store.write(folder, "faces", faces, storage=storage)
        clip_dirs[clip] = folder
    labels = rng.uniform(0, 1, (n_clips, len(TRAITS)))
    clips = pl.DataFrame({"clip_id": ids, "split": ["train"] * n_clips, **dict(zip(TRAITS, labels.T))})
    faces = schemas.frame(
        "faces",
        [{"clip_id": c, "frame_index": k, "has_face": True, "n_faces": 1, "chosen_face": 0}
         for c in ids for k in range(n_frames)],
    )  # fmt: skip
    (root / "tables").mkdir()
    clips.write_parquet(root / "tables" / "clips.parquet")
    faces.write_parquet(root / "tables" / "faces.parquet")
    return training.Inputs(
        clips=root / "tables" / "clips.parquet", frames=root / "tables" / "faces.parquet", clip_dirs=clip_dirs
    )


def real_faces(tmp: Path, frames: int = 100) -> np.ndarray:
    """Aligned 224 px faces of a 15 s clip of real face video, preprocessed as the workflow does."""
    from impressions.data import image_store, preprocess
    from impressions.testing import face_clip

    face_clip(tmp / "real.000.mp4", start=2, seconds=15)
    settings = preprocess.Settings(frames_per_clip=frames, storage="npy", identity=False)
    preprocess.preprocess_clip("real.000", tmp / "real.000.mp4", tmp / "real", settings)
    return image_store.read(tmp / "real", "faces").all()


def measure(
    inputs: training.Inputs, workers: int, batches: int, batch_size: int, batched: bool = True
) -> dict:
    """Steady-state images/s; `batched=False` fetches item by item (no `FrameDataset.__getitems__`)."""
    train_clips = datasets.Clips.from_table(pl.read_parquet(inputs.clips), "train")
    train = training._frame_sets("face", inputs, {"train": train_clips})["train"]
    if not batched:
        train.__getitems__ = None  # torch's fetcher then calls __getitem__ per item
    loader = datasets.loader(train, batch_size, shuffle=True, seed=0, device="cpu", num_workers=workers)
    start = time.perf_counter()
    images = done = 0
    first = None
    while done < batches:
        for x, _labels, _pos in loader:
            if first is None:
                first = time.perf_counter() - start
                steady_start = time.perf_counter()
            else:
                images += len(x)
            done += 1
            if done >= batches:
                break
    steady = time.perf_counter() - steady_start
    del loader  # ends persistent workers
    return {"workers": workers, "first": first, "images": images, "seconds": steady,
            "rate": images / steady, "mb_s": images * x[0].numel() / steady / 1e6}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2, 4])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--storage", nargs="+", default=["jpeg", "npy"], choices=["jpeg", "npy"])
    parser.add_argument("--source", choices=["real", "noise"], default="real")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="This DataLoader will create")  # more workers than cores
    with tempfile.TemporaryDirectory() as tmp:
        images = real_faces(Path(tmp)) if args.source == "real" else None
        if images is not None and images.shape[1] != args.size:
            raise SystemExit(f"--source real gives {images.shape[1]} px faces: use --size {images.shape[1]}")
        built = {s: build(Path(tmp) / s, args.clips, args.frames, args.size, storage=s, images=images)
                 for s in args.storage}  # fmt: skip
        print(f"{args.clips} clips x {args.frames} faces of {args.size}x{args.size}x3 ({args.source}); "
              f"{args.batches} batches of {args.batch_size}; pin_memory off (CPU)\n")  # fmt: skip
        runs = {(s, w): [] for s in args.storage for w in args.workers}
        for _ in range(args.repeats):
            for storage, workers in runs:
                runs[(storage, workers)].append(
                    measure(built[storage], workers, args.batches, args.batch_size)
                )
        print("| storage | num_workers | first batch s | images/s, median [range] | MB/s decoded (median) |")
        print("|---|---|---|---|---|")
        for (storage, workers), rs in runs.items():
            rates = [r["rate"] for r in rs]
            first = statistics.median(r["first"] for r in rs)
            mb_s = statistics.median(r["mb_s"] for r in rs)
            rate = f"{statistics.median(rates):.0f} [{min(rates):.0f}-{max(rates):.0f}]"
            print(f"| {storage} | {workers} | {first:.3f} | {rate} | {mb_s:.0f} |")


if __name__ == "__main__":
    main()
