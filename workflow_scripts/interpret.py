from impressions import logs
from impressions.explain import interpret, sections

with logs.to_file(snakemake.log[0]):
    interpret.run(
        snakemake.params.analysis,
        snakemake.wildcards.explained,
        dict(snakemake.input.items()),
        dict(snakemake.output.items()),
        snakemake.params.options,
        strict=sections.strict(snakemake.config),
    )
