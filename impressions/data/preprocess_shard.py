"""One shard of clips preprocessed in one process, with a per-clip cache.

A job per clip costs more than the clip's work (a fresh Python process and dlib's landmark model
loading: about 1.7 CPU-s against about 0.6 s of work at 10 frames), and Snakemake's planning cost
grows with its job count. So the workflow runs one job per shard of clips (`impressions.data.shards`):
the models load once, and the shard's frame, QC and signal tables are written in the same job.

A single added or replaced clip must still cost about one clip's work, so each clip folder keeps a
cache key (`cache.json`): a fingerprint of the video's content (size and BLAKE2b of its bytes, not
its mtime: a copied or touched file is the same clip, a file replaced in place with equal size is not),
the per-clip settings (`preprocess.Settings`, every field by name), a fingerprint of the columns the
folder stores (`CLIP_TABLES` in `impressions.schemas`) and `CACHE_VERSION`. A clip whose key matches is
reused as it is; any other is processed again. Changing a frame, face or audio-window setting, adding a
`Settings` field or adding, removing or retyping a column of those tables changes every key, so every
clip is processed again; expression and audio-feature settings are not in the key (their shard stages
read the clip folders).

Writes are atomic per clip: a clip is processed into a scratch folder under `clips/.partial/`, its key
written last, and the folder then renamed into place. A job killed mid-clip leaves only scratch (removed
by the next job of the shard) or a clip folder without a matching key, which is never trusted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path

from impressions import schemas
from impressions.data import preprocess

log = logging.getLogger(__name__)

CACHE_FILE = "cache.json"
"""The clip folder's cache key, written last (see the module docstring)."""

CLIP_TABLES = ("frames", "faces", "qc")
"""The tables whose columns a clip folder stores: `frames.parquet` (frames and faces), `qc.json` (qc).

Their schemas (`impressions.schemas.TABLES`) are in every clip's key, so a column change needs no
version bump."""

CACHE_VERSION = 3
"""Raise when preprocessing code changes what it writes for the same video, settings and columns.

What the key cannot see on its own: a column's values computed differently (another detector, a fixed
bug), an array file's layout, a QC status given on other grounds. A new `Settings` field or a column
added to `CLIP_TABLES` changes every key without it.

2: frames and faces stored by `frames.storage` (JPEG in a tar by default; 1 wrote `.npy` only).
3: two people who tie on frames and, within box jitter, on size go to the more central one, then the
leftmost (`impressions.data.tracking`; before, to the box a pixel larger)."""

PARTIAL = ".partial"
"""Scratch folder under the clips folder (a name no clip id has: ids are file names without `.mp4`)."""


def fingerprint(path: str | Path, chunk: int = 1 << 20) -> dict:
    """Size and BLAKE2b-128 digest of a file's bytes (about 1 GB/s; an FI clip takes ~2 ms)."""
    digest = hashlib.blake2b(digest_size=16)
    size = 0
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
            size += len(block)
    return {"size": size, "blake2b": digest.hexdigest()}


def cache_key(video_path: str | Path, settings: preprocess.Settings) -> dict:
    """What a clip's stored outputs depend on: the video's content, the per-clip settings, the columns
    stored and the code's version."""
    return {
        "version": CACHE_VERSION,
        "tables": schemas.fingerprint(*CLIP_TABLES),
        "video": fingerprint(video_path),
        "settings": dataclasses.asdict(settings),
    }


def _complete(clip_dir: Path, key: dict) -> bool:
    """Whether `clip_dir` holds every output and the same key (a folder without one is never trusted)."""
    try:
        stored = json.loads((clip_dir / CACHE_FILE).read_text())
    except (OSError, ValueError):
        return False
    paths = preprocess.output_paths(clip_dir, key["settings"]["storage"])
    return stored == key and all(p.is_file() for p in paths.values())


def _replace(scratch: Path, target: Path) -> None:
    """Move a finished scratch folder into place (each rename is atomic; readers see old or new)."""
    if target.exists():
        old = scratch.with_name(scratch.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(scratch, target)
        shutil.rmtree(old)
    else:
        os.replace(scratch, target)


@dataclasses.dataclass
class ShardReport:
    """What a shard job did: clips processed and reused from the cache, and (for the job that owns
    the clip folders, `preprocess_shard`) stale folders removed; None where a job removes none."""

    processed: list[str] = dataclasses.field(default_factory=list)
    reused: list[str] = dataclasses.field(default_factory=list)
    pruned: list[str] | None = None

    def summary(self) -> str:
        text = (
            f"{len(self.processed) + len(self.reused)} clips: {len(self.processed)} processed, "
            f"{len(self.reused)} reused from the cache"
        )
        return text if self.pruned is None else f"{text}, {len(self.pruned)} stale folders removed"


def preprocess_clips(
    videos: Mapping[str, str | Path],
    clips_dir: str | Path,
    settings: preprocess.Settings,
    *,
    cache: bool = True,
    scratch_name: str = "job",
    stale: callable = None,
) -> ShardReport:
    """Frames, faces, audio window and QC for each clip (id -> video), reusing clips whose key matches.

    `scratch_name` names this job's scratch folder (one per shard, so shard jobs never collide);
    `stale(clip_id)` says whether a clip folder not in `videos` belongs to this job's shard and is to
    be removed (its clip left the dataset).
    """
    clips_dir = Path(clips_dir)
    scratch_root = clips_dir / PARTIAL / scratch_name
    shutil.rmtree(scratch_root, ignore_errors=True)  # what a killed job of this shard left
    scratch_root.mkdir(parents=True)
    report = ShardReport([], [], [])
    started = time.perf_counter()
    for clip_id in sorted(videos):
        key = cache_key(videos[clip_id], settings)
        target = clips_dir / clip_id
        if cache and _complete(target, key):
            report.reused.append(clip_id)
            continue
        scratch = scratch_root / clip_id
        preprocess.preprocess_clip(clip_id, videos[clip_id], scratch, settings)
        (scratch / CACHE_FILE).write_text(json.dumps(key, indent=1))
        _replace(scratch, target)
        report.processed.append(clip_id)
        log.info("processed %s", clip_id)
    if stale is not None:
        for folder in sorted(clips_dir.iterdir()):
            if folder.name != PARTIAL and folder.name not in videos and stale(folder.name):
                shutil.rmtree(folder)
                report.pruned.append(folder.name)
    shutil.rmtree(scratch_root)
    try:
        (clips_dir / PARTIAL).rmdir()  # the last job to finish removes it
    except OSError:
        pass
    log.info("%s in %.1f s", report.summary(), time.perf_counter() - started)
    return report


def preprocess_shard(
    videos: Mapping[str, str | Path],
    clips_dir: str | Path,
    settings: preprocess.Settings,
    frames_out: Path,
    qc_out: Path,
    signals_out: Path,
    *,
    shard: int,
    n_shards: int,
    cache: bool = True,
) -> ShardReport:
    """The workflow's shard job: `preprocess_clips`, then the shard's frame, QC and signal tables."""
    from impressions.data import shards, tables

    report = preprocess_clips(
        videos, clips_dir, settings, cache=cache, scratch_name=f"shard{shard}",
        stale=lambda clip_id: shards.shard_of(clip_id, n_shards) == shard,
    )  # fmt: skip
    folders = {clip_id: Path(clips_dir) / clip_id for clip_id in videos}
    tables.clip_shard(folders, Path(frames_out), Path(qc_out), Path(signals_out))
    return report
