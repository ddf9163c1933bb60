"""Model variants: a model is a family (`impressions.models.registry`) plus, optionally, a variant.

A variant trains a family again with a few settings changed, under the family's name plus a suffix:

- ``<family>_seed<k>``: another seed (``models.seeds``), for the spread across seeds in the report;
- ``<family>_au_guided``: the AU-guidance loss term at ``interpret.au_guidance.weight`` (reads the
  faces and expressions tables for the AU maps);
- ``<family>_cam``: the GAP (``cam``) head, for the published CAM face-overlap test;
- ``<family>_w<weight>``: the AU-guidance term at one weight of ``interpret.au_guidance.sweep`` (its
  files live in the sweep's folder, ``interpret/au_guidance_sweep/w<weight>/``, not ``models/``);
- ``<family>_w<weight>_seed<k>``: the same at another seed, when ``models.seeds`` lists the sweep's
  family (``interpret/au_guidance_sweep/w<weight>_seed<k>/``; `sweep_models` plans them).

The workflow has one training rule for every model (rules/models.smk): its inputs, settings, threads
and resources come from the family's registry entry and the variant's entry here. Like the registry,
this module imports nothing heavy.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from impressions import layout
from impressions.models import registry
from impressions.models.registry import Family

COMMON_KEYS = ("seed", "device", "amp", "num_workers")
"""The `models` settings every training job gets (besides `split` when it is not the official one)."""


@dataclass(frozen=True)
class Variant:
    """One kind of variant.

    `suffix` is a regular expression of what the variant adds to the family's name, its named groups
    the variant's values (the seed, the weight); `template` the same suffix as a format string; `applies`
    which families may have the variant; `overrides` maps (values, config) to the settings it changes,
    ``{"common": {...}, "options": {...}}`` merged over the family's; `tables` dataset tables
    (``tables/<name>.parquet``) the job reads besides the family's inputs, by input name; `folder`
    where its files go under the results folder (``models``: ``models/<model>/``); `doc` one line.
    """

    name: str
    suffix: str
    template: str
    applies: Callable[[Family], bool]
    overrides: Callable[[Mapping[str, str], Mapping], Mapping[str, Mapping]]
    tables: tuple[str, ...] = ()
    folder: str = "models"
    doc: str = ""

    def match(self, model: str, family: str) -> re.Match | None:
        return re.fullmatch(re.escape(family) + self.suffix, model)


def _cam(family: Family) -> bool:
    return family.cam


def _guidance(weight: float, config: Mapping) -> dict:
    """The training settings of an AU-guided variant: the weight, the AU-map shape the analyses use
    (``interpret.au_map``, so both draw the same maps) and the guided layer
    (``interpret.au_guidance.layer``); training's defaults where the config has none."""
    shape = config["interpret"].get("au_map")
    layer = config["interpret"]["au_guidance"].get("layer")
    return {"au_guidance_weight": weight, **({"au_map": shape} if shape is not None else {}),
            **({"au_guidance_layer": layer} if layer is not None else {})}  # fmt: skip


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant(
            name="seed", suffix=r"_seed(?P<seed>\d+)", template="_seed{seed}",
            applies=lambda family: family.seedable,
            overrides=lambda values, config: {"common": {"seed": int(values["seed"])}},
            doc="the family trained again with another seed (models.seeds)",
        ),
        Variant(
            name="au_guided", suffix=re.escape(layout.GUIDED_SUFFIX), template=layout.GUIDED_SUFFIX,
            applies=_cam, tables=("faces", "expressions"),
            overrides=lambda values, config: {
                "options": _guidance(config["interpret"]["au_guidance"]["weight"], config)
            },
            doc="the family trained again with the AU-guidance loss term (interpret.au_guidance)",
        ),
        Variant(
            name="cam", suffix=re.escape(layout.CAM_SUFFIX), template=layout.CAM_SUFFIX, applies=_cam,
            overrides=lambda values, config: {"options": {"head": "cam"}},
            doc="the family trained again with the GAP (cam) head, for the published CAM face-overlap test",
        ),
        Variant(
            name="sweep", suffix=r"_w(?P<weight>[0-9.]+)", template="_w{weight}", applies=_cam,
            tables=("faces", "expressions"), folder="interpret/au_guidance_sweep",
            overrides=lambda values, config: {"options": _guidance(float(values["weight"]), config)},
            doc="the first AU-guided family trained at one weight of interpret.au_guidance.sweep",
        ),
        Variant(
            name="sweep_seed", suffix=r"_w(?P<weight>[0-9.]+)_seed(?P<seed>\d+)",
            template="_w{weight}_seed{seed}",
            applies=_cam, tables=("faces", "expressions"), folder="interpret/au_guidance_sweep",
            overrides=lambda values, config: {
                "common": {"seed": int(values["seed"])}, "options": _guidance(float(values["weight"]), config)
            },
            doc="a sweep weight's model trained again with another seed of models.seeds",
        ),
    )
}  # fmt: skip
"""Every kind of variant, by name."""


@dataclass(frozen=True)
class Model:
    """What a model name stands for: its family, its variant (None: the family itself) and the variant's
    values (e.g. ``{"seed": "2"}``)."""

    name: str
    family: Family
    variant: Variant | None = None
    values: Mapping[str, str] | None = None


