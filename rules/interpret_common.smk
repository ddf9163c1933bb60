"""Settings and input functions of the interpretation rules (rules/interpret.smk)."""

from impressions import layout
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
# The weight sweep trains the first AU-guided family once per weight (off without guided models).
SWEEP = list(GUIDANCE.get("sweep", [])) if GUIDANCE["models"] else []
SWEEP_FAMILY = GUIDANCE["models"][0] if GUIDANCE["models"] else None
SWEEP_DIR = INTERPRET_DIR / "au_guidance_sweep"


# Models the per-model analyses explain: a CAM-explainable family (impressions/models/registry.py),
# its AU-guided twin or its cam-head twin.
_CAM_FAMILIES = "|".join(registry.names(cam=True))


wildcard_constraints:
    explained=f"({_CAM_FAMILIES})({layout.GUIDED_SUFFIX}|{layout.CAM_SUFFIX})?",
    sweep_weight="[0-9.]+",


def interpret_files(analysis, model):
    """One analysis's outputs for a model (impressions.layout.INTERPRET_FILES), by kind."""
    return {
        kind: str(INTERPRET_DIR / analysis / model / name)
        for kind, name in layout.INTERPRET_FILES[analysis].items()
    }


def manifold_files():
    files = {
        kind: str(INTERPRET_DIR / "manifold" / name)
        for kind, name in (
            ("section", "section.json"),
            ("table", "trustworthiness.csv"),
            ("coordinates", "coordinates.parquet"),
        )
    }
    for name in INTERPRET_CFG["manifold"]["models"]:
        files[f"figure_{name}"] = str(INTERPRET_DIR / "manifold" / f"{name}.png")
    return files


def guidance_files():
    return {
        "section": str(INTERPRET_DIR / "au_guidance" / "section.json"),
        "table": str(INTERPRET_DIR / "au_guidance" / "au_guidance.csv"),
    }


def interpret_sections():
    """Every analysis's section.json: what the report renders after the model results."""
    sections = []
    for model in EXPLAINED:
        sections += [
            interpret_files(a, model)["section"] for a in ("cam", "units", "au_maps")
        ]
    for model in GUIDED:
        sections += [interpret_files(a, model)["section"] for a in ("cam", "au_maps")]
    if GUIDED:
        sections.append(guidance_files()["section"])
    if INTERPRET_CFG["manifold"]["models"]:
        sections.append(manifold_files()["section"])
    sections += [interpret_files("cam_overlap", m)["section"] for m in CAM_OVERLAP]
    if SWEEP:
        sections.append(sweep_files()["section"])
    return sections


def sweep_files():
    return {
        "section": str(SWEEP_DIR / "section.json"),
        "table": str(SWEEP_DIR / "au_guidance_sweep.csv"),
        "figure": str(SWEEP_DIR / "au_guidance_sweep.png"),
    }


def sweep_model_files(weight):
    """One sweep weight's trained model files (under au_guidance_sweep/w<weight>/)."""
    return {
        kind: str(SWEEP_DIR / f"w{weight}" / file)
        for kind, file in layout.MODEL_FILES.items()
    }


def sweep_weights():
    return [f"{float(w):g}" for w in SWEEP]


# The per-model analyses, one rule each (interpret_<analysis>, generated in rules/interpret.smk), with
# the memory each asks for and what it does.
ANALYSES = {
    "cam": (
        8000,
        "Class activation maps per trait, Grad-CAM, and the share of CAM regions on the face.",
    ),
    "units": (
        16000,
        "Units of the last conv layers as face-part detectors, and Action-Unit emergence.",
    ),
    "au_maps": (
        8000,
        "AU-codebook maps from landmarks and emotions, against each trait's CAM.",
    ),
    "cam_overlap": (
        8000,
        "Ventura et al.'s share of CAM regions on the face, as published: GAP model, test frames only.",
    ),
}

# Only the settings an analysis uses, so that changing one re-runs only that analysis.
ANALYSIS_KEYS = {
    "cam": ("top_k",),
    "cam_overlap": ("cam_threshold", "face_overlap"),
    "units": (
        "unit_layers",
        "unit_top",
        "detector_threshold",
        "au_top_n",
        "detector_margin",
        "au_top_clips",
    ),
    "au_maps": (),
}


def interpret_options(analysis):
    keys = ("splits", "max_frames") + ANALYSIS_KEYS[analysis]
    extra = (
        {
            "box_scales": CAM_OVERLAP_CFG.get("box_scales", [1.0, 1.25, 1.5]),
            "dataset": DATASET_NOTE,
        }
        if analysis == "cam_overlap"
        else {}
    )
    return {
        **{k: INTERPRET_CFG[k] for k in keys if k in INTERPRET_CFG},
        **extra,
        "clips_dir": str(CLIPS_DIR),
        "split": MODELS_CFG["split"],
        "seed": MODELS_CFG["seed"],
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
