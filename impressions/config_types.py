"""Command-line config values typed by the config schema.

Snakemake parses a top-level `--config key=value` as int, float or bool, but a nested value such as
`--config frames='{per_clip: 20}'` with YAML's BaseLoader, so every scalar inside arrives as a string
(`'20'`) and schema validation rejects it. `coerce` walks the config beside its JSON schema and turns
such strings into the type the schema asks for, where the string reads as that type in YAML; anything
else is left for validation to report.
"""

from __future__ import annotations

from pathlib import Path

import yaml


def _types(schema: dict) -> list[str]:
    kind = schema.get("type", [])
    return [kind] if isinstance(kind, str) else list(kind)


def _scalar(value: str, schema: dict):
    """The YAML reading of `value` when its type is one the schema allows, else `value` unchanged."""
    allowed = _types(schema)
    if not allowed or ("string" in allowed and value in schema.get("enum", [value])):
        return value
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    if isinstance(parsed, bool):
        ok = "boolean" in allowed
    elif isinstance(parsed, int):
        ok = "integer" in allowed or "number" in allowed
    elif isinstance(parsed, float):
        ok = "number" in allowed or ("integer" in allowed and parsed.is_integer())
        parsed = int(parsed) if ok and "number" not in allowed else parsed
    else:
        ok = parsed is None and "null" in allowed
    return parsed if ok else value


def coerce(value, schema: dict):
    """`value` with every string the schema types as number, integer, boolean or null converted."""
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                value[key] = coerce(item, sub)
        return value
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [coerce(item, schema["items"]) for item in value]
    if isinstance(value, str):
        return _scalar(value, schema)
    return value


def coerce_file(config: dict, schema_path: str | Path) -> dict:
    """Coerce `config` in place by the YAML/JSON schema at `schema_path`; returns it."""
    # libyaml's loader when PyYAML has it: the pure-Python one costs 60 ms of every `snakemake` start
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    schema = yaml.load(Path(schema_path).read_text(), Loader=loader)
    return coerce(config, schema)
