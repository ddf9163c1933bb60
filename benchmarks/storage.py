"""Frames and faces storage at FI scale: disk per frame, loader images/s, files per shard.

    .venv/bin/python benchmarks/storage.py [--frames 100] [--workers 2] [--batches 200] [--repeats 3]

Preprocesses a 15 s 640x360 clip of real face video at `--frames` frames (`preprocess_clip`: 224 px
frames for the image model and 224 px aligned faces), then stores those images as today's per-clip
uint8 `.npy` and as JPEG / WebP blobs in one per-shard container (all blobs of a shard's clips
concatenated in one file, with an offsets array beside it: 2 files per shard and kind instead of one
per clip and kind). It prints bytes per image and encode/decode milliseconds, the projected disk for
FI (10,000 clips) at 10 and 100 frames per clip, and the images per second a torch DataLoader with
`--workers` workers delivers at 224 px from each layout (a shard of 100 clips x 10 images, shuffled,
batches of 64, decoding in the workers; just written, so read from the page cache).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

FI_CLIPS = 10_000
GIB = 2**30


def encode(image: np.ndarray, fmt: str, quality: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, fmt, quality=quality)
    return buf.getvalue()


def decode(blob) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"))


class NpyClips:
    """Today's layout: one (k, S, S, 3) uint8 .npy per clip, memory-mapped, one image per item."""

    def __init__(self, paths: list[Path], k: int):
        self.paths, self.k = paths, k

    def __len__(self):
        return len(self.paths) * self.k

    def __getitem__(self, i):
        import torch

        clip, frame = divmod(i, self.k)
        return torch.from_numpy(np.array(np.load(self.paths[clip], mmap_mode="r")[frame]))


class ShardContainer:
    """A per-shard container: encoded images concatenated in one file, `offsets` (n + 1,) beside it."""

    def __init__(self, data: Path, offsets: np.ndarray):
        self.data, self.offsets, self._map = data, offsets, None

    def __len__(self):
        return len(self.offsets) - 1

    def __getitem__(self, i):
        import torch

        if self._map is None:  # opened in each worker, after the fork
            self._map = np.memmap(self.data, np.uint8, "r")
        return torch.from_numpy(decode(memoryview(self._map[self.offsets[i] : self.offsets[i + 1]])).copy())


def loader_rate(dataset, workers: int, batches: int, batch_size: int = 64) -> float:
    import torch

    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
        persistent_workers=workers > 0, generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    done = images = 0
    start = None
    while done < batches:
        for x in loader:
            if start is None:  # the first batch (worker start-up) is timed apart
                start = time.perf_counter()
            else:
                images += len(x)
            done += 1
            if done >= batches:
                break
    rate = images / (time.perf_counter() - start)
    del loader
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="This DataLoader will create")
    from media import face_clip

    from impressions.data import preprocess

    formats = [
        ("npy", None, None),
        ("JPEG q90", "JPEG", 90),
        ("JPEG q95", "JPEG", 95),
        ("WebP q90", "WEBP", 90),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        face_clip(tmp / "c.000.mp4", start=2, seconds=15)
        preprocess.preprocess_clip(
            "c.000", tmp / "c.000.mp4", tmp / "clip", preprocess.Settings(frames_per_clip=args.frames)
        )
        images = {kind: np.load(tmp / "clip" / f"{kind}.npy") for kind in ("frames", "faces")}
        print(f"one 15 s 640x360 clip of real face video at {args.frames} frames: "
              f"{len(images['frames'])} frames, {len(images['faces'])} faces, 224x224x3\n")  # fmt: skip
        print("| layout | KiB / frame | KiB / face | encode ms / image | decode ms / image "
              "| FI disk @10 frames, GiB | FI disk @100 frames, GiB |")  # fmt: skip
        print("|---|---|---|---|---|---|---|")
        sizes, blobs = {}, {}
        for name, fmt, quality in formats:
            kib, enc, dec = {}, [], []
            for kind, array in images.items():
                if fmt is None:
                    kib[kind] = array[0].nbytes / 1024
                    continue
                start = time.perf_counter()
                encoded = [encode(image, fmt, quality) for image in array]
                enc.append((time.perf_counter() - start) / len(array))
                start = time.perf_counter()
                for blob in encoded:
                    decode(blob)
                dec.append((time.perf_counter() - start) / len(array))
                kib[kind] = sum(map(len, encoded)) / len(encoded) / 1024
                blobs[(name, kind)] = encoded
            per_clip_frame = (kib["frames"] + kib["faces"]) * 1024  # bytes per sampled frame, both kinds
            disk = {n: FI_CLIPS * n * per_clip_frame / GIB for n in (10, 100)}
            sizes[name] = kib
            enc_ms = f"{1000 * statistics.mean(enc):.2f}" if enc else "-"
            dec_ms = f"{1000 * statistics.mean(dec):.2f}" if dec else "-"
            print(f"| {name} | {kib['frames']:.1f} | {kib['faces']:.1f} | {enc_ms} | {dec_ms} "
                  f"| {disk[10]:.1f} | {disk[100]:.1f} |")  # fmt: skip

        # loader: a shard of 100 clips x 10 faces, from the real faces cycled
        n_clips, k = 100, 10
        faces = images["faces"]
        npy_paths = []
        for c in range(n_clips):
            path = tmp / "npy" / f"{c}.npy"
            path.parent.mkdir(exist_ok=True)
            np.save(path, faces[np.arange(c * k, c * k + k) % len(faces)])
            npy_paths.append(path)
        datasets = {"npy (per clip, today)": NpyClips(npy_paths, k)}
        for name in ("JPEG q90", "JPEG q95", "WebP q90"):
            encoded = [blobs[(name, "faces")][i % len(faces)] for i in range(n_clips * k)]
            data = tmp / f"{name.replace(' ', '_')}.bin"
            data.write_bytes(b"".join(encoded))
            offsets = np.concatenate([[0], np.cumsum([len(b) for b in encoded])])
            datasets[f"{name} (shard container)"] = ShardContainer(data, offsets)
        rates = {name: [] for name in datasets}
        for _ in range(args.repeats):  # interleaved: the shared machine's load drifts
            for name, dataset in datasets.items():
                rates[name].append(loader_rate(dataset, args.workers, args.batches))
        print(f"\nloader, {args.workers} workers, batches of 64 faces at 224 px, {args.batches} batches, "
              f"median [range] of {args.repeats}:\n")  # fmt: skip
        print("| layout | images/s | files per shard of 100 clips (frames + faces) |")
        print("|---|---|---|")
        for name, values in rates.items():
            files = (
                "200 (+ 400 other per-clip files)"
                if name.startswith("npy")
                else "4 (data + offsets, per kind)"
            )
            rate = f"{statistics.median(values):.0f} [{min(values):.0f}-{max(values):.0f}]"
            print(f"| {name} | {rate} | {files} |")


if __name__ == "__main__":
    main()
