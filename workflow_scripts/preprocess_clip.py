from pathlib import Path

from impressions import logs, preprocess

with logs.to_file(snakemake.log[0]):
    preprocess.preprocess_clip(
        snakemake.wildcards.clip,
        snakemake.input.video,
        Path(snakemake.output.qc).parent,
        preprocess.Settings.from_config(snakemake.params.settings),
    )
