"""The resolved workflow configuration and where each value comes from (`impressions config show`).

The workflow resolves its config in this order (the Snakefile): `config.yaml`, then each
`--configfile` in order, merged key by key (snakemake's `update_config`: a mapping merges into the
mapping before it, anything else replaces), then nested strings typed by the schema
(`config_types.coerce`), then the schema's `default:`s filled in where a key is missing
(`validate`, mirrored by `data.defaults.fill`). `resolve` does the same, with `merge` (the package
imports no Snakemake) and the same coerce and fill code, and records each leaf's source: the file
that set it or ``schema default``.

Decision: a preset (experiments/*.yaml) says everything. `config.yaml` is the demo's config (small
networks, few epochs, sized for a CPU); a preset layered on it must not take any result-shaping value
from it, nor leave one to a builder's or `training.settings.Settings`' default in code that no
config file shows. So each preset sets every result-shaping key (`result_shaping`) itself, with the
paper's value or one marked [NF]; `inherited` lists what a config leaves to the demo or to code,
tests/test_presets.py holds every preset to it, and the Snakefile warns when an experiment config
(one with `experiment.name`) inherits any (`inherited_warning`). We chose this over moving the demo
settings into a demo preset: `config.yaml` must still run the demo with no flags, and a builder
default would leak either way. `experiments/demo-scale.yaml` layered after a preset still shrinks it
on purpose.

Result-shaping keys are derived from the schema, so a new key is covered without an edit here: every
key of the preprocessing sections and of the `models` section of each family the config trains, and
the `models` keys that hold no family, minus `RUN_ONLY` (how a run is executed) and keys that do not
apply to the config (`applies`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from impressions import config_types
from impressions.data import defaults
from impressions.layout import PREPROCESSING_SECTIONS
from impressions.models import registry, variants

BASE = Path(__file__).resolve().parents[1] / "config.yaml"
"""The workflow's default (demo) config, beside the Snakefile."""

SCHEMA_DEFAULT = "schema default"

RUN_ONLY = frozenset({
    "models.seeds", "models.device", "models.amp", "models.num_workers",
    "models.threads", "models.gpus", "models.bootstrap", "expressions.device", "expressions.batch_size",
    "eval_batch_size",
})  # fmt: skip
"""Keys that change how a run executes, not its results (a bare name: that key of every family)."""


@dataclass
class Resolved:
    """A resolved config and, per leaf (a dotted path), the file it came from or ``schema default``."""

    config: dict
    sources: dict[str, str]


def merge(config: dict, overlay: Mapping) -> dict:
    """`overlay` merged into `config` in place as snakemake merges config files; returns it."""
    for key, value in overlay.items():
        if isinstance(value, Mapping):
            below = config.get(key)
            config[key] = merge(below if isinstance(below, dict) else {}, value)
        else:
            config[key] = copy.deepcopy(value)
    return config


def leaves(config: Mapping, prefix: str = "") -> dict[str, object]:
    """Every leaf of a nested mapping by dotted path (an empty mapping is a leaf)."""
    out = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(leaves(value, path + "."))
        else:
            out[path] = value
    return out


def _load(path: Path) -> dict:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(path.read_text(), Loader=loader) or {}


def resolve(files: Sequence[str | Path] = (), base: str | Path = BASE) -> Resolved:
    """The config the workflow runs with `--configfile files...`, with each leaf's source."""
    layers = [(str(name), _load(Path(name))) for name in (base, *files)]
    config: dict = {}
    for _, layer in layers:
        merge(config, layer)
    schema = defaults.schema()
    config_types.coerce(config, schema)
    defaults.fill(config, schema)
    given = [(name, set(leaves(layer))) for name, layer in layers]
    sources = {}
    for path in leaves(config):
        setting = [name for name, keys in given if path in keys]
        sources[path] = setting[-1] if setting else SCHEMA_DEFAULT
    return Resolved(config, sources)


def _get(config: Mapping, path: str, missing=None):
    node = config
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return missing
        node = node[part]
    return node


def trained_families(config: Mapping) -> list[str]:
    """The families the config lists and the ones they fuse or average (their `inputs`, the registry's
    defaults where the config gives none: `Family.settings`), in that order."""
    models = config.get("models") or {}
    out: list[str] = []
    todo = list(models.get("families") or [])
    while todo:
        family = todo.pop(0)
        if family not in out:
            out.append(family)
            spec = registry.FAMILIES.get(family)
            settings = spec.settings(models.get(family)) if spec else models.get(family) or {}
            todo += list(settings.get("inputs") or [])
    return out


def _guided(config: Mapping) -> set[str]:
    """Families trained with the AU-guidance term: their AU-guided twins and the weight sweep's."""
    guidance = (config.get("interpret") or {}).get("au_guidance") or {}
    out = set(guidance.get("models") or []) if guidance.get("weight", 0) > 0 else set()
    sweep = variants.sweep_family(config)
    return out | ({sweep} if sweep else set())


