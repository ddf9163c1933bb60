"""Model training (one job per model family) and the evaluation report."""


include: "models_common.smk"


rule train_image:
    """DAN+ on whole frames (frames.npy of every clip)."""
    input:
        clips=TABLES_DIR / "clips.parquet",
        splits=TABLES_DIR / "splits.parquet",
        frames=TABLES_DIR / "frames.parquet",
    output:
        **model_files("image"),
    log:
        LOGS / "train" / "image.log",
    benchmark:
        BENCH / "train" / "image.tsv"
    conda:
        "../envs/models.yaml"
    threads: MODELS_CFG["threads"]
    resources:
        gpu=MODELS_CFG["gpus"],
        mem_mb=8000,
        runtime=240,
    params:
        clips_dir=CLIPS_DIR_PARAM,
        family="image",
        settings=lambda wildcards: train_params(wildcards, "image"),
    script:
        "../workflow_scripts/train_model.py"


rule train_face:
    """DAN+ on aligned faces (faces.npy, frames with has_face only)."""
    input:
        clips=TABLES_DIR / "clips.parquet",
        splits=TABLES_DIR / "splits.parquet",
        frames=TABLES_DIR / "faces.parquet",
    output:
        **model_files("face"),
    log:
        LOGS / "train" / "face.log",
    benchmark:
        BENCH / "train" / "face.tsv"
    conda:
        "../envs/models.yaml"
    threads: MODELS_CFG["threads"]
    resources:
        gpu=MODELS_CFG["gpus"],
        mem_mb=8000,
        runtime=240,
    params:
        clips_dir=CLIPS_DIR_PARAM,
        family="face",
        settings=lambda wildcards: train_params(wildcards, "face"),
    script:
        "../workflow_scripts/train_model.py"


rule train_audio:
    """The raw-waveform residual CNN (audio) or the log-filterbank regressor (audio_fbank)."""
    input:
        unpack(audio_inputs),
        clips=TABLES_DIR / "clips.parquet",
        audio_table=TABLES_DIR / "audio.parquet",
    output:
        **model_files("{audio_model}"),
    log:
        LOGS / "train" / "{audio_model}.log",
    benchmark:
        BENCH / "train" / "{audio_model}.tsv"
    conda:
        "../envs/models.yaml"
    threads: MODELS_CFG["threads"]
    resources:
        gpu=MODELS_CFG["gpus"],
        mem_mb=8000,
        runtime=120,
    params:
        family=lambda wildcards: wildcards.audio_model,
        settings=lambda wildcards: train_params(wildcards, wildcards.audio_model),
    script:
        "../workflow_scripts/train_model.py"


rule train_au_linear:
    """Ridge regression on per-clip AU statistics (closed form, CPU, seconds)."""
    input:
        unpack(split_inputs),
        clips=TABLES_DIR / "clips.parquet",
        expressions=TABLES_DIR / "expressions.parquet",
    output:
        **model_files("au_linear"),
    log:
        LOGS / "train" / "au_linear.log",
    benchmark:
        BENCH / "train" / "au_linear.tsv"
    conda:
        "../envs/models.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        family="au_linear",
        settings=lambda wildcards: train_params(wildcards, "au_linear"),
    script:
        "../workflow_scripts/train_model.py"


rule train_voice_linear:
    """Ridge regression on the per-clip voice descriptors (closed form, CPU, seconds)."""
    input:
        unpack(split_inputs),
        clips=TABLES_DIR / "clips.parquet",
        voice=TABLES_DIR / "voice.parquet",
    output:
        **model_files("voice_linear"),
    log:
        LOGS / "train" / "voice_linear.log",
    benchmark:
        BENCH / "train" / "voice_linear.tsv"
    conda:
        "../envs/models.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        family="voice_linear",
        settings=lambda wildcards: train_params(wildcards, "voice_linear"),
    script:
        "../workflow_scripts/train_model.py"


rule train_fusion:
    """Late fusion of the trained models' per-clip features (+ handcrafted features)."""
    input:
        unpack(fusion_inputs),
        clips=TABLES_DIR / "clips.parquet",
    output:
        **model_files("{fusion_model}"),
    log:
        LOGS / "train" / "{fusion_model}.log",
    benchmark:
        BENCH / "train" / "{fusion_model}.tsv"
    conda:
        "../envs/models.yaml"
    threads: MODELS_CFG["threads"]
    resources:
        gpu=MODELS_CFG["gpus"],
        mem_mb=8000,
        runtime=60,
    params:
        family=lambda wildcards: wildcards.fusion_model,
        settings=lambda wildcards: train_params(wildcards, wildcards.fusion_model),
    script:
        "../workflow_scripts/train_model.py"


rule train_au_linear_published:
    """Least squares on the 17 per-clip mean AUs (Ventura et al. 2017 fit a linear regressor on 17 AUs;
    plain least squares and per-clip means are our reading: the paper names neither)."""
    input:
        clips=TABLES_DIR / "clips.parquet",
        splits=TABLES_DIR / "splits.parquet",
        expressions=TABLES_DIR / "expressions.parquet",
    output:
        **model_files("au_linear_published"),
    log:
        LOGS / "train" / "au_linear_published.log",
    benchmark:
        BENCH / "train" / "au_linear_published.tsv"
    conda:
        "../envs/models.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        family="au_linear_published",
        settings=lambda wildcards: train_params(wildcards, "au_linear_published"),
    script:
        "../workflow_scripts/train_model.py"


rule late_average:
    """The equal-weight mean of the listed models' clip scores (nothing fitted; impressions/training/fusion.py)."""
    input:
        clips=TABLES_DIR / "clips.parquet",
        predictions=lambda wildcards: [
            model_files(m)["predictions"] for m in MODELS_CFG["late_average"]["inputs"]
        ],
    output:
        **{
            k: v
            for k, v in model_files("late_average").items()
            if k in ("predictions", "summary", "metrics", "curve")
        },
    log:
        LOGS / "train" / "late_average.log",
    conda:
        "../envs/models.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../workflow_scripts/late_average.py"


rule train_seeded:
    """A family trained again with another seed (models.seeds), saved as <family>_seed<k>."""
    input:
        unpack(seeded_inputs),
    output:
        **model_files("{seeded_family}_seed{seed}"),
    log:
        LOGS / "train" / "{seeded_family}_seed{seed}.log",
    benchmark:
        BENCH / "train" / "{seeded_family}_seed{seed}.tsv"
    wildcard_constraints:
        seeded_family="image|face|audio|audio_fbank|fusion|fusion_handcrafted",
        seed=r"\d+",
    conda:
        "../envs/models.yaml"
    threads: MODELS_CFG["threads"]
    resources:
        gpu=MODELS_CFG["gpus"],
        mem_mb=8000,
        runtime=240,
    params:
        clips_dir=CLIPS_DIR_PARAM,
        family=lambda wildcards: wildcards.seeded_family,
        model=lambda wildcards: f"{wildcards.seeded_family}_seed{wildcards.seed}",
        settings=seeded_params,
    script:
        "../workflow_scripts/train_model.py"
