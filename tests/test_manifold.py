"""The manifold view: a faithful embedding scores high, a scrambled one does not."""

import numpy as np
import pytest

from impressions.explain import manifold


def clusters(seed=0, n=20, dim=32):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 10, (3, dim))
    labels = np.repeat(np.arange(3), n)
    return centres[labels] + rng.normal(0, 1, (3 * n, dim)), labels


def test_tsne_keeps_clusters_and_is_trustworthy():
    x, labels = clusters()
    emb = manifold.embed_2d(x, "tsne", seed=0, perplexity=10)
    assert emb.shape == (60, 2)
    # Each point's nearest 2-D neighbour belongs to its own cluster.
    d = np.linalg.norm(emb[:, None] - emb[None], axis=2)
    np.fill_diagonal(d, np.inf)
    assert (labels[d.argmin(axis=1)] == labels).mean() > 0.95
    assert manifold.trustworthiness(x, emb, 5) > 0.9


def test_random_layout_is_not_trustworthy():
    x, _ = clusters()
    scrambled = np.random.default_rng(1).normal(size=(len(x), 2))
    faithful = manifold.embed_2d(x, "pca")
    assert manifold.trustworthiness(x, scrambled, 5) < 0.7 < manifold.trustworthiness(x, faithful, 5)


def test_same_seed_same_embedding_and_bad_inputs():
    x, _ = clusters(n=5)
    a = manifold.embed_2d(x, seed=3, perplexity=30)  # perplexity clipped to (15 - 1) / 3
    b = manifold.embed_2d(x, seed=3, perplexity=30)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="unknown manifold method"):
        manifold.embed_2d(x, "umap")
    with pytest.raises(ValueError, match="at least 4 points"):
        manifold.embed_2d(x[:3])


def test_plot_mixes_numeric_and_categorical_colourings(tmp_path):
    x, labels = clusters(n=4)
    emb = manifold.embed_2d(x, "pca")
    path = tmp_path / "m.png"
    manifold.plot_manifold(
        emb,
        {"openness": [float(v) for v in labels][:-1] + [None], "gender": ["male", "female", None] * 4},
        path,
        title="t",
    )
    assert path.stat().st_size > 1000
