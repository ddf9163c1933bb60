"""Trait scores for new video clips from trained models (`impressions predict CLIP.mp4 ...`).

Each clip goes through the same preprocessing as training (settings stored in the checkpoints):
frames, faces and the audio window (`preprocess.preprocess_clip`), spectral features
(`shards.audio_shard`) and, when a model needs them, AUs and emotions (`shards.expression_shard`),
all in a temporary folder. A model with no input for a clip (no face, say) gives no scores and a
note saying what was missing (evaluation scores such clips with the training mean; a prediction for
one clip must not pass that off as its own). Fusion models use the features of the component
models found beside them; age group and gender are unknown for a new clip (all-zero one-hots).

Text models (`text_linear`) and the fusions that take one as a member score a clip only when a
transcript is given (``transcript``, `read_transcript`); without one their rows carry no scores and
the note ``no transcript``.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from impressions import devices, schemas
from impressions.data import defaults, image_store, transcripts
from impressions.models import networks as models
from impressions.models import registry
from impressions.schemas import TRAITS
from impressions.training import degenerate
from impressions.training import loop as training

log = logging.getLogger(__name__)

# Used when a checkpoint carries no preprocessing settings (trained outside the workflow).
DEFAULT_PREPROCESSING = defaults.preprocessing()
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm")
"""What a folder given to `impressions predict` is searched for (a file given by name is always tried)."""


def load_models(models_dir: str | Path, names: Sequence[str] | None = None, device: str = "cpu") -> dict:
    """{name: (model, checkpoint)} for every `<models_dir>/<name>/checkpoint.pt` (or the named ones)."""
    models_dir = Path(models_dir)
    found = {p.parent.name: p for p in sorted(models_dir.glob("*/checkpoint.pt"))}
    if names:
        missing = [n for n in names if n not in found]
        if missing:
            raise FileNotFoundError(
                f"no checkpoint for {missing} under {models_dir} (found: {sorted(found)})"
            )
        found = {n: found[n] for n in names}
    if not found:
        raise FileNotFoundError(f"no trained models (*/checkpoint.pt) under {models_dir}")
    loaded = {name: _load(path, device) for name, path in found.items()}
    # Fusion models need their components' features: load those too, even when not asked for.
    for name, (_, ckpt) in list(loaded.items()):
        for component in (
            ckpt.get("summary", {}).get("settings", {}).get("inputs", []) if _is_fusion(ckpt) else []
        ):
            if component not in loaded:
                if component not in found and not (models_dir / component / "checkpoint.pt").is_file():
                    raise FileNotFoundError(
                        f"{name} fuses {component}, but {models_dir / component} has no checkpoint"
                    )
                loaded[component] = _load(models_dir / component / "checkpoint.pt", device)
    return dict(sorted(loaded.items(), key=lambda kv: list(registry.FAMILIES).index(kv[1][1]["family"])))


def _load(path: Path, device: str) -> tuple:
    """(model, checkpoint); model is None for a family the workflow could not train (see degenerate)."""
    ckpt = torch.load(path, map_location=device, weights_only=True)
    if degenerate.NOT_TRAINED in ckpt:
        return None, ckpt
    return models.load_checkpoint(path, map_location=device)


def _is_fusion(ckpt: dict) -> bool:
    return "features" in registry.get(ckpt["family"]).inputs


# Which families' checkpoints are authoritative for a preprocessing section: a face model retrained after
# an audio setting changed carries the old audio settings, the audio models the new ones.
_SECTION_FAMILIES = {
    "frames": registry.with_input("frames", "faces", "au_table"),
    "faces": registry.with_input("faces", "au_table"),
    "audio": registry.with_input("waveform", "logfbank", "voice_table", composite=False),
    "voice": registry.with_input("voice_table"),
    "expressions": registry.with_input("au_table"),
}


def _preprocessing(loaded: dict) -> dict:
    """The preprocessing settings, each section from a checkpoint of a family that reads it."""
    prep = {k: dict(v) for k, v in DEFAULT_PREPROCESSING.items()}
    checkpoints = [ckpt for _, ckpt in loaded.values()]
    for section, families in _SECTION_FAMILIES.items():
        for ckpt in [c for c in checkpoints if c["family"] in families] + checkpoints:
            stored = ckpt.get("summary", {}).get("preprocessing", {})
            if section in stored:
                prep[section] = {**prep[section], **stored[section]}
                break
    return prep


def clip_name(video: Path) -> str:
    return video.name[: -len(video.suffix)] if video.suffix else video.name


def _clip_inputs(
    videos: Sequence[Path], work: Path, prep: dict, need_expressions: bool, progress=None
) -> dict:
    """Run the preprocessing stages on each video; returns per-clip folders, QC records and tables.

    Clips that cannot be used at all (QC status in `degenerate.UNUSABLE`) are left out of `dirs` and listed in
    `failures` as (video, reason).
    """
    import polars as pl

    from impressions.data import preprocess, shards

    # no model reads the identity descriptor: skip dlib's recognition network for each clip
    settings = dataclasses.replace(preprocess.Settings.from_config(prep), identity=False)
    dirs, qc, failures = {}, {}, []
    for i, video in enumerate(videos):
        clip_id = clip_name(video)
        if clip_id in qc:
            raise ValueError(f"two videos named {clip_id}: give clips with distinct names")
        if progress:
            progress(i + 1, len(videos), clip_id)
        folder = work / "clips" / clip_id
        record = preprocess.preprocess_clip(clip_id, video, folder, settings)
        log.info("%s: %s", clip_id, record.get("reason") or record.get("status"))
        qc[clip_id] = record
        if record["status"] in degenerate.UNUSABLE:
            failures.append((video, f"{record['status']}: {record['reason']}"))
        else:
            dirs[clip_id] = folder
    if not dirs:
        return {"dirs": dirs, "qc": qc, "failures": failures}
    # Checkpoints from before `shards` became a top-level setting carry it in these two sections.
    audio_options = {k: v for k, v in prep["audio"].items() if k != "shards"}
    shards.audio_shard(dirs, audio_options, work / "audio.parquet", work / "audio.npz")
    out = {"dirs": dirs, "qc": qc, "failures": failures, "audio": dict(np.load(work / "audio.npz"))}
    out["audio_ids"] = out["audio"]["clip_id"].tolist()
    # voice descriptors, by the backend the models were trained on: voice_linear and
    # fusion_handcrafted_voice use them
    out["voice"] = shards.voice_rows(dirs, settings.sample_rate, prep["voice"]["backend"])
    if need_expressions:
        from impressions.expressions import detector as expressions

        options = {k: v for k, v in prep["expressions"].items() if k != "shards"}
        backend = expressions.get_backend(options.pop("backend"), **options)
        # the videos, for a backend that runs a tool on them (openface's FeatureExtraction)
        videos_by_id = {clip_name(video): video for video in videos}
        shards.expression_shard(dirs, backend, work / "expressions.parquet", videos=videos_by_id)
        out["expressions"] = pl.read_parquet(work / "expressions.parquet")
    return out


@torch.no_grad()
def _network_scores(
    model, ckpt, x: torch.Tensor, kind: str, device: str, n_samples: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Mean score (5,) and mean features over the samples of one clip (`n_samples`: its real audio)."""
    if kind in registry.IMAGE_KINDS:
        x = model.transform(x)  # recorded with the checkpoint (impressions.models.transforms)
    crop = ckpt.get("summary", {}).get("settings", {}).get("crop_seconds")
    if kind == "waveform" and crop:
        # Trained on crops, scored on whole clips: the real samples only, as evaluation does
        # (datasets.WholeClip); trailing digital silence in the clip itself is kept.
        rate = int(ckpt["summary"].get("preprocessing", {}).get("audio", {}).get("sample_rate", 16000))
        x = x[:, : max(int(n_samples), int(round(crop * rate)))]
    x = x.to(device)
    emb = model.embed(x)
    out = torch.sigmoid(model.fc(emb))
    return out.mean(0).double().cpu().numpy(), emb.mean(0).float().cpu().numpy()


