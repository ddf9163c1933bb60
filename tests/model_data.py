"""A tiny synthetic results folder (tables, per-clip arrays, audio arrays) whose labels follow one cue."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from impressions import metrics, schemas
from impressions.data import transcripts
from impressions.expressions import au_maps
from impressions.models import registry
from impressions.models.registry import Family
from impressions.schemas import AUS, EMOTIONS, LABELS, TRAITS
from impressions.training import loop as training

SIZE = 16  # px: frames and faces
FRAMES = 3
SAMPLES = 1600  # audio samples per clip
SPLIT_SIZES = {"train": 16, "val": 6, "test": 6}
NO_FACE_CLIP = "val01.000"  # a validation clip without any face
FILLER = ("so", "the", "and", "video", "today", "really")


def cue_to_labels(cue: np.ndarray) -> np.ndarray:
    """Every trait a different linear function of the cue in 0..1."""
    slopes = np.array([0.5, -0.4, 0.3, 0.2, 0.45])
    return np.clip(0.5 + np.outer(cue - 0.5, slopes), 0, 1)


def build(root: Path, seed: int = 0, landmarks: bool = False) -> dict[str, Path]:
    """Write the tables and arrays under root; the cue is each clip's brightness, loudness and AU12.

    With `landmarks`, face frames also get landmarks (a neutral face filling the frame, which is also
    the face crop) and a dominant emotion: happiness in frames 0 and 1, neutral in frame 2. Nothing
    else changes (no random draws are added)."""
    rng = np.random.default_rng(seed)
    ids = [f"{split}{i:02d}.000" for split, n in SPLIT_SIZES.items() for i in range(n)]
    splits = [split for split, n in SPLIT_SIZES.items() for _ in range(n)]
    cue = rng.uniform(0, 1, len(ids))
    labels = cue_to_labels(cue)
    tables, clips_dir, arrays = root / "tables", root / "clips", root / "arrays"
    for d in (tables, clips_dir, arrays):
        d.mkdir(parents=True, exist_ok=True)
    clip_rows, frame_rows, face_rows, expr_rows = [], [], [], []
    points_xy = au_maps.mean_face(SIZE).ravel().tolist()
    for i, (clip, split) in enumerate(zip(ids, splits)):
        clip_rows.append({"clip_id": clip, "path": f"{clip}.mp4", "split": split,
                          **dict(zip(TRAITS, labels[i])), "interview": 0.5, "age_group": "25-32",
                          "gender": ["male", "female", None][i % 3], "youtube_id": clip[:-4]})  # fmt: skip
        grey = cue[i] * 200 + 20
        frames = np.clip(grey + rng.normal(0, 8, (FRAMES, SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
        has_face = np.array([clip != NO_FACE_CLIP] * FRAMES)
        if clip.startswith("train") and i % 4 == 0:
            has_face[0] = False
        faces = np.where(has_face[:, None, None, None], frames, 0).astype(np.uint8)
        (clips_dir / clip).mkdir(exist_ok=True)
        np.save(clips_dir / clip / "frames.npy", frames)
        np.save(clips_dir / clip / "faces.npy", faces)
        (clips_dir / clip / "qc.json").write_text("{}")  # the file model rules name for a clip folder
        for k in range(FRAMES):
            frame_rows.append({"clip_id": clip, "frame_index": k, "source_frame": k * 10, "time_s": k / 3,
                               "width": SIZE, "height": SIZE})  # fmt: skip
            face = bool(has_face[k])
            points = {"landmarks": points_xy, "landmarks_aligned": points_xy} if landmarks and face else {}
            face_rows.append({"clip_id": clip, "frame_index": k, "has_face": face, "n_faces": int(face),
                              "chosen_face": 0 if face else -1, **points})  # fmt: skip
            if has_face[k]:
                aus = {a: float(rng.uniform(0, 1)) for a in AUS} | {
                    "AU12": float(5 * cue[i] + rng.normal(0, 0.1))
                }
                probs = {e: 1 / 7 for e in EMOTIONS}
                if landmarks:
                    dominant = "happiness" if k < 2 else "neutral"
                    probs = {e: 0.4 if e == dominant else 0.1 for e in EMOTIONS}
                expr_rows.append({"clip_id": clip, "frame_index": k, **aus, **probs})
    schemas.frame("clips", clip_rows).write_parquet(tables / "clips.parquet")
    schemas.frame("frames", frame_rows).write_parquet(tables / "frames.parquet")
    schemas.frame("faces", face_rows).write_parquet(tables / "faces.parquet")
    schemas.frame("expressions", expr_rows).write_parquet(tables / "expressions.parquet")
    qc_rows = [{"clip_id": c, "split": s, "status": "no_face" if c == NO_FACE_CLIP else "ok", "reason": ""}
               for c, s in zip(ids, splits)]  # fmt: skip
    schemas.frame("qc", qc_rows).write_parquet(tables / "qc.parquet")
    # Audio rows in a different order than the clips table, as the gathered audio table may be.
    order = rng.permutation(len(ids))
    t = np.arange(SAMPLES) / 16000
    wave = np.stack([(0.05 + 0.3 * cue[j]) * np.sin(2 * np.pi * 220 * t + j) for j in order]).astype(
        np.float32
    )
    fbank = np.stack([np.full((4, 10), np.log(0.05 + cue[j])) + rng.normal(0, 0.05, (4, 10)) for j in order])
    audio_rows = [{"clip_id": ids[j], "has_audio": True, "padded": False, "n_samples": SAMPLES,
                   "sample_rate": 16000} for j in order]  # fmt: skip
    schemas.frame("audio", audio_rows).write_parquet(tables / "audio.parquet")
    np.save(arrays / "audio_waveform.npy", wave)
    np.save(arrays / "audio_logfbank.npy", fbank.astype(np.float32))
    # Voice descriptors: loudness follows the cue; the rest is noise. A separate generator keeps every
    # number drawn above unchanged.
    voice_rng = np.random.default_rng(seed + 1)
    voice_rows = [{"clip_id": c, "voice_seconds": SAMPLES / 16000,
                   **{name: float(voice_rng.normal(0, 1)) for name in schemas.VOICE},
                   "loudness_mean_db": float(-30 + 20 * cue[i])} for i, c in enumerate(ids)]  # fmt: skip
    schemas.frame("voice", voice_rows).write_parquet(tables / "voice.parquet")
    # Transcripts: how many "great" against "poor" words follows the cue; the first training clip has
    # none (a clip the text models give the training mean). Drawn after everything else.
    text_rng = np.random.default_rng(seed + 2)
    texts = {}
    for i, c in enumerate(ids[1:], start=1):
        n_great = int(round(6 * cue[i]))
        words = ["great"] * n_great + ["poor"] * (6 - n_great) + list(text_rng.choice(FILLER, 6))
        texts[c] = " ".join(text_rng.permutation(words))
    transcripts.write_table(tables / "clips.parquet", texts, tables / "transcripts.parquet")
    assert set(LABELS) <= set(clip_rows[0])
    return {"root": root, "tables": tables, "clips": clips_dir, "arrays": arrays}


# What each input kind of a family is read from under a results folder: the workflow's mapping
# (rules/models_common.smk, KIND_TABLES), for the in-process runs below.
def _kind_files(root: Path) -> dict[str, dict[str, Path]]:
    tables, arrays = root / "tables", root / "arrays"
    return {
        "frames": {"frames": tables / "frames.parquet"},
        "faces": {"frames": tables / "faces.parquet"},
        "waveform": {"audio_table": tables / "audio.parquet", "audio_array": arrays / "audio_waveform.npy"},
        "logfbank": {"audio_table": tables / "audio.parquet", "audio_array": arrays / "audio_logfbank.npy"},
        "au_table": {"expressions": tables / "expressions.parquet"},
        "voice_table": {"voice": tables / "voice.parquet"},
        "transcript": {"transcripts": tables / "transcripts.parquet"},
    }


def train_and_report(root: Path, families: list[str], models: dict, n_boot: int | None = None) -> Path:
    """What the workflow's model rules and report do on a results folder, each script's one call made
    here in process: the split table, `train_or_explain` per family (registry order) and `write_report`.
    Returns the report's Markdown path."""
    from impressions import layout
    from impressions.data import splits
    from impressions.models import registry
    from impressions.report import render
    from impressions.training import degenerate
    from impressions.training.inputs import Inputs

    tables = root / "tables"
    splits.split_table(tables / "clips.parquet", "official", 0).write_parquet(tables / "splits.parquet")
    kinds = _kind_files(root)
    for family in [f for f in registry.FAMILIES if f in families]:
        spec = registry.get(family)
        files = {"clips": tables / "clips.parquet", "splits": tables / "splits.parquet"}
        for kind in spec.inputs:
            files |= kinds.get(kind, {})
        if "features" in spec.inputs:
            inputs = spec.settings(models.get(family))["inputs"]
            files["features"] = [root / "models" / m / "features.npz" for m in inputs]
        degenerate.train_or_explain(
            family, Inputs.from_files(files, root / "clips"),
            layout.Outputs.in_folder(root / "models" / family),
            {"seed": 0, "device": "cpu", "threads": 1}, models.get(family) or {},
        )  # fmt: skip
    outs = [layout.Outputs.in_folder(root / "models" / f) for f in families]
    report = root / "report"
    names = {
        "html": "index.html",
        "markdown": "report.md",
        "metrics": "metrics.parquet",
        "breakdowns": "breakdowns.parquet",
        "comparisons": "comparisons.parquet",
        "forest": "forest.png",
    }
    render.write_report(
        tables / "clips.parquet", tables / "qc.parquet", tables / "faces.parquet",
        tables / "expressions.parquet",
        [o.predictions for o in outs], [o.summary for o in outs], [o.curve for o in outs],
        {k: report / v for k, v in names.items()}, n_boot=n_boot or models.get("bootstrap", 20),
        dataset="synthetic test data", splits_path=tables / "splits.parquet",
    )  # fmt: skip
    return report / "report.md"


