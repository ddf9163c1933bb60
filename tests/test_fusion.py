"""Fusion without leakage: a planted component that memorised its training clips is not trusted."""

import json

import numpy as np
import polars as pl
import pytest

from impressions import layout, metrics
from impressions.schemas import TRAITS
from impressions.training import fusion
from impressions.training import loop as training

SIZES = {"train": 160, "val": 100, "test": 100}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Clips whose labels two components see: `audio` honestly (label + noise everywhere), `image`
    perfectly on the clips it trained on and not at all elsewhere (a memoriser)."""
    root = tmp_path_factory.mktemp("planted")
    rng = np.random.default_rng(0)
    ids = [f"{s}{i:03d}.000" for s, n in SIZES.items() for i in range(n)]
    splits = [s for s, n in SIZES.items() for _ in range(n)]
    y = rng.uniform(0.3, 0.7, (len(ids), len(TRAITS)))
    clips = pl.DataFrame({"clip_id": ids, "split": splits, **{t: y[:, i] for i, t in enumerate(TRAITS)},
                          "youtube_id": [c[:-4] for c in ids]})  # fmt: skip
    clips.write_parquet(root / "clips.parquet")
    train = np.array([s == "train" for s in splits])
    honest = y + rng.normal(0, 0.04, y.shape)
    memoriser = np.where(train[:, None], y, rng.uniform(0.3, 0.7, y.shape))
    for name, feats in (("audio", honest), ("image", memoriser)):
        (root / name).mkdir()
        np.savez(root / name / "features.npz", clip_id=np.array(ids), features=feats.astype(np.float32))
    return root, y, np.array(splits)


def fit(root, name, **options):
    out = layout.Outputs.in_folder(root / name)
    inputs = training.Inputs(clips=root / "clips.parquet",
                             features={m: root / m / "features.npz" for m in ("image", "audio")})  # fmt: skip
    opts = {"inputs": ["image", "audio"], "hidden": [16, 8], "epochs": 60, "batch_size": 16, "lr": 0.01,
            "patience": 15, **options}  # fmt: skip
    summary = training.train_family("fusion", inputs, out, {"seed": 0, "device": "cpu"}, opts, name=name)
    return pl.read_parquet(out.predictions), summary, out


def test_heldout_fusion_does_not_trust_a_memoriser(planted):
    import torch

    from impressions.models import networks as models

    root, y, splits = planted
    heldout, summary, out = fit(root, "heldout", folds=4)
    leaky, _, _ = fit(root, "leaky", fit_on="train")
    assert summary["fit_on"] == "heldout" and len(summary["fold_epochs"]) == 4
    test_y = y[splits == "test"]

    def test_acc(preds):
        p = preds.filter(pl.col("split") == "test").sort("clip_id").select(TRAITS).to_numpy()
        return float(metrics.accuracy(test_y, p).mean())

    train_mean = float(
        metrics.accuracy(test_y, np.broadcast_to(y[splits == "train"].mean(axis=0), test_y.shape)).mean()
    )
    fitted_on_train, fitted_on_heldout = test_acc(leaky), test_acc(heldout)
    print(
        f"test accuracy: train mean {train_mean:.4f}, fusion fitted on train {fitted_on_train:.4f}, "
        f"on held-out outputs {fitted_on_heldout:.4f}"
    )
    # Fitted where the memoriser is perfect, fusion trusts it and fails on new clips; fitted on
    # held-out outputs it leans on the honest component.
    assert fitted_on_heldout > fitted_on_train + 0.02
    assert fitted_on_heldout > train_mean + 0.02
    # Sensitivity: scramble each component's features on test and see how far the scores move.
    model, _ = models.load_checkpoint(out.checkpoint)
    with np.load(root / "image" / "features.npz") as img, np.load(root / "audio" / "features.npz") as aud:
        x = np.concatenate([img["features"], aud["features"]], axis=1)[splits == "test"]
    rng = np.random.default_rng(1)

    def moved(cols):
        shuffled = x.copy()
        shuffled[:, cols] = shuffled[rng.permutation(len(x))][:, cols]
        with torch.no_grad():
            a, b = model(torch.from_numpy(x)), model(torch.from_numpy(shuffled))
        return float((a - b).abs().mean())

    assert moved(slice(0, 5)) < 0.25 * moved(slice(5, 10))  # image (memoriser) vs audio (honest)


def test_validation_scores_of_a_heldout_fusion_are_out_of_fold(planted):
    root, y, splits = planted
    preds, summary, out = fit(root, "heldout_oof", folds=3, epochs=5)
    val = preds.filter(pl.col("split") == "val").sort("clip_id").select(TRAITS).to_numpy()
    oof = summary["out_of_fold_accuracy"]
    np.testing.assert_allclose(metrics.accuracy(y[splits == "val"], val), [oof[t] for t in TRAITS])
    assert json.loads(out.summary.read_text())["options"]["members"] == 3


def test_group_folds_keep_people_together_and_balance():
    groups = ["a", "a", "a", "b", "c", "c", "d", "e", "f", "f"]
    folds = fusion.group_folds(groups, 3, seed=0)
    for g in set(groups):
        assert len({f for f, h in zip(folds, groups) if h == g}) == 1
    assert sorted(np.bincount(folds)) in ([3, 3, 4], [2, 4, 4])
    with pytest.raises(ValueError, match="at least 7 groups"):
        fusion.group_folds(groups, 7)


def test_late_average_is_the_plain_mean(tmp_path):
    ids = ["a.000", "b.000", "c.000"]
    tables = []
    for k, name in enumerate(("image", "audio", "face")):
        values = {t: [0.1 * k + 0.01 * i + 0.2 for i in range(3)] for t in TRAITS}
        t = pl.DataFrame({"clip_id": ids, "split": ["val", "test", "test"], "model": [name] * 3, **values})
        (tmp_path / name).mkdir()
        t.write_parquet(tmp_path / name / "predictions.parquet")
        tables.append(t)
    paths = [tmp_path / n / "predictions.parquet" for n in ("image", "audio", "face")]
    avg = fusion.late_average(paths).sort("clip_id")
    expected = np.mean([t.sort("clip_id").select(TRAITS).to_numpy() for t in tables], axis=0)
    np.testing.assert_allclose(avg.select(TRAITS).to_numpy(), expected)
    assert set(avg["model"]) == {"late_average"}
    tables[2].head(2).write_parquet(tmp_path / "face" / "predictions.parquet")
    with pytest.raises(ValueError, match="other clips"):
        fusion.late_average(paths)
