"""What the networks look at (impressions/explain/interpret.py): one job per analysis and model."""


include: "interpret_common.smk"


# One rule per analysis of a model (interpret_cam, interpret_units, interpret_au_maps,
# interpret_cam_overlap and any other registry entry of scope model: impressions/explain/analyses.py),
# each with a job per model of its model sets.
for _spec in [analyses.get(a) for a in analyses.names(scope="model")]:

    rule:
        """A per-model analysis of impressions/explain/interpret.py (its docstring: its registry entry)."""
        name:
            _spec.rule
        input:
            **INTERPRET_INPUTS,
            checkpoint=MODELS_DIR / "{explained}" / "checkpoint.pt",
        output:
            **interpret_files(_spec.name, "{explained}"),
        log:
            LOGS / "interpret" / f"{_spec.name}_{{explained}}.log",
        benchmark:
            BENCH / "interpret" / f"{_spec.name}_{{explained}}.tsv"
        conda:
            "../envs/models.yaml"
        threads: MODELS_CFG["threads"]
        # Sized by interpret.max_frames and the model's input (impressions/cluster.py), growing with
        # each retry; the registry entry's values are the floor.
        resources:
            mem_mb=lambda wildcards, attempt, spec=_spec: cluster.interpret_mem_mb(
                spec.mem_mb, wildcards.explained, config, WORK, attempt
            ),
            runtime=lambda wildcards, attempt, spec=_spec: cluster.interpret_runtime(
                spec.runtime,
                wildcards.explained,
                config,
                WORK,
                MODELS_CFG["threads"],
                attempt,
            ),
        params:
            analysis=_spec.name,
            options=interpret_options(_spec.name),
        script:
            "../workflow_scripts/interpret.py"


# The workflow-wide analyses (scope workflow) each read different inputs, so each has a rule of its
# own; its files, settings, resources and docstring come from its registry entry.
rule au_guidance_effect:
    input:
        **INTERPRET_INPUTS,
        # per-frame CAM-AU similarity: the effect is taken on the test clips' frames only
        au_frames=[
            interpret_files("au_maps", m)["frames"]
            for pair in GUIDANCE_PAIRS
            for m in pair
        ],
        predictions=[
            model_files(m)["predictions"] for pair in GUIDANCE_PAIRS for m in pair
        ],
        summaries=[model_files(m)["summary"] for pair in GUIDANCE_PAIRS for m in pair],
        # ATT-COS reads each model's attention on the test frames
        checkpoints=[
            model_files(m)["checkpoint"] for pair in GUIDANCE_PAIRS for m in pair
        ],
    output:
        **interpret_files("au_guidance"),
    log:
        LOGS / "interpret" / "au_guidance.log",
    benchmark:
        BENCH / "interpret" / "au_guidance.tsv"
    conda:
        "../envs/models.yaml"
    threads: MODELS_CFG["threads"]
    resources:
        mem_mb=analyses.get("au_guidance").mem_mb,
        runtime=analyses.get("au_guidance").runtime,
    params:
        pairs=GUIDANCE_PAIRS,
        options=interpret_options("au_guidance")
        | {"n_boot": MODELS_CFG["bootstrap"], "seed": MODELS_CFG["seed"]},
    script:
        "../workflow_scripts/au_guidance_effect.py"


rule interpret_manifold:
    input:
        clips=TABLES_DIR / "clips.parquet",
        splits=TABLES_DIR / "splits.parquet",
        expressions=TABLES_DIR / "expressions.parquet",
        features=[model_files(m)["features"] for m in analysis_models("manifold")],
    output:
        **interpret_files("manifold"),
    log:
        LOGS / "interpret" / "manifold.log",
    benchmark:
        BENCH / "interpret" / "manifold.tsv"
    conda:
        "../envs/models.yaml"
    threads: MODELS_CFG["threads"]
    resources:
        mem_mb=analyses.get("manifold").mem_mb,
        runtime=analyses.get("manifold").runtime,
    params:
        options=analyses.get("manifold").job_options(INTERPRET_CFG, {})
        | {"seed": MODELS_CFG["seed"]},
    script:
        "../workflow_scripts/interpret_manifold.py"


# The sweep's models are trained by train_model too; only their files live elsewhere (the sweep's
# folder, au_guidance_sweep/w<weight>[_seed<k>]/), so the rule is reused with those paths: the job's
# model is <first guided family>_w<weight>[_seed<k>] (rules/models_common.smk job_model).
use rule train_model as train_guidance_sweep with:
    output:
        **sweep_model_files("w{sweep_run}"),
    log:
        LOGS / "train" / "au_guidance_sweep_w{sweep_run}.log",
    benchmark:
        BENCH / "train" / "au_guidance_sweep_w{sweep_run}.tsv"


workflow.get_rule("train_guidance_sweep").docstring = (
    "The first AU-guided family trained at one weight (and seed) of the sweep "
    "(interpret.au_guidance.sweep, models.seeds), as train_model trains it, under "
    "au_guidance_sweep/w<weight>[_seed<k>]/."
)


rule au_guidance_sweep:
    input:
        **INTERPRET_INPUTS,
        checkpoints=[sweep_model_files(f)["checkpoint"] for f in sweep_folders()],
        predictions=[sweep_model_files(f)["predictions"] for f in sweep_folders()],
        histories=[sweep_model_files(f)["metrics"] for f in sweep_folders()],
    output:
        **interpret_files("au_guidance_sweep"),
    log:
        LOGS / "interpret" / "au_guidance_sweep.log",
    benchmark:
        BENCH / "interpret" / "au_guidance_sweep.tsv"
    conda:
        "../envs/models.yaml"
    threads: MODELS_CFG["threads"]
    resources:
        mem_mb=analyses.get("au_guidance_sweep").mem_mb,
        runtime=analyses.get("au_guidance_sweep").runtime,
    params:
        family=SWEEP_FAMILY,
        options=interpret_options("au_guidance_sweep")
        | {"n_boot": MODELS_CFG["bootstrap"], "seed": MODELS_CFG["seed"]},
    script:
        "../workflow_scripts/au_guidance_sweep.py"


# Every analysis's rule, generated or written above, gets its registry entry's docstring; a
# workflow-wide entry without its rule stops planning here.
for _spec in analyses.ANALYSES.values():
    if _spec.rule not in {r.name for r in workflow.rules}:
        raise ValueError(
            f"analysis {_spec.name} (impressions/explain/analyses.py) has no rule {_spec.rule}: a "
            "workflow-wide analysis needs a rule of its own in rules/interpret.smk"
        )
    workflow.get_rule(_spec.rule).docstring = _spec.doc
