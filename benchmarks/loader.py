"""Images per second of the face model's training data loader alone (no model, no device copy).

    .venv/bin/python benchmarks/loader.py [--clips 200] [--frames 10] [--size 224] [--batches 300]
                                          [--batch-size 64] [--workers 0 2 4] [--repeats 3]

Writes FI-sized synthetic per-clip data to a temporary folder: `clips/<id>/faces.npy` (uint8,
frames x size x size x 3, the layout the preprocessing writes) plus the clips and faces tables. The
datasets and loaders are built exactly as `train_face` builds them (`impressions.training.inputs` turns the
tables into per-split `FrameDataset`s, `impressions.training.datasets.loader` makes the shuffled, seeded
DataLoader with persistent workers) on `device="cpu"`, so memory is not pinned. Each worker count
iterates `--batches` batches (epochs repeat as needed); the first batch (worker start-up and the
first memory maps) is timed apart from the steady state; the table gives the median and range of
`--repeats` runs (worker counts interleaved, since a shared machine's load drifts). The files were
just written, so they are read from the page cache: a cold disk would give less.
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


def build(root: Path, n_clips: int, n_frames: int, size: int, seed: int = 0) -> training.Inputs:
    """Per-clip faces.npy under root/clips and the clips and faces tables; every clip in train."""
    rng = np.random.default_rng(seed)
    ids = [f"clip{i:05d}.000" for i in range(n_clips)]
    clip_dirs = {}
    for clip in ids:
        folder = root / "clips" / clip
        folder.mkdir(parents=True)
        np.save(folder / "faces.npy", rng.integers(0, 256, (n_frames, size, size, 3), dtype=np.uint8))
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


def measure(inputs: training.Inputs, workers: int, batches: int, batch_size: int) -> dict:
    train_clips = datasets.Clips.from_table(pl.read_parquet(inputs.clips), "train")
    train = training._frame_sets("face", inputs, {"train": train_clips})["train"]
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
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="This DataLoader will create")  # more workers than cores
    with tempfile.TemporaryDirectory() as tmp:
        inputs = build(Path(tmp), args.clips, args.frames, args.size)
        print(f"{args.clips} clips x {args.frames} faces of {args.size}x{args.size}x3 uint8; "
              f"{args.batches} batches of {args.batch_size}; pin_memory off (CPU)\n")  # fmt: skip
        runs = {w: [] for w in args.workers}
        for _ in range(args.repeats):
            for workers in args.workers:
                runs[workers].append(measure(inputs, workers, args.batches, args.batch_size))
        print("| num_workers | first batch s | images/s, median [range] | MB/s (median) |")
        print("|---|---|---|---|")
        for workers, rs in runs.items():
            rates = [r["rate"] for r in rs]
            first = statistics.median(r["first"] for r in rs)
            mb_s = statistics.median(r["mb_s"] for r in rs)
            rate = f"{statistics.median(rates):.0f} [{min(rates):.0f}-{max(rates):.0f}]"
            print(f"| {workers} | {first:.3f} | {rate} | {mb_s:.0f} |")


if __name__ == "__main__":
    main()
