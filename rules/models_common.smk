"""Settings and input functions of the model rules (rules/models.smk)."""

from impressions import layout
from impressions.models import registry

MODELS_DIR = RESULTS / "models"
REPORT_DIR = RESULTS / "report"
MODELS_CFG = config["models"]
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


def model_files(name):
    """A trained model's outputs (impressions.layout.MODEL_FILES), by kind."""
    return {
        kind: str(MODELS_DIR / name / file) for kind, file in layout.MODEL_FILES.items()
    }


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


# What each input kind of a family (impressions.models.registry.INPUT_KINDS) is read from.
KIND_TABLES = {
    "frames": {"frames": TABLES_DIR / "frames.parquet"},
    "faces": {"frames": TABLES_DIR / "faces.parquet"},
    "waveform": {
        "audio_table": TABLES_DIR / "audio.parquet",
        "audio_array": RESULTS / "arrays" / "audio_waveform.npy",
    },
    "logfbank": {
        "audio_table": TABLES_DIR / "audio.parquet",
        "audio_array": RESULTS / "arrays" / "audio_logfbank.npy",
    },
    "au_table": {"expressions": TABLES_DIR / "expressions.parquet"},
    "voice_table": {"voice": TABLES_DIR / "voice.parquet"},
}


def train_inputs(family):
    """What training `family` reads, by the registry: the clips table, its input kinds' tables and
    arrays, the features of the models it fuses, and the identities table of an identity_faces split.
    """
    inputs = {"clips": str(TABLES_DIR / "clips.parquet")}
    spec = registry.get(family)
    for kind in spec.inputs:
        inputs |= {key: str(path) for key, path in KIND_TABLES.get(kind, {}).items()}
    if "features" in spec.inputs:
        inputs["features"] = [
            model_files(m)["features"]
            for m in spec.settings(MODELS_CFG.get(family))["inputs"]
        ]
    return inputs | split_inputs(None)


def family_constraint(families):
    """A wildcard that matches exactly these model names."""
    return "|".join(families)


def train_rule_resources(families):
    """threads, resources and clips-folder params of the rule training `families` (the registry's)."""
    specs = [registry.get(f) for f in families]
    gpu = any(f.gpu for f in specs)
    resources = {
        "mem_mb": max(f.mem_mb for f in specs),
        "runtime": max(f.runtime for f in specs),
    }
    params = {}
    if any(f.sample_kind in registry.IMAGE_KINDS for f in specs):
        params["clips_dir"] = CLIPS_DIR_PARAM
    return {
        "threads": MODELS_CFG["threads"] if gpu else 1,
        "resources": ({"gpu": MODELS_CFG["gpus"]} if gpu else {}) | resources,
        "params": params,
    }


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


# What a retraining of any seedable family asks for (train_seeded has one rule for them all).
SEEDED_TRAINING = train_rule_resources(registry.names(seedable=True))


def seeded_params(wildcards):
    settings = train_params(wildcards, wildcards.seeded_family)
    return {**settings, "common": {**settings["common"], "seed": int(wildcards.seed)}}
