from pathlib import Path

from impressions import clip_index, logs, tables

with logs.to_file(snakemake.log[0]):
    index = clip_index.for_config(snakemake.config)
    print(index.summary())
    tables.write_index(index, Path(snakemake.output.clips), Path(snakemake.output.index_qc))
