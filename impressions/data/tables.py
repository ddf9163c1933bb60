"""Gather per-clip and per-shard outputs into the dataset tables under `results/tables/`.

Tables (schemas in `impressions.schemas.TABLES`): clips, frames, faces, audio, expressions, qc, all
Parquet. Large arrays stay beside them: per-clip frames and faces under `results/clips/` (JPEG in
`frames.tar`/`faces.tar`, or `.npy`: `impressions.data.image_store`) and
the audio arrays gathered into `results/arrays/audio_{waveform,logmel,logfbank}.npy`, whose row i
belongs to row i of the audio table.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from impressions.data.clip_index import ClipIndex
from impressions.data.preprocess import output_paths
from impressions.schemas import TABLES, VOICE_BACKEND_KEY, VOICE_KEYS, frame, polars_schema, voice_descriptors

AUDIO_ARRAYS = ("waveform", "logmel", "logfbank")


def write_index(index: ClipIndex, clips_out: Path, index_qc_out: Path) -> None:
    """The clips table, and QC rows for the clips the index left out (no file, no or partial labels)."""
    index.table().write_parquet(clips_out)
    rows = [
        {"clip_id": row["clip_id"], "split": row["split"], "status": "missing_file",
         "reason": "annotated, but no video file with this name was found under the data root"}
        for row in index.missing_files
    ] + [
        {"clip_id": Path(path).stem, "status": "unannotated",
         "reason": f"video file {path} is not listed in any annotation file; not processed"}
        for path in index.unannotated
    ] + [
        {"clip_id": p.clip_id, "split": p.split, "status": "partial_labels",
         "reason": f"{Path(p.source).name} does not list it under {', '.join(p.missing)} (it does under the "
                   "other labels); excluded: not processed, trained on or scored"}
        for p in index.partially_labelled
    ]  # fmt: skip
    frame("qc", rows).write_parquet(index_qc_out)


def clip_shard(
    clip_dirs: Mapping[str, str | Path],
    frames_out: Path,
    qc_out: Path,
    signals_out: Path | None = None,
    sample_rate: int = 16000,
    voice_backend: str = "builtin",
    *,
    cache: bool = True,
) -> None:
    """One shard's clips: their frame tables (frames and faces columns) and QC records, concatenated.

    What `gather_clips` and the audio and expression shards read, instead of every clip's files.
    With `signals_out`, also each clip's voice descriptors (by `voice_backend`) and identity descriptor
    (`clip_signals`).
    """
    import polars as pl

    ids = sorted(clip_dirs)
    if signals_out is not None:
        signals = clip_signals({c: clip_dirs[c] for c in ids}, sample_rate, voice_backend, cache=cache)
        signals.write_parquet(signals_out, metadata={VOICE_BACKEND_KEY: voice_backend})
    parts = [pl.read_parquet(output_paths(clip_dirs[c])["table"]) for c in ids]
    schema = {**polars_schema("frames"), **polars_schema("faces")}
    (pl.concat(parts) if parts else pl.DataFrame(schema=schema)).write_parquet(frames_out)
    records = [json.loads(output_paths(clip_dirs[c])["qc"].read_text()) for c in ids]
    frame("qc", records).write_parquet(qc_out)


def gather_clips(
    frame_shards: Iterable[Path],
    qc_shards: Iterable[Path],
    clips_table: Path,
    index_qc: Path,
    frames_out: Path,
    faces_out: Path,
    qc_out: Path,
) -> None:
    """The `frames`, `faces` and `qc` tables from the clip shards and the index's QC rows.

    Rows are ordered by clip id (then frame index), whatever the shard count; QC rows get the
    clip's split from the clips table.
    """
    import polars as pl

    table = pl.concat([pl.read_parquet(p) for p in frame_shards]).sort("clip_id", "frame_index")
    table.select(list(TABLES["frames"])).write_parquet(frames_out)
    table.select(list(TABLES["faces"])).write_parquet(faces_out)
    splits = pl.read_parquet(clips_table, columns=["clip_id", "split"])
    qc = pl.concat([pl.read_parquet(p) for p in qc_shards])
    qc = qc.drop("split").join(splits, on="clip_id", how="left")
    # by column name: an index QC table from an earlier version may lack a newer column (null here)
    qc = pl.concat([qc, pl.read_parquet(index_qc)], how="diagonal_relaxed").select(list(TABLES["qc"]))
    qc.sort("clip_id").write_parquet(qc_out)


def gather_audio(
    shard_tables: Iterable[Path], shard_arrays: Iterable[Path], table_out: Path, arrays_dir: Path
):
    """Concatenate audio shards; arrays go to memory-mappable .npy files in the table's row order."""
    import polars as pl

    table = pl.concat([pl.read_parquet(p) for p in shard_tables])
    arrays = {key: [] for key in ("clip_id", *AUDIO_ARRAYS)}
    for path in shard_arrays:
        with np.load(path) as data:
            if data["clip_id"].size == 0:
                continue
            for key in arrays:
                arrays[key].append(data[key])
    order = np.concatenate(arrays["clip_id"]) if arrays["clip_id"] else np.zeros(0, str)
    if order.tolist() != table["clip_id"].to_list():
        raise RuntimeError("audio shard tables and arrays disagree on clip order; re-run the audio shards")
    arrays_dir.mkdir(parents=True, exist_ok=True)
    for key in AUDIO_ARRAYS:
        np.save(arrays_dir / f"audio_{key}.npy", np.concatenate(arrays[key]) if arrays[key] else np.zeros(0))
    table.write_parquet(table_out)


