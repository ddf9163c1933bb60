"""Model training (one job per model: a family of impressions/models/registry.py, or a variant of one) and the late average."""


include: "models_common.smk"


rule train_model:
    """Trains a model: a family of impressions/models/registry.py or a variant of one (another seed, AU guidance, the cam head: impressions/models/variants.py)."""
    input:
        unpack(train_job_inputs),
    output:
        **model_files("{model}"),
    log:
        LOGS / "train" / "{model}.log",
    benchmark:
        BENCH / "train" / "{model}.tsv"
    wildcard_constraints:
        model=variants.constraint(),
    conda:
        "../envs/models.yaml"
    threads: train_threads
    # What a job asks a cluster for (impressions/cluster.py): GPUs and the GPU partition and model for a
    # family with `gpu`, memory and wall time from the run's size, growing with each retry.
    resources:
        gpu=train_gpus,
        slurm_partition=lambda wildcards: cluster.partition(job_model(wildcards)),
        gpu_model=lambda wildcards: cluster.gpu_model(job_model(wildcards)),
        mem_mb=lambda wildcards, attempt: cluster.train_mem_mb(
            job_model(wildcards), config, WORK, attempt
        ),
        runtime=lambda wildcards, attempt: cluster.train_runtime(
            job_model(wildcards), config, WORK, attempt
        ),
    params:
        clips_dir=CLIPS_DIR_PARAM,
        family=lambda wildcards: job_family(wildcards).name,
        model=job_model,
        settings=train_settings,
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
        mem_mb=registry.get("late_average").mem_mb,
        runtime=registry.get("late_average").runtime,
    script:
        "../workflow_scripts/late_average.py"
