from pathlib import Path

from impressions import logs
from impressions.data import clip_index, tables

with logs.to_file(snakemake.log[0]):
    index = clip_index.for_config(snakemake.config)
    print(index.summary())
    tables.write_index(index, Path(snakemake.output.clips), Path(snakemake.output.index_qc))
