"""The workflow through profiles/slurm on a real single-node SLURM: jobs, job groups, retries, logs.

tests/slurm/start_slurm.sh starts SLURM on loopback (installing the Debian packages if missing), and
the module's teardown stops exactly the daemons it started, also when a test fails. The tests are
skipped only where no local SLURM can exist: the packages are missing and cannot be installed (no
root, no apt-get, apt-get failed). What `sacct` reports is the evidence: jobs named after the run,
their states, and what was requested.
"""

from __future__ import annotations

import fcntl
import math
import os
import re
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
import yaml
from workflow import FAST, REPO, SNAKEMAKE, path_without_scontrol_shim

from impressions.testing import face_clip, write_fi_annotations

pytestmark = [pytest.mark.slurm, pytest.mark.heavy]

SCRIPTS = REPO / "tests" / "slurm"
PROFILE = REPO / "profiles" / "slurm"
ACCOUNT = "impressions"  # created by start_slurm.sh (SLURM_TEST_ACCOUNT)
PARTITION = "debug"  # start_slurm.sh's default partition
GPU_PARTITION = "gpu"  # and its partition for GPU jobs, on the same node
GPU_MODEL = "testgpu"  # the node's one stand-in GPU

# Four clips in the FI layout (one without audio, one id starting with "-" as FI ids can): enough for
# two shards of each kind, small enough to finish in about two minutes on two cores, where every SLURM
# job also starts its own Snakemake.
CLIPS = {"train": ["-6otZ7M-Mro.000", "goodclip.001"], "val": ["noaudio.002"], "test": ["another.003"]}
# The run stops at the dataset tables: training would add minutes of CPU-bound jobs here, and its GPU
# requests are checked on their own (test_gpu_training_job_...).
TABLES = ["clips", "frames", "faces", "audio", "expressions", "qc"]
SHARD_RUNTIME = 60  # preprocess_shard runtime (minutes), first attempt: impressions/cluster.py's floor


@dataclass
class Cluster:
    env: dict[str, str]  # environment for snakemake: account and partition for the profile
    cpus: int
    mem_mb: int


@dataclass
class Run:
    work: Path
    log: str
    run_id: str
    submitted: dict[str, Path]  # SLURM job id -> its SLURM log, as Snakemake reported them
    accounting: list[dict[str, str]]  # sacct rows of this run's jobs


def _read_pids(state: Path) -> dict[str, int]:
    return {f.stem: int(f.read_text()) for f in (state / "started").glob("*.pid") if f.read_text().strip()}


def _alive(pid: int, name: str) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == name
    except OSError:
        return False


@pytest.fixture(scope="module")
def slurm(tmp_path_factory) -> Cluster:
    # One test cluster per machine (fixed ports, /etc/slurm): a second pytest session waits here.
    lock = open(Path(tempfile.gettempdir()) / "impressions-slurm-tests.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    state = tmp_path_factory.mktemp("slurm-state")
    # The real scontrol, not the session's fail-fast one: this controller answers.
    path = path_without_scontrol_shim()
    env = {**os.environ, "PATH": path, "LOCAL_SLURM_DIR": str(state), "SLURM_TEST_ACCOUNT": ACCOUNT}
    started: dict[str, int] = {}
    try:
        t0 = time.monotonic()
        proc = subprocess.run(
            ["bash", str(SCRIPTS / "start_slurm.sh")], env=env, capture_output=True, text=True, timeout=1200
        )
        started = _read_pids(state)
        if proc.returncode == 2:
            pytest.skip(proc.stderr.strip().splitlines()[-1])
        if proc.returncode != 0:
            pytest.fail(f"start_slurm.sh failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-5000:]}")
        print(f"local SLURM up in {time.monotonic() - t0:.0f} s, started {started}")
        cpus, mem = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%c %m"], capture_output=True, text=True, check=True
        ).stdout.split()[:2]
        yield Cluster(
            # the profile reads account and partition from these
            env=os.environ
            | {
                "PATH": path,
                "IMPRESSIONS_SLURM_ACCOUNT": ACCOUNT,
                "IMPRESSIONS_SLURM_PARTITION": PARTITION,
                "IMPRESSIONS_SLURM_GPU_PARTITION": GPU_PARTITION,
                "IMPRESSIONS_SLURM_GPU_MODEL": GPU_MODEL,
            },
            cpus=int(cpus),
            mem_mb=int(mem),
        )
    finally:
        started = started or _read_pids(state)
        stop = subprocess.run(
            ["bash", str(SCRIPTS / "stop_slurm.sh")], env=env, capture_output=True, text=True, timeout=300
        )
        left = {name: pid for name, pid in started.items() if _alive(pid, name)}
        lock.close()  # releases the lock
        assert not left, f"daemons still running after stop_slurm.sh: {left}\n{stop.stdout}{stop.stderr}"


