from pathlib import Path

import torch

from impressions import logs
from impressions.data import shards
from impressions.expressions import detector as expressions

with logs.to_file(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)  # torch would otherwise take every core of the node
    options = dict(snakemake.params.options)
    settings = expressions.backend_settings(options)  # the per-clip cache key: backend and its options
    backend = expressions.get_backend(options.pop("backend"), **options)
    folders = shards.clip_folders(snakemake.input.qc, snakemake.params.clips_dir)
    shards.expression_shard(
        folders,
        backend,
        Path(snakemake.output.table),
        settings=settings,
        # read from the config, not a param: switching it must not make every shard out of date
        cache=snakemake.config.get("preprocess_cache", True),
        out_qc=Path(snakemake.output.qc),
        videos=snakemake.params.videos,
    )
