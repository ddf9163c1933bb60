from pathlib import Path

from impressions import logs, tables

with logs.to_file(snakemake.log[0]):
    clip_dirs = logs.clip_dirs(snakemake.input.records)
    tables.gather_frames(clip_dirs, Path(snakemake.output.frames), Path(snakemake.output.faces))
    tables.gather_qc(
        clip_dirs, Path(snakemake.input.clips), Path(snakemake.input.index_qc), Path(snakemake.output.qc)
    )
