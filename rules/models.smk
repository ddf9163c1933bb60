"""Model training (one job per model family: impressions/models/registry.py) and the late average."""


include: "models_common.smk"


# One training rule per registry rule name (train_image, train_face, train_audio, ...); a rule that
# trains several families (train_audio: audio and audio_fbank) has a job per family. Every input,
# resource and setting comes from the family's registry entry.
for _rule, _families in registry.rules().items():
    _spec = train_rule_resources(_families)

    rule:
        """Trains a model family of impressions/models/registry.py (its `doc`: see `snakemake --list-rules`)."""
        name:
            _rule
        input:
            unpack(lambda wildcards: train_inputs(wildcards.family)),
        output:
            **model_files("{family}"),
        log:
            LOGS / "train" / "{family}.log",
        benchmark:
            BENCH / "train" / "{family}.tsv"
        wildcard_constraints:
            family=family_constraint(_families),
        conda:
            "../envs/models.yaml"
        threads: _spec["threads"]
        resources:
            **_spec["resources"],
        params:
            **_spec["params"],
            family=lambda wildcards: wildcards.family,
            settings=lambda wildcards: train_params(wildcards, wildcards.family),
        script:
            "../workflow_scripts/train_model.py"

    workflow.get_rule(_rule).docstring = "; ".join(
        f"{f}: {registry.get(f).doc}" for f in _families
    )


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


rule train_seeded:
    """A family trained again with another seed (models.seeds), saved as <family>_seed<k>."""
    input:
        unpack(lambda wildcards: train_inputs(wildcards.seeded_family)),
    output:
        **model_files("{seeded_family}_seed{seed}"),
    log:
        LOGS / "train" / "{seeded_family}_seed{seed}.log",
    benchmark:
        BENCH / "train" / "{seeded_family}_seed{seed}.tsv"
    wildcard_constraints:
        seeded_family=family_constraint(registry.names(seedable=True)),
        seed=r"\d+",
    conda:
        "../envs/models.yaml"
    threads: SEEDED_TRAINING["threads"]
    resources:
        **SEEDED_TRAINING["resources"],
    params:
        clips_dir=CLIPS_DIR_PARAM,
        family=lambda wildcards: wildcards.seeded_family,
        model=lambda wildcards: f"{wildcards.seeded_family}_seed{wildcards.seed}",
        settings=seeded_params,
    script:
        "../workflow_scripts/train_model.py"