def snakemake_slurm(cluster: Cluster, workdir: Path, *args: str) -> tuple[str, str]:
    """Run snakemake with profiles/slurm from workdir; the log and the SLURM run id (the jobs' name).

    The profile is used as shipped, except for what a two-core test node cannot give: --cores caps
    each SLURM job at the node's CPUs and --resources mem_mb at its memory (the profile asks up to
    12 GB for gather_audio), and status checks start after 2 s instead of 40.
    """
    proc = subprocess.run(
        [SNAKEMAKE, "--profile", str(PROFILE), "--cores", str(cluster.cpus),
         "--resources", f"mem_mb={cluster.mem_mb}", "--slurm-init-seconds-before-status-checks", "2", *args],
        cwd=workdir, env=cluster.env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"snakemake under SLURM failed:\n{log[-6000:]}"
    run_id = re.search(r"SLURM run ID: (\S+)", log)[1]
    return log, run_id


SACCT_FIELDS = "JobIDRaw JobName Comment State ReqMem ReqCPUS Timelimit Account Partition ReqTRES".split()


def sacct(run_id: str, since: datetime) -> list[dict[str, str]]:
    """This run's SLURM jobs (allocations only, not their steps), one dict of SACCT_FIELDS each."""
    fields = SACCT_FIELDS
    out = subprocess.run(
        ["sacct", "-X", "-P", "-n", "--name", run_id, "-S", since.strftime("%Y-%m-%dT%H:%M:%S"),
         "-o", ",".join(fields)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line]


def submitted(log: str) -> dict[str, Path]:
    return {
        jobid: Path(path)
        for jobid, path in re.findall(r"has been submitted with SLURM jobid (\d+) \(log: (.+?)\)\.", log)
    }


def mb(req_mem: str) -> int:
    value, unit = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)\w?", req_mem).groups()
    return round(float(value) * {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024**2}[unit])


def minutes(limit: str) -> int:
    days, _, hms = limit.rpartition("-")
    h, m, s = (int(x) for x in hms.split(":"))
    return int(days or 0) * 1440 + h * 60 + m + math.ceil(s / 60)


@pytest.fixture(scope="module")
def fi_run(slurm, tmp_path_factory) -> Run:
    root = tmp_path_factory.mktemp("fi-slurm")
    starts = iter([2, 8, 12, 4])
    for split, ids in CLIPS.items():
        for cid in ids:
            path = root / "zip" / split / f"{cid}.mp4"
            face_clip(path, start=next(starts), seconds=3, audio=not cid.startswith("noaudio"))
    write_fi_annotations(root, CLIPS)
    work = tmp_path_factory.mktemp("work-slurm")
    config = {**FAST, "data_root": str(root), "results_dir": "results"}
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    since = datetime.now() - timedelta(minutes=5)
    t0 = time.monotonic()
    targets = [f"results/tables/{name}.parquet" for name in TABLES]
    # targets first: --configfile takes several values and would swallow them
    log, run_id = snakemake_slurm(
        slurm, work, *targets, "-s", str(REPO / "Snakefile"), "--configfile", "config.yaml"
    )
    print(f"workflow under SLURM: {time.monotonic() - t0:.0f} s")
    run = Run(work, log, run_id, submitted(log), sacct(run_id, since))
    for r in run.accounting:  # shown with `pytest -s` and on failures
        print(" ".join(r[k] for k in ("JobIDRaw", "State", "ReqCPUS", "ReqMem", "Timelimit", "Comment")))
    return run


def by_comment(rows) -> dict[str, list[dict[str, str]]]:
    """sacct rows per Snakemake job (the plugin puts rule, or group, and wildcards in the comment)."""
    jobs: dict[str, list[dict[str, str]]] = {}
    for row in sorted(rows, key=lambda r: int(r["JobIDRaw"])):
        jobs.setdefault(row["Comment"], []).append(row)
    return jobs


def test_every_job_ran_under_slurm_and_completed(fi_run):
    rows = fi_run.accounting
    assert rows, f"sacct has no jobs named {fi_run.run_id}"
    assert {r["JobIDRaw"] for r in rows} == set(fi_run.submitted)
    assert all(r["JobName"] == fi_run.run_id and r["JobName"].startswith("impressions_") for r in rows)
    assert {(r["Account"], r["Partition"]) for r in rows} == {(ACCOUNT, PARTITION)}
    for comment, tries in by_comment(rows).items():
        # A failed try is only acceptable when Snakemake resubmitted it asking for more memory.
        assert tries[-1]["State"] == "COMPLETED", (comment, tries)
        for before, after in zip(tries, tries[1:]):
            assert before["State"] != "COMPLETED" and mb(after["ReqMem"]) > mb(before["ReqMem"]), tries
    # Every rule Snakemake ran went through SLURM, one SLURM job per Snakemake job.
    ran = set(re.findall(r"Finished jobid: \S+ \(Rule: (\w+)\)", fi_run.log))
    submitted = {re.sub(r"_wildcards_.*", "", c) for c in by_comment(rows)}
    assert submitted == {f"rule_{r}" for r in ran}
    assert {
        "rule_clip_index",
        "rule_preprocess_shard",
        "rule_audio_shard",
        "rule_expression_shard",
    } < submitted


def test_clips_run_in_one_slurm_job_per_shard(fi_run, slurm):
    finished = Counter(re.findall(r"Finished jobid: \S+ \(Rule: (\w+)\)", fi_run.log))
    assert finished["preprocess_shard"] == FAST["shards"] == 2
    completed = [r for r in fi_run.accounting if r["State"] == "COMPLETED"]
    assert len(completed) == finished.total()  # one SLURM job per Snakemake job, no groups
    n_clips, processed = sum(map(len, CLIPS.values())), 0
    for k in range(FAST["shards"]):
        job = by_comment(fi_run.accounting)[f"rule_preprocess_shard_wildcards_{k}"][0]
        assert int(job["ReqCPUS"]) == 1
        assert mb(job["ReqMem"]) == min(2000, slurm.mem_mb) and minutes(job["Timelimit"]) == SHARD_RUNTIME
        # every clip of the shard ran inside that allocation: the job's own log says how many
        log = (fi_run.work / "results" / "logs" / "preprocess_shard" / f"{k}.log").read_text()
        counts = re.search(r"(\d+) clips: (\d+) processed, 0 reused", log)
        assert counts and counts[1] == counts[2], log[-2000:]
        processed += int(counts[2])
    assert processed == n_clips


def test_shard_and_gather_jobs_get_their_rules_resources(fi_run, slurm):
    first = {c: tries[0] for c, tries in by_comment(fi_run.accounting).items()}
    shard = first["rule_expression_shard_wildcards_0"]
    assert int(shard["ReqCPUS"]) == min(4, slurm.cpus)  # set-threads, capped by --cores
    assert mb(shard["ReqMem"]) == min(8000, slurm.mem_mb) and minutes(shard["Timelimit"]) == 120
    assert mb(first["rule_audio_shard_wildcards_0"]["ReqMem"]) == min(4000, slurm.mem_mb)
    index = first["rule_clip_index"]  # no resources of its own: the profile's defaults
    assert mb(index["ReqMem"]) == 2000 and minutes(index["Timelimit"]) == 30


def test_outputs_written(fi_run):
    results = fi_run.work / "results"
    for name in TABLES:
        assert (results / "tables" / f"{name}.parquet").is_file(), name
    qc = pl.read_parquet(results / "tables" / "qc.parquet")
    status = dict(zip(qc["clip_id"], qc["status"]))
    assert set(status) == {c for ids in CLIPS.values() for c in ids}
    assert status["noaudio.002"] == "no_audio"
    faces = pl.read_parquet(results / "tables" / "faces.parquet")
    assert faces.filter("has_face")["clip_id"].n_unique() == len(status)
    expressions = pl.read_parquet(results / "tables" / "expressions.parquet")
    assert expressions.height == faces.filter("has_face").height > 0


def test_slurm_logs_kept_for_successful_jobs(fi_run):
    logdir = fi_run.work / "results" / "slurm_logs"
    for jobid, path in fi_run.submitted.items():
        assert path.is_file() and path.is_relative_to(logdir), (jobid, path)
        assert path.name == f"{jobid}.log"


TOY = """
rule all:
    input: "needs_memory.txt", "trained_image.txt"

rule needs_memory:
    output: "needs_memory.txt"
    shell: "test {resources.mem_mb} -ge 4000 && echo {resources.mem_mb} > {output}"

# Named like the workflow's training rule, with its `model` wildcard (here a GPU family's); asks for a
# GPU, its partition and its model the way rules/models.smk does (impressions/cluster.py).
from impressions import cluster

rule train_model:
    output: "trained_{model}.txt"
    resources:
        gpu=1,
        slurm_partition=lambda wildcards: cluster.partition(wildcards.model),
        gpu_model=lambda wildcards: cluster.gpu_model(wildcards.model),
    shell: "echo $SLURM_JOB_PARTITION $CUDA_VISIBLE_DEVICES > {output}"
"""


@pytest.fixture(scope="module")
def toy_run(slurm, tmp_path_factory) -> Run:
    """A two-rule workflow through profiles/slurm: a job that fails at first, and a GPU training job."""
    work = tmp_path_factory.mktemp("toy-slurm")
    (work / "Snakefile").write_text(TOY)
    since = datetime.now() - timedelta(minutes=5)
    log, run_id = snakemake_slurm(slurm, work)
    return Run(work, log, run_id, submitted(log), sacct(run_id, since))


def test_failed_job_is_retried_with_more_memory(toy_run):
    """The profile's retries and attempt-scaled default memory, end to end: a job that needs more
    than the first attempt's 2000 MB fails, and its retry asks SLURM for 4000 MB."""
    tries = by_comment(toy_run.accounting)["rule_needs_memory"]
    assert [(t["State"], mb(t["ReqMem"])) for t in tries] == [("FAILED", 2000), ("COMPLETED", 4000)]
    assert (toy_run.work / "needs_memory.txt").read_text().strip() == "4000"


def test_gpu_training_job_gets_a_gpu_of_the_model_on_the_gpu_partition(toy_run):
    (job,) = by_comment(toy_run.accounting)["rule_train_model_wildcards_image"]
    assert job["State"] == "COMPLETED" and job["Partition"] == GPU_PARTITION
    # what was asked: one GPU of the model in $IMPRESSIONS_SLURM_GPU_MODEL (sbatch --gpus=testgpu:1)
    assert {"gres/gpu=1", f"gres/gpu:{GPU_MODEL}=1"} <= set(job["ReqTRES"].split(","))
    # and the job step saw it: SLURM set CUDA_VISIBLE_DEVICES for its one GPU
    assert (toy_run.work / "trained_image.txt").read_text().split() == [GPU_PARTITION, "0"]
    (other,) = [t for t in by_comment(toy_run.accounting)["rule_needs_memory"] if t["State"] == "COMPLETED"]
    assert other["Partition"] == PARTITION and "gres/gpu" not in other["ReqTRES"]
