"""What a family reads: its inputs' paths, its per-split datasets and its per-clip feature tables."""

from __future__ import annotations

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
    """Per clip: the voice table's descriptors, whichever backend wrote them (`schemas.voice_descriptors`:
    the builtin's 14 or openSMILE's 88), NaN where undefined -> (clip ids, (n, d), names prefixed
    `voice_`)."""
    from impressions.schemas import voice_descriptors

    table = voice.sort("clip_id")
    names = voice_descriptors(table.columns)
    values = table.select(names).to_numpy().astype(np.float64)
    return table["clip_id"].to_list(), values, [f"voice_{v}" for v in names]


def _features_matrix(family: str, settings: Settings, inputs: Inputs, clips_table, all_ids):
    """(n_all_clips, d) float32 matrix with NaN where a component has nothing for a clip, and its names.

    Blocks in the family's input order (impressions.models.registry): other models' features, the
    voice descriptors, then the AU-table features (`kind` au_stats, au_means or handcrafted). The
    matrix is allocated once and each component's features are written into it as they are read, so
    the job holds the matrix and one component's block, not a float64 copy of each.
    """
    spec = registry.get(family)
    tables = []  # (ids, values, names) of the small table blocks, read before the matrix is allocated
    if "voice_table" in spec.inputs:
        if inputs.voice is None:
            raise ValueError(f"{family} needs the voice table (results/tables/voice.parquet)")
        tables.append(voice_features(_read(inputs.voice)))
    if "au_table" in spec.inputs:
        expressions = _read(inputs.expressions)
        if spec.kind == "au_means":  # the 17 per-clip means only (Ventura et al. 2017)
            ids, values, cols = au_statistics(expressions)
            tables.append((ids, values[:, : len(AUS)], cols[: len(AUS)]))
        elif spec.kind == "au_stats":
            tables.append(au_statistics(expressions))
        else:
            tables.append(handcrafted_features(clips_table, expressions))
    components = []
    if "features" in spec.inputs:
        missing = [m for m in settings.inputs if m not in (inputs.features or {})]
        if missing:
            raise ValueError(f"{family}: no features given for component models {missing}")
        components = [(name, _npz_shape(inputs.features[name], "features")[1]) for name in settings.inputs]
    widths = [w for _, w in components] + [values.shape[1] for _, values, _ in tables]
    matrix = np.full((len(all_ids), sum(widths)), np.nan, dtype=np.float32)
    names, at = [], 0
    for name, width in components:
        with np.load(inputs.features[name]) as data:
            _rows_into(matrix[:, at : at + width], all_ids, data["clip_id"].tolist(), data["features"])
        names += [f"{name}_{i}" for i in range(width)]
        at += width
    for ids, values, cols in tables:
        _rows_into(matrix[:, at : at + values.shape[1]], all_ids, ids, values)
        names += list(cols)
        at += values.shape[1]
    return matrix, names


def _npz_shape(path, key: str) -> tuple[int, ...]:
    """The shape of array `key` in a `.npz` file, read from its header without loading the array."""
    import zipfile

    with zipfile.ZipFile(path) as archive, archive.open(f"{key}.npy") as f:
        return tuple(datasets.npy_header(f, f"{path}:{key}")[0])


def _rows_into(block: np.ndarray, all_ids, ids, values: np.ndarray) -> None:
    """Write `values` (one row per id of `ids`) into `block` in `all_ids` order; rows of ids it lacks
    keep their NaN."""
    rows = datasets.rows_for(all_ids, ids)
    block[rows >= 0] = values[rows[rows >= 0]]


_CHUNK = 4096  # rows per NaN mask in `_impute`


def _impute(matrix: np.ndarray, train_rows: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NaN -> the training column mean (0 where a column is NaN on every training clip), in place.

    Returns the filled matrix (the same array), which rows had a NaN, and the column means used
    (float64 sums). Chunks of rows keep the NaN masks small beside the matrix."""
    train = matrix[train_rows]
    sums = np.zeros(matrix.shape[1])
    counts = np.zeros(matrix.shape[1], dtype=np.int64)
    for start in range(0, len(train), _CHUNK):
        chunk = train[start : start + _CHUNK]
        sums += np.nansum(chunk, axis=0, dtype=np.float64)
        counts += (~np.isnan(chunk)).sum(axis=0)
    col_mean = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
    fill = col_mean.astype(matrix.dtype)
    had_nan = np.zeros(len(matrix), dtype=bool)
    for start in range(0, len(matrix), _CHUNK):
        chunk = matrix[start : start + _CHUNK]
        nan = np.isnan(chunk)
        had_nan[start : start + _CHUNK] = nan.any(axis=1)
        np.copyto(chunk, np.broadcast_to(fill, chunk.shape), where=nan)
    return matrix, had_nan, col_mean
