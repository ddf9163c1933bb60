rule preprocess_clip:
    """Frames, faces and the audio window of one clip, with its QC record (never fails on bad media)."""
    input:
        video=clip_video,
    output:
        # The one declared output: the job writes the rest of the clip's folder (frames.npy, faces.npy,
        # frames.parquet, waveform.npy: impressions.preprocess.OUTPUT_FILES) before it, so qc.json
        # stands for the folder, as it does for every consumer. Each declared file per clip costs
        # planning time: four more made a 10,000-clip dry run 11 s slower (benchmarks/README.md).
        qc=CLIPS_DIR / "{clip}" / "qc.json",
    log:
        LOGS / "preprocess_clip" / "{clip}.log",
    benchmark:
        BENCH / "preprocess_clip" / "{clip}.tsv"
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
            | {"audio": {k: config["audio"][k] for k in ("seconds", "sample_rate")}}
        ),
    # A command, not a `script:`: Snakemake reads a script's source for every job it plans, which is
    # seconds at 10,000 clips (benchmarks/README.md). `=` and `--`: clip ids may start with a dash.
    shell:
        "python -m impressions.preprocess --clip-id={wildcards.clip:q} --settings={params.settings:q}"
        " --log={log:q} -- {input.video:q} {output.qc:q}"


rule audio_shard:
    """Log-mel and log-filterbank features, loudness and pitch for one shard of clips."""
    input:
        audio_shard_inputs,
    output:
        table=RESULTS / "shards" / "audio" / "{shard}.parquet",
        arrays=RESULTS / "shards" / "audio" / "{shard}.npz",
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
        options={k: v for k, v in config["audio"].items() if k != "shards"},
    script:
        "../workflow_scripts/audio_shard.py"


rule expression_shard:
    """17 AU intensities and 7 emotion probabilities per face frame, for one shard of clips."""
    input:
        expression_shard_inputs,
    output:
        RESULTS / "shards" / "expressions" / "{shard}.parquet",
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
        options={k: v for k, v in config["expressions"].items() if k != "shards"},
    script:
        "../workflow_scripts/expression_shard.py"
