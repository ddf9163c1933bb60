from pathlib import Path

from impressions import logs
from impressions.data import tables

with logs.to_file(snakemake.log[0]):
    tables.gather_clips(
        [Path(p) for p in snakemake.input.frames],
        [Path(p) for p in snakemake.input.qc],
        Path(snakemake.input.clips),
        Path(snakemake.input.index_qc),
        Path(snakemake.output.frames),
        Path(snakemake.output.faces),
        Path(snakemake.output.qc),
        transcripts=Path(snakemake.input.transcripts),
    )
    tables.gather_signals(
        [Path(p) for p in snakemake.input.signals],
        Path(snakemake.input.clips),
        Path(snakemake.output.identities),
    )
