from pathlib import Path

from impressions import logs
from impressions.explain import analyses, interpret, sections


def by_model(paths):
    # results/interpret/au_maps/<model>/<file> or results/models/<model>/<file>
    return {Path(p).parent.name: Path(p) for p in paths}


with logs.to_file(snakemake.log[0]):
    clips, _, _, _ = interpret.read_tables(snakemake.input.clips, snakemake.input.splits)
    files = {key: Path(path) for key, path in snakemake.output.items()}
    sections.guarded(
        "au_guidance",
        "",
        files,
        analyses.function("au_guidance"),
        snakemake.params.pairs,
        by_model(snakemake.input.au_frames),
        by_model(snakemake.input.predictions),
        by_model(snakemake.input.summaries),
        clips,
        files,
        **analyses.get("au_guidance").arguments(snakemake.config["interpret"]),
        strict=sections.strict(snakemake.config),
    )
