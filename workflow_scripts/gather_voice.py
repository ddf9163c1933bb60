from pathlib import Path

from impressions import logs
from impressions.data import tables

with logs.to_file(snakemake.log[0]):
    tables.gather_voice([Path(p) for p in snakemake.input], Path(snakemake.output[0]))
