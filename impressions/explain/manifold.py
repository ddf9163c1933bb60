"""A manifold view of a model's penultimate features: a 2-D embedding and how faithful it is.

The post-hoc interpretation of personality models looks at where clips land in the feature space:
do high and low scorers of a trait separate, and does the space also sort people by gender or
expression? `embed_2d` uses scikit-learn's t-SNE (exact gradient below 200 points: Barnes-Hut is for
large sets and is noisy on tiny ones); `trustworthiness` (Venna & Kaski 2001, scikit-learn's) scores
how much of each point's 2-D neighbourhood is made of true high-dimensional neighbours: 1 is perfect,
about 0.5 is what a random layout gets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from impressions import figures

METHODS = ("tsne", "pca")


def _standardise(features: np.ndarray) -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    std = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)


def embed_2d(
    features: np.ndarray, method: str = "tsne", seed: int = 0, perplexity: float = 30.0
) -> np.ndarray:
    """(n, 2) embedding of standardised features; t-SNE perplexity is clipped to (n - 1) / 3."""
    x = _standardise(features)
    n = len(x)
    if n < 4:
        raise ValueError(f"a manifold view needs at least 4 points, got {n}")
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(x).astype(np.float32)
    if method != "tsne":
        raise ValueError(f"unknown manifold method {method!r}; known: {METHODS}")
    from sklearn.manifold import TSNE

    tsne = TSNE(
        n_components=2,
        perplexity=float(min(perplexity, (n - 1) / 3)),
        init="pca",
        random_state=seed,
        method="exact" if n < 200 else "barnes_hut",
    )
    return tsne.fit_transform(x).astype(np.float32)


def trustworthiness(features: np.ndarray, embedding: np.ndarray, n_neighbors: int = 5) -> float:
    """scikit-learn's trustworthiness of `embedding` for the standardised features (k < n / 2)."""
    from sklearn.manifold import trustworthiness as score

    x = _standardise(features)
    k = int(min(n_neighbors, (len(x) - 1) // 2))
    if k < 1:
        raise ValueError(f"trustworthiness needs at least 3 points, got {len(x)}")
    return float(score(x, np.asarray(embedding, dtype=np.float64), n_neighbors=k))


def plot_manifold(
    embedding: np.ndarray, colours: Mapping[str, Sequence], path: str | Path, title: str = ""
) -> None:
    """One panel per colouring: numbers on a continuous colour map, strings as categories, missing grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(colours)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), dpi=100, squeeze=False)
    xy = np.asarray(embedding)
    for ax, (name, values) in zip(axes.flat, colours.items()):
        values = list(values)
        numeric = all(v is None or isinstance(v, (int, float, np.number)) for v in values)
        if numeric:
            v = np.array([np.nan if x is None else float(x) for x in values])
            missing = np.isnan(v)
            ax.scatter(*xy[missing].T, s=12, c="lightgrey", label="unknown" if missing.any() else None)
            points = ax.scatter(*xy[~missing].T, s=14, c=v[~missing], cmap="viridis")
            fig.colorbar(points, ax=ax, fraction=0.046, pad=0.02)
        else:
            labels = ["unknown" if x is None else str(x) for x in values]
            palette = plt.get_cmap("tab10")
            for i, label in enumerate(sorted(set(labels), key=lambda s: (s == "unknown", s))):
                mask = np.array([lab == label for lab in labels])
                colour = "lightgrey" if label == "unknown" else palette(i % 10)
                ax.scatter(*xy[mask].T, s=14, color=colour, label=label)
            ax.legend(fontsize=6, loc="best", markerscale=0.8)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    figures.save(fig, path, title)
