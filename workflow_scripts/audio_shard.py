from pathlib import Path

from impressions import logs
from impressions.data import shards

with logs.to_file(snakemake.log[0]):
    shards.audio_shard(
        shards.clip_folders(snakemake.input.qc, snakemake.params.clips_dir),
        dict(snakemake.params.options),
        Path(snakemake.output.table),
        Path(snakemake.output.arrays),
        # read from the config, not a param: switching it must not make every shard out of date
        cache=snakemake.config.get("preprocess_cache", True),
    )
