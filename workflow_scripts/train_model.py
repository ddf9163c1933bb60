from pathlib import Path

from impressions import layout, logs
from impressions.training import degenerate
from impressions.training import loop as training

with logs.to_file(snakemake.log[0]):
    settings = snakemake.params.settings
    # Trains the family, or, where the data cannot (no labelled val clip, no face anywhere...), writes
    # its outputs as "not trained" with the reason so that the report is still written.
    degenerate.train_or_explain(
        snakemake.params.family,
        training.Inputs.from_files(
            dict(snakemake.input.items()), getattr(snakemake.params, "clips_dir", None)
        ),
        layout.Outputs(**{kind: Path(path) for kind, path in snakemake.output.items()}),
        {**settings["common"], "threads": snakemake.threads},
        settings["options"],
        # An AU-guided twin is saved and reported under its own name (e.g. face_au_guided).
        name=getattr(snakemake.params, "model", None),
        # Stored in the checkpoint so that `impressions predict` preprocesses new clips the same way.
        preprocessing={k: snakemake.config[k] for k in layout.PREPROCESSING_SECTIONS},
    )
