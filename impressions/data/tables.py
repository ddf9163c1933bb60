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
from impressions.schemas import (
    EXPRESSION_SOURCE_KEYS,
    GATHERED,
    TABLES,
    VOICE_BACKEND_KEY,
    frame,
    polars_schema,
)

AUDIO_ARRAYS = ("waveform", "logmel", "logfbank")

ROW_GROUP_ROWS = 16_384
"""Rows per Parquet row group of the gathered per-frame tables (frames, faces, expressions). A reader
that wants some clips' rows decodes whole row groups: Polars' default (262,144 rows) would make a
block read of FI's faces table decode 300 MB of landmark lists, this about 20 MB."""


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
) -> None:
    """One shard's clips: their frame tables (frames and faces columns) and QC records, concatenated.

    What `gather_clips` and the audio and expression shards read, instead of every clip's files.
    With `signals_out`, also each clip's identity descriptor (`clip_signals`).
    """
    import polars as pl

    ids = sorted(clip_dirs)
    if signals_out is not None:
        clip_signals({c: clip_dirs[c] for c in ids}).write_parquet(signals_out)
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
    transcripts: Path | None = None,
) -> None:
    """The `frames`, `faces` and `qc` tables from the clip shards and the index's QC rows.

    Rows are ordered by clip id (then frame index), whatever the shard count; QC rows get the
    clip's split from the clips table and, given the transcripts table, its QC note as
    `transcript_note` (`impressions.schemas.GATHERED`: null where the clip's transcript is usable,
    and for the index's rows, clips the transcripts table does not list).
    """
    import polars as pl

    table = pl.concat([pl.read_parquet(p) for p in frame_shards]).sort("clip_id", "frame_index")
    table.select(list(TABLES["frames"])).write_parquet(frames_out, row_group_size=ROW_GROUP_ROWS)
    table.select(list(TABLES["faces"])).write_parquet(faces_out, row_group_size=ROW_GROUP_ROWS)
    splits = pl.read_parquet(clips_table, columns=["clip_id", "split"])
    qc = pl.concat([pl.read_parquet(p) for p in qc_shards])
    qc = qc.drop("split").join(splits, on="clip_id", how="left")
    # by column name: an index QC table from an earlier version may lack a newer column (null here)
    qc = pl.concat([qc, pl.read_parquet(index_qc)], how="diagonal_relaxed")
    qc = qc.drop(list(GATHERED["qc"]), strict=False)  # shards written before the column lack it
    notes = frame("qc", []).select("clip_id", *GATHERED["qc"])
    if transcripts is not None:
        notes = pl.read_parquet(transcripts).select("clip_id", pl.col("qc_note").alias("transcript_note"))
    qc = qc.join(notes, on="clip_id", how="left").select(list(TABLES["qc"]))
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


def gather_expressions(
    shard_tables: Iterable[Path], out: Path, *, qc_tables: Iterable[Path] = (), out_qc: Path | None = None
) -> None:
    """The expressions table (and, with `out_qc`, the per-clip `expression_qc` table) from the shards'."""
    import polars as pl

    shard_tables = list(shard_tables)
    parts = [pl.read_parquet(p) for p in shard_tables]
    table = pl.concat(parts) if parts else frame("expressions", [])
    table.sort("clip_id", "frame_index").write_parquet(
        out, row_group_size=ROW_GROUP_ROWS, metadata=_joined_sources(shard_tables)
    )
    if out_qc is not None:
        qc = [pl.read_parquet(p) for p in qc_tables]
        (pl.concat(qc) if qc else frame("expression_qc", [])).sort("clip_id").write_parquet(out_qc)


def expression_sources(path: str | Path) -> dict[str, str]:
    """The backend and AU and emotion sources an expressions table (or shard) names in its metadata
    (`schemas.EXPRESSION_SOURCE_KEYS`): "unknown" for a file written before the keys."""
    import polars as pl

    stored = pl.read_parquet_metadata(path)
    return {key: stored.get(key, "unknown") for key in EXPRESSION_SOURCE_KEYS}


def _joined_sources(shard_tables: list[Path]) -> dict[str, str]:
    """The shards' sources, each key's distinct values joined by "; " (shards re-run one at a time
    may differ after a backend change: the table says so rather than naming one)."""
    shards = [expression_sources(p) for p in shard_tables]
    return {key: "; ".join(sorted({s[key] for s in shards})) or "unknown" for key in EXPRESSION_SOURCE_KEYS}


def clip_signals(clip_dirs: Mapping[str, str | Path]):
    """Per clip: its tracked person's descriptor, computed by the clip's job (`identity.npy`)."""
    import polars as pl

    from impressions.data import identity

    rows = []
    for clip_id, clip_dir in clip_dirs.items():
        paths = output_paths(clip_dir)
        descriptor = np.load(paths["identity"]) if paths["identity"].exists() else identity.missing()
        rows.append({
            "clip_id": clip_id,
            "descriptor": None if np.isnan(descriptor).any() else descriptor.astype(np.float32).tolist(),
        })  # fmt: skip
    schema = {"clip_id": pl.String, "descriptor": pl.List(pl.Float32)}
    return pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)


def backend_of(path: str | Path) -> str:
    """The backend that wrote a voice table or voice shard (`builtin` for files from before the key)."""
    import polars as pl

    return pl.read_parquet_metadata(path).get(VOICE_BACKEND_KEY, "builtin")


def gather_voice(shard_tables: Iterable[Path], out: Path) -> None:
    """The `voice` table from the voice shards (`shards.voice_shard`), its backend in its metadata
    (`VOICE_BACKEND_KEY`; `backend_of`); shards of different backends are refused."""
    import polars as pl

    shard_tables = list(shard_tables)
    backends = {backend_of(p) for p in shard_tables}
    if len(backends) > 1:
        raise RuntimeError(f"voice shards from different voice backends {sorted(backends)}; re-run them")
    table = pl.concat([pl.read_parquet(p) for p in shard_tables]).sort("clip_id")
    backend = backends.pop() if backends else "builtin"
    table.write_parquet(out, metadata={VOICE_BACKEND_KEY: backend})


def gather_signals(signal_shards: Iterable[Path], clips_table: Path, identities_out: Path):
    """The `identities` table: people clustered across all clips (`identity.cluster_people`)."""
    import polars as pl

    from impressions.data import identity

    table = pl.concat([pl.read_parquet(p) for p in signal_shards]).sort("clip_id")
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
