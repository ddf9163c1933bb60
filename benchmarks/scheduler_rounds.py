"""Snakemake's own CPU while jobs wait for cores, against the ready jobs' declared inputs.

    .venv/bin/python benchmarks/scheduler_rounds.py [--cases 2000:1 2000:8 4000:8] [--jobs 20]
        [--cores 2] [--snakemake-args ...]

A throwaway workflow shaped like the shard rules: `--jobs` jobs share N empty input files (as the
shard jobs share the clips' videos), each job's `script:` only sleeps S seconds, and `--cores` cores
run them, so most jobs wait ready while others sleep. For each case N:S it prints the wall time and
the whole-process CPU (wait4 rusage of snakemake and everything it ran). The jobs themselves cost the
same in every case (a Python start and a sleep), so a difference between cases of equal wall time is
Snakemake's own work while jobs wait: its scheduler re-runs job selection on a timer and sizes every
input file of every ready job in each round (benchmarks/history/cost_growth.md).
`--snakemake-args` are passed on, e.g. `--snakemake-args=--max-jobs-per-timespan=100/10s`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
SNAKEFILE = """
N, JOBS = int(config["inputs"]), int(config["jobs"])
VIDEOS = [f"videos/v{i:06d}.mp4" for i in range(N)]

rule all:
    input: expand("out/{j}.txt", j=range(JOBS))

rule shard:
    input: lambda w: VIDEOS[int(w.j)::JOBS]
    output: "out/{j}.txt"
    log: "out/logs/{j}.log"
    params: seconds=config["sleep"]
    script: "sleep.py"
"""
SCRIPT = """
import time
time.sleep(snakemake.params.seconds)
open(snakemake.output[0], "w").close()
"""


def run_case(folder: Path, inputs: int, seconds: float, jobs: int, cores: int, extra: list[str]):
    """(wall s, CPU s) of one workflow run with `inputs` declared input files."""
    work = folder / f"work_{inputs}_{seconds:g}"
    (work / "videos").mkdir(parents=True)
    for i in range(inputs):
        (work / "videos" / f"v{i:06d}.mp4").touch()
    cmd = [SNAKEMAKE, "-s", str(folder / "Snakefile"), "--directory", str(work), "--cores", str(cores),
           *extra, "--config", f"inputs={inputs}", f"jobs={jobs}", f"sleep={seconds}"]  # fmt: skip
    log = work / "snakemake.log"  # a file, not a pipe: an unread pipe would stall Snakemake's logging
    with log.open("w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(log.read_text()[-3000:])
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["2000:1", "2000:8", "4000:8"], help="inputs:seconds")
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--snakemake-args", default="", help="extra snakemake arguments, space-separated")
    args = parser.parse_args()
    extra = args.snakemake_args.split()
    print(f"{args.jobs} jobs on {args.cores} cores; snakemake args: {' '.join(extra) or '(none)'}")
    print("inputs   sleep s   wall s   CPU s")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "Snakefile").write_text(SNAKEFILE)
        (folder / "sleep.py").write_text(SCRIPT)
        for case in args.cases:
            inputs, seconds = case.split(":")
            wall, cpu = run_case(folder, int(inputs), float(seconds), args.jobs, args.cores, extra)
            print(f"{int(inputs):6d}   {float(seconds):7g}   {wall:6.1f}   {cpu:5.1f}", flush=True)


if __name__ == "__main__":
    main()
