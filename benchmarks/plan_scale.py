"""Time and memory of planning the workflow (`snakemake --dry-run`) at First Impressions scale.

    .venv/bin/python benchmarks/plan_scale.py [--annotations DIR] [--sizes 1000 3000 10000]
        [--repeats 3] [--compare floor reference] [--compare-max 10000] [--profile profiles/slurm]
        [--fail-fast-scontrol] [--replan]

Builds FI layouts of N clips (real FI clip names when an annotation folder is given, else
synthetic FI-style names) whose videos are empty files - planning must never open a video - and
runs a dry run of the whole workflow on each, reporting the median wall seconds and peak memory of
`--repeats` runs and the planned jobs. `--compare` also plans, in turn with it, Snakemake with one
rule and no inputs (`startup`: its own start-up, the part of any workflow's planning time no workflow
can remove), a one-rule workflow with one job per shard whose inputs are the shard's videos
(`shard_floor`: the least the design the workflow must keep can cost: the workflow's own video
walk and shard assignment, nothing else), a one-rule workflow
with one job per clip (`floor`: Snakemake's own cost per job) and
the plain 4-rules-per-clip DAG the 20 s target was set against (`reference`), and prints the
ratios. `--compare-max` skips the compared workflows above that many clips (the reference takes
minutes and gigabytes at 100,000).
`--profile` plans every workflow with that Snakemake profile (e.g. profiles/slurm). `--fail-fast-scontrol`
puts an `scontrol` that exits at once first on the PATH: on a machine with SLURM's client tools but
no controller, the SLURM executor plugin otherwise waits about 9 s at every Snakemake start.
`--replan` then makes the run look finished (every planned output created) and times re-planning it,
as is and after one clip's video is replaced, with the jobs that replacement re-runs.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from impressions.testing import write_fi_annotations

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
_VIDEOS = """
import pathlib
VIDEOS = {p.stem: str(p) for p in pathlib.Path(config["data_root"]).rglob("*.mp4")}
rule all:
    input: expand("out/clips/{clip}/qc.json", clip=VIDEOS)
"""
# Workflows planned in turn with the real one over the same layout, so that their ratios hold when
# the machine's speed drifts (it does here, by a third from one hour to the next).
COMPARED = {
    # Snakemake's own start-up: one rule, no inputs, nothing read from the layout
    "startup": """
rule all:
    shell: "true"
""",
    # about the least Snakemake can plan per clip: an input, an output, a log and a shell command
    "floor": _VIDEOS + """
rule preprocess_clip:
    input: lambda w: VIDEOS[w.clip]
    output: "out/clips/{clip}/qc.json"
    log: "out/logs/{clip}.log"
    shell: "touch {output:q}"
""",
    # the least Snakemake can plan for the design: one job per shard (the workflow's shard
    # count and assignment), whose declared inputs are the shard's videos; nothing else
    "shard_floor": """
from impressions.data.clip_index import find_videos
from impressions.data.shards import assign
VIDEOS = find_videos(config["data_root"])  # the workflow's own walk
SHARDS = assign(VIDEOS, config["shards"])
wildcard_constraints:
    shard=r"\\d+",
rule all:
    input: expand("out/shards/{shard}.done", shard=SHARDS)
rule shard:
    input: lambda w: [VIDEOS[clip] for clip in SHARDS[int(w.shard)]]
    output: "out/shards/{shard}.done"
    log: "out/logs/{shard}.log"
    shell: "touch {output:q}"
""",
    # the reference of the planning target: a plain DAG of 4 rules per clip (54 s and 665 MB for
    # 10,000 clips when the target was set)
    "reference": _VIDEOS + "".join(f"""
rule {name}:
    input: {source}
    output: "out/clips/{{clip}}/{name}.out"
    shell: "touch {{output:q}}"
""" for name, source in [("frames", "lambda w: VIDEOS[w.clip]"), ("faces", '"out/clips/{clip}/frames.out"'),
                         ("audio", "lambda w: VIDEOS[w.clip]")]) + """
rule qc:
    input: "out/clips/{clip}/faces.out", "out/clips/{clip}/audio.out"
    output: "out/clips/{clip}/qc.json"
    shell: "touch {output:q}"
""",
}  # fmt: skip


def clip_names(annotations: Path | None, n: int) -> list[str]:
    """n clip names: FI's real ones first (when given), then synthetic FI-style ones."""
    names: list[str] = []
    if annotations and (annotations / "annotation_training.pkl").is_file():
        for name in ("annotation_training.pkl", "annotation_validation.pkl", "annotation_test.pkl"):
            with (annotations / name).open("rb") as f:
                # trusted public files; the workflow itself reads them with the restricted unpickler
                names += [k[:-4] for k in pickle.load(f, encoding="latin1")["openness"]]
    rng = np.random.default_rng(0)
    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"))
    names += [f"{''.join(rng.choice(alphabet, 11))}.{i % 6:03d}" for i in range(max(0, n - len(names)))]
    return names[:n]


