from pathlib import Path

from impressions import logs
from impressions.data import preprocess, preprocess_shard

with logs.to_file(snakemake.log[0]):
    preprocess_shard.preprocess_shard(
        dict(snakemake.params.clips),
        snakemake.params.clips_dir,
        preprocess.Settings.from_config(snakemake.params.settings),
        Path(snakemake.output.frames),
        Path(snakemake.output.qc),
        Path(snakemake.output.signals),
        shard=int(snakemake.wildcards.shard),
        n_shards=snakemake.params.shards,
        # read from the config, not a param: switching it must not make every shard out of date
        cache=snakemake.config.get("preprocess_cache", True),
    )
