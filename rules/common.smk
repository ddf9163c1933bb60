"""The clip index (built when the workflow is planned, without opening any video) and input functions."""

import json
import os
import sys
import tempfile
from pathlib import Path

from impressions.data import clip_index, shards

RESULTS = Path(config["results_dir"])
TABLES_DIR = RESULTS / "tables"
CLIPS_DIR = RESULTS / "clips"
LOGS = RESULTS / "logs"
BENCH = RESULTS / "benchmarks"
DEMO_ROOT = clip_index.demo_root(config)

INDEX = clip_index.for_config(config)
CLIP_PATHS = INDEX.paths
SHARDS = shards.assign(CLIP_PATHS, config["shards"])
SHARDS_DIR = RESULTS / "shards"

# `python` in shell commands is the one running Snakemake, as for `script:` (`.venv/bin/snakemake` does
# not put .venv/bin on the PATH by itself), or under --sdm conda the rule's environment's own (its
# activation comes first).
_PYTHON_BIN = os.path.dirname(sys.executable)
if os.environ.get("PATH", "").split(os.pathsep)[0] != _PYTHON_BIN:
    os.environ.update(PATH=_PYTHON_BIN + os.pathsep + os.environ.get("PATH", ""))


class JsonParam(dict):
    """A dict param that a shell command gets as JSON (`{params.name:q}`); recorded like a plain dict.

    Its JSON is computed once: Snakemake formats a command several times for every job it plans.
    """

    def __str__(self):
        if not hasattr(self, "_json"):
            self._json = json.dumps(self)
        return self._json


def static_tmpdir():
    """Snakemake's default `tmpdir` resource as a static one, for rules with a job per clip.

    The default is the expression `system_tmpdir`, which Snakemake evaluates anew for every job it
    plans (about 2 s at 10,000 clips); this is its value, computed once. Each SLURM job parses the
    workflow again on its node, so it gets that node's. A tmpdir from --default-resources is left alone.
    """
    defaults = workflow.resource_settings.default_resources
    if (
        defaults is not None
        and "tmpdir" in defaults
        and defaults["tmpdir"].raw != "system_tmpdir"
    ):
        return {}
    return {"tmpdir": tempfile.gettempdir()}


wildcard_constraints:
    clip="[^/]+",
    shard=r"\d+",


def clip_video(wildcards):
    return CLIP_PATHS[wildcards.clip]


def clip_outputs(name, clip_ids=None):
    """One per-clip output file (see impressions.data.preprocess.OUTPUT_FILES) for the given or all clips."""
    ids = CLIP_PATHS if clip_ids is None else clip_ids
    return [str(CLIPS_DIR / clip_id / name) for clip_id in ids]


# Only clip_shard names per-clip files, and only each clip's qc.json: it is written last, so it stands
# for the whole folder. Everything after it names shard or gathered tables: each rule that named
# 10,000 per-clip files added about 2 s to planning FI (benchmarks/README.md). By path, never as
# rules.X.output: Snakemake then hashes the whole input list once per file (minutes at 10,000 clips).
def clip_shard_inputs(wildcards):
    return clip_outputs("qc.json", SHARDS[int(wildcards.shard)])


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


def dataset_tables():
    names = ["clips", "frames", "faces", "audio", "expressions", "qc"]
    return [str(TABLES_DIR / f"{name}.parquet") for name in names]
