"""Every interpretation analysis, one entry each: what computes it, its files, the settings it reads,
its job's resources, its report section and the models it runs on.

The workflow's interpretation rules (rules/interpret.smk, rules/interpret_common.smk), the per-model
entry point (`impressions.explain.interpret.run`) and the not-computed sections
(`impressions.explain.sections.not_computed`) read this table instead of naming analyses. Adding an
analysis of one model is one `Analysis` entry in `ANALYSES` plus its function; the rule
``interpret_<name>`` is generated from the entry, one job per model of its model sets, and its
section goes into the report.

An analysis can also live outside this file: `IMPRESSIONS_EXTRA_ANALYSES` names modules
(comma-separated, importable from ``PYTHONPATH``), each with an ``ANALYSES`` sequence of `Analysis`
entries, added after the built-in ones when this module is imported. The variable reaches every
process that imports the registry (the workflow's planning, the interpretation script), so such an
analysis is planned, computed and reported like a built-in one; `tests/test_analyses.py` adds a toy
analysis that way.

Two scopes (`Analysis.scope`):

- ``model``: one job per model of its model sets, by the generated rule ``interpret_<name>``, files
  under ``results/interpret/<name>/<model>/``. Its function is called by `interpret.run` as
  ``function(model, checkpoint, images, files, **settings)``: `images` the frames or aligned faces the
  model saw (`impressions.explain.images.Images`) of `splits`, `files` its outputs by kind, `settings`
  the keys it reads (`Analysis.reads`) under their config names, where the config gives them. It
  returns the `impressions.explain.sections.Section` it wrote to ``files["section"]``.
- ``workflow``: one job over all the models of its sets (when there is any), files under
  ``results/interpret/<name>/``. Its inputs differ from analysis to analysis (features, predictions,
  other analyses' tables, models trained for it), so it has a rule of its own in rules/interpret.smk
  (`Analysis.rule`) with a script in ``workflow_scripts/``; that script calls `function`. The entry
  still gives the rule its files, settings, resources and docstring, and the report its section.

Model sets (`Analysis.models`), as rules/interpret_common.smk computes them from the config:

- ``explained``: ``interpret.models`` (CAM-explainable families);
- ``guided``: their AU-guided twins ``<family>_au_guided`` of ``interpret.au_guidance.models``, when
  ``interpret.au_guidance.weight`` > 0;
- ``cam_overlap``: for each explained family that reads whole frames, its GAP (``cam`` head) model:
  the family itself when its head is ``cam``, else its twin ``<family>_cam`` (off with
  ``interpret.cam_overlap.enabled: false``);
- ``manifold``: ``interpret.manifold.models`` (any family with a checkpoint);
- ``sweep``: the first family of ``interpret.au_guidance.models`` at each weight of
  ``interpret.au_guidance.sweep`` (``<family>_w<weight>``), and at each other seed of ``models.seeds``
  when it lists that family (``<family>_w<weight>_seed<k>``; `impressions.models.variants.sweep_models`).

An analysis's settings come from the ``interpret`` config section: `options` names top-level keys
(``top_k``), `settings` the keys of its own sub-section ``interpret.<name>`` with their defaults (a
sub-section of ``interpret`` is always the settings of the analysis of that name; `check_config`
rejects one that names none, so a new analysis's settings need no schema edit). Its job's params hold
only those, so that changing one re-runs only that analysis.

This module imports nothing heavy: the rules import it while the workflow is planned. Functions are
named as ``"module:function"`` strings and imported only when an analysis runs (`function`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from impressions import plugins

SCOPES = ("model", "workflow")
"""One job per model, or one job over all the models of its sets (see the module docstring)."""

MODEL_SETS = ("explained", "guided", "cam_overlap", "manifold", "sweep")
"""The models an analysis can run on (see the module docstring)."""

PER_MODEL_SETS = ("explained", "guided", "cam_overlap")
"""The sets a per-model analysis may name: CAM-explainable models (the rules' ``explained`` wildcard)."""

COMMON_OPTIONS = ("splits", "max_frames")
"""The `interpret` settings every per-model analysis gets: which clips' images are read, how many."""

CONTEXT = ("dataset",)
"""Values of the workflow (not of the `interpret` section) an analysis may ask for: ``dataset``, what
the results are from (the report's dataset note)."""

BOX_SCALES = (1.0, 1.25, 1.5)
"""The face box enlarged about its centre by these factors in the CAM-overlap test (its default
`interpret.cam_overlap.box_scales`): how much the published share depends on the box."""

REGION_RULES = ("raw_max", "min_max")
"""How a CAM region is thresholded (`impressions.explain.cam_overlap.regions`): ``raw_max`` keeps pixels
>= threshold x the map's maximum (Zhou et al. 2016, the default of `interpret.cam_overlap.region_rule`);
``min_max`` normalises the map to 0..1 first, i.e. keeps pixels >= min + threshold (max - min). Both
are computed and tabled; the setting picks the headline."""

FACE_PARTS = ("eyebrows", "eyes", "nose", "mouth")
"""Face parts the unit analysis looks for (defined by landmarks in
impressions.explain.unit_detectors.FACE_PARTS): one gallery figure each."""


def _empty() -> Mapping:
    return MappingProxyType({})


@dataclass(frozen=True)
class Analysis:
    """One interpretation analysis.

    `name` is its folder under ``results/interpret/`` and the name `interpret.run`, its log
    (``logs/interpret/<name>[_<model>].log``) and its benchmark go by; `function` ``"module:function"``
    computing it (how each scope calls it: the module docstring); `scope` ``model`` or ``workflow``;
    `models` the model sets it runs on (`MODEL_SETS`); `files` its outputs, kind -> file name (kind
    ``section`` is its ``section.json``); `model_files` (workflow scope only) more outputs, one per model
    of its sets, kind and file name formatted with ``{model}``; `options` the top-level ``interpret``
    keys it reads (a per-model analysis also gets `COMMON_OPTIONS`); `settings` the keys of
    ``interpret.<name>`` it reads, with the value used where the config gives none; `context` workflow
    values it reads (`CONTEXT`); `splits` the splits whose images a per-model analysis reads (None:
    ``interpret.splits``); `title` its report section's title (``{model}``: the model's name) and
    `order` its place in the report (the built-in per-model analyses add 1 for a model of aligned
    faces, so that its section follows the image model's); `mem_mb` and `runtime` (minutes) the least
    its job asks a cluster for (a per-model analysis asks more for more frames: impressions/cluster.py);
    `rule` its rule (default ``interpret_<name>``, the generated one for the model scope); `doc` one
    line, the rule's docstring.
    """

    name: str
    function: str
    scope: str
    models: tuple[str, ...]
    files: Mapping[str, str]
    title: str
    order: int
    options: tuple[str, ...] = ()
    settings: Mapping = field(default_factory=_empty)
    context: tuple[str, ...] = ()
    splits: tuple[str, ...] | None = None
    model_files: Mapping[str, str] = field(default_factory=_empty)
    mem_mb: int = 8000
    runtime: int = 60
    rule: str = ""
    doc: str = ""

    def __post_init__(self):
        if self.scope not in SCOPES:
            raise ValueError(f"analysis {self.name}: scope must be one of {SCOPES}, not {self.scope!r}")
        allowed = PER_MODEL_SETS if self.scope == "model" else MODEL_SETS
        unknown = [s for s in self.models if s not in allowed]
        if unknown or not self.models:
            raise ValueError(
                f"analysis {self.name}: models must name some of {allowed} ({self.scope} scope), "
                f"not {list(self.models)}"
            )
        if "section" not in self.files:
            raise ValueError(f"analysis {self.name}: its files need a section (section.json)")
        if self.model_files and self.scope == "model":
            raise ValueError(f"analysis {self.name}: model_files are for workflow-wide analyses")
        bad = [k for k in self.context if k not in CONTEXT]
        if bad:
            raise ValueError(f"analysis {self.name}: unknown context {bad}; known: {CONTEXT}")
        if ":" not in self.function:
            raise ValueError(f"analysis {self.name}: function must be 'module:function': {self.function!r}")
        for name, value in (("models", self.models), ("options", self.options), ("context", self.context)):
            object.__setattr__(self, name, tuple(value))
        for name in ("files", "settings", "model_files"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))
        if self.splits is not None:
            object.__setattr__(self, "splits", tuple(self.splits))
        object.__setattr__(self, "rule", self.rule or f"interpret_{self.name}")

    @property
    def reads(self) -> tuple[str, ...]:
        """Every setting its function is given: its options, the keys of its section, its context."""
        return self.options + tuple(self.settings) + self.context

    def job_options(self, interpret: Mapping, context: Mapping) -> dict:
        """The settings its job passes on (the rule's ``params.options``, before where the clips are):
        `COMMON_OPTIONS` (model scope) and `options` from the ``interpret`` config section, `settings`
        from ``interpret.<name>`` (else their defaults), then `context` from the workflow's values."""
        section = interpret.get(self.name) or {}
        keys = (COMMON_OPTIONS if self.scope == "model" else ()) + self.options
        return {
            **{k: interpret[k] for k in keys if k in interpret},
            **{k: section.get(k, default) for k, default in self.settings.items()},
            **{k: context[k] for k in self.context},
        }

    def arguments(self, options: Mapping) -> dict:
        """The keyword arguments of its function: the settings it reads that `options` holds."""
        return {k: options[k] for k in self.reads if k in options}