def parse(model: str) -> Model:
    """The family and variant a model name stands for, or a KeyError."""
    if model in registry.FAMILIES:
        return Model(model, registry.FAMILIES[model])
    for family in registry.FAMILIES.values():
        for variant in VARIANTS.values():
            if variant.applies(family) and (found := variant.match(model, family.name)):
                return Model(model, family, variant, found.groupdict())
    raise KeyError(
        f"{model!r} is no model family and no variant of one; families: {sorted(registry.FAMILIES)}, "
        f"variants: {[v.template for v in VARIANTS.values()]}"
    )


def name(family: str, variant: str, **values) -> str:
    """The model name of a variant of `family`, e.g. ``name("face", "seed", seed=2)``: ``face_seed2``."""
    spec = VARIANTS[variant]
    out = family + spec.template.format(**values)
    if parse(out).variant is not spec:
        raise ValueError(f"{out}: not a {variant} variant of {family}")
    return out


def constraint(folder: str = "models") -> str:
    """A regular expression matching exactly the names of the models whose files go in `folder`: every
    trained family and each of its variants there (a wildcard constraint of the training rule)."""
    options = []
    for family in registry.FAMILIES.values():
        if not family.trained:
            continue
        if folder == "models":
            options.append(re.escape(family.name))
        options += [
            re.escape(family.name) + re.sub(r"\(\?P<\w+>", "(?:", v.suffix)
            for v in VARIANTS.values()
            if v.folder == folder and v.applies(family)
        ]
    return "|".join(options)


def settings(model: str, config: Mapping) -> dict:
    """What a model's training job passes on to training: ``{"common": ..., "options": ...}``.

    Only settings that change what is trained: a new bootstrap count must not retrain. The preprocessing
    settings stored with a checkpoint come from the config in the training script, so that an audio
    setting does not retrain the face model. `split` is passed only when not the default, so that runs
    made before the setting existed are not retrained (training's default is the official split). A
    variant's overrides are merged over the family's settings (`Family.settings`).
    """
    spec = parse(model)
    models = config["models"]
    common = {k: models[k] for k in COMMON_KEYS}
    if models["split"] != "official":
        common["split"] = models["split"]
    # The registry's defaults under the config's section, as the rules read them (a fusion's default
    # members are the features its job is given: the two must not differ).
    out = {"common": common, "options": spec.family.settings(models.get(spec.family.name))}
    if spec.variant is not None:
        for part, changed in spec.variant.overrides(spec.values, config).items():
            out[part] = out[part] | changed
    return out


def gpu(model: str) -> bool:
    """Whether a model's training job asks a cluster for GPUs (its family's `gpu`)."""
    return parse(model).family.gpu


def tables(model: str) -> tuple[str, ...]:
    """The dataset tables a model's variant reads besides its family's inputs."""
    variant = parse(model).variant
    return variant.tables if variant is not None else ()


def sweep_family(config: Mapping) -> str | None:
    """The family the AU-guidance weight sweep trains: the first of ``interpret.au_guidance.models``
    (None without one, or without sweep weights)."""
    guidance = (config.get("interpret") or {}).get("au_guidance") or {}  # a partial config too
    models = list(guidance.get("models") or [])
    return models[0] if models and guidance.get("sweep") else None


def sweep_seeds(config: Mapping) -> list[int]:
    """The seeds the sweep trains each weight with: ``models.seed``, then the other seeds of
    ``models.seeds.values`` when ``models.seeds.families`` lists the sweep's family (one seed otherwise,
    as before the setting)."""
    models = config["models"]
    seeds = models.get("seeds") or {}
    more = (seeds.get("values") or []) if sweep_family(config) in (seeds.get("families") or []) else []
    return list(dict.fromkeys([int(models["seed"]), *map(int, more)]))


def sweep_models(config: Mapping) -> list[str]:
    """The sweep's models, one per (weight, seed), weights in the config's order, seeds per weight:
    ``<family>_w<weight>`` at ``models.seed``, ``<family>_w<weight>_seed<k>`` at each other seed."""
    family = sweep_family(config)
    if family is None:
        return []
    primary, *others = sweep_seeds(config)
    out = []
    for weight in config["interpret"]["au_guidance"]["sweep"]:
        w = f"{float(weight):g}"
        out.append(name(family, "sweep", weight=w))
        out += [name(family, "sweep_seed", weight=w, seed=k) for k in others]
    return out


def sweep_model(family: str, run: str) -> str:
    """The sweep model of a training job's run wildcard (``<weight>`` or ``<weight>_seed<k>``), the
    inverse of `sweep_folder`; parsed, so a run no variant names is refused."""
    model = f"{family}_w{run}"
    sweep_folder(model)
    return model


def sweep_folder(model: str) -> str:
    """A sweep model's folder under the sweep's (``w<weight>`` or ``w<weight>_seed<k>``): its name
    without the family."""
    spec = parse(model)
    if spec.variant is None or spec.variant.name not in ("sweep", "sweep_seed"):
        raise ValueError(f"{model}: not a model of the AU-guidance sweep")
    return model.removeprefix(spec.family.name + "_")
