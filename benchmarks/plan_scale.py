"""Time and memory of planning the workflow (`snakemake --dry-run`) at First Impressions scale.

    .venv/bin/python benchmarks/plan_scale.py [--annotations DIR] [--sizes 1000 3000 10000]
        [--repeats 3] [--floor] [--fail-fast-scontrol]

Builds FI layouts of N clips (real FI clip names when an annotation folder is given, else
synthetic FI-style names) whose videos are empty files - planning must never open a video - and
runs a dry run of the whole workflow on each, reporting the median wall seconds and peak memory of
`--repeats` runs and the planned jobs. `--floor` also plans, in turn with it, a one-rule workflow
with one job per clip (Snakemake's own cost per job) and prints the ratio. `--fail-fast-scontrol`
puts an `scontrol` that exits at once first on the PATH: on a machine with SLURM's client tools but
no controller, the SLURM executor plugin otherwise waits about 9 s at every Snakemake start.
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from media import write_fi_annotations  # noqa: E402

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
# Snakemake's floor: one job per clip with an input, an output, a log and a shell command.
ONE_RULE = """
import pathlib
VIDEOS = {p.stem: str(p) for p in pathlib.Path(config["data_root"]).rglob("*.mp4")}
rule all:
    input: expand("out/clips/{clip}/qc.json", clip=VIDEOS)
rule preprocess_clip:
    input: lambda w: VIDEOS[w.clip]
    output: "out/clips/{clip}/qc.json"
    log: "out/logs/{clip}.log"
    shell: "touch {output:q}"
"""


def clip_names(annotations: Path | None, n: int) -> list[str]:
    if annotations and (annotations / "annotation_training.pkl").is_file():
        names: list[str] = []
        for name in ("annotation_training.pkl", "annotation_validation.pkl", "annotation_test.pkl"):
            with (annotations / name).open("rb") as f:
                # trusted public files; the workflow itself reads them with the restricted unpickler
                names += [k[:-4] for k in pickle.load(f, encoding="latin1")["openness"]]
        return names[:n]
    rng = np.random.default_rng(0)
    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"))
    return [f"{''.join(rng.choice(alphabet, 11))}.{i % 6:03d}" for i in range(n)]


def layout(root: Path, names: list[str]) -> None:
    for i, name in enumerate(names):
        folder = root / f"train-{i // 1000}" / f"training80_{i // 100:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.mp4").touch()
    k = len(names)
    write_fi_annotations(root, {"train": names[: k * 6 // 10], "val": names[k * 6 // 10 : k * 8 // 10],
                                "test": names[k * 8 // 10 :]})  # fmt: skip


def dry_run(snakefile: Path, work: Path, config: Path, env: dict) -> tuple[float, float, int]:
    """Wall seconds, peak MB and planned jobs of one `snakemake --dry-run` in `work`."""
    cmd = [SNAKEMAKE, "-s", str(snakefile), "--directory", str(work), "--configfile", str(config),
           "--dry-run", "--quiet", "rules", "--cores", "2"]  # fmt: skip
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
    return wall, usage.ru_maxrss / 1024, int(total[1]) if total else -1


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
    parser.add_argument("--floor", action="store_true", help="also plan a one-rule workflow, in turn")
    parser.add_argument("--fail-fast-scontrol", action="store_true", help="see the module docstring")
    args = parser.parse_args()
    header = "clips   planned jobs   wall s (median [range])   peak MB"
    print(header + ("   one-rule floor s   workflow / floor" if args.floor else ""))
    for n in sorted(args.sizes):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            root, work, floor_work = tmp / "fi", tmp / "work", tmp / "floor"
            work.mkdir()
            floor_work.mkdir()
            layout(root, clip_names(args.annotations, n))
            env = environment(args.fail_fast_scontrol, tmp)
            config = work / "scale.yaml"
            config.write_text(yaml.safe_dump({"data_root": str(root), "results_dir": "out",
                                              "shards": max(1, n // 100)}))  # fmt: skip
            floor_snakefile = floor_work / "Snakefile"
            floor_snakefile.write_text(ONE_RULE)
            runs, floors = [], []
            for _ in range(args.repeats):  # in turn, so that drifts in machine speed hit both alike
                runs.append(dry_run(REPO / "Snakefile", work, config, env))
                if args.floor:
                    floors.append(dry_run(floor_snakefile, floor_work, config, env)[0])
            walls = [r[0] for r in runs]
            spread = f"{statistics.median(walls):6.1f} [{min(walls):.1f}-{max(walls):.1f}]"
            line = f"{n:6d}   {runs[0][2]:12d}   {spread:26s}{max(r[1] for r in runs):7.0f}"
            if args.floor:
                ratios = [w / f for w, f in zip(walls, floors)]
                line += f"   {statistics.median(floors):16.1f}   {statistics.median(ratios):16.2f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
