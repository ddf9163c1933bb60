"""voice_linear, voice columns in fusion_handcrafted, and the identity_faces split in training."""

import model_data
import numpy as np
import polars as pl
import pytest
from model_data import COMMON, baseline_accuracy, inputs_for, tiny_options, val_accuracy

from impressions import schemas
from impressions.data import splits
from impressions.models import networks as models
from impressions.schemas import VOICE
from impressions.training import loop as training

NO_VOICE_CLIP = "test00.000"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The synthetic results folder plus a voice table whose mean pitch carries the label cue."""
    data = model_data.build(tmp_path_factory.mktemp("results"))
    clips = pl.read_parquet(data["tables"] / "clips.parquet")
    cue = (clips["extraversion"].to_numpy() - 0.5) / 0.5 + 0.5
    rng = np.random.default_rng(0)
    rows = {"clip_id": clips["clip_id"].to_list(), "voice_seconds": np.full(clips.height, 5.0)}
    rows |= {name: rng.normal(0, 1, clips.height) for name in VOICE}
    rows["f0_mean_hz"] = 100 + 100 * cue + rng.normal(0, 2, clips.height)
    voice = schemas.frame("voice", rows)
    voice = voice.with_columns(
        pl.when(pl.col("clip_id") == NO_VOICE_CLIP).then(None).otherwise(pl.col(c)).alias(c)
        for c in ("f0_mean_hz", "f0_sd_st", "jitter_local")
    )
    voice.write_parquet(data["tables"] / "voice.parquet")
    return data


def _inputs(data, family, features=None):
    inputs = inputs_for(data, family, features)
    inputs.voice = data["tables"] / "voice.parquet"
    return inputs


def test_voice_linear_finds_the_pitch_cue(data, tmp_path):
    out = training.Outputs.in_folder(tmp_path / "voice_linear")
    summary = training.train_family(
        "voice_linear", _inputs(data, "voice_linear"), out, COMMON, {"alphas": [0.01, 1.0, 1e6]}
    )
    assert val_accuracy(data, out) > baseline_accuracy(data) + 0.03
    assert summary["feature_names"] == [f"voice_{v}" for v in VOICE]
    assert summary["filled_with_train_mean"]["test"] == [NO_VOICE_CLIP]  # no voice: the training mean
    _, ckpt = models.load_checkpoint(out.checkpoint)
    assert ckpt["family"] == "voice_linear"


def test_the_voice_extension_adds_the_voice_columns_the_thesis_family_does_not(data, tmp_path):
    audio = training.Outputs.in_folder(tmp_path / "audio")
    training.train_family("audio", inputs_for(data, "audio"), audio, COMMON, tiny_options("audio"))
    options = {"inputs": ["audio"], "hidden": [4, 4], "epochs": 1}
    features = {"audio": audio.features}
    with_voice = training.train_family(
        "fusion_handcrafted_voice", _inputs(data, "fusion_handcrafted_voice", features),
        training.Outputs.in_folder(tmp_path / "fh"), COMMON, options,
    )  # fmt: skip
    # the thesis's family: age, gender and emotions only, even with the voice table at hand
    without = training.train_family(
        "fusion_handcrafted", _inputs(data, "fusion_handcrafted", features),
        training.Outputs.in_folder(tmp_path / "fh0"), COMMON, options,
    )  # fmt: skip
    voice_names = [f"voice_{v}" for v in VOICE]
    assert set(voice_names) <= set(with_voice["feature_names"])
    assert not set(voice_names) & set(without["feature_names"])
    assert len(with_voice["feature_names"]) == len(without["feature_names"]) + len(VOICE)


def test_voice_linear_reads_the_columns_of_an_opensmile_table(data, tmp_path):
    """The descriptors are the table's columns (openSMILE's names here), not a list in the code."""
    clips = pl.read_parquet(data["tables"] / "clips.parquet")
    names = ["F0semitoneFrom27.5Hz_sma3nz_amean", "jitterLocal_sma3nz_amean", "loudness_sma3_amean"]
    cue = clips["extraversion"].to_numpy()
    rng = np.random.default_rng(1)
    table = pl.DataFrame({"clip_id": clips["clip_id"], "voice_seconds": np.full(clips.height, 5.0)})
    table = table.with_columns(
        pl.Series(name, 20 + 10 * cue * (name == names[0]) + rng.normal(0, 1, clips.height)) for name in names
    )
    path = tmp_path / "voice.parquet"
    table.write_parquet(path, metadata={schemas.VOICE_BACKEND_KEY: "opensmile"})
    inputs = inputs_for(data, "voice_linear")
    inputs.voice = path
    out = training.Outputs.in_folder(tmp_path / "voice_linear")
    summary = training.train_family("voice_linear", inputs, out, COMMON, {"alphas": [0.01, 1.0]})
    assert summary["feature_names"] == [f"voice_{n}" for n in names]
    assert val_accuracy(data, out) > baseline_accuracy(data) + 0.03


def test_identity_faces_split_reads_the_identities_beside_the_clips(data, tmp_path):
    clips = pl.read_parquet(data["tables"] / "clips.parquet")
    folder = tmp_path / "tables"
    folder.mkdir()
    clips.write_parquet(folder / "clips.parquet")
    with pytest.raises(FileNotFoundError, match="identities.parquet"):
        splits.split_clips(folder / "clips.parquet", "identity_faces")
    # two YouTube ids per person (each id is one clip here): pairs of ids cluster together
    person = [i // 2 for i in range(clips.height)]
    pl.DataFrame({"clip_id": clips["clip_id"], "person": person}).write_parquet(folder / "identities.parquet")
    split = splits.split_clips(folder / "clips.parquet", "identity_faces", seed=3)
    by_person = (
        split.with_columns(person=pl.Series(person)).group_by("person").agg(pl.col("split").n_unique())
    )
    assert (by_person["split"] == 1).all()
    assert split["split"].is_in(["train", "val", "test"]).all() and split.height == clips.height
    assert splits.split_clips(folder / "clips.parquet").equals(clips)  # official: unchanged


def test_predict_uses_voice_linear_on_a_new_clip(data, tmp_path):
    from impressions import predict
    from impressions.testing import face_clip

    models_dir = tmp_path / "models"
    out = training.Outputs.in_folder(models_dir / "voice_linear")
    training.train_family("voice_linear", _inputs(data, "voice_linear"), out, COMMON, {"alphas": [1.0]})
    video = tmp_path / "new.000.mp4"
    face_clip(video, start=12.0, seconds=3.0)  # a 220 Hz tone: voiced throughout
    table = predict.predict_videos([video], models_dir)
    row = table.row(0, named=True)
    assert row["model"] == "voice_linear" and row["has_input"]
    assert 0 <= row["extraversion"] <= 1
