from pathlib import Path

from impressions import logs, tables

with logs.to_file(snakemake.log[0]):
    tables.gather_qc(
        logs.clip_dirs(snakemake.input.records),
        Path(snakemake.input.clips),
        Path(snakemake.input.index_qc),
        Path(snakemake.output[0]),
    )
