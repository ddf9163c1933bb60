"""Shards: stable groups of clips, the workflow's unit of scheduled work.

A process start, dlib's model loading (preprocessing), librosa's first calls and torch's import 3.5 s
(audio features, expressions) each cost more than one clip's work, and Snakemake's planning cost
grows with its job count, so every preprocessing stage runs once per shard of clips
(`impressions.data.preprocess_shard` for frames, faces and audio windows). A clip's shard is a hash
of its id alone, so adding or replacing a clip re-runs only its own shard.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from impressions.data import image_store
from impressions.data.preprocess import output_paths
from impressions.schemas import frame


def shard_of(clip_id: str, n_shards: int) -> int:
    """The shard of a clip: CRC-32 of its UTF-8 id, modulo the shard count (stable across runs)."""
    return zlib.crc32(clip_id.encode("utf-8")) % n_shards


def assign(clip_ids: Iterable[str], n_shards: int) -> dict[int, list[str]]:
    """Clip ids per shard, for every shard 0..n_shards-1 (some may be empty)."""
    shards: dict[int, list[str]] = {k: [] for k in range(n_shards)}
    for clip_id in sorted(clip_ids):
        shards[shard_of(clip_id, n_shards)].append(clip_id)
    return shards


def clip_folders(qc_shard: str | Path, clips_dir: str | Path) -> dict[str, Path]:
    """Per-clip folders by clip id for the clips of a shard, from its QC table (`preprocess_shard`)."""
    import polars as pl

    ids = pl.read_parquet(qc_shard, columns=["clip_id"])["clip_id"]
    return {clip_id: Path(clips_dir) / clip_id for clip_id in ids}


def audio_shard(clip_dirs: Mapping[str, str | Path], audio_options: dict, out_table: Path, out_arrays: Path):
    """Spectral features and loudness/pitch for a shard's clips, from their saved waveforms.

    Writes the shard's `audio` table rows (Parquet) and an npz of stacked arrays (`clip_id`,
    `waveform`, `logmel`, `logfbank`) in the same order.
    """
    from tqdm import tqdm

    from impressions.data import audio

    rows, arrays = [], {"clip_id": [], "waveform": [], "logmel": [], "logfbank": []}
    for clip_id, clip_dir in tqdm(
        sorted(clip_dirs.items()), desc="audio features", unit="clip", mininterval=5
    ):
        paths = output_paths(clip_dir)
        qc = json.loads(paths["qc"].read_text())
        waveform = np.load(paths["waveform"])
        n_samples = int(qc.get("audio_samples") or 0)
        feats = audio.features(waveform[:n_samples], **audio_options)
        rows.append({
            "clip_id": clip_id, "has_audio": bool(qc.get("has_audio")), "padded": feats.padded,
            "n_samples": n_samples, "sample_rate": feats.sample_rate, **feats.stats(),
        })  # fmt: skip
        for key, value in (("clip_id", clip_id), ("waveform", feats.waveform), ("logmel", feats.logmel),
                           ("logfbank", feats.logfbank)):  # fmt: skip
            arrays[key].append(value)
    frame("audio", rows).write_parquet(out_table)
    np.savez(out_arrays, **{key: np.asarray(value) for key, value in arrays.items()})


def expression_shard(clip_dirs: Mapping[str, str | Path], backend, out_table: Path) -> None:
    """AU intensities and emotions for every face frame of a shard's clips, one clip at a time.

    Frames without a face, or whose face failed (`success` false: a far-off landmark fit or a pose
    beyond 45 degrees), get no row: the `expressions` table is keyed by (clip_id, frame_index) and
    joins to `faces` where `success` is true.
    """
    import polars as pl
    from tqdm import tqdm

    parts = []
    for clip_id, clip_dir in tqdm(sorted(clip_dirs.items()), desc="expressions", unit="clip", mininterval=5):
        paths = output_paths(clip_dir)
        faces = pl.read_parquet(paths["table"])
        # OpenFace users drop frames whose face failed (impressions.data.head_pose.success); tables written
        # before that flag existed have no `success` column and keep every face frame
        keep = pl.col("has_face") & (pl.col("success") if "success" in faces.columns else True)
        faces = faces.filter(keep).select("frame_index", "landmarks_aligned")
        if faces.height == 0:
            continue
        crops = image_store.open_path(paths["faces"]).batch(faces["frame_index"].to_numpy())
        landmarks = np.asarray(faces["landmarks_aligned"].to_list(), np.float32).reshape(-1, 68, 2)
        predicted = backend.predict(np.ascontiguousarray(crops), landmarks, [clip_id] * faces.height)
        keys = pl.DataFrame({"clip_id": [clip_id] * faces.height, "frame_index": faces["frame_index"]})
        parts.append(pl.concat([keys, predicted], how="horizontal"))
    frame("expressions", pl.concat(parts) if parts else []).write_parquet(out_table)
