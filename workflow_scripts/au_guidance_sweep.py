from pathlib import Path

from impressions import guidance_sweep, interpret, logs

with logs.to_file(snakemake.log[0]):
    options = snakemake.params.options
    files = {key: Path(path) for key, path in snakemake.output.items()}
    checkpoints = guidance_sweep.read_weights(snakemake.input.checkpoints)
    clips, frames, faces, expressions = interpret.read_tables(
        snakemake.input.clips, snakemake.input.frames, snakemake.input.faces,
        snakemake.input.expressions, options["split"], options["seed"],
    )  # fmt: skip
    interpret.guarded(
        "guidance_sweep", snakemake.params.family, files, guidance_sweep.sweep_analysis,
        snakemake.params.family, list(checkpoints), checkpoints,
        guidance_sweep.read_weights(snakemake.input.predictions),
        guidance_sweep.read_weights(snakemake.input.histories), clips, frames, faces, expressions,
        options["clips_dir"], files, max_frames=options["max_frames"], n_boot=options["n_boot"],
        seed=options["seed"],
    )  # fmt: skip
