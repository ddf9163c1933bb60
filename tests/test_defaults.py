"""One source for the preprocessing defaults: config.yaml, Settings and predict must agree with it."""

import dataclasses
from pathlib import Path

import yaml

from impressions import predict
from impressions.data import defaults, preprocess

CONFIG = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())


def test_config_yaml_ships_the_package_defaults():
    for section, values in defaults.PREPROCESSING.items():
        assert CONFIG[section] == values, f"config.yaml `{section}` differs from impressions/data/defaults.py"


def test_settings_defaults_are_those_of_the_config():
    # identity is the one exception: the config's `auto` depends on models.split (wants_identity)
    expected = dataclasses.replace(preprocess.Settings(), identity=preprocess.wants_identity(CONFIG))
    assert expected == preprocess.Settings.from_config(defaults.PREPROCESSING)
    assert expected == preprocess.Settings.from_config(CONFIG)
    # every field of Settings is set by from_config (none keeps a default of its own by accident)
    changed = preprocess.Settings.from_config(
        {"frames": {"per_clip": 3, "size": 32, "max_side": 100, "storage": "npy", "jpeg_quality": 75},
         "faces": {"upsample": 1, "min_score": 0.5, "size": 64, "padding": 0.1, "identity": False},
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
