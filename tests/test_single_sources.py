"""One function each for the train-mean baseline, the inter-ocular distance and the device choice:
a second copy of any of them in the package fails here."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from impressions import devices, metrics
from impressions.expressions import geometry

PACKAGE = Path(__file__).resolve().parents[1] / "impressions"

# (what, pattern, the one module allowed to hold it)
COPIES = [
    ("device choice", r"cuda\.is_available\(", "devices.py"),
    ("inter-ocular distance", r"norm\(.*36:42", "expressions/geometry.py"),
    ("train-mean baseline", r"(labels|\[1\])\.mean\(axis=0\)", "metrics.py"),
    # a frame's dominant emotion, whose codebook AUs its AU map shows (clip-level breakdowns in
    # metrics.py rank mean probabilities with polars, another idea)
    ("frame's dominant emotion", r"EMOTIONS\[int\(np\.argmax", "expressions/au_maps.py"),
    ("landmark rescaling", r"\(points \+ 0\.5\)", "expressions/au_maps.py"),
]


@pytest.mark.parametrize("what, pattern, home", COPIES, ids=[c[0] for c in COPIES])
def test_one_home(what, pattern, home):
    found = [
        f"{path.relative_to(PACKAGE)}:{n}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if str(path.relative_to(PACKAGE)) != home
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(pattern, line)
    ]
    assert not found, f"{what} computed outside impressions/{home}: {found}"


def test_interocular():
    lm = np.zeros((68, 2))
    lm[36:42] = (10.0, 20.0)
    lm[42:48] = (40.0, 60.0)
    assert geometry.interocular(lm) == pytest.approx(50.0)
    assert geometry.interocular(np.stack([lm, 2 * lm])).tolist() == pytest.approx([50.0, 100.0])


def test_train_mean_keeps_dtype_and_feeds_the_baseline():
    y = np.array([[0.25, 0.5], [0.75, 1.0]], np.float32)
    assert metrics.train_mean(y).dtype == np.float32 and metrics.train_mean(y).tolist() == [0.5, 0.75]
    assert metrics.train_mean_baseline(y, 3).tolist() == [[0.5, 0.75]] * 3


def test_device(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.resolve_device("auto") == "cpu" and devices.resolve_device("cpu") == "cpu"
    with pytest.raises(RuntimeError, match="torch sees no GPU"):
        devices.resolve_device("cuda:0")


def test_the_cluster_estimates_use_the_training_defaults():
    """impressions/cluster.py repeats two training defaults and the filterbank's time bins (planning
    must not import torch): they stay equal to their homes."""
    import inspect

    from impressions import cluster
    from impressions.models.audio import FbankRegressor
    from impressions.training.settings import Settings

    defaults = Settings()
    assert cluster.TRAINING_DEFAULTS == {k: getattr(defaults, k) for k in cluster.TRAINING_DEFAULTS}
    assert cluster.FBANK_TIME_BINS == inspect.signature(FbankRegressor).parameters["time_bins"].default


def _schema_enums(key: str) -> list[list]:
    import yaml

    found = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get(key), dict) and "enum" in node[key]:
                found.append(node[key]["enum"])
            for value in node.values():
                walk(value)

    walk(yaml.safe_load((PACKAGE / "config.schema.yaml").read_text()))
    return found


@pytest.mark.parametrize("key, name", [("optimizer", "OPTIMIZERS"), ("lr_schedule", "LR_SCHEDULES")])
def test_the_schema_offers_the_solvers_the_trainer_has(key, name):
    """The schema validates a config before any job runs; the trainer implements the choices. Every
    family's enum in the schema is the trainer's list, so neither can gain a choice alone."""
    from impressions.training import epochs

    enums = _schema_enums(key)
    assert enums and all(list(e) == list(getattr(epochs, name)) for e in enums), enums
