from pathlib import Path

from impressions import expressions, logs, shards

with logs.to_file(snakemake.log[0]):
    options = dict(snakemake.params.options)
    backend = expressions.get_backend(options.pop("backend"), **options)
    shards.expression_shard(logs.clip_dirs(snakemake.input.table), backend, Path(snakemake.output[0]))
