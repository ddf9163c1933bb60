"""One home for the preprocessing defaults, the config schema: config.yaml repeats none of them, and
the package (Settings, predict) reads them from the schema exactly as the workflow's validation fills
them in."""

import copy
import dataclasses
from pathlib import Path

import pytest
import yaml

from impressions import predict
from impressions.data import defaults, preprocess
from impressions.layout import PREPROCESSING_SECTIONS

REPO = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())
SCHEMA = yaml.safe_load((REPO / "impressions" / "config.schema.yaml").read_text())


def validated(config):
    """`config` as the Snakefile's `validate(config, schema)` leaves it (snakemake fills in defaults)."""
    from snakemake.utils import validate

    config = copy.deepcopy(config)
    validate(config, str(REPO / "impressions" / "config.schema.yaml"))
    return config


def test_config_yaml_repeats_no_preprocessing_default():
    for section in PREPROCESSING_SECTIONS:
        assert CONFIG[section] == {}, f"config.yaml `{section}`: its defaults live in the schema"


def _schema_defaults(properties: dict) -> dict:
    """Each key's `default`, an object's own defaults filled in below it (expressions.openface)."""
    out = {}
    for key, value in properties.items():
        if "default" in value:
            out[key] = copy.deepcopy(value["default"])
            if isinstance(out[key], dict) and "properties" in value:
                out[key] = {**_schema_defaults(value["properties"]), **out[key]}
    return out


def test_the_defaults_are_the_schemas():
    for section in PREPROCESSING_SECTIONS:
        properties = SCHEMA["properties"][section]["properties"]
        assert defaults.PREPROCESSING[section] == _schema_defaults(properties)
        # every key has one but audio.max_seconds, whose absence means 20 s (audio.window_seconds)
        assert set(properties) - set(defaults.PREPROCESSING[section]) <= {"max_seconds"}


@pytest.mark.parametrize(
    "config",
    [
        CONFIG,
        {**CONFIG, "frames": {"storage": "npy"}, "audio": {"seconds": None, "max_seconds": 20.0}},
        {
            **CONFIG,
            "faces": {"identity": True, "upsample": 1},
            "models": {**CONFIG["models"], "split": "identity"},
        },
    ],
    ids=["config.yaml", "overrides", "models"],
)
def test_fill_sets_what_validate_sets(config):
    want = validated(config)
    got = defaults.fill(copy.deepcopy(config))
    assert repr(got) == repr(want)  # the same values, types and key order (params compare reprs)
    assert {s: want[s] for s in PREPROCESSING_SECTIONS} != {s: config[s] for s in PREPROCESSING_SECTIONS}
    if config is CONFIG:
        assert {s: want[s] for s in PREPROCESSING_SECTIONS} == defaults.PREPROCESSING


def test_preprocessing_is_a_copy():
    copied = defaults.preprocessing()
    copied["frames"]["per_clip"] = 99
    assert defaults.PREPROCESSING["frames"]["per_clip"] != 99
    assert defaults.fill({})["frames"] is not defaults.fill({})["frames"]


def test_settings_defaults_are_those_of_the_config():
    config = validated(CONFIG)
    # identity is the one exception: the config's `auto` depends on models.split (wants_identity)
    expected = dataclasses.replace(preprocess.Settings(), identity=preprocess.wants_identity(config))
    assert expected == preprocess.Settings.from_config(defaults.PREPROCESSING)
    assert expected == preprocess.Settings.from_config(config)
    # every field of Settings is set by from_config (none keeps a default of its own by accident)
    changed = preprocess.Settings.from_config(
        {"frames": {"per_clip": 3, "size": 32, "max_side": 100, "storage": "npy", "jpeg_quality": 75},
         "faces": {"upsample": 1, "min_score": 0.5, "size": 64, "padding": 0.1, "identity": False,
                   "search": "tracked", "full_every": 3, "window_face": 120},
         "audio": {"seconds": None, "sample_rate": 8000, "max_seconds": 9.0}}
    )  # fmt: skip
    same = [
        f.name
        for f in dataclasses.fields(changed)
        if getattr(changed, f.name) == getattr(preprocess.Settings(), f.name)
    ]
    assert same == []


def test_predict_uses_the_same_defaults():
    assert predict.DEFAULT_PREPROCESSING == defaults.PREPROCESSING
    assert predict.DEFAULT_PREPROCESSING["frames"] is not defaults.PREPROCESSING["frames"]  # a copy
