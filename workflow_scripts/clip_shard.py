from pathlib import Path

from impressions import logs
from impressions.data import tables

with logs.to_file(snakemake.log[0]):
    tables.clip_shard(
        logs.clip_dirs(snakemake.input),
        Path(snakemake.output.frames),
        Path(snakemake.output.qc),
        Path(snakemake.output.signals),
        snakemake.params.sample_rate,
    )
