"""Settings and input functions of the model rules (rules/models.smk)."""

from impressions import layout
from impressions.models import registry, variants

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
    "transcript": {"transcripts": TABLES_DIR / "transcripts.parquet"},
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
    variants.name(family, "seed", seed=seed)
    for family in SEEDS_CFG.get("families", [])
    for seed in SEEDS_CFG.get("values", [])
    if seed != MODELS_CFG["seed"]
]


# The training rule (rules/models.smk) trains every model, a family or a variant of one
# (impressions/models/variants.py): what a job reads, passes on and asks for comes from the model's
# family and variant.


def job_model(wildcards):
    """The model a training job makes: its `model` wildcard, or the sweep's <family>_w<weight>[_seed<k>]."""
    if "sweep_run" in wildcards.keys():
        return variants.sweep_model(SWEEP_FAMILY, wildcards.sweep_run)
    return wildcards.model


def job_family(wildcards):
    return variants.parse(job_model(wildcards)).family


def train_job_inputs(wildcards):
    """The family's inputs (train_inputs) and the tables the variant reads besides them."""
    model = job_model(wildcards)
    tables = {t: str(TABLES_DIR / f"{t}.parquet") for t in variants.tables(model)}
    return train_inputs(variants.parse(model).family.name) | tables


def train_threads(wildcards):
    """A GPU job's DataLoader workers plus its main process (at least models.threads), else one
    (impressions/cluster.py train_threads)."""
    return cluster.train_threads(job_model(wildcards), config)


def train_gpus(wildcards):
    """The GPUs a job asks a cluster for: models.gpus for a family with `gpu`, else none."""
    return MODELS_CFG["gpus"] if job_family(wildcards).gpu else 0


def train_settings(wildcards):
    return variants.settings(job_model(wildcards), config)
