"""Compare two workflow results folders table by table: are a refactor's outputs unchanged?

    python benchmarks/same_results.py BEFORE/results AFTER/results

Compares `report/metrics.parquet` and every `models/*/predictions.parquet` present in both folders,
exactly (same columns, same rows, same values to the last bit), and prints one line per table with the
largest absolute difference of its numeric columns. Exits 1 when any table differs or is missing on
one side.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import polars as pl


def tables(root: Path) -> dict[str, Path]:
    """Relative path -> file, for the result tables a refactor must leave unchanged."""
    found = {"report/metrics.parquet": root / "report" / "metrics.parquet"}
    for path in sorted((root / "models").glob("*/predictions.parquet")):
        found[str(path.relative_to(root))] = path
    return {k: v for k, v in found.items() if v.is_file()}


def difference(a: pl.DataFrame, b: pl.DataFrame) -> str | None:
    """None when equal, else what differs (columns, row count, or the largest numeric difference)."""
    if a.columns != b.columns:
        return f"columns differ: {a.columns} vs {b.columns}"
    if a.height != b.height:
        return f"{a.height} vs {b.height} rows"
    if a.equals(b):
        return None
    numeric = [c for c in a.columns if a[c].dtype.is_numeric()]
    largest = max(((a[c] - b[c]).abs().max() or 0.0 for c in numeric), default=0.0)
    return f"values differ (largest numeric difference {largest:.3g})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    before, after = tables(args.before), tables(args.after)
    failed = False
    for name in sorted(before.keys() | after.keys()):
        if name not in before or name not in after:
            print(f"{name}: only in {'after' if name in after else 'before'}")
            failed = True
            continue
        a, b = pl.read_parquet(before[name]), pl.read_parquet(after[name])
        diff = difference(a, b)
        failed |= diff is not None
        print(f"{name}: {'identical' if diff is None else diff} ({a.height} rows)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
