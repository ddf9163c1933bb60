from impressions import logs
from impressions.explain import au_analyses, sections

with logs.to_file(snakemake.log[0]):
    au_analyses.guidance_run(
        snakemake.params.pairs,
        dict(snakemake.input.items()),
        dict(snakemake.output.items()),
        snakemake.params.options,
        strict=sections.strict(snakemake.config),
    )
