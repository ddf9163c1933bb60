from pathlib import Path

from impressions import logs
from impressions.data import shards

with logs.to_file(snakemake.log[0]):
    shards.voice_shard(
        shards.clip_folders(snakemake.input.qc, snakemake.params.clips_dir),
        snakemake.params.sample_rate,
        snakemake.params.backend,
        Path(snakemake.output[0]),
        # read from the config, not a param: switching it must not make every shard out of date
        cache=snakemake.config.get("preprocess_cache", True),
    )
