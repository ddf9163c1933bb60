"""The preprocessing defaults, read from their one home: the config schema.

Decision: every default of the `frames`, `faces`, `audio` and `expressions` sections is a `default:`
key in `impressions/config.schema.yaml`, beside the key's type, range and description. The workflow's
`validate(config, schema)` fills in each default the config files and `--config` leave out (snakemake's
`set_default`, on by default), so `config.yaml` holds these sections empty (`frames: {}`), with a
comment pointing at the schema, and a user writes there only what they change. This module reads the
same defaults from the schema (package data), so that code that runs outside the workflow agrees
with it: the per-clip `preprocess.Settings` takes its defaults from here, and `impressions predict`
uses them for a checkpoint that carries no preprocessing settings (trained outside the workflow).

`fill` applies a schema's defaults to a config exactly as snakemake's `validate` does (a default is
set where its key is missing, then the object below it is filled), so a config that lists a section's
keys in another order, or some of them, resolves to the same dict, key order included.
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from impressions.layout import PREPROCESSING_SECTIONS

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "config.schema.yaml"
"""The workflow's config schema (`validate` in the Snakefile), shipped as package data."""


def schema() -> dict:
    """The config schema, parsed (libyaml's loader when PyYAML has it: a few ms, not 60)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(SCHEMA_PATH.read_text(), Loader=loader)


def fill(config: dict, config_schema: dict | None = None) -> dict:
    """`config` with the schema's defaults set in place where its keys are missing, as `validate` sets
    them (each default a copy); returns it."""
    config_schema = schema() if config_schema is None else config_schema
    for key, sub in config_schema.get("properties", {}).items():
        if "default" in sub:
            config.setdefault(key, copy.deepcopy(sub["default"]))
        if isinstance(config.get(key), dict):
            fill(config[key], sub)
    return config


_DEFAULTS = fill({}, schema())
PREPROCESSING = {section: _DEFAULTS[section] for section in PREPROCESSING_SECTIONS}
"""Config sections `frames`, `faces`, `audio`, `voice` and `expressions` with the schema's defaults."""


def preprocessing() -> dict:
    """A deep copy of `PREPROCESSING`, safe to change."""
    return copy.deepcopy(PREPROCESSING)