_C = "impressions.explain.cam_analyses"
_U = "impressions.explain.unit_analyses"
_A = "impressions.explain.au_analyses"

ANALYSES: dict[str, Analysis] = {
    a.name: a
    for a in (
        Analysis(
            name="cam", function=f"{_C}:cam_analysis", scope="model", models=("explained", "guided"),
            files={
                "section": "section.json",
                "overlays": "cam_overlays.png",  # CAM per trait on the top-K clips
                "compare": "cam_vs_gradcam.png",
                "gradcam": "cam_vs_gradcam.csv",  # Pearson r of CAM and Grad-CAM per trait
            },
            options=("top_k",), title="Class activation maps: {model}", order=20, mem_mb=8000,
            doc="Class activation maps per trait, Grad-CAM, and the share of CAM regions on the face.",
        ),
        Analysis(
            name="units", function=f"{_U}:units_analysis", scope="model", models=("explained",),
            files={
                "section": "section.json",
                "units": "units.parquet",  # per unit: peak value, mass per face part, detected part
                "counts": "detector_counts.csv",  # detectors per layer and part
                "chance": "detector_chance.csv",  # per layer and part: chance share, detectors, lift
                "detector_figure": "detector_lift.png",
                "emergence": "au_emergence.csv",  # per level (frame, clip) and AU: best unit, I_max, p
                "emergence_figure": "au_emergence.png",
                "top_units": "top_units.png",
                "histograms": "peak_histograms.png",
                **{f"gallery_{part}": f"gallery_{part}.png" for part in FACE_PARTS},
            },
            options=("unit_layers", "unit_top", "detector_threshold", "au_top_n", "detector_margin",
                     "au_top_clips"),
            title="Units as face-part and Action-Unit detectors: {model}", order=30, mem_mb=16000,
            doc="Units of the last conv layers as face-part detectors, and Action-Unit emergence.",
        ),
        Analysis(
            name="au_maps", function=f"{_A}:au_map_analysis", scope="model", models=("explained", "guided"),
            files={
                "section": "section.json",
                "correlation": "cam_au_correlation.csv",  # per trait: mean Pearson r of CAM and AU map
                "frames": "cam_au_frames.parquet",  # per frame
                "examples": "au_map_examples.png",
            },
            options=("au_map",), title="AU-codebook maps against CAM: {model}", order=40, mem_mb=8000,
            doc="AU-codebook maps from landmarks and emotions, against each trait's CAM.",
        ),
        Analysis(
            # Ventura et al.'s face-overlap test, on a GAP (cam head) model, test frames
            name="cam_overlap", function=f"{_C}:cam_overlap_analysis", scope="model", models=("cam_overlap",),
            files={
                "section": "section.json",
                "regions": "cam_regions.parquet",  # per CAM region: area, largest, overlap per box scale
                "overlap": "cam_face_overlap.csv",  # share on the face per rule, variant, box scale, trait
                "comparison": "published_comparison.csv",  # measured shares beside the published 72.8%
                "histogram": "overlap_histogram.png",
                "scales": "box_scale_sensitivity.png",
            },
            options=("cam_threshold", "face_overlap"),
            settings=MappingProxyType({"box_scales": list(BOX_SCALES), "region_rule": REGION_RULES[0]}),
            context=("dataset",),
            splits=("test",), title="CAM regions on the face (Ventura et al. 2017): {model}", order=25,
            mem_mb=8000,
            doc="Ventura et al.'s share of CAM regions on the face, as published: GAP model, test frames "
            "only.",
        ),
        Analysis(
            # ATT-COS reads the test split's frames only (`splits`), whatever interpret.splits says
            name="au_guidance", function=f"{_A}:guidance_effect", scope="workflow", models=("guided",),
            files={"section": "section.json", "table": "au_guidance.csv"}, options=("au_map", "max_frames"),
            splits=("test",), title="AU guidance: its effect on accuracy and on where the model looks",
            order=45, mem_mb=8000, runtime=30, rule="au_guidance_effect",
            doc="Accuracy, CAM-AU correlation and cosine, and ATT-COS of each AU-guided model against its "
            "unguided twin, with paired intervals, on test clips only.",
        ),
        Analysis(
            name="manifold", function="impressions.explain.interpret:manifold_analysis", scope="workflow",
            models=("manifold",),
            files={"section": "section.json", "table": "trustworthiness.csv",
                   "coordinates": "coordinates.parquet"},
            model_files={"figure_{model}": "{model}.png"},
            settings=MappingProxyType({"method": "tsne", "perplexity": 30.0, "neighbors": 5,
                                       "splits": ["test"]}),
            title="Manifold view of the learned features", order=60, mem_mb=8000,
            doc="t-SNE of each model's per-clip penultimate features, with trustworthiness.",
        ),
        Analysis(
            # the sweep reads the test split's frames only (`splits`), whatever interpret.splits says
            name="au_guidance_sweep", function="impressions.explain.guidance_sweep:sweep_analysis",
            scope="workflow", models=("sweep",),
            files={"section": "section.json", "table": "au_guidance_sweep.csv",
                   "figure": "au_guidance_sweep.png"},
            options=("max_frames", "au_map"), splits=("test",), title="AU guidance weight sweep", order=46,
            mem_mb=8000,
            rule="au_guidance_sweep",
            doc="Accuracy and CAM-AU correlation per AU-guidance weight, and the paper's claim checked.",
        ),
    )
}  # fmt: skip
"""Every analysis, in the order its rules are made and its sections listed for the report (which
orders them by `Analysis.order`)."""


