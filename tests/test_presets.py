"""Every preset (experiments/*.yaml) says everything: no result-shaping key comes from the demo config
(config.yaml) or from a default in code (impressions/config_sources.py says which keys and why)."""

import pytest
import yaml
from snakemake.utils import update_config
from workflow import REPO

from impressions import config_sources

PRESETS = sorted(p.name for p in (REPO / "experiments").glob("*.yaml") if p.stem != "demo-scale")


@pytest.mark.parametrize("name", PRESETS)
def test_a_preset_takes_no_result_shaping_value_from_the_demo_or_from_code(name):
    resolved = config_sources.resolve([REPO / "experiments" / name])
    assert config_sources.inherited(resolved) == {}, "set these in the preset (paper value or [NF])"


def test_the_check_finds_what_the_demo_config_fills_in(tmp_path):
    # A preset that trains the face model and sets only its backbone takes the rest from config.yaml.
    preset = tmp_path / "partial.yaml"
    preset.write_text("models: {families: [face], seed: 1, split: official, face: {backbone: vgg16}}\n")
    found = config_sources.inherited(config_sources.resolve([preset]))
    assert found["models.face.patience"] == "config.yaml"
    assert found["models.face.dropout"] == "not set"
    assert "models.face.backbone" not in found and "models.seed" not in found
    assert "models.face.width" not in found  # only the small backbone has a width
    assert not any(p.startswith("models.audio.") for p in found)  # audio is not trained


def test_result_shaping_keys_come_from_the_schema(tmp_path):
    sgd = {"optimizer": "sgd", "lr_schedule": "step"}
    config = {"models": {"families": ["fusion"], "fusion": {"inputs": ["audio"]}, "audio": sgd},
              "audio": {"seconds": None}}  # fmt: skip
    keys = config_sources.result_shaping(config)
    schema = config_sources.defaults.schema()["properties"]
    for key in schema["models"]["properties"]["audio"]["properties"]:  # a fused family's, every one
        assert (f"models.audio.{key}" in keys) == (key not in ("eval_batch_size", "lr_decay")), key
    # the optimiser's and the schedule's own settings count only where they apply
    adamw = config_sources.result_shaping({**config, "models": {**config["models"], "audio": {}}})
    assert "models.audio.optimizer" in adamw and not {"models.audio.momentum", "models.audio.lr_gamma"} & set(
        adamw
    )
    assert {"frames.per_clip", "faces.size", "audio.sample_rate", "audio.max_seconds"} <= set(keys)
    assert "models.seed" in keys and "models.device" not in keys
    assert not any(k.startswith("models.image.") for k in keys)


def test_resolve_merges_like_snakemake_and_names_each_source(tmp_path):
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("models: {face: {lr: 0.5, epochs: 2}}\nframes: {per_clip: 3}\naudio: {seconds: 4}\n")
    second.write_text("models: {face: {lr: 0.25}}\nframes: {}\naudio: {seconds: null}\n")
    resolved = config_sources.resolve([first, second])
    expected = yaml.safe_load((REPO / "config.yaml").read_text())
    for layer in (first, second):
        update_config(expected, yaml.safe_load(layer.read_text()))
    assert resolved.config == config_sources.defaults.fill(expected)  # then the schema's defaults
    assert resolved.config["frames"] == {**config_sources.defaults.PREPROCESSING["frames"], "per_clip": 3}
    src = resolved.sources
    assert src["models.face.lr"] == str(second) and src["models.face.epochs"] == str(first)
    assert src["frames.per_clip"] == str(first) and src["frames.size"] == config_sources.SCHEMA_DEFAULT
    assert src["audio.seconds"] == str(second) and src["models.seed"] == str(config_sources.BASE)


def test_the_workflow_warns_about_an_experiment_that_inherits(tmp_path):
    preset = tmp_path / "partial.yaml"
    preset.write_text("experiment: {name: partial}\nmodels: {families: [face], face: {backbone: small}}\n")
    config = config_sources.resolve([preset]).config
    warning = config_sources.inherited_warning(config, [preset])
    assert "'partial'" in warning and "models.face.lr (config.yaml)" in warning and "models.seed " in warning
    config["models"]["seed"] = 3  # as --config models='{seed: 3}' sets it: not inherited
    assert "models.seed " not in config_sources.inherited_warning(config, [preset])
    del config["experiment"]["name"]  # the default run is no experiment: nothing to say
    assert config_sources.inherited_warning(config, [preset]) == ""
    hernandez = REPO / "experiments" / "hernandez_thesis.yaml"
    assert config_sources.inherited_warning(config_sources.resolve([hernandez]).config, [hernandez]) == ""


def test_a_fusion_trains_its_default_members():
    """A fusion listed without `inputs` fuses the registry's default members: their keys count too."""
    trained = config_sources.trained_families({"models": {"families": ["fusion"]}})
    assert trained == ["fusion", "image", "face", "audio"]
