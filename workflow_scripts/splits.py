from impressions import logs
from impressions.data import splits

with logs.to_file(snakemake.log[0]):
    splits.split_table(snakemake.input.clips, snakemake.params.split, snakemake.params.seed).write_parquet(
        snakemake.output[0]
    )
