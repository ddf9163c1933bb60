"""What a family reads: its inputs' paths, its per-split datasets and its per-clip feature tables."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from impressions import logs
from impressions.models import registry
from impressions.schemas import AUS, EMOTIONS, SPLITS
from impressions.training import datasets
from impressions.training.settings import Settings

HANDCRAFTED_AGE = ("0-6", "7-13", "14-18", "19-24", "25-32", "33-45", "46-60", "61+")
HANDCRAFTED_GENDER = ("male", "female")


@dataclass
class Inputs:
    """What a family reads; unused fields stay None."""

    clips: Path
    frames: Path | None = None  # frames table (image) or faces table (face)
    clip_dirs: Mapping[str, Path] | None = None  # per-clip folders holding frames.npy / faces.npy
    audio_table: Path | None = None
    audio_array: Path | None = None  # audio_waveform.npy or audio_logfbank.npy, rows = audio table rows
    expressions: Path | None = None
    features: Mapping[str, Path] | None = None  # component model -> features.npz (fusion)
    faces: Path | None = None  # faces table: landmarks for AU guidance (the face family's `frames` has them)
    voice: Path | None = None  # voice table: voice_linear, and fusion_handcrafted_voice's voice columns
    splits: Path | None = None  # the workflow's splits.parquet (impressions.data.splits); else computed
    transcripts: Path | None = None  # transcripts table: text_linear (impressions.data.transcripts)

    @classmethod
    def from_files(
        cls, files: Mapping[str, str | Sequence[str]], clips_dir: str | Path | None = None
    ) -> Inputs:
        """From a rule's named inputs: `arrays` are per-clip files (their folders become `clip_dirs`)
        or, without them, the per-clip folders are read under `clips_dir`; `features` are component
        models' features.npz files (named by their model folder)."""

        def one(key):
            return Path(files[key]) if key in files else None

        arrays = files.get("arrays")
        features = files.get("features")
        return cls(
            clips=Path(files["clips"]),
            frames=one("frames"),
            clip_dirs=logs.clip_dirs(arrays)
            if arrays
            else logs.ClipFolders(clips_dir)
            if clips_dir
            else None,
            audio_table=one("audio_table"),
            audio_array=one("audio_array"),
            expressions=one("expressions"),
            features={Path(f).parent.name: Path(f) for f in features} if features else None,
            faces=one("faces"),
            voice=one("voice"),
            splits=one("splits"),
            transcripts=one("transcripts"),
        )


def _read(path):
    import polars as pl

    return pl.read_parquet(path)


def _clips_by_split(clips_table) -> dict[str, datasets.Clips]:
    return {s: datasets.Clips.from_table(clips_table, s) for s in SPLITS}


def _frame_sets(family: str, inputs: Inputs, splits: dict[str, datasets.Clips]) -> dict:
    """Per split, the frames (image) or face frames (face) of its clips.

    Only the columns that pick the items are read: the faces table's landmark lists (2 x 136 floats a
    row, about 1.2 KB) read whole would grow the job by about 1.2 GB at FI's 1,000,000 frames."""
    import polars as pl

    faces = registry.get(family).sample_kind == "faces"
    if faces and "has_face" not in pl.read_parquet_schema(inputs.frames):
        raise ValueError(f"{inputs.frames} has no has_face column: the face model needs the faces table")
    table = pl.read_parquet(
        inputs.frames, columns=["clip_id", "frame_index", *(["has_face"] if faces else [])]
    )
    array = "faces" if faces else "frames"  # either stored layout (impressions.data.image_store)
    return {
        s: datasets.FrameDataset(c, inputs.clip_dirs, datasets.frame_items(table, c.ids, faces), array)
        for s, c in splits.items()
    }


def _audio_sets(inputs: Inputs, splits: dict[str, datasets.Clips], crop_seconds: float | None = None) -> dict:
    """Audio rows per split; with `crop_seconds`, random crops for training and whole clips elsewhere."""
    table = _read(inputs.audio_table)
    row_ids = table["clip_id"].to_list()
    array = np.load(inputs.audio_array, mmap_mode="r")
    if array.shape[0] != len(row_ids):
        raise ValueError(f"{inputs.audio_array} has {array.shape[0]} rows, the audio table {len(row_ids)}")
    sets = {
        s: datasets.RowDataset(c, inputs.audio_array, datasets.rows_for(c.ids, row_ids))
        for s, c in splits.items()
    }
    if crop_seconds:
        if array.ndim != 2:
            raise ValueError("crop_seconds applies to the waveform model (audio) only")
        rate = int(table["sample_rate"][0]) if table.height else 16000
        crop = int(round(crop_seconds * rate))
        lengths = table["n_samples"].to_list()
        sets = {
            s: datasets.RandomCrop(d, lengths, crop) if s == "train" else datasets.WholeClip(d, lengths, crop)
            for s, d in sets.items()
        }
    return sets


