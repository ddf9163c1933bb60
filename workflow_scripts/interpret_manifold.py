from pathlib import Path

from impressions import logs
from impressions.explain import analyses, interpret, sections

with logs.to_file(snakemake.log[0]):
    clips, _, _, expressions = interpret.read_tables(
        snakemake.input.clips, snakemake.input.splits, expressions_path=snakemake.input.expressions
    )
    files = {key: Path(path) for key, path in snakemake.output.items()}
    sections.guarded(
        "manifold", "", files, analyses.function("manifold"),
        {Path(p).parent.name: Path(p) for p in snakemake.input.features}, clips, expressions, files,
        **snakemake.params.options, strict=sections.strict(snakemake.config),
    )  # fmt: skip
