"""Per-clip preprocessing: sample frames, find faces, cut the audio window, record QC.

These stages run fused, one clip after another, because frames are decoded once for both the image
model and the face detector and each stage is cheap next to loading its models. Stages whose settings
change on their own (audio features, expressions) run in their own shard jobs, which read these
outputs, so that changing them never re-runs face detection.

Outputs, all in one folder per clip (see `OUTPUT_FILES`): the sampled frames resized for the image
model and the aligned face crops (JPEG q90 in one tar per kind by default, or raw `.npy`: see
`impressions.data.image_store`), a per-frame table, the raw waveform and a QC record. A bad clip never
raises: it gets empty arrays and a QC status with a reason.

The workflow runs these for a whole shard of clips in one job (`impressions.data.preprocess_shard`);
`python -m impressions.data.preprocess` (see `main`) runs one clip by hand.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from impressions.data import faces, head_pose, identity, image_store, tracking, video
from impressions.data.defaults import PREPROCESSING as _DEFAULTS
from impressions.schemas import QC_STATUSES, record_columns

log = logging.getLogger(__name__)

OUTPUT_FILES = {
    # frames and faces: `frames.tar` (JPEG, the default) or `frames.npy` by `frames.storage` (see
    # impressions.data.image_store, which reads either); output_paths names the one a setting writes
    "frames": "frames.tar",  # (k, S, S, 3) uint8 RGB full frames for the image model
    "faces": "faces.tar",  # (k, 224, 224, 3) uint8 RGB aligned faces; zeros where no face
    "table": "frames.parquet",  # one row per sampled frame: `frames` and `faces` table columns
    "waveform": "waveform.npy",  # (seconds * rate,) float32 mono, zero-padded
    "qc": "qc.json",  # the clip's QC record (`qc` table columns)
    "identity": "identity.npy",  # (128,) float32 dlib face descriptor of the tracked person; NaN: none
}


def wants_identity(config: dict) -> bool:
    """Whether clips get an identity descriptor: `faces.identity`, where `auto` (the default) means only
    when something in the run reads it (`models.split: identity_faces`). The one network pass costs
    about 0.15 CPU-s per clip, more than every other per-frame signal together (benchmarks/signals.py).
    """
    choice = config["faces"].get("identity", "auto")
    if choice == "auto":
        return config.get("models", {}).get("split") == "identity_faces"
    return bool(choice)


@dataclass(frozen=True)
class Settings:
    """Per-clip preprocessing settings (the `frames`, `faces` and `audio` config sections).

    Defaults: `impressions.data.defaults.PREPROCESSING`, read from the config schema (their one home).
    """

    frames_per_clip: int = _DEFAULTS["frames"]["per_clip"]
    frame_size: int = _DEFAULTS["frames"]["size"]
    max_side: int = _DEFAULTS["frames"]["max_side"]
    upsample: int = _DEFAULTS["faces"]["upsample"]
    min_score: float = _DEFAULTS["faces"]["min_score"]
    face_size: int = _DEFAULTS["faces"]["size"]
    face_padding: float = _DEFAULTS["faces"]["padding"]
    # where the detector looks (impressions.data.tracking.search): full frames or tracked windows
    face_search: str = _DEFAULTS["faces"]["search"]
    full_every: int = _DEFAULTS["faces"]["full_every"]
    window_face: int = _DEFAULTS["faces"]["window_face"]
    # None: the whole clip, in a window of audio_max_seconds
    audio_seconds: float | None = _DEFAULTS["audio"]["seconds"]
    sample_rate: int = _DEFAULTS["audio"]["sample_rate"]
    # compute the tracked person's 128-d face descriptor (impressions.data.identity). The config's
    # `auto` depends on models.split (wants_identity); a Settings made in code computes it unless told
    identity: bool = True
    audio_max_seconds: float | None = _DEFAULTS["audio"].get("max_seconds")
    # how frames and faces are stored (impressions.data.image_store): jpeg (lossy) or npy (raw)
    storage: str = _DEFAULTS["frames"]["storage"]
    jpeg_quality: int = _DEFAULTS["frames"]["jpeg_quality"]

    @classmethod
    def from_config(cls, config: dict) -> Settings:
        frames, faces, audio = config["frames"], config["faces"], config["audio"]
        return cls(
            frames_per_clip=frames["per_clip"],
            frame_size=frames["size"],
            max_side=frames["max_side"],
            upsample=faces["upsample"],
            min_score=faces["min_score"],
            face_size=faces["size"],
            face_padding=faces["padding"],
            # a checkpoint's settings from before these existed: the defaults
            face_search=faces.get("search", _DEFAULTS["faces"]["search"]),
            full_every=faces.get("full_every", _DEFAULTS["faces"]["full_every"]),
            window_face=faces.get("window_face", _DEFAULTS["faces"]["window_face"]),
            audio_seconds=audio["seconds"],
            sample_rate=audio["sample_rate"],
            identity=wants_identity(config),
            audio_max_seconds=audio.get("max_seconds"),
            # a checkpoint's settings from before these existed: the defaults
            storage=frames.get("storage", _DEFAULTS["frames"]["storage"]),
            jpeg_quality=frames.get("jpeg_quality", _DEFAULTS["frames"]["jpeg_quality"]),
        )

    @property
    def audio_window(self) -> float:
        """Seconds of audio stored per clip (impressions.data.audio.window_seconds)."""
        from impressions.data.audio import window_seconds

        return window_seconds(self.audio_seconds, self.audio_max_seconds)


def output_paths(clip_dir: str | Path, storage: str = _DEFAULTS["frames"]["storage"]) -> dict[str, Path]:
    """The clip's output files; frames and faces as `storage` writes them (readers: image_store.read)."""
    paths = {key: Path(clip_dir) / name for key, name in OUTPUT_FILES.items()}
    for kind in image_store.KINDS:
        paths[kind] = Path(clip_dir) / image_store.filename(kind, storage)
    return paths


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """Resize (k, H, W, 3) uint8 frames to (k, size, size, 3), squashing the aspect ratio.

    Squashing (as DAN+ did) keeps the whole frame, background included, which is what the image
    model is meant to see; face boxes stay mappable by scaling x and y separately.
    """
    from PIL import Image

    out = np.zeros((len(images), size, size, 3), np.uint8)
    for i, image in enumerate(images):
        out[i] = np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))
    return out