# The tests' tiny model settings: their one home. Unit tests pass them to train_family, workflow tests
# put them in the config's `models` section (tiny_models).
def tiny_options(family: str | Family, epochs: int = 1, **overrides) -> dict:
    """Settings small enough to train `family` on tiny data in seconds, by what the family reads.

    Trained families get `epochs`; `overrides` change or add keys (``input_size=32``, ``inputs=[...]``).
    """
    spec = family if isinstance(family, Family) else registry.get(family)
    if spec.sample_kind in registry.IMAGE_KINDS:
        options = {"backbone": "small", "width": 4, "input_size": 16, "batch_size": 8}
    elif spec.sample_kind == "waveform":
        options = {"width": 4, "stages": 2}
    elif spec.sample_kind == "logfbank":
        options = {"time_bins": 1}
    elif spec.trainer == "fusion":  # every sample-trained family, and any other default member (text)
        samples = registry.names(trainer="samples")
        extra = [m for m in spec.defaults.get("inputs", []) if m not in samples]
        options = {"inputs": samples + extra, "hidden": [8, 8]}
    else:  # ridge and average: fast at their defaults
        options = {}
    if spec.trainer in ("samples", "fusion"):
        options["epochs"] = epochs
    return {**options, **overrides}


def tiny_models(families, epochs: int = 1, bootstrap: int = 20, **overrides) -> dict:
    """A workflow config's `models` section: `families` at tiny settings on one thread.

    Fusion and averaging families combine the listed sample-trained families unless `overrides` say
    otherwise; `overrides` are a family's extra keys, or top-level `models` keys (``seeds={...}``).
    """
    samples = [f for f in families if registry.get(f).trainer == "samples"]
    section = {"families": list(families), "bootstrap": bootstrap, "threads": 1}
    for name in families:
        spec = registry.get(name)
        extra = overrides.pop(name, {})
        options = tiny_options(spec, epochs)
        if spec.trainer in ("fusion", "average"):
            options["inputs"] = samples
        options.update(extra)
        if options:
            section[name] = options
    return {**section, **overrides}


