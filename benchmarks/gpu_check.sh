#!/usr/bin/env bash
# Check a GPU node (at most 8 minutes on one GPU): train the Ventura preset's image model (VGG-16 DAN+,
# 224 px, AMP) on synthetic FI-shaped clips, measure the loader, training, GPU memory and utilisation,
# compare CPU and GPU predictions and run the interpretation analyses on the GPU.
#   bash benchmarks/gpu_check.sh            on a GPU node (or: srun --gpus=1 bash benchmarks/gpu_check.sh)
#   bash benchmarks/gpu_check.sh --dry      the same code on the CPU with a tiny network, in seconds
# The logic and its runtime budget (FULL: clips, steps) are in benchmarks/gpu_check.py; this wrapper
# only picks the project's .venv (`make test` or `make demo` creates it; PYTHON= overrides it) and runs
# from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
if [ ! -x "$PY" ]; then
  echo "gpu_check: $PY not found: create the environment first (make test creates .venv), or set PYTHON" >&2
  exit 2
fi
exec "$PY" benchmarks/gpu_check.py "$@"