class ClipRecord:
    """Accumulates a clip's QC facts and turns them into a status and a reason."""

    def __init__(self, clip_id: str, frames_requested: int):
        self.row: dict = {col: None for col in record_columns("qc")}
        self.row.update(
            clip_id=clip_id, frames_requested=frames_requested, frames_decoded=0, frames_with_face=0
        )
        self.problems: list[tuple[str, str]] = []
        self.identity = identity.missing()  # the tracked person's face descriptor

    def flag(self, status: str, reason: str) -> None:
        self.problems.append((status, reason))

    def finish(self, started: float) -> dict:
        if self.problems:
            worst = max(self.problems, key=lambda p: QC_STATUSES.index(p[0]))[0]
            reason = "; ".join(reason for _, reason in self.problems)
        else:
            worst, reason = "ok", "all sampled frames have a face and the audio window is complete"
        # What Snakemake's per-job benchmark file would say, kept in the QC table instead: one file
        # per clip costs planning time at 10,000 clips (benchmarks/history/planning.md).
        self.row.update(
            status=worst, reason=reason, seconds=round(time.perf_counter() - started, 3), peak_mb=_peak_mb()
        )
        return self.row


def _peak_mb() -> float:
    """Peak resident memory of this process so far, MB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def preprocess_clip(clip_id: str, video_path: str | Path, clip_dir: str | Path, settings: Settings) -> dict:
    """Run frames, faces and audio for one clip, write its outputs, and return its QC record."""
    started = time.perf_counter()
    paths = output_paths(clip_dir, settings.storage)
    Path(clip_dir).mkdir(parents=True, exist_ok=True)
    record = ClipRecord(clip_id, settings.frames_per_clip)
    frames = np.zeros((0, settings.frame_size, settings.frame_size, 3), np.uint8)
    crops = np.zeros((0, settings.face_size, settings.face_size, 3), np.uint8)
    rows: list[dict] = []
    waveform = np.zeros(int(round(settings.audio_window * settings.sample_rate)), np.float32)
    try:
        info, stream_times = video.scan(video_path)
        record.row.update(
            duration_s=info.duration_s, fps=info.fps, has_video=info.has_video, has_audio=info.has_audio
        )
        if info.display_size:
            record.row.update(width=info.display_size[0], height=info.display_size[1])
        frames, crops, rows = _frames_and_faces(clip_id, video_path, info, stream_times, settings, record)
        waveform = _audio(video_path, info, settings, record, waveform)
    except video.VideoError as err:
        record.flag("corrupt", f"ffmpeg cannot read the file: {err}")
    except Exception as err:  # one clip's bug must not stop a 10,000-clip run; the log keeps the trace
        log.error("clip %s failed:\n%s", clip_id, traceback.format_exc())
        record.flag("error", f"unexpected {type(err).__name__}: {err}")
    image_store.write(clip_dir, "frames", frames, settings.storage, settings.jpeg_quality)
    image_store.write(clip_dir, "faces", crops, settings.storage, settings.jpeg_quality)
    np.save(paths["waveform"], waveform)
    _write_table(rows, paths["table"])
    np.save(paths["identity"], record.identity)
    qc = record.finish(started)
    paths["qc"].write_text(json.dumps(qc, indent=1, allow_nan=False, default=_json_default))
    return qc


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def _frames_and_faces(clip_id, video_path, info, stream_times, settings, record):
    if not info.has_video:
        record.flag("no_video", "the file has no video stream (audio only)")
        return _empty_frames(settings) + ([],)
    sample = video.sample_frames(video_path, info, settings.frames_per_clip, settings.max_side, stream_times)
    images, numbers, times = sample.frames, sample.numbers, sample.times
    record.row["frames_decoded"] = len(images)
    if len(images) == 0:
        record.flag("corrupt", "no frame could be decoded")
        return _empty_frames(settings) + ([],)
    # `truncated` is about frames that exist but cannot be read, never the header's estimate (which
    # counts the audio too): a still image with audio has one frame, and that is all it has.
    if len(images) < sample.wanted:
        record.flag("truncated", f"only {len(images)} of {sample.wanted} sampled frames could be decoded")
    elif sample.read_error:
        record.flag("truncated", f"the file ends early or is damaged ({sample.read_error})")
    detector = faces.detector(
        upsample=settings.upsample, min_score=settings.min_score, size=settings.face_size,
        padding=settings.face_padding,
    )  # fmt: skip
    height, width = images.shape[1:3]
    detections, _ = tracking.search(
        images, detector, tracked=settings.face_search == "tracked", full_every=settings.full_every,
        face_px=settings.window_face,
    )  # fmt: skip
    tracks = tracking.track_clip(detections, width, height)
    found = [detector.frame_faces(image, d, k) for image, d, k in zip(images, detections, tracks.chosen)]
    crops = np.zeros((len(images), settings.face_size, settings.face_size, 3), np.uint8)
    with_face = [i for i, f in enumerate(found) if f.found]
    pose = head_pose.estimate(np.array([found[i].landmarks for i in with_face]).reshape(-1, 68, 2))
    per_frame = {i: {key: float(values[j]) for key, values in pose.items()} for j, i in enumerate(with_face)}
    rows = []
    for i, (face, number, time_s) in enumerate(zip(found, numbers, times)):
        if face.found:
            crops[i] = face.crop
        p = per_frame.get(i, {})
        rows.append({
            "clip_id": clip_id, "frame_index": i, "source_frame": int(number),
            "time_s": float(time_s), "width": width, "height": height,
            "has_face": face.found, "n_faces": face.n_faces, "chosen_face": face.chosen,
            "score": face.score,
            **dict(zip(("box_left", "box_top", "box_right", "box_bottom"), face.box or (None,) * 4)),
            "landmarks": face.landmarks.ravel().tolist() if face.found else None,
            "landmarks_aligned": face.landmarks_aligned.ravel().tolist() if face.found else None,
            "track_id": tracks.target if face.found else None, "top_face": tracks.top_face[i],
            "confidence": float(head_pose.confidence(face.score if face.found else np.nan)),
            "success": bool(head_pose.success(face.found, p.get("fit_error"), p.get("off_axis"))),
            **{key: p.get(key) for key in ("pitch", "yaw", "roll", "fit_error")},
        })  # fmt: skip
    record.row.update(
        n_tracks=tracks.n_tracks, multi_person=tracks.multi_person,
        top_face_frames=sum(bool(t) for t in tracks.top_face),
        frames_success=sum(row["success"] for row in rows),
    )  # fmt: skip
    if settings.identity:
        record.identity = _identity(images, detections, tracks, rows)
    with_face = sum(row["has_face"] for row in rows)
    record.row["frames_with_face"] = with_face
    if with_face == 0:
        record.flag("no_face", f"no face found in any of the {len(rows)} sampled frames")
    elif with_face < len(rows):
        record.flag("partial_face", f"no face in {len(rows) - with_face} of {len(rows)} sampled frames")
    return resize(images, settings.frame_size), crops, rows


def _identity(images, detections, tracks, rows) -> np.ndarray:
    """The tracked person's descriptor, from their most confident successful frame (else any)."""
    frames = [r["frame_index"] for r in rows if r["has_face"]]
    if not frames:
        return identity.missing()
    best = max(frames, key=lambda i: (rows[i]["success"], rows[i]["score"]))
    return identity.descriptor(images[best], detections[best][tracks.chosen[best]].shape)


