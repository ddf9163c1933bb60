# One job per shard of clips, not per clip: a job per clip cost more than the clip's work (a fresh process
# and dlib's model loading) and Snakemake's planning cost grows with the job count. The shard's videos
# are its inputs, so a new, replaced or removed clip re-runs its shard (and through its QC table the
# audio and expression shards); inside, clips whose video content and settings are unchanged are
# reused (impressions/data/preprocess_shard.py), so that costs about one clip's work.
rule preprocess_shard:
    """Frames, faces, audio window and QC of one shard's clips in one process; the shard's tables."""
    input:
        shard_videos,
    output:
        frames=SHARDS_DIR / "frames" / "{shard}.parquet",
        qc=SHARDS_DIR / "qc" / "{shard}.parquet",
        # voice descriptors and identity descriptors per clip (impressions.data.tables.clip_signals)
        signals=SHARDS_DIR / "signals" / "{shard}.parquet",
    log:
        LOGS / "preprocess_shard" / "{shard}.log",
    benchmark:
        BENCH / "preprocess_shard" / "{shard}.tsv"
    conda:
        "../envs/preprocess.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: cluster.shard_mem_mb(
            "preprocess_shard", config, WORK, attempt
        ),
        runtime=lambda wildcards, attempt: cluster.shard_runtime(
            "preprocess_shard", config, WORK, attempt
        ),
    params:
        clips=shard_clips,
        clips_dir=str(CLIPS_DIR),
        shards=config["shards"],
        # the settings that change a clip's outputs (the per-clip cache key holds them too)
        settings={
            "frames": config["frames"],
            # `identity: auto` resolved here: it depends on models.split, which the job does not see
            "faces": config["faces"] | {"identity": preprocess.wants_identity(config)},
            "audio": {
                k: config["audio"][k]
                for k in ("seconds", "sample_rate", "max_seconds")
                if k in config["audio"]
            },
        },
    script:
        "../workflow_scripts/preprocess_shard.py"


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
        mem_mb=lambda wildcards, attempt: cluster.shard_mem_mb(
            "audio_shard", config, WORK, attempt
        ),
        runtime=lambda wildcards, attempt: cluster.shard_runtime(
            "audio_shard", config, WORK, attempt
        ),
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
        table=SHARDS_DIR / "expressions" / "{shard}.parquet",
        # per clip: the AU and emotion sources and why face frames got no row
        qc=SHARDS_DIR / "expression_qc" / "{shard}.parquet",
    log:
        LOGS / "expression_shard" / "{shard}.log",
    benchmark:
        BENCH / "expression_shard" / "{shard}.tsv"
    conda:
        "../envs/expressions.yaml"
    threads: 2
    resources:
        mem_mb=lambda wildcards, attempt: cluster.shard_mem_mb(
            "expression_shard", config, WORK, attempt
        ),
        runtime=lambda wildcards, attempt: cluster.shard_runtime(
            "expression_shard", config, WORK, attempt
        ),
    params:
        clips_dir=str(CLIPS_DIR),
        options=config["expressions"],
        # only a backend that runs a tool on the video needs the files (their paths are not a key)
        videos=lambda wildcards: (
            shard_clips(wildcards)
            if config["expressions"]["backend"] == "openface"
            else {}
        ),
    script:
        "../workflow_scripts/expression_shard.py"
