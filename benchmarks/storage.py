"""Frames and faces storage at FI scale: disk per frame, loader images/s, files per shard.

    .venv/bin/python benchmarks/storage.py [--frames 100] [--workers 2] [--batches 200] [--repeats 3]

Preprocesses a 15 s 640x360 clip of real face video at `--frames` frames (`preprocess_clip`: 224 px
frames for the image model and 224 px aligned faces), then stores those images with the workflow's
own writer (`impressions.data.image_store.write`) in each layout: raw uint8 `.npy` (`frames.storage:
npy`) and JPEG in one tar per clip and kind (`frames.storage: jpeg`) at quality 90 (the default) and
95. It prints bytes per image (the whole file over its images, container headers included),
encode and decode milliseconds per image through the workflow's reader (`image_store.read(...).all()`),
and the projected disk for FI (10,000 clips) at 10 and 100 frames per clip. Then the images per
second the training loader delivers with `--workers` workers at 224 px from each layout
(`benchmarks/loader.py`: a 100-clip x 10-face shard of those real faces, the loader `train_face`
builds, shuffled batches of 64; just written, so read from the page cache), the JPEG loader also
item by item (no `FrameDataset.__getitems__`), all interleaved in one run, beside the CPU time a
worker spends per image (`fetch_cpu`: what limits the loader on a busy machine); and the files a
clip folder holds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

FI_CLIPS = 10_000
GIB = 2**30
LAYOUTS = [("npy", "npy", None), ("JPEG q90 (default)", "jpeg", 90), ("JPEG q95", "jpeg", 95)]


def fetch_cpu(inputs, batches: int = 15, seed: int = 0) -> float:
    """CPU ms per image of what a loader worker does for a batch (fetch and collate), on one thread.

    CPU time, not wall time: on a shared machine it is what each image costs a core, whatever the
    load; a worker per idle core delivers at most 1000 / this images/s.
    """
    import polars as pl
    import torch

    from impressions.training import datasets
    from impressions.training import loop as training

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a DataLoader worker
    clips = datasets.Clips.from_table(pl.read_parquet(inputs.clips), "train")
    data = training._frame_sets("face", inputs, {"train": clips})["train"]
    data.__getitems__(list(range(len(data))))  # every file opened once, as a worker's cache holds them
    order = np.random.default_rng(seed).permutation(len(data))
    start = time.process_time()
    for b in range(batches):
        torch.utils.data.default_collate(data.__getitems__(order[b * 64 : (b + 1) * 64].tolist()))
    torch.set_num_threads(threads)
    return 1000 * (time.process_time() - start) / (batches * 64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="This DataLoader will create")
    import loader as loader_bench
    import simplejpeg  # noqa: F401 - loaded before timing: the first decode would pay its import

    from impressions.data import image_store, preprocess
    from impressions.testing import face_clip

    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        face_clip(tmp / "c.000.mp4", start=2, seconds=15)
        settings = preprocess.Settings(frames_per_clip=args.frames, storage="npy")
        preprocess.preprocess_clip("c.000", tmp / "c.000.mp4", tmp / "clip", settings)
        images = {kind: image_store.read(tmp / "clip", kind).all() for kind in image_store.KINDS}
        clip_files = sorted(p.name for p in (tmp / "clip").iterdir())
        print(f"one 15 s 640x360 clip of real face video at {args.frames} frames: "
              f"{len(images['frames'])} frames, {len(images['faces'])} faces, 224x224x3\n")  # fmt: skip
        print("| layout | KiB / frame | KiB / face | encode ms / image | decode ms / image | mean abs "
              "error, grey levels | FI disk @10 frames, GiB | FI disk @100 frames, GiB |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|")
        for name, storage, quality in LAYOUTS:
            kib, enc, dec, err = {}, [], [], []
            for kind, array in images.items():
                folder = tmp / f"{storage}{quality}"
                folder.mkdir(exist_ok=True)
                start = time.perf_counter()
                path = image_store.write(folder, kind, array, storage=storage, quality=quality or 90)
                enc.append((time.perf_counter() - start) / len(array))
                start = time.perf_counter()
                back = image_store.read(folder, kind).all()
                dec.append((time.perf_counter() - start) / len(array))
                assert back.shape == array.shape
                err.append(np.abs(back.astype(np.int16) - array).mean())
                kib[kind] = path.stat().st_size / len(array) / 1024
            per_frame = (kib["frames"] + kib["faces"]) * 1024  # bytes per sampled frame, both kinds
            disk = {n: FI_CLIPS * n * per_frame / GIB for n in (10, 100)}
            print(f"| {name} | {kib['frames']:.1f} | {kib['faces']:.1f} | {1000 * statistics.mean(enc):.2f} "
                  f"| {1000 * statistics.mean(dec):.2f} | {statistics.mean(err):.2f} | {disk[10]:.1f} "
                  f"| {disk[100]:.1f} |")  # fmt: skip

        built = {
            storage: loader_bench.build(tmp / f"shard_{storage}", 100, 10, 224, storage=storage,
                                        images=images["faces"])
            for storage in ("npy", "jpeg")
        }  # fmt: skip
        variants = {
            "npy": ("npy", True),
            "JPEG q90, a batch per worker call (__getitems__)": ("jpeg", True),
            "JPEG q90, item by item": ("jpeg", False),
        }
        rates = {name: [] for name in variants}
        for _ in range(args.repeats):  # interleaved: the shared machine's load drifts
            for name, (storage, batched) in variants.items():
                result = loader_bench.measure(built[storage], args.workers, args.batches, 64, batched=batched)
                rates[name].append(result["rate"])
        cpu = {storage: fetch_cpu(built[storage]) for storage in ("npy", "jpeg")}
        print(f"\nloader (as train_face builds it), {args.workers} workers, shuffled batches of 64 faces at "
              f"224 px, {args.batches} batches, median [range] of {args.repeats}:\n")  # fmt: skip
        print(
            "| layout | images/s | ratio to npy | worker CPU ms / image | 2 idle cores' ceiling, images/s |"
        )
        print("|---|---|---|---|---|")
        npy = statistics.median(rates["npy"])
        for name, values in rates.items():
            rate = statistics.median(values)
            ms = cpu[variants[name][0]]
            print(f"| {name} | {rate:.0f} [{min(values):.0f}-{max(values):.0f}] | {rate / npy:.2f} "
                  f"| {ms:.3f} | {2000 / ms:.0f} |")  # fmt: skip
        images_files = [
            f for f in clip_files if f in {image_store.filename(k, "npy") for k in image_store.KINDS}
        ]
        print(f"\nfiles per clip folder: {len(clip_files)} ({', '.join(clip_files)} in npy; frames.tar "
              f"and faces.tar in jpeg), {len(images_files)} of them images: {100 * len(images_files)} image "
              f"files per shard of 100 clips, {FI_CLIPS * len(images_files):,} for FI (a file per image: "
              f"{FI_CLIPS * 2 * args.frames:,} at {args.frames} frames)")  # fmt: skip
        print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
