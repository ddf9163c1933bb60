rule preprocess_clip:
    """Frames, faces and the audio window of one clip, with its QC record (never fails on bad media)."""
    input:
        video=clip_video,
    output:
        # The one declared output: the job writes the rest of the clip's folder (frames.npy, faces.npy,
        # frames.parquet, waveform.npy: impressions.data.preprocess.OUTPUT_FILES) before it, so qc.json
        # stands for the folder, as it does for every consumer. Each declared file per clip costs
        # planning time: four more made a 10,000-clip dry run 11 s slower (benchmarks/README.md).
        # For the same reason no per-clip `benchmark:` file: the QC record keeps the job's wall
        # seconds and peak memory (`seconds`, `peak_mb` in the qc table).
        qc=CLIPS_DIR / "{clip}" / "qc.json",
    log:
        LOGS / "preprocess_clip" / "{clip}.log",
    conda:
        "../envs/preprocess.yaml"
    # Static values: Snakemake evaluates a callable or expression resource for every job it plans.
    # profiles/slurm makes memory grow with each retry (`1000 * attempt`).
    resources:
        **static_tmpdir(),
        mem_mb=1000,
        runtime=10,
    params:
        settings=JsonParam(
            {key: config[key] for key in ("frames", "faces")}
            | {
                "audio": {
                    k: config["audio"][k]
                    for k in ("seconds", "sample_rate", "max_seconds")
                    if k in config["audio"]
                }
            }
        ),
    # A command, not a `script:`: Snakemake reads a script's source for every job it plans, which is
    # seconds at 10,000 clips (benchmarks/README.md). Snakemake formats the command three times per job
    # it plans, so it names no more than it must (the clip id is the output folder's name). `=` and
    # `--`: clip ids may start with a dash.
    shell:
        "python -m impressions.data.preprocess --settings={params.settings:q} --log={log:q}"
        " -- {input.video:q} {output.qc:q}"


# Only this rule names per-clip files (common.smk); the shards after it read its QC table for their
# clip ids, so adding or re-running a clip re-runs its clip_shard, and through it its audio and
# expression shards, and nothing else up to the gathers.
rule clip_shard:
    """The frame tables and QC records of one shard's clips, concatenated."""
    input:
        clip_shard_inputs,
    output:
        frames=SHARDS_DIR / "frames" / "{shard}.parquet",
        qc=SHARDS_DIR / "qc" / "{shard}.parquet",
        # voice descriptors and identity descriptors per clip (impressions.data.tables.clip_signals)
        signals=SHARDS_DIR / "signals" / "{shard}.parquet",
    log:
        LOGS / "clip_shard" / "{shard}.log",
    benchmark:
        BENCH / "clip_shard" / "{shard}.tsv"
    conda:
        "../envs/preprocess.yaml"
    params:
        sample_rate=config["audio"]["sample_rate"],
    script:
        "../workflow_scripts/clip_shard.py"


rule audio_shard:
    """Log-mel and log-filterbank features, loudness and pitch for one shard of clips."""
    input:
        qc=SHARDS_DIR / "qc" / "{shard}.parquet",
    output:
        table=SHARDS_DIR / "audio" / "{shard}.parquet",
        arrays=SHARDS_DIR / "audio" / "{shard}.npz",
    log:
        LOGS / "audio_shard" / "{shard}.log",
    benchmark:
        BENCH / "audio_shard" / "{shard}.tsv"
    conda:
        "../envs/preprocess.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=60,
    params:
        clips_dir=str(CLIPS_DIR),
        options=config["audio"],
    script:
        "../workflow_scripts/audio_shard.py"


rule expression_shard:
    """17 AU intensities and 7 emotion probabilities per face frame, for one shard of clips."""
    input:
        qc=SHARDS_DIR / "qc" / "{shard}.parquet",
    output:
        SHARDS_DIR / "expressions" / "{shard}.parquet",
    log:
        LOGS / "expression_shard" / "{shard}.log",
    benchmark:
        BENCH / "expression_shard" / "{shard}.tsv"
    conda:
        "../envs/expressions.yaml"
    threads: 2
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=120,
    params:
        clips_dir=str(CLIPS_DIR),
        options=config["expressions"],
    script:
        "../workflow_scripts/expression_shard.py"
