from impressions import logs
from impressions.explain import guidance_sweep, sections

with logs.to_file(snakemake.log[0]):
    guidance_sweep.run(
        snakemake.params.family,
        dict(snakemake.input.items()),
        dict(snakemake.output.items()),
        snakemake.params.options,
        strict=sections.strict(snakemake.config),
    )
