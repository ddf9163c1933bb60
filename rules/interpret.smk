"""What the networks look at (impressions/explain/interpret.py): one job per analysis and model."""


include: "interpret_common.smk"


rule train_au_guided:
    """An image or face model trained again with the AU-guidance loss term (impressions/expressions/au_maps.py)."""
    input:
        unpack(lambda wildcards: train_inputs(wildcards.guided_family)),
        faces=TABLES_DIR / "faces.parquet",
        expressions=TABLES_DIR / "expressions.parquet",
    output:
        **model_files("{guided_family}_au_guided"),
    log:
        LOGS / "train" / "{guided_family}_au_guided.log",
    benchmark:
        BENCH / "train" / "{guided_family}_au_guided.tsv"
    conda:
        "../envs/models.yaml"
    threads: CAM_TRAINING["threads"]
    resources:
        **CAM_TRAINING["resources"],
    params:
        clips_dir=CLIPS_DIR_PARAM,
        family=lambda wildcards: wildcards.guided_family,
        model=lambda wildcards: wildcards.guided_family + layout.GUIDED_SUFFIX,
        settings=guided_params,
    script:
        "../workflow_scripts/train_model.py"


# One rule per analysis of a model (interpret_cam, interpret_units, interpret_au_maps,
# interpret_cam_overlap), each with a job per explained model.
for _analysis, (_mem_mb, _doc) in ANALYSES.items():

    rule:
        """A per-model analysis of impressions/explain/interpret.py (its docstring: rules/interpret_common.smk ANALYSES)."""
        name:
            f"interpret_{_analysis}"
        input:
            **INTERPRET_INPUTS,
            checkpoint=MODELS_DIR / "{explained}" / "checkpoint.pt",
        output:
            **interpret_files(_analysis, "{explained}"),
        log:
            LOGS / "interpret" / f"{_analysis}_{{explained}}.log",
        benchmark:
            BENCH / "interpret" / f"{_analysis}_{{explained}}.tsv"
        conda:
            "../envs/models.yaml"
        threads: MODELS_CFG["threads"]
        resources:
            mem_mb=_mem_mb,
            runtime=60,
        params:
            analysis=_analysis,
            options=interpret_options(_analysis),
        script:
            "../workflow_scripts/interpret.py"

    workflow.get_rule(f"interpret_{_analysis}").docstring = _doc


rule au_guidance_effect:
    """Accuracy and CAM-AU correlation of each AU-guided model against its unguided twin."""
    input:
        clips=TABLES_DIR / "clips.parquet",
        splits=TABLES_DIR / "splits.parquet",
        correlations=[
            interpret_files("au_maps", m)["correlation"]
            for pair in GUIDANCE_PAIRS
            for m in pair
        ],
        predictions=[
            model_files(m)["predictions"] for pair in GUIDANCE_PAIRS for m in pair
        ],
        summaries=[model_files(m)["summary"] for pair in GUIDANCE_PAIRS for m in pair],
    output:
        **guidance_files(),
    log:
        LOGS / "interpret" / "au_guidance.log",
    benchmark:
        BENCH / "interpret" / "au_guidance.tsv"
    conda:
        "../envs/models.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        pairs=GUIDANCE_PAIRS,
        split=MODELS_CFG["split"],
        seed=MODELS_CFG["seed"],
    script:
        "../workflow_scripts/au_guidance_effect.py"


rule interpret_manifold:
    """t-SNE of each model's per-clip penultimate features, with trustworthiness."""
    input:
        clips=TABLES_DIR / "clips.parquet",
        splits=TABLES_DIR / "splits.parquet",
        expressions=TABLES_DIR / "expressions.parquet",
        features=[
            model_files(m)["features"] for m in INTERPRET_CFG["manifold"]["models"]
        ],
    output:
        **manifold_files(),
    log:
        LOGS / "interpret" / "manifold.log",
    benchmark:
        BENCH / "interpret" / "manifold.tsv"
    conda:
        "../envs/models.yaml"
    threads: MODELS_CFG["threads"]
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        options={k: v for k, v in INTERPRET_CFG["manifold"].items() if k != "models"}
        | {"seed": MODELS_CFG["seed"]},
        split=MODELS_CFG["split"],
        seed=MODELS_CFG["seed"],
    script:
        "../workflow_scripts/interpret_manifold.py"


rule train_cam_twin:
    """The image model trained again with the GAP (cam) head, for the published CAM face-overlap test."""
    input:
        unpack(lambda wildcards: train_inputs("image")),
    output:
        **model_files(f"image{layout.CAM_SUFFIX}"),
    log:
        LOGS / "train" / f"image{layout.CAM_SUFFIX}.log",
    benchmark:
        BENCH / "train" / f"image{layout.CAM_SUFFIX}.tsv"
    conda:
        "../envs/models.yaml"
    threads: CAM_TRAINING["threads"]
    resources:
        **CAM_TRAINING["resources"],
    params:
        clips_dir=CLIPS_DIR_PARAM,
        family="image",
        model=f"image{layout.CAM_SUFFIX}",
        settings=cam_twin_params,
    script:
        "../workflow_scripts/train_model.py"


rule train_guidance_sweep:
    """The first AU-guided family trained at one weight of the sweep (interpret.au_guidance.sweep)."""
    input:
        unpack(lambda wildcards: train_inputs(SWEEP_FAMILY)),
        faces=TABLES_DIR / "faces.parquet",
        expressions=TABLES_DIR / "expressions.parquet",
    output:
        **sweep_model_files("{sweep_weight}"),
    log:
        LOGS / "train" / "au_guidance_sweep_w{sweep_weight}.log",
    benchmark:
        BENCH / "train" / "au_guidance_sweep_w{sweep_weight}.tsv"
    conda:
        "../envs/models.yaml"
    threads: CAM_TRAINING["threads"]
    resources:
        **CAM_TRAINING["resources"],
    params:
        clips_dir=CLIPS_DIR_PARAM,
        family=SWEEP_FAMILY,
        model=lambda wildcards: f"{SWEEP_FAMILY}_w{wildcards.sweep_weight}",
        settings=sweep_params,
    script:
        "../workflow_scripts/train_model.py"


rule au_guidance_sweep:
    """Accuracy and CAM-AU correlation per AU-guidance weight, and the paper's claim checked."""
    input:
        **INTERPRET_INPUTS,
        checkpoints=[sweep_model_files(w)["checkpoint"] for w in sweep_weights()],
        predictions=[sweep_model_files(w)["predictions"] for w in sweep_weights()],
        histories=[sweep_model_files(w)["metrics"] for w in sweep_weights()],
    output:
        **sweep_files(),
    log:
        LOGS / "interpret" / "au_guidance_sweep.log",
    benchmark:
        BENCH / "interpret" / "au_guidance_sweep.tsv"
    conda:
        "../envs/models.yaml"
    threads: MODELS_CFG["threads"]
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        family=SWEEP_FAMILY,
        options=interpret_options("au_maps") | {"n_boot": MODELS_CFG["bootstrap"]},
    script:
        "../workflow_scripts/au_guidance_sweep.py"
