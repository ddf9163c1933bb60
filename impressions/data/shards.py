"""Shards: stable groups of clips, the workflow's unit of scheduled work.

A process start, dlib's model loading (preprocessing) and torch's import 2.4-3.5 s (expressions) each
cost more than one clip's work, and Snakemake's planning cost
grows with its job count, so every preprocessing stage runs once per shard of clips
(`impressions.data.preprocess_shard` for frames, faces and audio windows). A clip's shard is a hash
of its id alone, so adding or replacing a clip re-runs only its own shard; inside, every stage reuses
the clips whose inputs and settings are unchanged (for audio features and expressions:
`impressions.data.stage_cache`), so that costs about one clip's work.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from impressions.data import image_store, stage_cache
from impressions.data.preprocess import output_paths
from impressions.data.preprocess_shard import ShardReport
from impressions.schemas import EXPRESSION_SOURCE_KEYS, frame

if TYPE_CHECKING:
    import polars as pl

log = logging.getLogger(__name__)

AUDIO_CACHE_VERSION = 1
"""Raise when `audio_shard` changes what it computes for the same clip, audio options and `audio`
columns (a column change needs no bump: the table's schema is in the key, `AUDIO_CACHE_TABLES`)."""

AUDIO_CACHE_TABLES = ("audio",)
"""The tables whose rows `audio_shard` stores per clip (their columns are in its key)."""

EXPRESSIONS_CACHE_VERSION = 2
"""Raise when `expression_shard` changes what it computes for the same clip, backend, options and
`expressions` columns (a column change needs no bump: `EXPRESSIONS_CACHE_TABLES`)."""

EXPRESSIONS_CACHE_TABLES = ("expressions",)
"""The tables whose rows `expression_shard` stores per clip (their columns are in its key)."""

VOICE_CACHE_VERSION = 1
"""Raise when a voice backend computes something else for the same clip window, backend and `voice`
columns (`VOICE_CACHE_TABLES`: the builtin's columns are in the key)."""

VOICE_CACHE_TABLES = ("voice",)
"""The tables whose rows `voice_shard` stores per clip (the builtin's columns; openSMILE's are fixed by
its config, and `VOICE_CACHE_VERSION` stands for them)."""

CACHE_FILES = {
    "audio": "audio_features.npz",
    "expressions": "expressions.npz",
    "voice": "voice_{backend}.npz",
}
"""Each stage's per-clip cache file in the clip's folder (`impressions.data.stage_cache`); voice keeps one
per backend, so switching `voice.backend` back and forth recomputes nothing."""


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


def audio_shard(
    clip_dirs: Mapping[str, str | Path],
    audio_options: dict,
    out_table: Path,
    out_arrays: Path,
    *,
    cache: bool = True,
) -> ShardReport:
    """Spectral features and loudness/pitch for a shard's clips, from their saved waveforms.

    Writes the shard's `audio` table rows (Parquet) and an npz of stacked arrays (`clip_id`,
    `waveform`, `logmel`, `logfbank`) in the same order. A clip whose preprocessing key and audio
    options are unchanged reuses its stored features (`stage_cache`; `cache=False` recomputes all).
    """
    from tqdm import tqdm

    from impressions.data import audio

    report = ShardReport()
    window = {k: audio_options[k] for k in ("sample_rate", "seconds", "max_seconds") if k in audio_options}
    rows, arrays = [], {"clip_id": [], "waveform": [], "logmel": [], "logfbank": []}
    for clip_id, clip_dir in tqdm(
        sorted(clip_dirs.items()), desc="audio features", unit="clip", mininterval=5
    ):
        path = Path(clip_dir) / CACHE_FILES["audio"]
        key = stage_cache.stage_key(
            clip_dir, "audio_features", AUDIO_CACHE_VERSION, audio_options, tables=AUDIO_CACHE_TABLES
        )
        stored = stage_cache.load(path, key) if cache else None
        if stored is None:
            row, feats = _clip_audio(clip_id, clip_dir, audio_options)
            waveform, logmel, logfbank = feats.waveform, feats.logmel, feats.logfbank
            stage_cache.store(
                path, key, {"row": np.array(json.dumps(row)), "logmel": logmel, "logfbank": logfbank}
            )
            report.processed.append(clip_id)
            log.info("processed %s", clip_id)
        else:
            # the window is not stored: cutting the clip's saved waveform again is cheap and exact
            row, logmel, logfbank = json.loads(str(stored["row"])), stored["logmel"], stored["logfbank"]
            samples = np.load(output_paths(clip_dir)["waveform"])[: row["n_samples"]]
            waveform, _ = audio.window(samples, **window)
            report.reused.append(clip_id)
        rows.append(row)
        for key, value in (("clip_id", clip_id), ("waveform", waveform), ("logmel", logmel),
                           ("logfbank", logfbank)):  # fmt: skip
            arrays[key].append(value)
    frame("audio", rows).write_parquet(out_table)
    np.savez(out_arrays, **{key: np.asarray(value) for key, value in arrays.items()})
    log.info("audio features: %s", report.summary())
    return report


def clip_voice(clip_dir: str | Path, sample_rate: int, backend: str, *, cache: bool = True):
    """One clip's voice table row less its id, and whether it was computed (False: reused).

    From its audio window as the preprocessing cut it (`waveform.npy`, its real samples, never the
    padding); reused from `voice_<backend>.npz` in the clip's folder while the clip's key and the backend are
    unchanged. A backend that fails on the clip gives NaN descriptors and a logged traceback, never a
    failed shard (a missing opensmile wheel does stop it: that is a setup error, not a clip's)."""
    from impressions.data import egemaps, voice

    path = Path(clip_dir) / CACHE_FILES["voice"].format(backend=backend)
    key = stage_cache.stage_key(
        clip_dir, "voice", VOICE_CACHE_VERSION, {"backend": backend}, tables=VOICE_CACHE_TABLES
    )
    stored = stage_cache.load(path, key) if cache else None
    if stored is not None:
        return dict(zip(stored["names"].tolist(), stored["values"].tolist())), False
    paths = output_paths(clip_dir)
    n = int(json.loads(paths["qc"].read_text()).get("audio_samples") or 0)
    samples = np.load(paths["waveform"])[:n]
    try:
        row = voice.describe_with(backend, samples, sample_rate)
    except egemaps.OpenSmileMissing:
        raise
    except Exception:
        log.exception("voice descriptors of %s failed (%s backend): NaN", Path(clip_dir).name, backend)
        return {"voice_seconds": n / sample_rate, **dict.fromkeys(voice.columns(backend), float("nan"))}, True
    stage_cache.store(path, key, {"names": np.array(list(row)), "values": np.array(list(row.values()))})
    return row, True


def voice_rows(clip_dirs: Mapping[str, str | Path], sample_rate: int, backend: str, *, cache: bool = True,
               report: ShardReport | None = None) -> pl.DataFrame:  # fmt: skip
    """The `voice` table rows of these clips by `backend` (`clip_voice`): the keys, then the backend's
    descriptors (`voice.columns`), all f32."""
    import polars as pl

    from impressions.data import voice
    from impressions.schemas import VOICE_KEYS

    rows = []
    for clip_id, clip_dir in sorted(clip_dirs.items()):
        row, computed = clip_voice(clip_dir, sample_rate, backend, cache=cache)
        rows.append({"clip_id": clip_id, **row})
        if computed:
            log.info("processed %s", clip_id)
        if report is not None:
            (report.processed if computed else report.reused).append(clip_id)
    schema = {"clip_id": pl.String, **{c: pl.Float32 for c in (*VOICE_KEYS[1:], *voice.columns(backend))}}
    return pl.DataFrame(rows, schema=schema)


def voice_shard(
    clip_dirs: Mapping[str, str | Path],
    sample_rate: int,
    backend: str,
    out_table: Path,
    *,
    cache: bool = True,
) -> ShardReport:
    """The voice rows of a shard's clips (`voice_rows`), written with the backend in the file's metadata
    (`schemas.VOICE_BACKEND_KEY`)."""
    from impressions.schemas import VOICE_BACKEND_KEY

    report = ShardReport()
    voice_rows(clip_dirs, sample_rate, backend, cache=cache, report=report).write_parquet(
        out_table, metadata={VOICE_BACKEND_KEY: backend}
    )
    log.info("voice descriptors (%s): %s", backend, report.summary())
    return report


def _clip_audio(clip_id: str, clip_dir: str | Path, audio_options: dict):
    """One clip's `audio` table row and its features (`audio.ClipAudio`), from its saved waveform."""
    from impressions.data import audio

    paths = output_paths(clip_dir)
    qc = json.loads(paths["qc"].read_text())
    waveform = np.load(paths["waveform"])
    n_samples = int(qc.get("audio_samples") or 0)
    feats = audio.features(waveform[:n_samples], **audio_options)
    row = {
        "clip_id": clip_id, "has_audio": bool(qc.get("has_audio")), "padded": feats.padded,
        "n_samples": n_samples, "sample_rate": feats.sample_rate, **feats.stats(),
    }  # fmt: skip
    return row, feats


def expression_shard(
    clip_dirs: Mapping[str, str | Path],
    backend,
    out_table: Path,
    *,
    settings: dict | None = None,
    cache: bool = True,
    out_qc: Path | None = None,
    videos: Mapping[str, str | Path] | None = None,
) -> ShardReport:
    """AU intensities and emotions for every face frame of a shard's clips, one clip at a time.

    Frames without a face, or whose face failed (`success` false: a far-off landmark fit or a pose
    beyond 45 degrees), get no row: the `expressions` table is keyed by (clip_id, frame_index) and
    joins to `faces` where `success` is true. A clip whose preprocessing key, backend and `settings`
    (the stage's config: backend name and options) are unchanged reuses its stored rows
    (`stage_cache`; `cache=False` recomputes all). `out_qc` gets one `expression_qc` row per clip: the
    backend's AU and emotion sources, frames scored and the reason for any face frame left without
    a row (a backend such as openface may skip frames or whole clips; `videos` gives it the files).
    """
    import polars as pl

    # the resolved device too: `auto` may score on a GPU one run and a CPU the next (floats may differ)
    settings = {
        **(settings or {}),
        "backend": backend.name,
        "device_used": str(getattr(backend, "device", "")),
    }
    report = ShardReport()
    parts, keys, todo = {}, {}, {}
    videos = dict(videos or {})
    reasons: dict[str, str] = {}
    for clip_id, clip_dir in sorted(clip_dirs.items()):
        # a backend reading files per clip (openface CSVs) adds their digests: an edited file recomputes
        clip_settings = {
            **settings,
            **(backend.clip_inputs(clip_id) if hasattr(backend, "clip_inputs") else {}),
        }
        keys[clip_id] = stage_cache.stage_key(
            clip_dir, "expressions", EXPRESSIONS_CACHE_VERSION, clip_settings, tables=EXPRESSIONS_CACHE_TABLES
        )
        stored = (
            stage_cache.load(Path(clip_dir) / CACHE_FILES["expressions"], keys[clip_id]) if cache else None
        )
        if stored is None:
            todo[clip_id] = clip_dir
        else:
            parts[clip_id] = _rows_from_arrays(clip_id, stored)
            reasons[clip_id] = str(stored.get("reason", ""))
            report.reused.append(clip_id)
    for clip_id, rows, reason in _clip_expressions(todo, backend, videos):
        arrays = {**_rows_to_arrays(rows), "reason": np.array(reason)}
        stage_cache.store(Path(todo[clip_id]) / CACHE_FILES["expressions"], keys[clip_id], arrays)
        parts[clip_id] = rows
        reasons[clip_id] = reason
        report.processed.append(clip_id)
        log.info("processed %s", clip_id)
    kept = [parts[clip_id] for clip_id in sorted(parts) if parts[clip_id] is not None]
    frame("expressions", pl.concat(kept) if kept else []).write_parquet(
        out_table, metadata=dict(zip(EXPRESSION_SOURCE_KEYS, _backend_sources(backend), strict=True))
    )
    if out_qc is not None:
        named = dict(zip(("backend", "au_source", "emotion_source"), _backend_sources(backend), strict=True))
        qc_rows = [
            {
                "clip_id": clip_id, **named,
                "frames_scored": 0 if parts[clip_id] is None else parts[clip_id].height,
                "reason": reasons.get(clip_id, ""),
            }
            for clip_id in sorted(parts)
        ]  # fmt: skip
        frame("expression_qc", qc_rows).write_parquet(out_qc)
    for clip_id, reason in sorted(reasons.items()):
        if reason:
            log.warning("%s: %s", clip_id, reason)
    log.info("expressions: %s", report.summary())
    return report


def _backend_sources(backend) -> tuple[str, str, str]:
    """(backend, AU source, emotion source) of an expression backend, as its tables name them."""
    sources = getattr(backend, "sources", {})
    return backend.name, sources.get("aus", backend.name), sources.get("emotions", backend.name)


def _rows_to_arrays(rows: pl.DataFrame | None) -> dict[str, np.ndarray]:
    """A clip's expression rows as one array per column but `clip_id` (none at all for None)."""
    if rows is None:
        return {}
    columns = [name for name in rows.columns if name != "clip_id"]
    return {"columns": np.array(json.dumps(columns)), **{name: rows[name].to_numpy() for name in columns}}


def _rows_from_arrays(clip_id: str, arrays: dict[str, np.ndarray]) -> pl.DataFrame | None:
    """The inverse of `_rows_to_arrays`: the same columns, dtypes and order."""
    import polars as pl

    if "columns" not in arrays or not json.loads(str(arrays["columns"])):
        return None
    columns = json.loads(str(arrays["columns"]))
    n = len(arrays[columns[0]])
    return pl.DataFrame({"clip_id": [clip_id] * n, **{name: arrays[name] for name in columns}})


@dataclass(frozen=True)
class Clip:
    """One clip's face frames as a clip-aware expression backend (`predict_clip`) needs them."""

    clip_id: str
    folder: Path  # the clip's preprocessed folder (a backend may keep per-clip files there)
    times: np.ndarray  # s, the video time of each face frame
    video: Path | None = None  # the clip's video file, where the job knows it


def score_clip(backend, crops: np.ndarray, landmarks: np.ndarray, clip: Clip):
    """(N-row table, mask of rows to keep, QC reason or "") for one clip's N face frames."""
    if hasattr(backend, "predict_clip"):
        return backend.predict_clip(crops, landmarks, clip)
    table = backend.predict(crops, landmarks, [clip.clip_id] * len(crops))
    return table, np.ones(len(crops), bool), ""


def _clip_expressions(
    clip_dirs: Mapping[str, str | Path], backend, videos: Mapping[str, str | Path]
) -> Iterator[tuple[str, pl.DataFrame | None, str]]:
    """Each clip's `expressions` rows (None: no row to keep) and QC reason, one clip at a time."""
    import polars as pl
    from tqdm import tqdm

    for clip_id, clip_dir in tqdm(sorted(clip_dirs.items()), desc="expressions", unit="clip", mininterval=5):
        paths = output_paths(clip_dir)
        faces = pl.read_parquet(paths["table"])
        # OpenFace users drop frames whose face failed (impressions.data.head_pose.success); tables written
        # before that flag existed have no `success` column and keep every face frame
        keep = pl.col("has_face") & (pl.col("success") if "success" in faces.columns else True)
        faces = faces.filter(keep).select("frame_index", "time_s", "landmarks_aligned")
        if faces.height == 0:
            yield clip_id, None, ""
            continue
        crops = image_store.read(clip_dir, "faces").batch(faces["frame_index"].to_numpy())
        landmarks = np.asarray(faces["landmarks_aligned"].to_list(), np.float32).reshape(-1, 68, 2)
        video = videos.get(clip_id)
        clip = Clip(clip_id, Path(clip_dir), faces["time_s"].to_numpy(), Path(video) if video else None)
        predicted, kept, reason = score_clip(backend, np.ascontiguousarray(crops), landmarks, clip)
        keys = pl.DataFrame({"clip_id": [clip_id] * faces.height, "frame_index": faces["frame_index"]})
        rows = pl.concat([keys, predicted], how="horizontal").filter(pl.Series(kept))
        yield clip_id, (rows if rows.height else None), reason
