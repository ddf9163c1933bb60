"""Every model family, one entry each: what it reads, how it is built and trained, what it can show.

The workflow's rules, training (`impressions.training.loop`), `impressions predict` and the
interpretation stage read this table instead of naming families. Adding a family is one `Family`
entry in `FAMILIES` plus its builder (a function returning an `nn.Module` that has ``embed`` and
``fc``, see `impressions.models.networks`). A model is a family plus, optionally, a variant (another
seed, AU guidance, the cam head, a sweep weight: `impressions.models.variants`), which needs no entry.

A family can also live outside this file: `IMPRESSIONS_EXTRA_FAMILIES` names modules (comma-separated,
importable from ``PYTHONPATH``), each with a ``FAMILIES`` sequence of `Family` entries, added after the
built-in ones when this module is imported. The variable reaches every process that imports the
registry (the workflow's planning, its training scripts, `impressions predict`), so such a family is
planned, trained, reported and predicted like a built-in one; `tests/test_registry.py` adds a toy
family that way.

This module imports nothing heavy: the rules import it while the workflow is planned. Builders are
named as ``"module:function"`` strings and imported only when a model is built (`build`).

Input kinds (`Family.inputs`), each with the dataset table or array a rule names for it:

- ``frames``: whole frames (``frames.parquet``; per-clip ``frames.tar`` or ``.npy``, image_store);
- ``faces``: aligned face crops (``faces.parquet``; per-clip ``faces.tar``/``.npy``, frames with a face);
- ``waveform`` / ``logfbank``: the audio window or its log filterbank (``audio.parquet`` and
  ``arrays/audio_<kind>.npy``);
- ``au_table``: per-frame AUs and emotions (``expressions.parquet``);
- ``voice_table``: per-clip voice descriptors (``voice.parquet``, columns by ``voice.backend``);
- ``transcript``: per-clip transcripts (``transcripts.parquet``, impressions.data.transcripts);
- ``features``: other families' per-clip penultimate features (``features.npz``, the ``inputs`` setting);
- ``predictions``: other families' clip scores (``predictions.parquet``, the ``inputs`` setting).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from impressions import plugins

INPUT_KINDS = (
    "frames", "faces", "waveform", "logfbank", "au_table", "voice_table", "transcript", "features",
    "predictions",
)  # fmt: skip
"""What a family can read (see the module docstring)."""

TRAINERS = ("samples", "ridge", "fusion", "average", "text")
"""How a family is fitted: a network on per-sample inputs (frames, faces, audio) averaged per clip;
closed-form ridge on one row per clip; a network on other families' per-clip features; nothing
(an equal-weight mean of other families' scores); TF-IDF and closed-form ridge on transcripts
(impressions.training.text)."""
FUSABLE = ("samples", "text")
"""Trainers whose models a fusion may take features from (a fusion's ``inputs``)."""

IMAGE_KINDS = ("frames", "faces")
SAMPLE_KINDS = ("frames", "faces", "waveform", "logfbank")


@dataclass(frozen=True)
class Family:
    """One model family.

    `name` is its config key (``models.families``, ``models.<name>``) and model folder; `builder`
    ``"module:function"`` (None: nothing is fitted, no checkpoint); `kind` the value stored with the
    checkpoint for what one input sample is (``frames`` ... ``au_means``); `gpu` whether its training
    job asks a cluster for GPUs; `cam` whether class activation maps explain it (interpretation, AU
    guidance, the cam twin: `impressions.models.variants`); `seedable` whether `models.seeds` may
    retrain it; `mem_mb` and `runtime` (minutes) the least its training job asks a cluster for (a
    bigger run asks more: impressions/cluster.py); `fixed` settings that always apply (over the
    config's); `defaults` the settings it gets where the config section gives none; `doc` one line for
    the docs and the rule; `extends` the family it adds one input to (the report compares the two on
    the same clips with a paired test).
    """

    name: str
    inputs: tuple[str, ...]
    builder: str | None
    trainer: str
    kind: str
    gpu: bool = False
    cam: bool = False
    seedable: bool = False
    mem_mb: int = 4000
    runtime: int = 30
    fixed: Mapping = field(default_factory=lambda: MappingProxyType({}))
    defaults: Mapping = field(default_factory=lambda: MappingProxyType({}))
    doc: str = ""
    extends: str | None = None

    def __post_init__(self):
        unknown = [k for k in self.inputs if k not in INPUT_KINDS]
        if unknown:
            raise ValueError(f"family {self.name}: unknown input kinds {unknown}; known: {INPUT_KINDS}")
        if self.trainer not in TRAINERS:
            raise ValueError(f"family {self.name}: trainer must be one of {TRAINERS}, not {self.trainer!r}")

    @property
    def sample_kind(self) -> str | None:
        """The per-sample input of a network trained on samples (frames, faces, waveform, logfbank)."""
        return next((k for k in self.inputs if k in SAMPLE_KINDS), None)

    @property
    def composite(self) -> bool:
        """Reads other families' outputs (fusion, late_average)."""
        return "features" in self.inputs or "predictions" in self.inputs

    @property
    def needs_expressions(self) -> bool:
        return "au_table" in self.inputs

    @property
    def face_only(self) -> bool:
        """Every input comes from detected faces (face crops, AUs): with no face, nothing to learn."""
        return bool(self.inputs) and all(k in ("faces", "au_table") for k in self.inputs)

    @property
    def trained(self) -> bool:
        """Has a checkpoint (every family but those that fit nothing)."""
        return self.builder is not None

    def settings(self, configured: Mapping | None) -> dict:
        """The family's settings: `defaults`, then the config section, then `fixed`."""
        return {**self.defaults, **(configured or {}), **self.fixed}


_F = "impressions.models.networks"

FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(name="image", inputs=("frames",), builder=f"{_F}:image", trainer="samples", kind="frames",
               gpu=True, cam=True, seedable=True, mem_mb=8000, runtime=240,
               doc="DAN+ on whole frames (the stored frames of every clip)"),
        Family(name="face", inputs=("faces",), builder=f"{_F}:face", trainer="samples", kind="faces",
               gpu=True, cam=True, seedable=True, mem_mb=8000, runtime=240,
               doc="DAN+ on aligned faces (the stored faces, frames with has_face only)"),
        Family(name="audio", inputs=("waveform",), builder=f"{_F}:audio", trainer="samples", kind="waveform",
               gpu=True, seedable=True, mem_mb=8000, runtime=120, doc="the raw-waveform residual CNN"),
        Family(name="audio_fbank", inputs=("logfbank",), builder=f"{_F}:audio_fbank", trainer="samples",
               kind="logfbank", gpu=True, seedable=True, mem_mb=8000, runtime=120,
               doc="the log-filterbank regressor"),
        Family(name="au_linear", inputs=("au_table",), builder=f"{_F}:au_linear", trainer="ridge",
               kind="au_stats",
               doc="ridge regression on per-clip AU statistics (closed form, CPU, seconds)"),
        Family(name="au_linear_published", inputs=("au_table",), builder=f"{_F}:au_linear_published",
               trainer="ridge", kind="au_means", fixed=MappingProxyType({"alphas": [0.0]}),
               doc="least squares on the 17 per-clip mean AUs (Ventura et al. 2017 fit a linear regressor "
               "on 17 AUs; plain least squares and per-clip means are our reading: the paper names neither)"),
        Family(name="voice_linear", inputs=("voice_table",), builder=f"{_F}:voice_linear", trainer="ridge",
               kind="voice_stats",
               doc="ridge regression on the per-clip voice descriptors: the builtin's 14 or openSMILE's 88 "
               "eGeMAPSv02 functionals (voice.backend; closed form, CPU, seconds)"),
        Family(name="text_linear", inputs=("transcript",), builder=f"{_F}:text_linear", trainer="text",
               kind="transcript",
               defaults=MappingProxyType({"feature_sets": [["word"], ["char"], ["word", "char"]],
                                          "word_ngrams": [1, 2], "char_ngrams": [2, 5], "max_features": 2000,
                                          "min_df": 1}),
               doc="TF-IDF over word and character n-grams into ridge regression on the transcripts "
               "(closed form, CPU, seconds; features and penalty chosen on validation)"),
        Family(name="fusion", inputs=("features",), builder=f"{_F}:fusion", trainer="fusion", kind="features",
               gpu=True, seedable=True, defaults=MappingProxyType({"inputs": ["image", "face", "audio"]}),
               mem_mb=8000, runtime=60, doc="late fusion of the trained models' per-clip features"),
        # The thesis's "+handcrafted" row: age, gender and the 7 emotion confidences only (METHODS 3.3)
        Family(name="fusion_handcrafted", inputs=("features", "au_table"),
               builder=f"{_F}:fusion_handcrafted", trainer="fusion", kind="features+handcrafted", gpu=True,
               seedable=True, defaults=MappingProxyType({"inputs": ["image", "face", "audio"]}),
               mem_mb=8000, runtime=60,
               doc="late fusion of the trained models' per-clip features + age, gender and emotions"),
        # A named extension, not the thesis's: the handcrafted inputs plus the voice table's descriptors
        Family(name="fusion_handcrafted_voice", inputs=("features", "au_table", "voice_table"),
               builder=f"{_F}:fusion_handcrafted", trainer="fusion", kind="features+handcrafted", gpu=True,
               seedable=True, defaults=MappingProxyType({"inputs": ["image", "face", "audio"]}),
               mem_mb=8000, runtime=60,
               doc="fusion_handcrafted plus the per-clip voice descriptors (either voice.backend; an "
               "extension of the thesis)"),
        # Audio + visual + text: the held-out fusion with the transcript model as a fourth member
        Family(name="fusion_text", inputs=("features",), builder=f"{_F}:fusion", trainer="fusion",
               kind="features", gpu=True, seedable=True,
               defaults=MappingProxyType({"inputs": ["image", "face", "audio", "text_linear"]}),
               mem_mb=8000, runtime=60,
               extends="fusion",
               doc="the late fusion with the transcript model (text_linear) a member: audio + visual + text"),
        Family(name="late_average", inputs=("predictions",), builder=None, trainer="average",
               kind="predictions", defaults=MappingProxyType({"inputs": ["image", "face", "audio"]}),
               mem_mb=2000, runtime=10,
               doc="the equal-weight mean of the listed models' clip scores (nothing fitted; "
               "impressions/training/fusion.py)"),
    )
}  # fmt: skip
"""Every model family, in the order tables and `impressions predict` list them (components first)."""


