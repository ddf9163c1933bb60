"""What does the report's bias audit cost on a First Impressions-sized split, and does memory grow
with the clips?

    .venv/bin/python benchmarks/bias_audit.py --clips 2000 4000 --people 1455 --models 10

Runs `impressions.bias.audit` (the labels plus `--models` models, every attribute and intersection,
1,000 bootstrap replicates and 2,000 permutations, the report's defaults) on synthetic test splits
with FI's attributes: gender, three ethnicities, eight age groups, `--people` YouTube ids. Prints
wall time and the peak of Python's traced allocations per size. The statistics work on per-person
sums, so the peak should follow the people, not the clips.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
import polars as pl

from impressions import bias
from impressions.schemas import LABELS, TRAITS

AGES = ("0-6", "7-13", "14-18", "19-24", "25-32", "33-45", "46-60", "61+")


def split(clips: int, people: int, models: int, seed: int = 0):
    """(clips table, predictions table) of one synthetic test split."""
    rng = np.random.default_rng(seed)
    person = np.concatenate([np.arange(people), rng.integers(0, people, clips - people)])
    gender = rng.choice(["male", "female"], people)[person]
    ethnicity = rng.choice(["asian", "caucasian", "african_american"], people, p=[0.1, 0.8, 0.1])[person]
    age = rng.choice(AGES, people)[person]
    y = rng.uniform(0.3, 0.7, (clips, len(LABELS)))
    ids = [f"c{i:06d}" for i in range(clips)]
    table = pl.DataFrame({"clip_id": ids, "split": "test", **{t: y[:, k] for k, t in enumerate(LABELS)},
                          "gender": gender, "ethnicity": ethnicity, "age_group": age,
                          "youtube_id": [f"p{p}" for p in person]})  # fmt: skip
    preds = pl.concat([
        pl.DataFrame({"clip_id": ids, "split": "test", "model": f"model{m}",
                      **{t: y[:, k] + rng.normal(0, 0.1, clips) for k, t in enumerate(TRAITS)}})
        for m in range(models)
    ])  # fmt: skip
    return table, preds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, nargs="+", default=[2000, 4000])
    ap.add_argument("--people", type=int, default=1455, help="YouTube ids (FI's test split: 1,455)")
    ap.add_argument("--models", type=int, default=10)
    ap.add_argument("--min-people", type=int, default=20)
    args = ap.parse_args()
    print(f"{'clips':>6} {'people':>6} {'models':>6} {'seconds':>8} {'peak MB':>8} {'gap rows':>8}")
    for n in args.clips:
        clips, preds = split(n, args.people, args.models)
        tracemalloc.start()
        start = time.perf_counter()
        _, gaps = bias.audit(clips, preds, min_people=args.min_people, n_boot=1000, n_perm=2000, seed=0)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
        print(f"{n:>6} {args.people:>6} {args.models:>6} {seconds:>8.1f} {peak:>8.0f} {gaps.height:>8}")


if __name__ == "__main__":
    main()
