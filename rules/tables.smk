rule clip_index:
    """The clips table and QC rows for annotated clips without a file and files without annotations."""
    input:
        index_inputs,
    output:
        clips=TABLES_DIR / "clips.parquet",
        index_qc=SHARDS_DIR / "index_qc.parquet",
    log:
        LOGS / "clip_index.log",
    benchmark:
        BENCH / "clip_index.tsv"
    conda:
        "../envs/preprocess.yaml"
    script:
        "../workflow_scripts/clip_index.py"


rule transcripts:
    """Each clip's transcript, word count, language and QC note (impressions/data/transcripts.py)."""
    input:
        clips=TABLES_DIR / "clips.parquet",
        sources=transcript_inputs,
    output:
        TABLES_DIR / "transcripts.parquet",
    log:
        LOGS / "transcripts.log",
    benchmark:
        BENCH / "transcripts.tsv"
    conda:
        "../envs/preprocess.yaml"
    script:
        "../workflow_scripts/transcripts.py"


rule gather_clips:
    """The frames, faces, QC and identities tables from the clip shards, the index's QC rows and the transcripts' notes."""
    input:
        frames=shard_files("frames"),
        qc=shard_files("qc"),
        clips=TABLES_DIR / "clips.parquet",
        index_qc=SHARDS_DIR / "index_qc.parquet",
        # each clip's transcript QC note joins its QC row (transcript_note)
        transcripts=TABLES_DIR / "transcripts.parquet",
        signals=shard_files("signals"),
    output:
        frames=TABLES_DIR / "frames.parquet",
        faces=TABLES_DIR / "faces.parquet",
        qc=TABLES_DIR / "qc.parquet",
        # people clustered by face across clips (impressions.data.identity)
        identities=TABLES_DIR / "identities.parquet",
    log:
        LOGS / "gather_clips.log",
    benchmark:
        BENCH / "gather_clips.tsv"
    conda:
        "../envs/preprocess.yaml"
    script:
        "../workflow_scripts/gather_clips.py"


rule gather_audio:
    """The audio table, and its arrays as memory-mappable .npy files in table row order."""
    input:
        tables=shard_files("audio"),
        arrays=shard_files("audio", "npz"),
    output:
        table=TABLES_DIR / "audio.parquet",
        arrays=[
            RESULTS / "arrays" / f"audio_{key}.npy"
            for key in ("waveform", "logmel", "logfbank")
        ],
    log:
        LOGS / "gather_audio.log",
    benchmark:
        BENCH / "gather_audio.tsv"
    conda:
        "../envs/preprocess.yaml"
    # every clip's audio arrays in memory at once: sized by the run (impressions/cluster.py)
    resources:
        mem_mb=lambda wildcards, attempt: cluster.gather_audio_mem_mb(
            config, WORK, attempt
        ),
        runtime=60,
    script:
        "../workflow_scripts/gather_audio.py"


rule gather_voice:
    """The voice table from every voice shard, its backend in its metadata."""
    input:
        shard_files("voice"),
    output:
        TABLES_DIR / "voice.parquet",
    log:
        LOGS / "gather_voice.log",
    benchmark:
        BENCH / "gather_voice.tsv"
    conda:
        "../envs/preprocess.yaml"
    script:
        "../workflow_scripts/gather_voice.py"


rule gather_expressions:
    """The expressions table and its per-clip sources and QC reasons from every expression shard."""
    input:
        tables=shard_files("expressions"),
        qc=shard_files("expression_qc"),
    output:
        table=TABLES_DIR / "expressions.parquet",
        qc=TABLES_DIR / "expression_qc.parquet",
    log:
        LOGS / "gather_expressions.log",
    benchmark:
        BENCH / "gather_expressions.tsv"
    conda:
        "../envs/preprocess.yaml"
    script:
        "../workflow_scripts/gather_expressions.py"


rule splits:
    """The train/val/test assignment every model, analysis and the report reads (impressions/data/splits.py)."""
    input:
        clips=TABLES_DIR / "clips.parquet",
        # the face clusters beside the clips table, for models.split: identity_faces
        identities=lambda wildcards: (
            [TABLES_DIR / "identities.parquet"]
            if config["models"]["split"] == "identity_faces"
            else []
        ),
    output:
        TABLES_DIR / "splits.parquet",
    log:
        LOGS / "splits.log",
    conda:
        "../envs/preprocess.yaml"
    params:
        split=config["models"]["split"],
        seed=config["models"]["seed"],
    script:
        "../workflow_scripts/splits.py"
