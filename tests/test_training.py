import json
from pathlib import Path

import model_data
import numpy as np
import polars as pl
import pytest
import torch
import yaml
from model_data import COMMON, SMALL_CNN, baseline_accuracy, tiny_options, train, val_accuracy

from impressions import schemas
from impressions.models import networks as models
from impressions.schemas import AUS, TRAITS
from impressions.training import loop as training


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return model_data.build(tmp_path_factory.mktemp("results"))


def test_same_seed_same_numbers_on_cpu(data, tmp_path):
    a, _ = train(data, tmp_path / "a", "image", SMALL_CNN)
    b, _ = train(data, tmp_path / "b", "image", SMALL_CNN)
    c, _ = train(data, tmp_path / "c", "image", SMALL_CNN, common={**COMMON, "seed": 1})
    # Worker processes read the memory maps; order and augmentation stay with the main process.
    d, _ = train(data, tmp_path / "d", "image", SMALL_CNN, common={**COMMON, "num_workers": 2})
    history_a, history_b, history_d = (pl.read_csv(o.metrics).drop("seconds") for o in (a, b, d))
    assert history_a.equals(history_b) and history_a.height == 4 and history_a.equals(history_d)
    assert pl.read_parquet(a.predictions).equals(pl.read_parquet(b.predictions))
    assert not pl.read_parquet(a.predictions).equals(pl.read_parquet(c.predictions))


def test_image_model_outputs(data, tmp_path):
    out, summary = train(data, tmp_path, "image", {**SMALL_CNN, "epochs": 12})
    preds = pl.read_parquet(out.predictions)
    assert preds.schema == schemas.polars_schema("predictions")  # the schema `impressions predict` extends
    assert preds.group_by("split").len().sort("split").rows() == [("test", 6), ("val", 6)]
    assert preds["model"].unique().to_list() == ["image"]
    history = pl.read_csv(out.metrics)
    assert {"epoch", "train_loss", "val_loss", "val_mean", "best"} <= set(history.columns)
    # The kept epoch is the best validation epoch, and the written predictions reproduce its accuracy.
    assert summary["selected"]["val_mean"] == pytest.approx(history["val_mean"].max())
    assert val_accuracy(data, out) == pytest.approx(history["val_mean"].max())
    assert out.curve.stat().st_size > 5000 and out.curve.read_bytes()[:4] == b"\x89PNG"
    assert history["train_loss"][-1] < history["train_loss"][0]  # it learns
    with np.load(out.features) as f:
        assert f["features"].shape == (28, 2 * 8 * 4) and f["has_input"].all()  # [GAP, GMP] of 32 maps
    model, ckpt = models.load_checkpoint(out.checkpoint)
    assert ckpt["family"] == "image" and len(ckpt["train_mean"]) == 5


def test_face_model_fills_clips_without_a_face(data, tmp_path):
    out, summary = train(data, tmp_path, "face", SMALL_CNN)
    assert summary["filled_with_train_mean"]["val"] == [model_data.NO_FACE_CLIP]
    clips = pl.read_parquet(data["tables"] / "clips.parquet")
    train_mean = clips.filter(pl.col("split") == "train").select(TRAITS).mean().row(0)
    row = pl.read_parquet(out.predictions).filter(pl.col("clip_id") == model_data.NO_FACE_CLIP)
    assert row.select(TRAITS).row(0) == pytest.approx(train_mean)
    assert json.loads(out.summary.read_text())["samples"]["val"] == 5 * model_data.FRAMES


def test_au_linear_finds_the_cue_and_chooses_alpha_on_validation(data, tmp_path):
    out, summary = train(data, tmp_path, "au_linear", {"alphas": [0.01, 1.0, 1e6]})
    history = pl.read_csv(out.metrics)
    assert history["alpha"].to_list() == [0.01, 1.0, 1e6]
    assert summary["selected"]["alpha"] == history.sort("val_mean")["alpha"][-1]
    # AU12 carries the labels: far better than the train mean; a huge penalty is the train mean.
    assert summary["selected"]["val_mean"] > baseline_accuracy(data) + 0.03
    assert history.filter(pl.col("alpha") == 1e6)["val_mean"][0] == pytest.approx(
        baseline_accuracy(data), abs=0.003
    )
    assert summary["filled_with_train_mean"]["val"] == [model_data.NO_FACE_CLIP]
    assert len(summary["feature_names"]) == 51


def test_audio_models_and_fusion(data, tmp_path):
    audio, _ = train(data, tmp_path, "audio", tiny_options("audio", epochs=3, batch_size=8))
    fbank, s = train(
        data, tmp_path, "audio_fbank", {"time_bins": 5, "epochs": 30, "batch_size": 8, "lr": 0.05}
    )
    assert s["options"]["n_filters"] == 4 and s["options"]["time_bins"] == 5
    # The log filterbank level is the cue: the linear regressor learns it.
    assert s["selected"]["val_mean"] > baseline_accuracy(data) + 0.02
    image, _ = train(data, tmp_path, "image", SMALL_CNN)
    features = {"image": image.features, "audio": audio.features, "audio_fbank": fbank.features}
    fused, summary = train(
        data, tmp_path, "fusion_handcrafted",
        {"inputs": ["image", "audio", "audio_fbank"], "hidden": [16, 8], "epochs": 20, "batch_size": 8},
        features=features,
    )  # fmt: skip
    names = summary["feature_names"]
    assert names[0] == "image_0" and "gender_female" in names and "emotion_happiness" in names
    assert (
        summary["options"]["in_dim"] == len(names) == 64 + 8 + 20 + 8 + 2 + 7
    )  # image, audio, fbank, age, gender, emotions
    assert pl.read_parquet(fused.predictions).height == 12
    with pytest.raises(ValueError, match="no features given"):
        train(data, tmp_path, "fusion", {"inputs": ["face"]}, features=features)


