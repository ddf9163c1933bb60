from pathlib import Path

from impressions import logs
from impressions.data import tables

with logs.to_file(snakemake.log[0]):
    tables.gather_expressions(
        [Path(p) for p in snakemake.input.tables],
        Path(snakemake.output.table),
        qc_tables=[Path(p) for p in snakemake.input.qc],
        out_qc=Path(snakemake.output.qc),
    )
