"""Run the real workflow with snakemake in a scratch folder and read what it planned."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
SCONTROL_SHIM_VAR = "IMPRESSIONS_TEST_SCONTROL_SHIM"  # the folder of tests/conftest.py's fail-fast scontrol


def path_without_scontrol_shim() -> str:
    """PATH without the session's fail-fast `scontrol`: for the SLURM tests, whose controller answers."""
    shim = os.environ.get(SCONTROL_SHIM_VAR)
    return os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != shim)


# Small settings so a test run takes about a minute on two cores. No model families and no
# interpretation: the preprocessing tests plan and run up to the dataset tables
# (tests/test_models_workflow.py covers the model rules, tests/test_demo_workflow.py everything).
FAST = {
    "strict": True,  # an error in an analysis fails the test's run (impressions.explain.sections.guarded)
    "frames": {"per_clip": 4, "size": 64, "max_side": 640},
    "shards": 2,
    "expressions": {"device": "cpu"},
    "models": {"families": []},
    "interpret": {
        "models": [],
        "au_guidance": {"weight": 0.0, "models": []},
        "manifold": {"models": [], "method": "tsne", "perplexity": 30, "neighbors": 5},
    },
}


def write_config(workdir: Path, **overrides) -> Path:
    """A config file layered over the defaults (Snakemake merges config files recursively)."""
    config = {**FAST, **overrides}
    path = workdir / "test_config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run(workdir: Path, *args: str, check: bool = True, configfiles=()) -> subprocess.CompletedProcess:
    """snakemake in workdir with its test_config.yaml, then `configfiles` layered over it, then args."""
    proc = subprocess.run(
        [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--cores", "2",
         "--configfile", str(workdir / "test_config.yaml"), *map(str, configfiles), *args],
        capture_output=True, text=True,
    )  # fmt: skip
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


_JOB = re.compile(r"^(?:local)?rule (\w+):\n(.*?)(?=^\S|\Z)", re.M | re.S)


def planned(workdir: Path, *args: str) -> Counter:
    """The jobs a dry run plans, as a Counter of (rule, wildcards) pairs."""
    out = run(workdir, "--dry-run", *args).stdout
    jobs: Counter = Counter()
    for rule, body in _JOB.findall(out):
        wildcards = re.search(r"^\s+wildcards: (.*)$", body, re.M)
        jobs[(rule, wildcards[1] if wildcards else "")] += 1
    return jobs


def plan(workdir: Path, *args: str, configfiles=()) -> list[tuple[str, dict[str, str]]]:
    """The jobs a dry run plans: (rule, {"input": ..., "output": ..., "wildcards": ...}) in plan order."""
    out = run(workdir, "--dry-run", *args, configfiles=configfiles).stdout
    return [
        (rule, dict(re.findall(r"^\s+(input|output|wildcards): (.*)$", body, re.M)))
        for rule, body in _JOB.findall(out)
    ]


def rules(jobs: Counter) -> Counter:
    return Counter(rule for rule, _ in jobs.elements())


def by_model(jobs: Counter) -> Counter:
    """Like `rules`, but a train_model job counted under ``train_model:<model>``, the model it trains."""
    out: Counter = Counter()
    for (rule, wildcards), n in jobs.items():
        model = re.fullmatch(r"model=(\S+)", wildcards) if rule == "train_model" else None
        out[f"{rule}:{model[1]}" if model else rule] += n
    return out