def test_clip_folders_hold_only_finished_clips(tmp_path):
    from impressions import logs

    for clip, done in (("a.000", True), ("b.000", False)):
        (tmp_path / clip).mkdir()
        if done:
            (tmp_path / clip / "qc.json").write_text("{}")
    folders = training.Inputs.from_files({"clips": "c.parquet"}, tmp_path).clip_dirs
    assert isinstance(folders, logs.ClipFolders)
    assert "a.000" in folders and "b.000" not in folders and list(folders) == ["a.000"]
    assert folders["a.000"] == tmp_path / "a.000"
    with pytest.raises(KeyError):
        folders["b.000"]


def test_au_linear_published_is_least_squares_on_the_17_au_means(data, tmp_path):
    out, summary = train(data, tmp_path, "au_linear_published", {})
    assert summary["feature_names"] == [f"{a}_mean" for a in AUS] and summary["options"]["in_dim"] == 17
    assert pl.read_csv(out.metrics)["alpha"].to_list() == [0.0]
    assert summary["selected"]["val_mean"] > baseline_accuracy(data) + 0.03  # AU12's mean carries the labels
    # Known answer (more clips than features, so the solution is unique): numpy's least squares
    # with an intercept on raw features equals the fit on standardised ones.
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 3, (80, 17)), rng.uniform(0.2, 0.8, (80, 5))
    x[:, 3] = 1.5  # a constant AU: no information, no failure
    model = models.RidgeRegression(17).fit(x, y, alpha=0.0)
    coef = np.linalg.lstsq(np.c_[x, np.ones(80)], y, rcond=None)[0]
    new = rng.uniform(0, 3, (10, 17))
    new[:, 3] = 1.5
    with torch.no_grad():
        got = model(torch.from_numpy(new).float()).double().numpy()
    np.testing.assert_allclose(got, np.clip(np.c_[new, np.ones(10)] @ coef, 0, 1), atol=1e-5)


def test_train_keys_are_the_settings_fields_but_the_workflow_wide_ones():
    from dataclasses import fields

    from impressions.training import settings

    names = {f.name for f in fields(settings.Settings)}
    wide = {f.name for f in fields(settings.Settings) if f.metadata == settings.WORKFLOW_WIDE}
    assert training.TRAIN_KEYS == names - wide
    # the workflow-wide fields are what the config's `models` section sets for every family, and no
    # family section of the schema has one (a family's `seed` would be a builder option)
    schema = yaml.safe_load((Path(__file__).parents[1] / "impressions" / "config.schema.yaml").read_text())
    models = schema["properties"]["models"]["properties"]
    families = {k: v for k, v in models.items() if "properties" in v and k != "seeds"}
    assert wide <= set(models) - set(families)
    assert not any(wide & set(v["properties"]) for v in families.values())
    # every training key is settable in some family's section
    assert training.TRAIN_KEYS <= set().union(*(v["properties"] for v in families.values()))


def test_a_new_settings_field_is_a_train_key():
    from dataclasses import field, make_dataclass

    from impressions.training import settings

    wider = make_dataclass(
        "Wider",
        [("new_option", int, 1), ("new_wide", int, field(default=0, metadata=settings.WORKFLOW_WIDE))],
        bases=(settings.Settings,),
    )
    assert settings.train_keys(wider) == training.TRAIN_KEYS | {"new_option"}
    got, builder = wider.from_options(
        {"seed": 3, "new_wide": 2}, {"new_option": 5, "new_wide": 7, "width": 4}
    )
    assert (got.new_option, got.new_wide, got.seed) == (5, 2, 3)
    assert builder == {"new_wide": 7, "width": 4}  # a workflow-wide key of a family: a builder option


def test_frame_sets_read_only_the_columns_that_pick_frames(data, monkeypatch):
    # The faces table's landmark lists are about 1.2 KB a row: read whole they would grow the face
    # job by about 1.2 GB at FI's 1,000,000 frames (benchmarks/memory_scaling.py).
    read = []
    real = pl.read_parquet

    def spy(source, *args, columns=None, **kwargs):
        read.append((Path(source).name, columns))
        return real(source, *args, columns=columns, **kwargs)

    monkeypatch.setattr(pl, "read_parquet", spy)
    clips = pl.read_parquet(data["tables"] / "clips.parquet")
    splits = training._clips_by_split(clips)
    read.clear()
    for family in ("image", "face"):
        sets = training._frame_sets(family, model_data.inputs_for(data, family), splits)
        assert len(sets["train"]) > 0
    assert read == [
        ("frames.parquet", ["clip_id", "frame_index"]),
        ("faces.parquet", ["clip_id", "frame_index", "has_face"]),
    ]
