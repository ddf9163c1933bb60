"""Per-clip cache of the audio-feature, voice and expression shard jobs.

An added or replaced clip re-runs its shard's `audio_shard`, `voice_shard` and `expression_shard` jobs
(their input is the shard's QC table), which would otherwise recompute every clip of the shard. So each
stage keeps one file per clip beside the clip's preprocessed outputs (`clips/<id>/audio_features.npz`,
`clips/<id>/voice_<backend>.npz`, `clips/<id>/expressions.npz`) holding its result and its key: the
clip's preprocessing key (the folder's `cache.json`: the video's content fingerprint and the frame,
face and audio-window settings, `impressions.data.preprocess_shard`), the stage's own settings, a
fingerprint of the columns of the table its result is rows of (`impressions.schemas.fingerprint`: a
column added there changes every key) and a stage version. A clip whose stored key matches is
reused; any other is computed and stored again.

Why per clip, beside the clip, rather than one cache file per shard:
- lifetime for free: `preprocess_shard` replaces a reprocessed clip's folder and removes a departed
  clip's folder, which takes the stale stage results with it; a per-shard file would need its own
  pruning, and would be orphaned whenever the shard count changes;
- a killed job keeps every clip it finished (each file is complete on its own), where a per-shard
  file is written once at the end or rewritten whole after each clip;
- disk is the same either way (each clip's result stored once; the audio waveform is not stored but
  rebuilt from the clip's `waveform.npy`: about 180 KB per clip at the default 64 mel and 26 filterbank
  bands over 5 s, against 500 KB with it);
- the cost is files: three more per clip (FI: 30,000 for 10,000 clips, on top of the clip folders' 7
  each; a fourth per clip once a second voice backend has run), one file per stage and clip because
  the key is stored inside it, not beside it.

Writes are atomic: a file is written to `<name>.partial` and renamed into place, with the key inside
it, so a killed job leaves either the old file, the new one, or scratch that no reader opens. A file
that cannot be read, or whose key differs, is recomputed. `--config preprocess_cache=false` makes
every stage recompute (and rewrite) every clip.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from impressions import schemas
from impressions.data.preprocess_shard import CACHE_FILE

KEY = "__key__"
"""The npz member holding the file's key (a JSON string)."""


def clip_key(clip_dir: str | Path) -> dict | None:
    """The clip's preprocessing cache key (`cache.json`), or None when the folder has none."""
    try:
        return json.loads((Path(clip_dir) / CACHE_FILE).read_text())
    except (OSError, ValueError):
        return None


def stage_key(
    clip_dir: str | Path, stage: str, version: int, settings: dict, *, tables: tuple[str, ...]
) -> str | None:
    """A stage's key for one clip, as canonical JSON; None (never cached) without a preprocessing key.

    `tables`: the tables (`impressions.schemas.TABLES`) whose rows the stage stores; their columns are
    in the key, so `version` is raised only for what a schema cannot show."""
    clip = clip_key(clip_dir)
    if clip is None:
        return None
    return json.dumps(
        {"stage": stage, "version": version, "tables": schemas.fingerprint(*tables), "clip": clip,
         "settings": settings},
        sort_keys=True, default=str,
    )  # fmt: skip


def load(path: str | Path, key: str | None) -> dict[str, np.ndarray] | None:
    """The arrays stored at `path` when its key is `key`; None when missing, unreadable or stale."""
    if key is None:
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            if KEY not in stored.files or str(stored[KEY]) != key:
                return None
            return {name: stored[name] for name in stored.files if name != KEY}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        return None


def store(path: str | Path, key: str | None, arrays: dict[str, np.ndarray]) -> None:
    """Write `arrays` and their key to `path` atomically (scratch file, then rename); no key, no file."""
    path = Path(path)
    if key is None:
        return
    scratch = path.with_name(path.name + ".partial")
    with open(scratch, "wb") as f:  # a file object: np.savez would append .npz to a name
        np.savez(f, **{KEY: np.array(key)}, **arrays)
    os.replace(scratch, path)
