"""The per-clip costs beside the face search at 10 frames: decode, emotion CNN, audio features' first call.

    .venv/bin/python benchmarks/clip_costs.py [--repeats 5] [--frames 10 100]

Each row is a before and an after (or two ways of doing one thing) timed in this one run, CPU seconds
of one core (this process's `time.process_time`, children's rusage for ffmpeg and fresh processes),
median of `--repeats`:
- decode: `video.sample_frames` (one pass, a `select` filter, every frame decoded) against seeking to
  each sampled frame (`-ss` before `-i`: ffmpeg decodes from the keyframe before it, one process per
  frame), and ffmpeg's bare one-thread decode of the whole clip, on a 15 s 640x360 FI-like clip as
  `impressions.testing.face_clip` encodes it and on the same clip re-encoded with a keyframe every
  second (`--keyint`): seeking can only win where keyframes are close;
- emotion CNN: the builtin backend's net as it ran before (NCHW, the crops and their mirror images in
  two passes) against now (channels-last, one pass), per face, on one clip's aligned faces;
- audio features: a fresh process's first `audio.features` + `stats` call with librosa's stft, mel
  and yin (as before) against `impressions.data.spectral`'s numpy ones (now), and the bare process.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one core, as a job
    os.environ[_name] = "1"

import numpy as np  # noqa: E402


def children_cpu(fn) -> float:
    """CPU s of the child processes `fn` runs and waits for."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    fn()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def own_cpu(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def median(fn, repeats: int) -> float:
    return statistics.median(fn() for _ in range(repeats))


def seek_decode(path: Path, times: np.ndarray, max_side: int = 640) -> list[np.ndarray]:
    """Each frame by its own seek (one ffmpeg process each): the alternative to one decode pass."""
    from impressions import media
    from impressions.data import video

    frames = []
    for t in times:
        out = subprocess.run(
            [media.ffmpeg_exe(), "-v", "error", "-threads", "1", "-ss", f"{t:.6f}",
             "-i", video.ffmpeg_input(path), "-map", "0:v:0", "-frames:v", "1",
             "-vf", f"scale='min({max_side},iw)':-2", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
            capture_output=True, check=True,
        ).stdout  # fmt: skip
        frames.append(np.frombuffer(out, np.uint8))
    return frames


def decode_rows(clip: Path, frames_list: list[int], repeats: int) -> None:
    from impressions import media
    from impressions.data import video

    bare = median(lambda: children_cpu(lambda: subprocess.run(
        [media.ffmpeg_exe(), "-v", "error", "-threads", "1", "-i", str(clip), "-f", "null", "-"], check=True,
    )), repeats)  # fmt: skip
    info, times = video.scan(clip)
    print(f"  {clip.stem}: bare one-thread decode of the whole clip {bare:.3f} CPU s")
    for frames in frames_list:
        numbers, _ = video.wanted_frames(times, frames)
        wanted = times.starts[numbers]
        sample = video.sample_frames(clip, info, frames, 640, times)
        sought = seek_decode(clip, wanted)
        same = sum(np.array_equal(a.reshape(-1), b) for a, b in zip(sample.frames, sought))
        one_pass = median(
            partial(children_cpu, partial(video.sample_frames, clip, info, frames, 640, times)), repeats
        )
        seek = median(partial(children_cpu, partial(seek_decode, clip, wanted)), repeats)
        print(f"    {frames:3d} frames: one pass {one_pass:.3f} CPU s, a seek per frame {seek:.3f} "
              f"({seek / one_pass:.2f}x; {same}/{len(sought)} frames identical to the one pass's)"
        )  # fmt: skip


def emotion_rows(clip: Path, repeats: int) -> None:
    import torch

    from impressions.data import faces, video
    from impressions.expressions import builtin
    from impressions.expressions import emotion_net as fer_net

    torch.set_num_threads(1)
    detector = faces.detector()
    found = [detector.detect(f) for f in video.sample_frames(clip, video.probe(clip), 10).frames]
    crops = np.stack([f.crop for f in found if f.found])
    landmarks = np.stack([f.landmarks_aligned for f in found if f.found])
    backend = builtin.BuiltinBackend(device="cpu")
    plain = fer_net.load_keras_hdf5(builtin._fer_model_path())

    def before():
        with torch.inference_mode():
            x = builtin.emotion_inputs(crops, landmarks)
            return ((plain(x) + plain(x.flip(-1))) / 2).numpy()

    diff = float(np.abs(before() - backend.emotion_cnn(crops, landmarks)).max())  # and a warm-up
    old = median(lambda: own_cpu(before), repeats) / len(crops)
    new = median(lambda: own_cpu(lambda: backend.emotion_cnn(crops, landmarks)), repeats) / len(crops)
    print(f"  emotion CNN, {len(crops)} faces of one clip in a batch: before (NCHW, two passes) "
          f"{1000 * old:.2f} ms per face, now (channels-last, one pass) {1000 * new:.2f} "
          f"({old / new:.2f}x less); largest probability difference {diff:.1e}")  # fmt: skip


_FIRST_CALL = """
import numpy as np
y = np.random.default_rng(0).normal(scale=0.1, size=80000).astype(np.float32)
{body}
"""
_LIBROSA = """
import librosa
p = np.abs(librosa.stft(y, n_fft=512, hop_length=160, win_length=400, center=True)) ** 2
for n, htk in ((64, False), (26, True)):
    np.log(librosa.filters.mel(sr=16000, n_fft=512, n_mels=n, htk=htk) @ p + 1e-10)
librosa.yin(y, fmin=50, fmax=500, sr=16000, frame_length=1024)
"""
_NUMPY = """
from impressions.data import audio
audio.features(y).stats()
"""


def audio_rows(repeats: int) -> None:
    def fresh(body: str) -> float:
        code = _FIRST_CALL.format(body=body)
        return median(
            lambda: children_cpu(lambda: subprocess.run([sys.executable, "-c", code], check=True)), repeats
        )

    bare, old, new = fresh(""), fresh(_LIBROSA), fresh(_NUMPY)
    print(f"  audio features' first call in a fresh process (python + numpy alone {bare:.3f} CPU s): "
          f"librosa's stft, mel, yin {old - bare:.3f} CPU s beyond it, impressions.data.spectral's "
          f"(the whole audio.features + stats) {new - bare:.3f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--frames", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--keyint", type=int, default=24, help="frames between keyframes of the re-encode")
    args = parser.parse_args()
    from impressions import media
    from impressions.testing import face_clip

    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "fi-like.mp4"
        face_clip(clip, start=0.0, seconds=15)
        short_gop = Path(tmp) / f"keyint{args.keyint}.mp4"
        encode = [
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-crf",
            "30",
            "-g",
            str(args.keyint),
            "-c:a",
            "copy",
        ]
        subprocess.run(
            [media.ffmpeg_exe(), "-v", "error", "-i", str(clip), *encode, str(short_gop)], check=True
        )
        print(f"CPU s of one core, medians of {args.repeats}")
        print("decode")
        for path in (clip, short_gop):
            decode_rows(path, args.frames, args.repeats)
        emotion_rows(clip, args.repeats)
        audio_rows(args.repeats)


if __name__ == "__main__":
    main()
