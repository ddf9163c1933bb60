"""Every published experiment planned through the SLURM profile on an FI-sized dataset (a dry run each):
what each job asks the cluster for, as printed, is what impressions/cluster.py derives for it, every
GPU job goes to the GPU partition with a CPU per DataLoader worker plus one, and every job's memory
and time grow on a retry.

The dataset is FI's layout and size (10,000 empty video files, 6,000 / 2,000 / 2,000, and the three
annotation pickles): the clip index reads no video, so the plan sees FI's clip counts. 23-37 s on
two shared cores (5 experiments, about 4 s of planning each), so in the fast tier."""

from __future__ import annotations

import os
import re
import subprocess

import pytest
import yaml
from snakemake.utils import update_config, validate
from workflow import REPO, SNAKEMAKE

from impressions import cluster, testing
from impressions.config_types import coerce_file
from impressions.data import annotations, clip_index, shards
from impressions.explain import analyses

EXPERIMENTS = sorted(p.stem for p in (REPO / "experiments").glob("*.yaml") if p.stem != "demo-scale")
SPLITS = {"train": 6000, "val": 2000, "test": 2000}  # FI's
GPU_PARTITION, CPU_PARTITION, GPU_MODEL = "gpu-test", "cpu-test", "a100"
SHARDS = 100  # docs/slurm.md: 100 shards of 100 clips suit FI
PER_MODEL_ANALYSES = {"interpret_cam", "interpret_units", "interpret_au_maps", "interpret_cam_overlap"}


@pytest.fixture(scope="module")
def fi_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("fi")
    ids = {split: [f"{split}{i:05d}.000" for i in range(n)] for split, n in SPLITS.items()}
    assert set(ids) == set(annotations.ANNOTATION_FILES)
    for clip in (c for split in ids.values() for c in split):
        (root / f"{clip}.mp4").write_bytes(b"")
    testing.write_fi_annotations(root, ids)
    return root


