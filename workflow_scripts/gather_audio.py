from pathlib import Path

from impressions import logs
from impressions.data import tables

with logs.to_file(snakemake.log[0]):
    tables.gather_audio(
        [Path(p) for p in snakemake.input.tables],
        [Path(p) for p in snakemake.input.arrays],
        Path(snakemake.output.table),
        Path(snakemake.output.arrays[0]).parent,
    )
