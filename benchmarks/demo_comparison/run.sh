#!/usr/bin/env bash
# Runs every comparison on the demo in one working folder (shared preprocessing) and keeps each run's
# metrics table: bash benchmarks/demo_comparison/run.sh WORKDIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work=${1:?working folder}
mkdir -p "$work/tables"
for run in ${RUNS:-head_dan_plus head_dan head_cam audio_whole fusion fusion_leaky}; do
  "$repo/.venv/bin/snakemake" -s "$repo/Snakefile" --directory "$work" --cores 2 --rerun-incomplete \
    --configfile "$here/base.yaml" "$here/$run.yaml"
  cp "$work/results/report/metrics.parquet" "$work/tables/$run.parquet"
done
"$repo/.venv/bin/python" -m impressions.reproduction "$work/tables"/*.parquet
