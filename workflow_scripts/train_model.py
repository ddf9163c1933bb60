from pathlib import Path

from impressions import layout, logs, training

with logs.to_file(snakemake.log[0]):
    settings = snakemake.params.settings
    training.train_family(
        snakemake.params.family,
        training.Inputs.from_files(dict(snakemake.input.items())),
        layout.Outputs(**{kind: Path(path) for kind, path in snakemake.output.items()}),
        {**settings["common"], "threads": snakemake.threads},
        settings["options"],
        # Stored in the checkpoint so that `impressions predict` preprocesses new clips the same way.
        preprocessing={k: snakemake.config[k] for k in layout.PREPROCESSING_SECTIONS},
    )
