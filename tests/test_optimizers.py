"""The training solvers: adamw (the default) or sgd with momentum, L2 weight decay and a schedule, and
the published presets that select the papers' SGD (DAN+, METHODS 2.3; Zhang et al.'s audio, 3.1)."""

from pathlib import Path

import jsonschema
import model_data
import numpy as np
import polars as pl
import pytest
import torch
import yaml
from model_data import tiny_options, train

from impressions.training.epochs import make_optimizer
from impressions.training.settings import Settings

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "impressions" / "config.schema.yaml").read_text())


def preset(name: str) -> dict:
    return yaml.safe_load((REPO / "experiments" / f"{name}.yaml").read_text())


def test_the_default_stays_adamw():
    optimizer, _ = make_optimizer(torch.nn.Linear(3, 2).parameters(), Settings())
    assert type(optimizer) is torch.optim.AdamW and optimizer.param_groups[0]["weight_decay"] == 1e-4
    assert Settings().lr_schedule == "constant"


def test_sgd_has_the_given_momentum_dampening_and_l2_weight_decay():
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    settings = Settings(optimizer="sgd", lr=0.1, momentum=0.8, dampening=0.5, weight_decay=0.01)
    optimizer, _ = make_optimizer(layer.parameters(), settings)
    group = optimizer.param_groups[0]
    assert type(optimizer) is torch.optim.SGD
    assert (group["lr"], group["momentum"], group["dampening"], group["weight_decay"]) == (
        0.1,
        0.8,
        0.5,
        0.01,
    )
    # weight decay is an L2 term added to the gradient: the first step is lr * (grad + wd * w)
    before = layer.weight.detach().clone()
    layer(torch.ones(4, 3)).sum().backward()
    grad = layer.weight.grad.clone()
    optimizer.step()
    torch.testing.assert_close(layer.weight.detach(), before - 0.1 * (grad + 0.01 * before))


def test_unknown_solver_or_schedule_is_refused():
    params = list(torch.nn.Linear(2, 1).parameters())
    with pytest.raises(ValueError, match="optimizer must be one of adamw, sgd"):
        make_optimizer(params, Settings(optimizer="adam"))
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        make_optimizer(params, Settings(optimizer="sgd", lr_schedule="cosine"))


def lrs(optimizer):
    return optimizer.param_groups[0]["lr"]


def test_step_drops_the_lr_per_epoch_and_inverse_time_per_batch():
    params = list(torch.nn.Linear(2, 1).parameters())
    step = Settings(optimizer="sgd", lr=1.0, lr_schedule="step", lr_step_epochs=2, lr_gamma=0.5)
    optimizer, schedule = make_optimizer(params, step)
    seen = []
    for _ in range(5):
        seen.append(lrs(optimizer))
        for _ in range(3):
            optimizer.step()
            schedule.batch_done()  # a step schedule ignores batches
        schedule.epoch_done()
    assert seen == pytest.approx([1.0, 1.0, 0.5, 0.5, 0.25])

    inverse = Settings(optimizer="sgd", lr=0.1, lr_schedule="inverse_time", lr_decay=0.5)
    optimizer, schedule = make_optimizer(params, inverse)
    for _ in range(4):
        optimizer.step()
        schedule.batch_done()
    schedule.epoch_done()  # an inverse-time schedule ignores epochs
    assert lrs(optimizer) == pytest.approx(0.1 / (1 + 0.5 * 4))  # Torch7 optim.sgd's learningRateDecay


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return model_data.build(tmp_path_factory.mktemp("results"))


def test_training_follows_the_schedule(data, tmp_path):
    """Each epoch's recorded lr (its first batch's) falls at the step; constant keeps it."""
    options = tiny_options("audio_fbank", epochs=4, optimizer="sgd", lr=0.01, momentum=0.9, batch_size=8)
    step = {"lr_schedule": "step", "lr_step_epochs": 2, "lr_gamma": 0.1}
    stepped, summary = train(data, tmp_path, "audio_fbank", {**options, **step}, name="stepped")
    assert summary["settings"]["optimizer"] == "sgd" and summary["settings"]["lr_schedule"] == "step"
    assert pl.read_csv(stepped.metrics)["lr"].to_list() == pytest.approx([0.01, 0.01, 0.001, 0.001])
    constant, _ = train(data, tmp_path, "audio_fbank", options, name="constant")
    assert pl.read_csv(constant.metrics)["lr"].to_list() == pytest.approx([0.01] * 4)


DAN_PLUS = [("ventura2017", "image"), ("ventura2017", "face"), ("ventura2017_100frames", "image")]


@pytest.mark.parametrize("name, family", DAN_PLUS, ids=[f"{n}:{f}" for n, f in DAN_PLUS])
def test_dan_plus_presets_train_with_the_released_sgd(name, family):
    section = preset(name)["models"][family]
    assert section["head"] == "dan_plus"
    jsonschema.validate(section, SCHEMA["properties"]["models"]["properties"][family])
    settings, builder = Settings.from_options({}, section)
    assert not {"optimizer", "momentum", "lr_schedule", "lr_gamma"} & set(builder)
    assert (settings.optimizer, settings.momentum, settings.weight_decay) == ("sgd", 0.9, 0.0005)
    # MatConvNet's per-epoch lr logspace(-3,-6,30), its first 10 epochs (METHODS 2.3)
    assert settings.lr_schedule == "step" and settings.lr_step_epochs == 1
    per_epoch = settings.lr * settings.lr_gamma ** np.arange(settings.epochs)
    np.testing.assert_allclose(per_epoch, np.logspace(-3, -6, 30)[: settings.epochs], rtol=1e-6)


def test_zhang_audio_preset_trains_with_torch7_sgd_on_the_released_filterbank():
    config = preset("ventura2017_100frames")
    section = config["models"]["audio_fbank"]
    jsonschema.validate(section, SCHEMA["properties"]["models"]["properties"]["audio_fbank"])
    jsonschema.validate(config["audio"], SCHEMA["properties"]["audio"])
    settings, _ = Settings.from_options({}, section)
    assert (settings.optimizer, settings.lr, settings.momentum, settings.weight_decay) == (
        "sgd",
        0.00083,
        0.9,
        6.5,
    )
    assert (settings.lr_schedule, settings.lr_decay, settings.dampening) == ("inverse_time", 1.01e-6, 0.9)
    assert config["audio"]["fbank"] == "python_speech_features"
    # no other preset trains Zhang et al.'s audio regressor
    others = [p.stem for p in (REPO / "experiments").glob("*.yaml") if p.stem != "ventura2017_100frames"]
    assert not [n for n in others if "audio_fbank" in ((preset(n).get("models") or {}).get("families") or [])]