def au_statistics(expressions) -> tuple[list[str], np.ndarray, list[str]]:
    """Per clip: mean, std and max of each AU over its face frames -> (clip ids, (n, 51), column names)."""
    import polars as pl

    aggs = [pl.col(a).mean().alias(f"{a}_mean") for a in AUS]
    aggs += [pl.col(a).std(ddof=0).alias(f"{a}_std") for a in AUS]
    aggs += [pl.col(a).max().alias(f"{a}_max") for a in AUS]
    stats = expressions.group_by("clip_id").agg(aggs).sort("clip_id")
    names = [c for c in stats.columns if c != "clip_id"]
    return stats["clip_id"].to_list(), stats.select(names).to_numpy().astype(np.float64), names


def handcrafted_features(clips_table, expressions) -> tuple[list[str], np.ndarray, list[str]]:
    """Per clip: age group and gender one-hot (all zeros when unknown) and mean emotion probabilities."""
    import polars as pl

    emotions = expressions.group_by("clip_id").agg([pl.col(e).mean() for e in EMOTIONS])
    table = (
        clips_table.select("clip_id", "age_group", "gender")
        .join(emotions, on="clip_id", how="left")
        .sort("clip_id")
    )
    cols = [
        (pl.col("age_group") == a).fill_null(False).cast(pl.Float64).alias(f"age_{a}")
        for a in HANDCRAFTED_AGE
    ]
    cols += [
        (pl.col("gender") == g).fill_null(False).cast(pl.Float64).alias(f"gender_{g}")
        for g in HANDCRAFTED_GENDER
    ]
    cols += [
        pl.col(e).cast(pl.Float64).alias(f"emotion_{e}") for e in EMOTIONS
    ]  # null without a face: imputed later
    out = table.select("clip_id", *cols)
    names = out.columns[1:]
    return out["clip_id"].to_list(), out.select(names).to_numpy().astype(np.float64), names


def voice_features(voice) -> tuple[list[str], np.ndarray, list[str]]:
    """Per clip: the voice table's descriptors (impressions.data.voice), NaN where undefined (no voiced
    frame) -> (clip ids, (n, 14), names prefixed `voice_`)."""
    from impressions.schemas import VOICE

    table = voice.sort("clip_id")
    values = table.select(list(VOICE)).to_numpy().astype(np.float64)
    return table["clip_id"].to_list(), values, [f"voice_{v}" for v in VOICE]


def _features_matrix(family: str, settings: Settings, inputs: Inputs, clips_table, all_ids):
    """(n_all_clips, d) float matrix with NaN where a component has nothing for a clip, and its names.

    Blocks in the family's input order (impressions.models.registry): other models' features, the
    voice descriptors, then the AU-table features (`kind` au_stats, au_means or handcrafted)."""
    spec = registry.get(family)
    blocks, names = [], []
    if "features" in spec.inputs:
        missing = [m for m in settings.inputs if m not in (inputs.features or {})]
        if missing:
            raise ValueError(f"{family}: no features given for component models {missing}")
        for name in settings.inputs:
            with np.load(inputs.features[name]) as data:
                ids, feats = data["clip_id"].tolist(), data["features"].astype(np.float64)
            blocks.append(_rows(all_ids, ids, feats))
            names += [f"{name}_{i}" for i in range(feats.shape[1])]
    if "voice_table" in spec.inputs:
        if inputs.voice is None:
            raise ValueError(f"{family} needs the voice table (results/tables/voice.parquet)")
        ids, values, cols = voice_features(_read(inputs.voice))
        blocks.append(_rows(all_ids, ids, values))
        names += cols
    if "au_table" in spec.inputs:
        expressions = _read(inputs.expressions)
        if spec.kind == "au_means":  # the 17 per-clip means only (Ventura et al. 2017)
            ids, values, cols = au_statistics(expressions)
            values, cols = values[:, : len(AUS)], cols[: len(AUS)]
        elif spec.kind == "au_stats":
            ids, values, cols = au_statistics(expressions)
        else:
            ids, values, cols = handcrafted_features(clips_table, expressions)
        blocks.append(_rows(all_ids, ids, values))
        names += cols
    return np.concatenate(blocks, axis=1), names


def _rows(all_ids, ids, values: np.ndarray) -> np.ndarray:
    """`values` (one row per id of `ids`) laid out in `all_ids` order, NaN rows for ids it lacks."""
    rows = datasets.rows_for(all_ids, ids)
    block = np.full((len(all_ids), values.shape[1]), np.nan)
    block[rows >= 0] = values[rows[rows >= 0]]
    return block


def _impute(matrix: np.ndarray, train_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NaN -> the training column mean (0 where a column is NaN on every training clip).

    Returns the filled matrix, which rows had a NaN, and the column means used."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a column with no training value: mean of nothing
        col_mean = np.nan_to_num(np.nanmean(matrix[train_rows], axis=0))
    missing = np.isnan(matrix)
    filled = np.where(missing, col_mean, matrix)
    return filled.astype(np.float32), missing.any(axis=1), col_mean