def gather_expressions(shard_tables: Iterable[Path], out: Path) -> None:
    import polars as pl

    parts = [pl.read_parquet(p) for p in shard_tables]
    table = pl.concat(parts) if parts else frame("expressions", [])
    table.sort("clip_id", "frame_index").write_parquet(out)


VOICE_CACHE_VERSION = 1
"""Raise when a voice backend computes something else for the same clip window and columns."""


def clip_voice(clip_dir: str | Path, sample_rate: int, backend: str, *, cache: bool = True) -> dict:
    """One clip's voice table row, less its id: from its audio window (`waveform.npy`, the real samples),
    reused from `voice.npz` in the clip's folder while the clip's key and the backend are unchanged."""
    from impressions.data import stage_cache, voice
    from impressions.data.shards import CACHE_FILES

    path = Path(clip_dir) / CACHE_FILES["voice"]
    key = stage_cache.stage_key(clip_dir, "voice", VOICE_CACHE_VERSION, {"backend": backend}, tables=("voice",))
    stored = stage_cache.load(path, key) if cache else None
    if stored is not None:
        return dict(zip(stored["names"].tolist(), stored["values"].tolist()))
    paths = output_paths(clip_dir)
    n = int(json.loads(paths["qc"].read_text()).get("audio_samples") or 0)
    row = voice.describe_with(backend, np.load(paths["waveform"])[:n], sample_rate)
    stage_cache.store(path, key, {"names": np.array(list(row)), "values": np.array(list(row.values()))})
    return row


def clip_signals(
    clip_dirs: Mapping[str, str | Path], sample_rate: int = 16000, voice_backend: str = "builtin",
    *, cache: bool = True,
):  # fmt: skip
    """Per clip: `voice` table columns (from its audio window, `clip_voice`) and its tracked person's
    descriptor, the backend in the table's metadata (`VOICE_BACKEND_KEY`, written by the caller).

    The builtin voice descriptors take about 0.05 CPU-s for 5 s, openSMILE's eGeMAPSv02 about 0.15; each
    clip's are cached in its folder. The descriptor was computed by the clip's job (`identity.npy`).
    """
    import polars as pl

    from impressions.data import identity, voice

    rows = []
    for clip_id, clip_dir in clip_dirs.items():
        paths = output_paths(clip_dir)
        descriptor = np.load(paths["identity"]) if paths["identity"].exists() else identity.missing()
        rows.append({
            "clip_id": clip_id, **clip_voice(clip_dir, sample_rate, voice_backend, cache=cache),
            "descriptor": None if np.isnan(descriptor).any() else descriptor.astype(np.float32).tolist(),
        })  # fmt: skip
    schema = {
        **{k: v for k, v in polars_schema("voice").items() if k in VOICE_KEYS},
        **{name: pl.Float32 for name in voice.columns(voice_backend)},
        "descriptor": pl.List(pl.Float32),
    }
    return pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)


def backend_of(path: str | Path) -> str:
    """The backend that wrote a voice table or signals shard (`builtin` for files from before the key)."""
    import polars as pl

    return pl.read_parquet_metadata(path).get(VOICE_BACKEND_KEY, "builtin")


def gather_signals(signal_shards: Iterable[Path], clips_table: Path, voice_out: Path, identities_out: Path):
    """The `voice` and `identities` tables; people clustered across all clips (`identity.cluster_people`).

    The voice table keeps the shards' backend in its metadata (`VOICE_BACKEND_KEY`; `backend_of`)."""
    import polars as pl

    from impressions.data import identity

    signal_shards = list(signal_shards)
    backends = {backend_of(p) for p in signal_shards}
    if len(backends) > 1:
        raise RuntimeError(f"signal shards from different voice backends {sorted(backends)}; re-run them")
    table = pl.concat([pl.read_parquet(p) for p in signal_shards]).sort("clip_id")
    voice_cols = [*VOICE_KEYS, *voice_descriptors(c for c in table.columns if c != "descriptor")]
    backend = backends.pop() if backends else "builtin"
    table.select(voice_cols).write_parquet(voice_out, metadata={VOICE_BACKEND_KEY: backend})
    clips = pl.read_parquet(clips_table)
    youtube = clips["youtube_id"] if "youtube_id" in clips.columns else pl.Series([None] * clips.height)
    meta = pl.DataFrame({"clip_id": clips["clip_id"], "youtube_id": youtube.cast(pl.String),
                         "split": clips["split"]})  # fmt: skip
    ids = table.join(meta, on="clip_id", how="left")
    descriptors = np.array(
        [d if d is not None else [np.nan] * identity.DIM for d in ids["descriptor"].to_list()], np.float64
    ).reshape(-1, identity.DIM)
    people = identity.cluster_people(descriptors, ids["youtube_id"].to_list())
    ids = ids.with_columns(
        has_identity=pl.col("descriptor").is_not_null(), person=pl.Series(people, dtype=pl.Int32)
    )
    frame("identities", ids.select(list(TABLES["identities"])).to_dicts()).write_parquet(identities_out)
