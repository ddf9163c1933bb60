"""benchmarks/gpu_check.sh --dry: the GPU node check's code path, on the CPU with a tiny network."""

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import gpu_check  # noqa: E402


def test_dry_run_prints_every_figure():
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--dry"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = dict(re.findall(r"^([^:\n]+): (.*)$", proc.stdout, re.MULTILINE))
    for name in ("loader images/s", "train images/s"):
        assert float(figures[name]) > 0, name
    # GPU-only figures say so on the CPU
    for name in ("gpu memory peak MB", "gpu utilisation %", "cpu vs device max abs diff (amp)"):
        assert figures[name] == "n/a (cpu)", name
    for name in ("cpu vs device max abs diff", "cam cpu vs device max abs diff"):
        value = float(figures[name].split()[0])  # both sides are the CPU here: the same numbers
        assert value == 0, name
    assert "random init" in figures["weights"]
    assert figures["interpretation"].startswith("ok on cpu")
    assert re.search(r"^gpu_check: ok in [\d.]+ s$", proc.stdout, re.MULTILINE)


def test_nvidia_smi_utilisation_picks_torchs_gpu():
    csv = "GPU-aaaa-1, 10\nGPU-bbbb-2, 97\n"
    assert gpu_check.nvidia_smi_utilisation(csv, "bbbb-2", 0) == 97  # by UUID, whatever the index
    assert gpu_check.nvidia_smi_utilisation(csv, "", 1) == 97  # no UUID: by index
    assert gpu_check.nvidia_smi_utilisation("GPU-cccc, 55\n", "other", 3) == 55  # the only GPU
    assert gpu_check.nvidia_smi_utilisation("GPU-cccc, [N/A]\n", "cccc", 0) is None  # MIG: none reported
    assert gpu_check.nvidia_smi_utilisation("", "cccc", 0) is None
