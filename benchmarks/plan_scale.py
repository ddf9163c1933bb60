"""Time and memory of planning the workflow (`snakemake --dry-run`) at First Impressions scale.

    .venv/bin/python benchmarks/plan_scale.py [--annotations DIR] [--sizes 1000 3000 10000]

Builds FI layouts of N clips (real FI clip names when an annotation folder is given, else
synthetic FI-style names) whose videos are empty files - planning must never open a video - and
runs a dry run of the whole workflow on each, reporting wall seconds, peak memory and planned jobs.
"""

from __future__ import annotations

import argparse
import pickle
import re
import resource
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


def plan(root: Path, work: Path, shards: int) -> tuple[float, float, int]:
    config = work / "scale.yaml"
    config.write_text(
        yaml.safe_dump({"data_root": str(root), "results_dir": "out", "audio": {"shards": shards},
                        "expressions": {"shards": shards}})
    )  # fmt: skip
    snakemake = str(Path(sys.executable).parent / "snakemake")
    start = time.perf_counter()
    proc = subprocess.run(
        [snakemake, "-s", str(REPO / "Snakefile"), "--directory", str(work), "--configfile", str(config),
         "--dry-run", "--quiet", "rules", "--cores", "2"],
        capture_output=True, text=True,
    )  # fmt: skip
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(proc.stdout[-3000:] + proc.stderr[-3000:])
    # children's ru_maxrss is the largest child so far; sizes run in increasing order, so it is this one
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    total = re.search(r"^total\s+(\d+)", proc.stdout, re.M)
    return wall, peak, int(total[1]) if total else -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", type=Path, default=REPO.parent / "shared" / "fi_annotations")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 3000, 10000])
    args = parser.parse_args()
    print("clips   planned jobs   wall s   peak MB (snakemake -n, whole workflow)")
    for n in sorted(args.sizes):
        with tempfile.TemporaryDirectory() as tmp:
            root, work = Path(tmp) / "fi", Path(tmp) / "work"
            work.mkdir()
            layout(root, clip_names(args.annotations, n))
            wall, peak, jobs = plan(root, work, shards=max(1, n // 100))
            print(f"{n:6d}   {jobs:12d}   {wall:6.1f}   {peak:7.0f}")


if __name__ == "__main__":
    main()
