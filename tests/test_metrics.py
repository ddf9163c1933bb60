import numpy as np
import polars as pl
import pytest

from impressions import metrics
from impressions.schemas import EMOTIONS, TRAITS


def test_accuracy_is_one_minus_mae_per_trait():
    y = np.array([[0.5, 0.2], [0.7, 0.4]])
    p = np.array([[0.6, 0.2], [0.6, 0.1]])
    assert np.allclose(metrics.accuracy(y, p), [0.9, 1 - 0.15])


def test_correlations_by_hand():
    y = np.array([0.0, 1.0])
    assert metrics.pcc(y, y)[0] == pytest.approx(1)
    assert metrics.pcc(y, 1 - y)[0] == pytest.approx(-1)
    # Shifted by 0.5: vy = vp = cov = 0.25, squared mean gap 0.25 -> CCC = 0.5 / 0.75.
    assert metrics.ccc(y, y + 0.5)[0] == pytest.approx(2 / 3)
    assert metrics.pcc(y, y + 0.5)[0] == pytest.approx(1)
    assert metrics.r2(y, y)[0] == pytest.approx(1)
    assert metrics.r2(y, np.full(2, 0.5))[0] == pytest.approx(0)
    # y = 0, 1; p = 0.5, 0.5 + 0.5: SSres = 0.25 + 0 over SStot 0.5 -> R2 = 0.5.
    assert metrics.r2(y, np.array([0.5, 1.0]))[0] == pytest.approx(0.5)