def effective_config(experiment: str, overrides: dict) -> dict:
    """The config Snakemake plans with: config.yaml, the experiment, --config; typed and defaulted."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    update_config(config, yaml.safe_load((REPO / "experiments" / f"{experiment}.yaml").read_text()))
    update_config(config, overrides)
    schema = str(REPO / "impressions" / "config.schema.yaml")
    coerce_file(config, schema)
    validate(config, schema)
    return config


_JOB = re.compile(r"^(?:local)?rule (\w+):\n(.*?)(?=^\S|\Z)", re.M | re.S)


def _resources(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text.split(", "))


@pytest.fixture(scope="module", params=EXPERIMENTS)
def planned(request, fi_root, tmp_path_factory):
    """(config, work, jobs): jobs as (rule, wildcards, threads, resources) from the profile's dry run."""
    name = request.param
    work_dir = tmp_path_factory.mktemp(name)
    overrides = {"data_root": str(fi_root), "shards": SHARDS}
    env = os.environ | {cluster.GPU_PARTITION: GPU_PARTITION, cluster.PARTITION: CPU_PARTITION,
                        cluster.GPU_MODEL: GPU_MODEL}  # fmt: skip
    # No --cores: the profile's (the cap on any job's threads) applies, as on a cluster.
    proc = subprocess.run(
        [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(work_dir),
         "--profile", str(REPO / "profiles" / "slurm"), "--dry-run",
         "--configfile", str(REPO / "experiments" / f"{name}.yaml"),
         "--config", f"data_root={fi_root}", f"shards={SHARDS}"],
        capture_output=True, text=True, env=env, cwd=work_dir,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    jobs = []
    for rule, body in _JOB.findall(proc.stdout):
        field = dict(re.findall(r"^\s+(wildcards|threads|resources): (.*)$", body, re.M))
        jobs.append(
            (rule, field.get("wildcards", ""), int(field.get("threads", 1)), _resources(field["resources"]))
        )
    config = effective_config(name, overrides)
    index = clip_index.for_config(config)
    work = cluster.Work.of(index.clips, shards.assign(index.paths, config["shards"]))
    assert (work.clips, work.train_clips) == (10_000, 6_000)
    return config, work, jobs


def _model(rule: str, wildcards: str, config: dict) -> str:
    value = wildcards.split("=", 1)[1]
    if rule == "train_guidance_sweep":
        return f"{config['interpret']['au_guidance']['models'][0]}_w{value}"
    return value


def test_every_gpu_job_goes_to_the_gpu_partition_with_a_cpu_per_worker(planned):
    config, _, jobs = planned
    training = [(r, w, t, res) for r, w, t, res in jobs if r in ("train_model", "train_guidance_sweep")]
    assert training
    workers = config["models"]["num_workers"]
    for rule, wildcards, threads, res in training:
        model = _model(rule, wildcards, config)
        if cluster.on_gpu(model):
            assert int(res["gpu"]) >= 1, (model, res)
            assert res["slurm_partition"] == GPU_PARTITION, (model, res)
            assert res["gpu_model"] == GPU_MODEL, (model, res)
            assert threads >= workers + 1, (model, threads, workers)
        else:
            assert int(res["gpu"]) == 0 and res["slurm_partition"] == CPU_PARTITION, (model, res)
    others = [(r, res) for r, _, _, res in jobs if r not in ("train_model", "train_guidance_sweep")]
    assert all(res["slurm_partition"] == CPU_PARTITION for _, res in others), others


def requested(rule: str, wildcards: str, config: dict, work, attempt: int) -> tuple[int, int | None] | None:
    """(mem_mb, runtime) impressions/cluster.py derives for a job at `attempt`; None for a job the
    profile's defaults size (runtime None: the rule's own fixed value)."""
    if rule in ("train_model", "train_guidance_sweep"):
        model = _model(rule, wildcards, config)
        return (cluster.train_mem_mb(model, config, work, attempt),
                cluster.train_runtime(model, config, work, attempt))  # fmt: skip
    if rule in PER_MODEL_ANALYSES:
        spec = next(s for s in analyses.ANALYSES.values() if s.rule == rule)
        model, threads = wildcards.split("=", 1)[1], config["models"]["threads"]
        return (cluster.interpret_mem_mb(spec.mem_mb, model, config, work, attempt),
                cluster.interpret_runtime(spec.runtime, model, config, work, threads, attempt))  # fmt: skip
    if rule in cluster.SHARD_FLOORS:
        return (cluster.shard_mem_mb(rule, config, work, attempt),
                cluster.shard_runtime(rule, config, work, attempt))  # fmt: skip
    if rule == "gather_audio":
        return cluster.gather_audio_mem_mb(config, work, attempt), None
    return None


def test_requests_are_cluster_py_s_and_grow_with_each_attempt(planned):
    """The printed requests (attempt 1) are impressions/cluster.py's; attempt 2 asks for more."""
    config, work, jobs = planned
    checked = set()
    for rule, wildcards, _, res in jobs:
        first = requested(rule, wildcards, config, work, 1)
        if first is None:
            continue
        second = requested(rule, wildcards, config, work, 2)
        assert int(res["mem_mb"]) == first[0] and second[0] > first[0], (rule, wildcards, res)
        if first[1] is not None:
            assert int(res["runtime"]) == first[1] and second[1] > first[1], (rule, wildcards, res)
        checked.add(rule)
    assert {"train_model", "preprocess_shard", "gather_audio"} <= checked, checked


def test_fi_sized_requests_fit_a_gpu_node(planned):
    """At FI scale every first attempt asks for at most 128 GB and two days: a common node and queue."""
    _, _, jobs = planned
    for rule, wildcards, _, res in jobs:
        assert int(res["mem_mb"]) <= 128_000 and int(res["runtime"]) <= 48 * 60, (rule, wildcards, res)
