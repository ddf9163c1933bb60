"""benchmarks/memory_scaling.py --quick: the benchmark runs its jobs in child processes and prints a
slope, a projection and a verdict per job (the figures themselves are the benchmark's, not a test's)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.heavy  # four child processes importing torch, 18-23 s: test-all
def test_quick_run_prints_a_slope_per_job():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "memory_scaling.py"), "--quick", "--scales", "1", "2",
         "--jobs", "cam"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    number, error = r"-?\d+(?:\.\d+)?", r"(?:-?\d+(?:\.\d+)?|nan)"  # two sizes: no standard error
    for job in ("image", "cam"):  # cam explains the image model, so the image job runs too
        row = rf"^{job}\s+{number}\s+{number}\s+({number})\s+{error}\s+{number}\s+\d+\s+\d+\s+(PASS|FAIL)$"
        assert re.search(row, proc.stdout, re.MULTILINE), (job, proc.stdout)