def extended(model: str) -> str | None:
    """The model `model` adds an input to (its family's `extends`, same variant suffix), else None."""
    family = family_of(model)
    base = FAMILIES[family].extends
    return None if base is None else base + model[len(family) :]


def get(name: str) -> Family:
    """The family `name`, or a KeyError listing the known ones."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise KeyError(f"unknown model family {name!r}; known: {sorted(FAMILIES)}") from None


def names(**where) -> list[str]:
    """Family names whose attributes equal `where` (e.g. ``names(cam=True)``), in registry order."""
    return [f.name for f in FAMILIES.values() if all(getattr(f, k) == v for k, v in where.items())]


def with_input(*kinds: str, composite: bool | None = None) -> tuple[str, ...]:
    """Families that read any of input `kinds` (only the composite or non-composite ones when given)."""
    return tuple(
        f.name
        for f in FAMILIES.values()
        if any(k in f.inputs for k in kinds) and composite in (None, f.composite)
    )


def family_of(model: str) -> str:
    """The family a model name belongs to: itself, or the family a suffix (_au_guided, _cam, _seed<k>,
    _w<weight>) was added to."""
    if model in FAMILIES:
        return model
    for name in sorted(FAMILIES, key=len, reverse=True):
        if model.startswith(name + "_"):
            return name
    raise KeyError(f"{model!r} names no model family; known: {sorted(FAMILIES)}")


def builder(name: str):
    """The builder function of family `name` (imported now: it may import torch)."""
    family = get(name)
    if family.builder is None:
        raise ValueError(f"{name}: nothing is fitted, so there is no model to build")
    module, _, function = family.builder.partition(":")
    return getattr(importlib.import_module(module), function)


def build(name: str, **options):
    """A model of family `name` built with the builder's keyword options."""
    return builder(name)(**options)


