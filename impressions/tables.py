"""Gather per-clip and per-shard outputs into the dataset tables under `results/tables/`.

Tables (schemas in `impressions.schemas.TABLES`): clips, frames, faces, audio, expressions, qc, all
Parquet. Large arrays stay beside them: per-clip `frames.npy`/`faces.npy` under `results/clips/` and
the audio arrays gathered into `results/arrays/audio_{waveform,logmel,logfbank}.npy`, whose row i
belongs to row i of the audio table.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from impressions.clip_index import ClipIndex
from impressions.preprocess import output_paths
from impressions.schemas import TABLES, frame, polars_schema

AUDIO_ARRAYS = ("waveform", "logmel", "logfbank")


def write_index(index: ClipIndex, clips_out: Path, index_qc_out: Path) -> None:
    """The clips table, and QC rows for annotated clips without a file and unannotated files."""
    index.table().write_parquet(clips_out)
    rows = [
        {"clip_id": row["clip_id"], "split": row["split"], "status": "missing_file",
         "reason": "annotated, but no video file with this name was found under the data root"}
        for row in index.missing_files
    ] + [
        {"clip_id": Path(path).stem, "status": "unannotated",
         "reason": f"video file {path} is not listed in any annotation file; not processed"}
        for path in index.unannotated
    ]  # fmt: skip
    frame("qc", rows).write_parquet(index_qc_out)


def gather_frames(clip_dirs: Mapping[str, str | Path], frames_out: Path, faces_out: Path) -> None:
    """Concatenate per-clip frame tables and split them into the `frames` and `faces` tables."""
    import polars as pl

    schema = {**polars_schema("frames"), **polars_schema("faces")}
    parts = [pl.read_parquet(output_paths(d)["table"]) for _, d in sorted(clip_dirs.items())]
    table = pl.concat(parts) if parts else pl.DataFrame(schema=schema)
    table.select(list(TABLES["frames"])).write_parquet(frames_out)
    table.select(list(TABLES["faces"])).write_parquet(faces_out)


def gather_qc(clip_dirs: Mapping[str, str | Path], clips_table: Path, index_qc: Path, out: Path) -> None:
    """One QC row per clip: processed clips' records plus the index's missing and unannotated ones."""
    import polars as pl

    splits = dict(pl.read_parquet(clips_table, columns=["clip_id", "split"]).iter_rows())
    rows = []
    for clip_id, clip_dir in sorted(clip_dirs.items()):
        record = json.loads(output_paths(clip_dir)["qc"].read_text())
        record["split"] = splits.get(clip_id)
        rows.append(record)
    pl.concat([frame("qc", rows), pl.read_parquet(index_qc)]).sort("clip_id").write_parquet(out)


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
