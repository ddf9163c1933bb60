"""Settings and input functions of the interpretation rules (rules/interpret.smk)."""

from impressions import layout
from impressions.explain import analyses
from impressions.models import registry, variants

INTERPRET_DIR = RESULTS / "interpret"
INTERPRET_CFG = config["interpret"]
GUIDANCE = INTERPRET_CFG["au_guidance"]
GUIDED_FAMILIES = list(GUIDANCE["models"]) if GUIDANCE["weight"] > 0 else []
GUIDED = [variants.name(f, "au_guided") for f in GUIDED_FAMILIES]
# Each AU-guided model beside the unguided model of its family: computed once, for the rule that
# compares them (its inputs and params).
GUIDANCE_PAIRS = list(zip(GUIDED_FAMILIES, GUIDED))
EXPLAINED = list(INTERPRET_CFG["models"])
CAM_OVERLAP_CFG = INTERPRET_CFG.get("cam_overlap", {})
# The published face-overlap test runs on whole frames with the GAP (cam) head: for each explained
# family reading frames (image), the configured model when its head is cam, else its twin trained
# with head: cam (image_cam).
CAM_OVERLAP = [
    (
        family
        if (MODELS_CFG.get(family) or {}).get("head") == "cam"
        else variants.name(family, "cam")
    )
    for family in EXPLAINED
    if registry.get(family).sample_kind == "frames"
    and CAM_OVERLAP_CFG.get("enabled", True)
]
# The weight sweep trains the first AU-guided family once per weight and seed (off without guided
# models): its models and their folders are planned by impressions/models/variants.py.
SWEEP_FAMILY = variants.sweep_family(config)
SWEEP_MODELS = variants.sweep_models(config)
SWEEP_DIR = INTERPRET_DIR / "au_guidance_sweep"


# Models the per-model analyses explain: a CAM-explainable family (impressions/models/registry.py),
# its AU-guided twin or its cam-head twin.
_CAM_FAMILIES = "|".join(registry.names(cam=True))


wildcard_constraints:
    explained=f"({_CAM_FAMILIES})({layout.GUIDED_SUFFIX}|{layout.CAM_SUFFIX})?",
    sweep_run="[0-9.]+(?:_seed[0-9]+)?",


def sweep_model_files(folder):
    """One sweep model's trained files (under au_guidance_sweep/<folder>/: w<weight>[_seed<k>])."""
    return {
        kind: str(SWEEP_DIR / folder / file)
        for kind, file in layout.MODEL_FILES.items()
    }


def sweep_folders():
    """The folders of the sweep's models, one per weight and seed."""
    return [variants.sweep_folder(m) for m in SWEEP_MODELS]


# The models each analysis runs on, by model set (impressions/explain/analyses.py MODEL_SETS).
MODEL_SETS = {
    "explained": EXPLAINED,
    "guided": GUIDED,
    "cam_overlap": CAM_OVERLAP,
    "manifold": list(INTERPRET_CFG["manifold"]["models"]),
    "sweep": SWEEP_MODELS,
}


def analysis_models(analysis):
    """The models of an analysis's model sets (its registry entry's `models`), each once, in order."""
    sets = analyses.get(analysis).models
    return list(dict.fromkeys(m for s in sets for m in MODEL_SETS[s]))


def interpret_files(analysis, model=None):
    """An analysis's outputs (its registry entry's `files`), by kind: under interpret/<analysis>/<model>/
    for one model, else under interpret/<analysis>/ with its files per model (`model_files`) added.
    """
    spec = analyses.get(analysis)
    folder = (
        INTERPRET_DIR / analysis if model is None else INTERPRET_DIR / analysis / model
    )
    files = {kind: str(folder / name) for kind, name in spec.files.items()}
    for m in analysis_models(analysis) if spec.model_files else []:
        for kind, name in spec.model_files.items():
            files[kind.format(model=m)] = str(folder / name.format(model=m))
    return files


def interpret_sections():
    """Every analysis's section.json, in registry order: what the report renders after the model
    results (in each section's order). A per-model analysis has one per model of its sets, a
    workflow-wide one a single one when its sets hold any model."""
    sections = []
    for spec in analyses.ANALYSES.values():
        models = analysis_models(spec.name)
        if spec.scope == "model":
            sections += [interpret_files(spec.name, m)["section"] for m in models]
        elif models:
            sections.append(interpret_files(spec.name)["section"])
    return sections


def interpret_options(analysis):
    """What an analysis's job passes on (params.options): the settings it reads (its registry entry),
    then where the clips are (the split is the splits table's, an input) and the device it runs on. Only those, so that
    changing another analysis's setting does not re-run it."""
    spec = analyses.get(analysis)
    return spec.job_options(INTERPRET_CFG, {"dataset": DATASET_NOTE}) | {
        "clips_dir": str(CLIPS_DIR),
        "device": MODELS_CFG["device"],
    }


# The per-model analyses read the per-clip arrays through the clips folder: the checkpoint stands
# for them (it is rebuilt whenever a clip's arrays change), so 10,000 per-clip inputs are not named.
INTERPRET_INPUTS = dict(
    clips=TABLES_DIR / "clips.parquet",
    splits=TABLES_DIR / "splits.parquet",
    frames=TABLES_DIR / "frames.parquet",
    faces=TABLES_DIR / "faces.parquet",
    expressions=TABLES_DIR / "expressions.parquet",
)
