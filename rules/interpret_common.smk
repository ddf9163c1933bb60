"""Settings and input functions of the interpretation rules (rules/interpret.smk)."""

from impressions import layout

INTERPRET_DIR = RESULTS / "interpret"
INTERPRET_CFG = config["interpret"]
GUIDANCE = INTERPRET_CFG["au_guidance"]
GUIDED = (
    [f + layout.GUIDED_SUFFIX for f in GUIDANCE["models"]]
    if GUIDANCE["weight"] > 0
    else []
)
EXPLAINED = list(INTERPRET_CFG["models"])


wildcard_constraints:
    explained="(image|face)(_au_guided)?",
    guided_family="image|face",


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
    return sections


# Only the settings an analysis uses, so that changing one re-runs only that analysis.
ANALYSIS_KEYS = {
    "cam": ("top_k", "cam_threshold", "face_overlap"),
    "units": ("unit_layers", "unit_top", "detector_threshold", "au_top_n"),
    "au_maps": (),
}


def interpret_options(analysis):
    keys = ("splits", "max_frames") + ANALYSIS_KEYS[analysis]
    return {
        **{k: INTERPRET_CFG[k] for k in keys},
        "clips_dir": str(CLIPS_DIR),
        "split": MODELS_CFG["split"],
        "seed": MODELS_CFG["seed"],
    }


def guided_inputs(wildcards):
    table = "frames" if wildcards.guided_family == "image" else "faces"
    return {"frames": str(TABLES_DIR / f"{table}.parquet")}


def guided_params(wildcards):
    settings = train_params(wildcards, wildcards.guided_family)
    settings["options"] = settings["options"] | {
        "au_guidance_weight": GUIDANCE["weight"]
    }
    return settings


# The per-model analyses read the per-clip arrays through the clips folder: the checkpoint stands
# for them (it is rebuilt whenever a clip's arrays change), so 10,000 per-clip inputs are not named.
INTERPRET_INPUTS = dict(
    clips=TABLES_DIR / "clips.parquet",
    frames=TABLES_DIR / "frames.parquet",
    faces=TABLES_DIR / "faces.parquet",
    expressions=TABLES_DIR / "expressions.parquet",
)
