from pathlib import Path

from impressions import logs
from impressions.report import render as report

with logs.to_file(snakemake.log[0]):
    report.write_report(
        Path(snakemake.input.clips),
        Path(snakemake.input.qc),
        Path(snakemake.input.faces),
        Path(snakemake.input.expressions),
        [Path(p) for p in snakemake.input.predictions],
        [Path(p) for p in snakemake.input.summaries],
        [Path(p) for p in snakemake.input.curves],
        {key: Path(path) for key, path in snakemake.output.items()},
        n_boot=snakemake.params.n_boot,
        seed=snakemake.params.seed,
        dataset=snakemake.params.dataset,
        sections=[Path(p) for p in snakemake.input.sections],
        reproduce=getattr(snakemake.params, "reproduce", ()),
        experiment=getattr(snakemake.params, "experiment", ""),
        splits_path=Path(snakemake.input.splits),
        bias_settings=snakemake.params.bias,
    )