def run_only(path: str) -> bool:
    """Whether a key changes how a run executes, not its results (`RUN_ONLY`)."""
    parts = path.split(".")
    return parts[-1] in RUN_ONLY or any(".".join(parts[:i]) in RUN_ONLY for i in range(1, len(parts) + 1))


def applies(path: str, config: Mapping) -> bool:
    """Whether a schema key shapes this config's results (some only apply with another setting)."""
    section, _, key = path.rpartition(".")
    family = section.removeprefix("models.")
    if run_only(path):
        return False
    if path == "audio.max_seconds":  # the whole-clip window only
        return _get(config, "audio.seconds", 5.0) is None
    if path in ("faces.full_every", "faces.window_face"):  # the tracked search's only
        return _get(config, "faces.search") == "tracked"
    if key in ("momentum", "dampening"):  # torch SGD's; AdamW has neither
        return _get(config, f"{section}.optimizer") == "sgd"
    if key in ("lr_step_epochs", "lr_gamma"):
        return _get(config, f"{section}.lr_schedule") == "step"
    if key == "lr_decay":
        return _get(config, f"{section}.lr_schedule") == "inverse_time"
    if family in registry.FAMILIES and registry.get(family).cam:
        if key == "width":  # channels of the small backbone only
            return _get(config, f"{section}.backbone") == "small"
        if key == "normalize":  # the DAN heads' L2 normalisation; cam pools without it
            return _get(config, f"{section}.head") != "cam"
        if key == "au_guidance_weight":  # a twin's weight is interpret.au_guidance's
            return False
        if key == "au_guidance_scale":
            return family in _guided(config)
        if key in ("au_guidance_layer", "au_map"):  # a twin's are interpret.au_guidance's and interpret's
            return (_get(config, f"{section}.au_guidance_weight", 0) or 0) > 0
    return True


def result_shaping(config: Mapping) -> list[str]:
    """The dotted keys that shape this config's results (see the module docstring)."""
    props = defaults.schema()["properties"]
    paths = [f"{s}.{k}" for s in PREPROCESSING_SECTIONS for k in props[s]["properties"]]
    models = props["models"]["properties"]
    paths += [f"models.{k}" for k in models if k not in registry.FAMILIES]
    for family in trained_families(config):
        paths += [f"models.{family}.{k}" for k in (models.get(family) or {}).get("properties", {})]
    return [p for p in paths if applies(p, config)]


def inherited(resolved: Resolved, base: str | Path = BASE) -> dict[str, str]:
    """Result-shaping keys left to the demo config (`base`) or to code (no file sets them): path ->
    ``config.yaml`` or ``not set``."""
    out = {}
    for path in result_shaping(resolved.config):
        source = resolved.sources.get(path)
        if source is None and _get(resolved.config, path, missing=KeyError) is KeyError:
            out[path] = "not set"
        elif source == str(base):
            out[path] = Path(base).name
    return out


def show(resolved: Resolved, base: str | Path = BASE) -> str:
    """One line per leaf, `key: value  # source`; the sections of families the config does not train
    are named, not listed; then the result-shaping keys no file sets."""

    def flow(value) -> str:
        return yaml.safe_dump({"v": value}, default_flow_style=True, width=10**6).strip()[4:-1]

    config, label = resolved.config, {str(base): Path(base).name}
    trained, untrained, lines = set(trained_families(config)), [], []
    for path, value in leaves(config).items():
        parts = path.split(".")
        family = parts[1] if parts[0] == "models" and len(parts) > 1 else None
        if family in registry.FAMILIES and family not in trained:
            untrained += [family] if family not in untrained else []
            continue
        note = " (run setting)" if run_only(path) else ""
        note = note or ("" if family is None or applies(path, config) else " (does not apply here)")
        lines.append(
            f"{path}: {flow(value)}  # {label.get(resolved.sources[path], resolved.sources[path])}{note}"
        )
    unset = [p for p, why in inherited(resolved, base).items() if why == "not set"]
    lines += [f"{p}: -  # not set: the code's default (a builder's or training.settings')" for p in unset]
    if untrained:
        lines.append(f"# not trained by this config (settings unused): models.{', models.'.join(untrained)}")
    return "\n".join(lines)


def inherited_warning(config: Mapping, files: Sequence[str | Path], base: str | Path = BASE) -> str:
    """For an experiment config (`experiment.name` set), a warning naming the result-shaping keys it
    leaves to the demo config or to code; '' for none or another config. `config` is the one the
    workflow resolved (a `--config` value that changed a key is not reported)."""
    if not (config.get("experiment") or {}).get("name"):
        return ""
    resolved = resolve(files, base)
    found = [
        f"{path} ({why})"
        for path, why in inherited(resolved, base).items()
        if _get(config, path, missing=KeyError) == _get(resolved.config, path, missing=KeyError)
    ]
    if not found:
        return ""
    return (
        f"experiment {config['experiment']['name']!r} takes result-shaping settings from the demo config "
        "or from code; set them in the experiment's file (`impressions config show` lists every source):\n  "
        + "\n  ".join(found)
    )