def check_config(config: Mapping) -> None:
    """Every family the config names exists in the registry and can do what it is named for.

    The config schema leaves family names to this check, so that a new registry entry needs no schema
    edit; a bad name stops the run before any job with the setting, the name and the choices."""
    models = config.get("models") or {}
    interpret = config.get("interpret") or {}
    trained = names_where(lambda f: f.trained)
    checks = [
        ("models.families", models.get("families"), list(FAMILIES)),
        ("models.seeds.families", (models.get("seeds") or {}).get("families"), names(seedable=True)),
        ("interpret.models", interpret.get("models"), names(cam=True)),
        ("interpret.au_guidance.models", (interpret.get("au_guidance") or {}).get("models"), names(cam=True)),
        ("interpret.manifold.models", (interpret.get("manifold") or {}).get("models"), trained),
    ]
    checks += [
        (
            f"models.{f.name}.inputs",
            (models.get(f.name) or {}).get("inputs"),
            names_where(lambda c: c.trainer in FUSABLE),
        )
        for f in FAMILIES.values()
        if "features" in f.inputs
    ]
    problems = [
        f"{setting}: {bad!r} is not one of {allowed}"
        for setting, given, allowed in checks
        for bad in (given or [])
        if bad not in allowed
    ]
    if problems:
        raise ValueError("config names unknown model families (impressions/models/registry.py):\n  "
                         + "\n  ".join(problems))  # fmt: skip


def names_where(test) -> list[str]:
    """Family names for which `test(family)` is true, in registry order."""
    return [f.name for f in FAMILIES.values() if test(f)]


EXTRA_FAMILIES = "IMPRESSIONS_EXTRA_FAMILIES"
"""Environment variable naming modules with more `Family` entries (see the module docstring)."""


plugins.add_entries(FAMILIES, EXTRA_FAMILIES, "FAMILIES", "model family")
