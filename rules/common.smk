"""The clip index (built when the workflow is planned, without opening any video) and input functions."""

import os
import sys
from pathlib import Path

from impressions import cluster
from impressions.data import clip_index, preprocess, shards, transcripts

RESULTS = Path(config["results_dir"])
TABLES_DIR = RESULTS / "tables"
CLIPS_DIR = RESULTS / "clips"
LOGS = RESULTS / "logs"
BENCH = RESULTS / "benchmarks"
DEMO_ROOT = clip_index.demo_root(config)

# A bad annotation file or manifest stops the run here, before any job, listing every problem.
INDEX = clip_index.for_config(config)
if INDEX.partially_labelled:
    print(
        f"note: {len(INDEX.partially_labelled)} clip(s) excluded as listed under some labels only "
        "(status partial_labels in the QC table)",
        file=sys.stderr,
    )
CLIP_PATHS = INDEX.paths
SHARDS = shards.assign(CLIP_PATHS, config["shards"])
SHARDS_DIR = RESULTS / "shards"
# The run's size (clips per split, the largest shard): what the jobs' memory and wall-time requests
# grow with (impressions/cluster.py).
WORK = cluster.Work.of(INDEX.clips, SHARDS)

# `python` in shell commands is the one running Snakemake, as for `script:` (`.venv/bin/snakemake` does
# not put .venv/bin on the PATH by itself), or under --sdm conda the rule's environment's own (its
# activation comes first).
_PYTHON_BIN = os.path.dirname(sys.executable)
if os.environ.get("PATH", "").split(os.pathsep)[0] != _PYTHON_BIN:
    os.environ.update(PATH=_PYTHON_BIN + os.pathsep + os.environ.get("PATH", ""))


wildcard_constraints:
    shard=r"\d+",


def shard_clips(wildcards):
    """Video file by clip id for one shard's clips (the preprocess_shard job's work list)."""
    return {clip_id: CLIP_PATHS[clip_id] for clip_id in SHARDS[int(wildcards.shard)]}


def shard_videos(wildcards):
    """One shard's video files: the preprocess_shard job's inputs."""
    return [CLIP_PATHS[clip_id] for clip_id in SHARDS[int(wildcards.shard)]]


def shard_files(kind, suffix="parquet"):
    """One per-shard file of each shard, e.g. shard_files("audio") -> results/shards/audio/<k>.parquet."""
    return [str(SHARDS_DIR / kind / f"{k}.{suffix}") for k in range(config["shards"])]


def index_inputs(wildcards):
    """The index depends on the annotation files (and, for the demo, on its build)."""
    if config["manifest"]:
        return [config["manifest"]]
    root = DEMO_ROOT or Path(config["data_root"])
    return [
        str(root / name)
        for name in clip_index.annotations.ANNOTATION_FILES.values()
        if DEMO_ROOT or (root / name).exists()
    ]


def transcript_inputs(wildcards):
    """The manifest (its transcript column) or the transcription pickles beside the annotations."""
    return transcripts.source_files(config, DEMO_ROOT)


def dataset_tables():
    names = [
        "clips",
        "frames",
        "faces",
        "audio",
        "voice",
        "expressions",
        "qc",
        "transcripts",
    ]
    return [str(TABLES_DIR / f"{name}.parquet") for name in names]