def test_constant_prediction_has_no_correlation():
    y = np.array([[0.1], [0.5], [0.9]])
    s = metrics.scores(y, np.full((3, 1), 0.5))
    assert np.isnan(s["pcc"][0])
    assert s["ccc"][0] == pytest.approx(0)  # no covariance, so no concordance
    assert s["accuracy"][0] == pytest.approx(1 - (0.4 + 0 + 0.4) / 3)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="shape"):
        metrics.accuracy(np.zeros((3, 5)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="finite"):
        metrics.accuracy(np.zeros((2, 1)), np.array([[0.1], [np.nan]]))


def test_train_mean_baseline():
    train = np.array([[0.2, 0.4], [0.4, 0.8]])
    assert np.allclose(metrics.train_mean_baseline(train, 3), [[0.3, 0.6]] * 3)


@pytest.fixture
def noisy():
    rng = np.random.default_rng(1)
    y = rng.uniform(0.2, 0.8, size=(300, 5))
    good = np.clip(y + rng.normal(0, 0.05, y.shape), 0, 1)
    bad = np.clip(y + rng.normal(0, 0.15, y.shape), 0, 1)
    return y, good, bad


def test_bootstrap_replicates_equal_metrics_on_materialised_resamples(noisy):
    y, p, _ = noisy
    weights = metrics.bootstrap_weights(len(y), 5, seed=3)
    assert (weights.sum(axis=1) == len(y)).all()
    reps = metrics._weighted(weights, y, p)
    for b, w in enumerate(weights):
        idx = np.repeat(np.arange(len(y)), w.astype(int))
        direct = metrics.scores(y[idx], p[idx])
        for name in metrics.METRICS:
            assert np.allclose(reps[name][b], direct[name]), name


def test_bootstrap_interval_is_seeded_and_brackets_the_estimate(noisy):
    y, p, _ = noisy
    a = metrics.bootstrap(y, p, n_boot=500, seed=7)
    b = metrics.bootstrap(y, p, n_boot=500, seed=7)
    c = metrics.bootstrap(y, p, n_boot=500, seed=8)
    for name in metrics.METRICS:
        assert np.array_equal(a[name].low, b[name].low)
        assert (a[name].low <= a[name].value).all() and (a[name].value <= a[name].high).all()
        assert (a[name].high - a[name].low > 0).all()
    assert not np.array_equal(a["accuracy"].low, c["accuracy"].low)
    assert a["accuracy"].value[-1] == pytest.approx(metrics.accuracy(y, p).mean())
    # Four times the clips: about half the width.
    big = metrics.bootstrap(np.tile(y, (4, 1)), np.tile(p, (4, 1)), n_boot=500, seed=7)["accuracy"]
    ratio = (big.high - big.low)[-1] / (a["accuracy"].high - a["accuracy"].low)[-1]
    assert 0.35 < ratio < 0.65


def test_cluster_bootstrap_with_singleton_groups_is_the_clip_bootstrap(noisy):
    y, p, _ = noisy
    ids = [f"{i:04d}" for i in range(len(y))]  # sorted, so group k is clip k
    assert np.array_equal(
        metrics.bootstrap_weights(len(y), 4, 5), metrics.bootstrap_weights(len(y), 4, 5, ids)
    )
    # Groups of 10 identical clips behave like 30 clips, not 300: a wider interval.
    y10, p10 = np.repeat(y[:30], 10, axis=0), np.repeat(p[:30], 10, axis=0)
    groups = np.repeat(np.arange(30), 10)
    plain = metrics.bootstrap(y10, p10, n_boot=400, seed=0)["accuracy"]
    clustered = metrics.bootstrap(y10, p10, n_boot=400, seed=0, groups=groups)["accuracy"]
    assert (clustered.high - clustered.low)[-1] > 2 * (plain.high - plain.low)[-1]


def test_paired_bootstrap(noisy):
    y, good, bad = noisy
    same = metrics.paired_bootstrap(y, good, good, n_boot=200)
    assert same.delta == 0 and same.p_value == 1
    better = metrics.paired_bootstrap(y, good, bad, n_boot=999, seed=1)
    assert better.delta == pytest.approx(metrics.accuracy(y, good).mean() - metrics.accuracy(y, bad).mean())
    assert better.delta > 0 and better.low > 0 and better.p_value == pytest.approx(2 / 1000)
    worse = metrics.paired_bootstrap(y, bad, good, n_boot=999, seed=1)
    assert worse.delta == pytest.approx(-better.delta) and worse.high < 0
    # One clip slightly better: a difference too small and too rare for evidence.
    nudged = good.copy()
    nudged[0] = y[0]
    tiny = metrics.paired_bootstrap(y, nudged, good, n_boot=500)
    assert tiny.delta > 0 and tiny.low == 0 and tiny.p_value > 0.5


def _clips_and_predictions():
    ids = ["a.000", "a.001", "b.000", "b.001"]
    labels = {t: [0.5, 0.5, 0.5, 0.5] for t in TRAITS}
    clips = pl.DataFrame({"clip_id": ids, "split": ["test"] * 4, **labels,
                          "gender": ["female", "female", "male", None]})  # fmt: skip
    preds = pl.DataFrame({"clip_id": ids, "split": ["test"] * 4, "model": ["m"] * 4,
                          **{t: [0.6, 0.6, 0.3, 0.5] for t in TRAITS}})  # fmt: skip
    return clips, preds


def test_breakdown_by_group():
    clips, preds = _clips_and_predictions()
    table = metrics.breakdown(preds, clips, "gender", n_boot=50)
    mean = {r["group"]: r["value"] for r in table.filter(pl.col("trait") == "mean").iter_rows(named=True)}
    assert mean == pytest.approx({"female": 0.9, "male": 0.8, "unknown": 1.0})
    assert set(table["n"]) == {1, 2}
    with pytest.raises(KeyError, match="age_group"):
        metrics.breakdown(preds, clips, "age_group")


def test_evaluate_and_wide_layout():
    clips, preds = _clips_and_predictions()
    y, p, _ = metrics.labels_and_predictions(preds, clips)
    table = metrics.evaluate(y, p, n_boot=100, model="m", split="test")
    assert set(table["metric"]) == set(metrics.METRICS)
    assert table.filter((pl.col("metric") == "accuracy") & (pl.col("trait") == "mean"))["value"][
        0
    ] == pytest.approx(1 - (0.1 + 0.1 + 0.2 + 0) / 4)
    row = metrics.wide(table).row(0, named=True)
    assert list(row)[2:] == ["O", "C", "E", "A", "N", "mean"]
    assert row["mean"].startswith("0.9000 [")


def test_dominant_emotion():
    probs = {e: [0.0, 0.0, 0.0] for e in EMOTIONS}
    probs["happiness"] = [0.9, 0.2, 0.1]
    probs["sadness"] = [0.1, 0.8, 0.9]
    table = pl.DataFrame({"clip_id": ["x", "x", "y"], "frame_index": [0, 1, 0], **probs})
    out = dict(metrics.dominant_emotion(table).iter_rows())
    assert out == {"x": "happiness", "y": "sadness"}  # x: happiness 0.55 against sadness 0.45
