"""Settings and input functions of the model rules (rules/models.smk)."""

from impressions import layout

MODELS_DIR = RESULTS / "models"
REPORT_DIR = RESULTS / "report"
MODELS_CFG = config["models"]
FUSIONS = ("fusion", "fusion_handcrafted")
AUDIO_ARRAY = {"audio": "waveform", "audio_fbank": "logfbank"}
DATASET_NOTE = (
    "the bundled demo (synthetic labels driven by smile, brightness, loudness and pitch: "
    "impressions/data/demo.py); not First Impressions"
    if DEMO_ROOT is not None
    else (
        f"manifest {config['manifest']}"
        if config["manifest"]
        else f"First Impressions layout under {config['data_root']}"
    )
)


# Training reads the per-clip arrays under this folder. The rules name the gathered tables, not the
# 10,000 per-clip files: gather_clips rewrites the tables whenever a clip's job re-runs, so a changed
# clip still retrains, and each per-clip input a rule names costs planning time.
CLIPS_DIR_PARAM = str(CLIPS_DIR)


wildcard_constraints:
    audio_model="audio|audio_fbank",
    fusion_model="fusion|fusion_handcrafted",


def model_files(name):
    """A trained model's outputs (impressions.layout.MODEL_FILES), by kind."""
    return {
        kind: str(MODELS_DIR / name / file) for kind, file in layout.MODEL_FILES.items()
    }


def trained_models():
    """Every family trained: the configured ones plus the fusion models' inputs."""
    names = list(MODELS_CFG["families"])
    for fusion in FUSIONS:
        if fusion in names:
            names += [m for m in MODELS_CFG[fusion]["inputs"] if m not in names]
    return names


def model_targets():
    """The targets of the default run: every configured model's predictions and the report."""
    if not MODELS_CFG["families"]:
        return []
    return [model_files(m)["predictions"] for m in MODELS_CFG["families"]] + [
        str(REPORT_DIR / "index.html")
    ]


def train_params(wildcards, family):
    # Only settings that change what is trained: a new bootstrap count must not retrain. The
    # preprocessing settings stored with a checkpoint come from the config in the script, not from
    # params, so that an audio setting does not retrain the face model (its inputs say what changed).
    # `split` is passed only when not the default, so that runs made before the setting existed
    # (whose params lack it) are not retrained; training's default is the official split.
    common = {k: MODELS_CFG[k] for k in ("seed", "device", "amp", "num_workers")}
    if MODELS_CFG["split"] != "official":
        common["split"] = MODELS_CFG["split"]
    return {"common": common, "options": MODELS_CFG.get(family) or {}}


def audio_inputs(wildcards):
    kind = AUDIO_ARRAY[wildcards.audio_model]
    array = str(RESULTS / "arrays" / f"audio_{kind}.npy")
    return {"audio_array": array} | split_inputs(wildcards)


def fusion_inputs(wildcards):
    inputs = {
        "features": [
            model_files(m)["features"]
            for m in MODELS_CFG[wildcards.fusion_model]["inputs"]
        ]
    }
    if wildcards.fusion_model == "fusion_handcrafted":
        inputs["expressions"] = str(TABLES_DIR / "expressions.parquet")
        inputs["voice"] = str(TABLES_DIR / "voice.parquet")
    return inputs | split_inputs(wildcards)


def split_inputs(wildcards):
    """The splits table (rule splits), and the identities table when `models.split` is identity_faces."""
    inputs = {"splits": str(TABLES_DIR / "splits.parquet")}
    if MODELS_CFG["split"] == "identity_faces":
        inputs["identities"] = str(TABLES_DIR / "identities.parquet")
    return inputs


# Repeated training: each family in models.seeds.families is trained again with each seed of
# models.seeds.values (other than models.seed) as <family>_seed<k>; the report gives the spread.
SEEDS_CFG = MODELS_CFG.get("seeds") or {}
SEEDED = [
    f"{family}_seed{seed}"
    for family in SEEDS_CFG.get("families", [])
    for seed in SEEDS_CFG.get("values", [])
    if seed != MODELS_CFG["seed"]
]


def seeded_inputs(wildcards):
    """What <family>_seed<k> reads: the same tables as <family> (fusion: the primary components)."""
    family = wildcards.seeded_family
    inputs = {"clips": str(TABLES_DIR / "clips.parquet")}
    if family in ("image", "face"):
        inputs["frames"] = str(
            TABLES_DIR / ("frames.parquet" if family == "image" else "faces.parquet")
        )
    elif family in AUDIO_ARRAY:
        inputs["audio_table"] = str(TABLES_DIR / "audio.parquet")
        inputs["audio_array"] = str(
            RESULTS / "arrays" / f"audio_{AUDIO_ARRAY[family]}.npy"
        )
    else:
        inputs["features"] = [
            model_files(m)["features"] for m in MODELS_CFG[family]["inputs"]
        ]
        if family == "fusion_handcrafted":
            inputs["expressions"] = str(TABLES_DIR / "expressions.parquet")
            inputs["voice"] = str(TABLES_DIR / "voice.parquet")
    return inputs | split_inputs(wildcards)


def seeded_params(wildcards):
    settings = train_params(wildcards, wildcards.seeded_family)
    return {**settings, "common": {**settings["common"], "seed": int(wildcards.seed)}}
