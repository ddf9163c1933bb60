"""The demo's face and image models under each face search: test accuracy beside the seed spread.

    .venv/bin/python benchmarks/search_accuracy.py [--seeds 0 1 2] [--families face image] [--epochs 8]

The fidelity half of `faces.search` is benchmarks/face_search.py (the same frames, both searches); this
is the other half its issue asks for: does the search move what the models learn? One snakemake run per
search on the bundled demo (built once, shared), with only the listed families, each trained with every
seed (`models.seeds`), tiny training settings and no interpretation or report. Printed per family and
search: the test accuracy (1 - MAE, mean of the five traits) of each seed, their mean and range, and
whether each tracked seed's accuracy lies inside the full search's range over the seeds (the seed
spread) and how far the two means are apart. The image family reads whole frames, not faces, so it
should not move at all: a control that any difference comes from the faces.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
SEARCHES = ("full", "tracked")


def model_names(family: str, seeds: list[int]) -> dict[int, str]:
    """Seed -> model name: the first seed is the family's own (`models.seed`), the rest its seed variants."""
    return {s: family if i == 0 else f"{family}_seed{s}" for i, s in enumerate(seeds)}


def config(demo_dir: Path, search: str, args) -> dict:
    training = {"epochs": args.epochs, "patience": args.epochs, "input_size": 64, "width": 16}
    return {
        "data_root": "demo", "demo_dir": str(demo_dir), "results_dir": "out", "shards": 2,
        "frames": {"per_clip": args.frames, "size": 64, "max_side": 640},
        "faces": {"search": search},
        "expressions": {"device": "cpu"},
        "models": {"families": list(args.families), "seed": args.seeds[0], "device": "cpu", "threads": 1,
                   "seeds": {"values": list(args.seeds), "families": list(args.families)},
                   **{f: training for f in args.families}},
        "interpret": {"models": [], "au_guidance": {"weight": 0.0, "models": []},
                      "manifold": {"models": []}},
    }  # fmt: skip


def run(work: Path, targets: list[str], cores: int) -> float:
    """snakemake on `targets` in `work`; CPU s of it and all it ran."""
    cmd = [SNAKEMAKE, *targets, "-s", str(REPO / "Snakefile"), "--directory", str(work),
           "--cores", str(cores), "--configfile", str(work / "bench.yaml")]  # fmt: skip
    with open(work / "snakemake.out", "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise SystemExit((work / "snakemake.out").read_text()[-5000:])
    return usage.ru_utime + usage.ru_stime


def test_accuracy(work: Path, model: str) -> float:
    """Mean over the traits of 1 - MAE on the test clips (impressions.metrics.accuracy)."""
    import polars as pl

    from impressions import metrics

    predictions = pl.read_parquet(work / "out" / "models" / model / "predictions.parquet")
    clips = pl.read_parquet(work / "out" / "tables" / "clips.parquet")
    labels, preds, _ = metrics.labels_and_predictions(predictions.filter(pl.col("split") == "test"), clips)
    return float(metrics.accuracy(labels, preds).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--families", nargs="+", default=["face", "image"])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--frames", type=int, default=10, help="frames.per_clip")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument(
        "--keep", type=Path, help="work in this folder and keep it (default: a temporary one)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        acc: dict[tuple[str, str], dict[int, float]] = {}
        for search in SEARCHES:
            work = root / search
            work.mkdir(parents=True, exist_ok=True)
            (work / "bench.yaml").write_text(yaml.safe_dump(config(root / "demo", search, args)))
            names = {f: model_names(f, args.seeds) for f in args.families}
            targets = [f"out/models/{m}/predictions.parquet" for f in names.values() for m in f.values()]
            start = time.perf_counter()
            cpu = run(work, targets, args.cores)
            wall = time.perf_counter() - start
            print(f"faces.search {search}: {len(targets)} models in {wall:.0f} s wall, "
                  f"{cpu:.0f} CPU s (preprocessing included)", flush=True)  # fmt: skip
            for family, by_seed in names.items():
                acc[family, search] = {s: test_accuracy(work, m) for s, m in by_seed.items()}
        print(f"\ndemo test accuracy (1 - MAE, mean of 5 traits), {args.frames} frames per clip, "
              f"{args.epochs} epochs, seeds {' '.join(map(str, args.seeds))}")  # fmt: skip
        print(f"  {'family':<8} {'search':<8} {'per seed':<30} {'mean':>7} {'range':>15}")
        for family in args.families:
            for search in SEARCHES:
                a = acc[family, search]
                seeds = " ".join(f"{a[s]:.4f}" for s in args.seeds)
                values = list(a.values())
                print(f"  {family:<8} {search:<8} {seeds:<30} {sum(values) / len(values):7.4f} "
                      f"{min(values):.4f}-{max(values):.4f}")  # fmt: skip
            full, tracked = acc[family, "full"], acc[family, "tracked"]
            low, high = min(full.values()), max(full.values())
            inside = sum(low <= v <= high for v in tracked.values())
            gap = sum(tracked.values()) / len(tracked) - sum(full.values()) / len(full)
            same = sum(abs(full[s] - tracked[s]) < 1e-9 for s in args.seeds)
            print(f"  {family}: tracked seeds inside full's range {inside}/{len(tracked)}; "
                  f"mean tracked - full {gap:+.4f} (full's spread {high - low:.4f}); "
                  f"identical per seed {same}/{len(full)}")  # fmt: skip


if __name__ == "__main__":
    main()