def _empty_frames(settings):
    return (
        np.zeros((0, settings.frame_size, settings.frame_size, 3), np.uint8),
        np.zeros((0, settings.face_size, settings.face_size, 3), np.uint8),
    )


def _audio(video_path, info, settings, record, waveform):
    if not info.has_audio:
        record.flag("no_audio", "the file has no audio stream: audio features are those of silence")
        record.row["audio_samples"] = 0
        return waveform
    try:
        samples = video.read_audio(video_path, settings.audio_window, settings.sample_rate)
    except video.VideoError as err:
        record.flag("no_audio", f"the audio stream cannot be decoded ({err}): features are those of silence")
        record.row["audio_samples"] = 0
        return waveform
    n = min(samples.size, waveform.size)
    waveform[:n] = samples[:n]
    record.row["audio_samples"] = n
    if n < waveform.size and settings.audio_seconds is not None:  # a whole clip is padded by design
        record.flag(
            "short",
            f"audio ends at {n / settings.sample_rate:.2f} s, "
            f"before the {settings.audio_seconds:g} s window: zero-padded",
        )
    return waveform


def _write_table(rows: list[dict], path: Path) -> None:
    import polars as pl

    from impressions.schemas import polars_schema

    schema = {**polars_schema("frames"), **polars_schema("faces")}
    pl.DataFrame(rows, schema=schema).write_parquet(path)


def main(argv: list[str] | None = None) -> int:
    """One clip by hand, as a shard job processes each of its clips (for looking into one file)."""
    import argparse
    import contextlib

    from impressions import logs

    ap = argparse.ArgumentParser(
        prog="python -m impressions.data.preprocess", description=main.__doc__.splitlines()[0]
    )
    ap.add_argument("video", help="the clip's video file")
    ap.add_argument(
        "qc", type=Path, help="the clip's qc.json; every output goes into its folder, qc.json last"
    )
    ap.add_argument("--clip-id", help="default: the name of the output folder")
    ap.add_argument(
        "--settings", type=json.loads, default=None,
        help="the `frames`, `faces` and `audio` config sections as JSON (default: the defaults)",
    )  # fmt: skip
    ap.add_argument("--log", help="write everything the step prints to this file")
    args = ap.parse_args(argv)
    if args.qc.name != OUTPUT_FILES["qc"]:
        ap.error(f"the QC record must be named {OUTPUT_FILES['qc']}, not {args.qc.name}")
    settings = Settings.from_config(args.settings) if args.settings else Settings()
    with logs.to_file(args.log) if args.log else contextlib.nullcontext():
        preprocess_clip(args.clip_id or args.qc.parent.name, args.video, args.qc.parent, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