def get(name: str) -> Analysis:
    """The analysis `name`, or a KeyError listing the known ones."""
    try:
        return ANALYSES[name]
    except KeyError:
        raise KeyError(f"unknown analysis {name!r}; known: {sorted(ANALYSES)}") from None


def names(**where) -> list[str]:
    """Analysis names whose attributes equal `where` (e.g. ``names(scope="model")``), in registry order."""
    return [a.name for a in ANALYSES.values() if all(getattr(a, k) == v for k, v in where.items())]


def function(name: str) -> Callable:
    """The function computing analysis `name` (imported now: it may import torch)."""
    module, _, attribute = get(name).function.partition(":")
    return getattr(importlib.import_module(module), attribute)


def check_config(config: Mapping) -> None:
    """Every sub-section of the ``interpret`` config section names a registered analysis.

    A sub-section holds the settings of the analysis of that name; the config schema admits any
    sub-section so that a new analysis needs no schema edit, and this check stops a misspelt one
    before any job runs."""
    interpret = config.get("interpret") or {}
    unknown = [k for k, v in interpret.items() if isinstance(v, Mapping) and k not in ANALYSES]
    if unknown:
        raise ValueError(
            f"interpret: {unknown} name no analysis (impressions/explain/analyses.py); a sub-section of "
            f"interpret holds one analysis's settings; known: {sorted(ANALYSES)}"
        )


EXTRA_ANALYSES = "IMPRESSIONS_EXTRA_ANALYSES"
"""Environment variable naming modules with more `Analysis` entries (see the module docstring)."""


plugins.add_entries(ANALYSES, EXTRA_ANALYSES, "ANALYSES", "analysis")
