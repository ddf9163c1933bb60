from impressions import guidance_sweep, logs

with logs.to_file(snakemake.log[0]):
    guidance_sweep.run(
        snakemake.params.family,
        dict(snakemake.input.items()),
        dict(snakemake.output.items()),
        snakemake.params.options,
    )