def layout(root: Path, names: list[str]) -> None:
    for i, name in enumerate(names):
        folder = root / f"train-{i // 1000}" / f"training80_{i // 100:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.mp4").touch()
    k = len(names)
    write_fi_annotations(root, {"train": names[: k * 6 // 10], "val": names[k * 6 // 10 : k * 8 // 10],
                                "test": names[k * 8 // 10 :]})  # fmt: skip


PROFILE: list[str] = []  # ["--profile", path] with --profile


def dry_run(snakefile: Path, work: Path, config: Path, env: dict, quiet: bool = True):
    """Wall seconds, peak MB, planned jobs and output of one `snakemake --dry-run` in `work`."""
    cmd = [SNAKEMAKE, "-s", str(snakefile), "--directory", str(work), "--configfile", str(config),
           "--dry-run", "--cores", "2", *PROFILE, *(["--quiet", "rules"] if quiet else [])]  # fmt: skip
    with tempfile.TemporaryFile("w+") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True, env=env)
        # wait4, not wait: this child's own peak memory (RUSAGE_CHILDREN is the largest child so far)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    if proc.returncode:
        raise SystemExit(text[-5000:])
    total = re.search(r"^total\s+(\d+)", text, re.M)
    return wall, usage.ru_maxrss / 1024, int(total[1]) if total else 0, text


def pretend_finished(work: Path, config: Path, env: dict) -> None:
    """Create every planned output, empty and with one mtime, as if the whole run had finished.

    Snakemake then has no provenance records for them (it would after a real run, and would read
    them when re-planning), so this measures the file-date checks of a re-plan, not those reads.
    """
    text = dry_run(REPO / "Snakefile", work, config, env, quiet=False)[3]
    now = time.time()
    for line in re.findall(r"^\s+output: (.*)$", text, re.M):
        for name in line.split(", "):
            path = work / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
            os.utime(path, (now, now))


def environment(fail_fast_scontrol: bool, tmp: Path) -> dict:
    env = dict(os.environ)
    if fail_fast_scontrol:
        (tmp / "bin").mkdir()
        (tmp / "bin" / "scontrol").write_text("#!/bin/sh\nexit 1\n")
        (tmp / "bin" / "scontrol").chmod(0o755)
        env["PATH"] = f"{tmp / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", type=Path, default=REPO.parent / "shared" / "fi_annotations")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 3000, 10000])
    parser.add_argument("--repeats", type=int, default=3, help="runs per size; medians are printed")
    parser.add_argument(
        "--compare", nargs="+", choices=sorted(COMPARED), default=[],
        help="also plan these in turn: `startup` (one rule, no inputs), `shard_floor` (one rule per shard, "
        "its videos as inputs), `floor` (one rule per clip), `reference` (4 per clip)",
    )  # fmt: skip
    parser.add_argument("--compare-max", type=int, default=None, help="no compared workflows above this")
    parser.add_argument("--profile", type=Path, help="a Snakemake profile folder for every dry run")
    parser.add_argument("--fail-fast-scontrol", action="store_true", help="see the module docstring")
    parser.add_argument(
        "--replan", action="store_true",
        help="then pretend the run finished and re-plan it, as is and with one clip's video replaced",
    )  # fmt: skip
    args = parser.parse_args()
    if args.profile:
        PROFILE.extend(["--profile", str(args.profile.resolve())])
        print(f"profile: {args.profile}")
    header = "clips   planned jobs   wall s (median [range])   peak MB"
    print(
        header
        + "".join(f"   {name} jobs   {name} s   {name} MB   workflow / {name}" for name in args.compare)
    )
    replans = []
    for n in sorted(args.sizes):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            root, work = tmp / "fi", tmp / "work"
            work.mkdir()
            layout(root, clip_names(args.annotations, n))
            env = environment(args.fail_fast_scontrol, tmp)
            config = work / "scale.yaml"
            config.write_text(yaml.safe_dump({"data_root": str(root), "results_dir": "out",
                                              "shards": max(1, n // 100)}))  # fmt: skip
            snakefiles = {}
            for name in args.compare if args.compare_max is None or n <= args.compare_max else []:
                (tmp / name).mkdir()
                snakefiles[name] = tmp / name / "Snakefile"
                snakefiles[name].write_text(COMPARED[name])
            runs, compared = [], {name: [] for name in snakefiles}
            for _ in range(args.repeats):  # in turn, so that drifts in machine speed hit all alike
                runs.append(dry_run(REPO / "Snakefile", work, config, env))
                for name, snakefile in snakefiles.items():
                    compared[name].append(dry_run(snakefile, snakefile.parent, config, env))
            walls = [r[0] for r in runs]
            spread = f"{statistics.median(walls):6.1f} [{min(walls):.1f}-{max(walls):.1f}]"
            line = f"{n:6d}   {runs[0][2]:12d}   {spread:26s}{max(r[1] for r in runs):7.0f}"
            for name, other in compared.items():
                times = [r[0] for r in other]
                ratio = statistics.median(w / t for w, t in zip(walls, times))
                line += (
                    f"   {other[0][2]:{len(name) + 5}d}   {statistics.median(times):{len(name) + 2}.1f}"
                    f"   {max(r[1] for r in other):{len(name) + 3}.0f}   {ratio:{len(name) + 11}.2f}"
                )
            print(line, flush=True)
            if args.replan:
                replans.append((n, *replan(root, work, config, env)))
    for n, finished, replaced, jobs in replans:
        print(f"{n:6d} clips, finished run: re-plan {finished:.1f} s (nothing to do); one clip's video "
              f"replaced: {replaced:.1f} s, {jobs} jobs")  # fmt: skip


def replan(root: Path, work: Path, config: Path, env: dict) -> tuple[float, float, int]:
    """Seconds to re-plan a finished run, and to plan after replacing one clip's video (and its jobs)."""
    pretend_finished(work, config, env)
    finished = dry_run(REPO / "Snakefile", work, config, env)
    if finished[2]:
        raise SystemExit(f"a finished run planned {finished[2]} jobs:\n{finished[3][-3000:]}")
    video = sorted(root.rglob("*.mp4"))[0]
    os.utime(video)  # newer than every output: as if the file had been replaced
    replaced = dry_run(REPO / "Snakefile", work, config, env)
    return finished[0], replaced[0], replaced[2]


if __name__ == "__main__":
    main()
