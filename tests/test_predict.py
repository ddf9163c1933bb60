from pathlib import Path

import model_data
import numpy as np
import polars as pl
import pytest
import yaml
from media import face_clip
from test_training import SMALL_CNN, inputs_for

from impressions import cli, predict, training
from impressions.schemas import TRAITS

CONFIG = yaml.safe_load((Path(__file__).parents[1] / "config.yaml").read_text())


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    data = model_data.build(tmp_path_factory.mktemp("results"))
    out = tmp_path_factory.mktemp("models")
    prep = {k: CONFIG[k] for k in ("frames", "faces", "audio", "expressions")}
    prep["frames"] = {**prep["frames"], "per_clip": 3}
    runs = [("image", SMALL_CNN), ("face", SMALL_CNN), ("audio", {"width": 4, "stages": 2, "epochs": 2}),
            ("au_linear", {"alphas": [1.0]}),
            ("fusion_handcrafted", {"inputs": ["face", "audio"], "hidden": [8, 8], "epochs": 3})]  # fmt: skip
    for family, options in runs:
        features = {m: out / m / "features.npz" for m in ("face", "audio")}
        training.train_family(
            family, inputs_for(data, family, features), training.Outputs.in_folder(out / family),
            {"seed": 0, "device": "cpu", "threads": 1}, options, preprocessing=prep,
        )  # fmt: skip
    return out


def test_predict_a_new_clip(models_dir, tmp_path, capsys):
    video = tmp_path / "-new.clip.000.mp4"  # a name that starts with a dash and has dots
    face_clip(video, start=12.0, seconds=3.0)
    table = predict.predict_videos([video], models_dir)
    assert table["clip_id"].unique().to_list() == ["-new.clip.000"]
    assert sorted(table["model"]) == ["au_linear", "audio", "face", "fusion_handcrafted", "image"]
    scores = table.select(TRAITS).to_numpy()
    assert np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()  # ridge output is clipped
    assert table.filter(pl.col("model") == "face")["has_input"][0]  # the laughing woman is found
    # Only the named model is reported (the CLI, which prints and writes the table).
    out = tmp_path / "scores.csv"
    assert (
        cli.main(
            ["predict", str(video), "--models", str(models_dir), "--model", "audio", "--output", str(out)]
        )
        == 0
    )
    assert "-new.clip.000  audio" in capsys.readouterr().out
    assert pl.read_csv(out)["model"].to_list() == ["audio"]


def test_predict_errors(models_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="no video file"):
        predict.predict_videos([tmp_path / "missing.mp4"], models_dir)
    with pytest.raises(FileNotFoundError, match="no checkpoint for"):
        predict.load_models(models_dir, ["transformer"])