# Training helpers shared by the training, report, prediction and registry tests.
COMMON = {"seed": 0, "device": "cpu", "threads": 1, "patience": 50}
SMALL_CNN = tiny_options("image", epochs=4, lr=0.01)


def inputs_for(data, family, features=None):
    t, a = data["tables"], data["arrays"]
    return training.Inputs(
        clips=t / "clips.parquet",
        frames=t / ("faces.parquet" if family == "face" else "frames.parquet"),
        clip_dirs={p.name: p for p in data["clips"].iterdir()},
        audio_table=t / "audio.parquet",
        audio_array=a / ("audio_waveform.npy" if family == "audio" else "audio_logfbank.npy"),
        expressions=t / "expressions.parquet",
        features=features,
        transcripts=t / "transcripts.parquet",
    )


def train(data, tmp_path, family, options, common=COMMON, name=None, features=None):
    out = training.Outputs.in_folder(tmp_path / (name or family))
    summary = training.train_family(
        family, inputs_for(data, family, features), out, common, options, name=name
    )
    return out, summary


def val_accuracy(data, out):
    clips = pl.read_parquet(data["tables"] / "clips.parquet")
    preds = pl.read_parquet(out.predictions)
    y, p, _ = metrics.labels_and_predictions(preds.filter(pl.col("split") == "val"), clips)
    return metrics.accuracy(y, p).mean()


def baseline_accuracy(data, split="val"):
    clips = pl.read_parquet(data["tables"] / "clips.parquet")
    train = clips.filter(pl.col("split") == "train").select(TRAITS).to_numpy()
    y = clips.filter(pl.col("split") == split).select(TRAITS).to_numpy()
    return metrics.accuracy(y, metrics.train_mean_baseline(train, len(y))).mean()