def predict_videos(
    videos: Sequence[str | Path],
    models_dir: str | Path,
    names: Sequence[str] | None = None,
    device: str = "auto",
):
    """A table of trait scores: one row per clip and model (see `predict_paths`); every file must exist."""
    videos = [Path(v) for v in videos]
    for v in videos:
        if not v.is_file():
            raise FileNotFoundError(f"no video file {v}")
    return predict_paths(videos, models_dir, names, device).table


@dataclass
class Prediction:
    """Scores of the clips that could be used, and one line for each input that could not."""

    table: object  # polars DataFrame: clip_id, model, traits (null without input), has_input, note, qc
    failures: list[tuple[Path, str]]  # (input, reason)


def video_files(paths: Sequence[str | Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The video files named by `paths` (files as given, folders searched for video suffixes)."""
    found, problems = [], []
    for path in map(Path, paths):
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
            if not inside:
                problems.append((path, f"no video files ({', '.join(VIDEO_SUFFIXES)}) in this folder"))
            found += inside
        elif path.is_file():
            found.append(path)
        else:
            problems.append((path, "no such file or folder"))
    return found, problems


def read_transcript(value: str | None) -> str | None:
    """A `--transcript` argument: the text of the file it names (UTF-8), else the text itself."""
    if value is None:
        return None
    path = Path(value)
    try:
        is_file = path.is_file()
    except OSError:  # a long text is no file name
        is_file = False
    return path.read_text(encoding="utf-8") if is_file else value


def predict_paths(
    paths: Sequence[str | Path],
    models_dir: str | Path,
    names: Sequence[str] | None = None,
    device: str = "auto",
    progress=None,
    transcript: str | None = None,
) -> Prediction:
    """Trait scores for the video files and folders in `paths`.

    One row per usable clip and model. A model with no input for a clip (no face, no audio) gets
    null scores, `has_input` false and a `note` ("no face found"), never the training mean passed
    off as a prediction; a fusion model that imputed a missing component says which in `note`.
    Every row carries the clip's QC `status` and `qc_reason`. Inputs that are missing, not videos,
    or unreadable are returned in `failures` with a one-line reason. `transcript` is the text of the
    one clip given (text models; see the module docstring).
    """
    import polars as pl

    device = devices.resolve_device(device)
    videos, failures = video_files(paths)
    if transcript is not None and len(videos) > 1:
        raise ValueError(f"a transcript is one clip's: give one video with it, not {len(videos)}")
    no_text = transcripts.note(transcript)
    loaded = load_models(models_dir, names, device)
    prep = _preprocessing(loaded)
    need_expr = any(registry.get(ckpt["family"]).needs_expressions for _, ckpt in loaded.values())
    rows = []
    with tempfile.TemporaryDirectory(prefix="impressions-predict-") as tmp:
        data = _clip_inputs(videos, Path(tmp), prep, need_expr, progress) if videos else None
        if data:
            failures += data["failures"]
        for clip_id, clip_dir in (data["dirs"] if data else {}).items():
            qc = data["qc"][clip_id]
            frames_table = pl.read_parquet(clip_dir / "frames.parquet")
            features: dict[str, np.ndarray] = {}
            missing: dict[str, str] = {}  # model -> what it lacked
            for name, (model, ckpt) in loaded.items():
                family = ckpt["family"]
                kind = registry.get(family).sample_kind
                if model is not None:
                    model.to(device).eval()
                score, has_input, note = None, False, None
                if model is None:  # not trained: say why, and give fusion no features from it
                    features[name] = np.zeros(0, np.float32)
                    missing[name] = note = f"not trained: {ckpt[degenerate.NOT_TRAINED]}"
                elif kind is not None:
                    x = _raw_input(kind, clip_id, clip_dir, frames_table, data)
                    if kind in ("waveform", "logfbank") and not qc.get("audio_samples"):
                        x = None  # silence stands in for a missing track in training; not a prediction
                    if x is not None and len(x):
                        real = qc.get("audio_samples") or 0
                        score, features[name] = _network_scores(model, ckpt, x, kind, device, real)
                        has_input = True
                    else:
                        features[name] = np.asarray(ckpt.get("feature_fill", []), np.float32)
                        missing[name] = note = _LACKS[kind]
                elif registry.get(family).trainer == "text":
                    if no_text is None:
                        scores, raw = model.score_texts([transcript])
                        score, features[name], has_input = scores[0], raw[0].astype(np.float32), True
                    else:
                        features[name] = np.asarray(ckpt.get("feature_fill", []), np.float32)
                        missing[name] = note = transcripts.NO_TRANSCRIPT
                elif any(missing.get(c) == transcripts.NO_TRANSCRIPT for c in _components(ckpt)):
                    missing[name] = note = transcripts.NO_TRANSCRIPT  # a text fusion without its text
                else:
                    x, has_input = _table_input(family, ckpt, clip_id, features, data)
                    if not registry.get(family).composite and not has_input:
                        lacks = "faces" if registry.get(family).needs_expressions else "waveform"
                        missing[name] = note = _LACKS[lacks]
                    else:
                        with torch.no_grad():
                            score = model(torch.from_numpy(x).to(device)).double().cpu().numpy()[0]
                        has_input = True
                        lacking = [f"{c}: {missing[c]}" for c in _components(ckpt) if c in missing]
                        if _reads_expressions(family) and not qc.get("frames_with_face"):
                            lacking.append(f"AUs: {_LACKS['faces']}")
                        if lacking:
                            note = "imputed with training means (" + "; ".join(lacking) + ")"
                values = dict(zip(TRAITS, map(float, score))) if score is not None else dict.fromkeys(TRAITS)
                rows.append({"clip_id": clip_id, "split": None, "model": name, **values,
                             "has_input": bool(has_input), "note": note, "status": qc["status"],
                             "qc_reason": qc["reason"]})  # fmt: skip
    return Prediction(pl.DataFrame(rows, schema=schemas.polars_schema("predict")), failures)


_LACKS = {"faces": "no face found", "waveform": "no audio found", "logfbank": "no audio found",
          "frames": "no frame decoded"}  # fmt: skip


def _reads_expressions(family: str) -> bool:
    """A composite family (fusion) that also reads the AU table: it imputes AUs for a face-less clip."""
    return registry.get(family).composite and registry.get(family).needs_expressions


def _components(ckpt: dict) -> list[str]:
    return ckpt.get("summary", {}).get("settings", {}).get("inputs", []) if _is_fusion(ckpt) else []


def _raw_input(kind: str, clip_id: str, clip_dir: Path, frames_table, data: dict):
    if kind == "frames":
        return torch.from_numpy(image_store.read(clip_dir, "frames").all())
    if kind == "faces":
        keep = (
            frames_table["has_face"].to_numpy() if "has_face" in frames_table.columns else np.zeros(0, bool)
        )
        faces = image_store.read(clip_dir, "faces")
        rows = np.flatnonzero(keep[: len(faces)])  # decode only the frames with a face
        return torch.from_numpy(faces.batch(rows)) if len(rows) else None
    row = data["audio_ids"].index(clip_id)
    return torch.from_numpy(np.asarray(data["audio"][kind][row : row + 1], dtype=np.float32))


def _table_input(
    family: str, ckpt: dict, clip_id: str, features: dict, data: dict
) -> tuple[np.ndarray, bool]:
    """One clip's input row for au_linear / fusion, imputed with the training column means."""
    import polars as pl

    blocks, has_input = [], True
    if _is_fusion(ckpt):
        for component in ckpt["summary"]["settings"]["inputs"]:
            blocks.append(np.asarray(features[component], np.float64))
    # after the component features, before the handcrafted ones: training's column order
    spec = registry.get(family)
    if "voice_table" in spec.inputs:
        ids, values, _ = training.voice_features(data["voice"].filter(pl.col("clip_id") == clip_id))
        voice = values[0] if ids else np.full(values.shape[1], np.nan)
        has_input = not np.isnan(voice).any() if not spec.composite else has_input
        blocks.append(voice)
    if spec.needs_expressions:
        expr = data["expressions"].filter(pl.col("clip_id") == clip_id)
        if not spec.composite:
            ids, values, _ = training.au_statistics(expr)
            has_input = bool(ids)
            width = 17 if spec.kind == "au_means" else 3 * 17  # the 17 means come first
            blocks.append(values[0, :width] if ids else np.full(width, np.nan))
        else:
            unknown = {"clip_id": [clip_id], "age_group": [None], "gender": [None]}
            clips = pl.DataFrame(unknown, schema=dict.fromkeys(unknown, pl.String))
            _, values, _ = training.handcrafted_features(clips, expr)
            blocks.append(values[0])
    row = np.concatenate(blocks)
    fill = np.asarray(ckpt["input_fill"], np.float64)
    if row.shape != fill.shape:
        raise ValueError(f"{family}: input has {row.size} columns, the checkpoint expects {fill.size}")
    return np.where(np.isnan(row), fill, row).astype(np.float32)[None], has_input
