"""Transcripts to trait scores: TF-IDF over word and character n-grams into ridge regression.

`TextRidge` holds everything as plain data, so its checkpoint loads without unpickling any object:
the vocabularies (lists of strings, builder options), the inverse document frequencies and the ridge
weights (buffers and a linear layer). Vectorising uses scikit-learn's `CountVectorizer` with the
fixed vocabulary, then the TF-IDF weighting ``(1 + log tf) * idf`` and an L2 norm per block (what
`TfidfVectorizer(sublinear_tf=True)` computes), so training and prediction build the same vectors.
`fit_vocabulary` learns a block's vocabulary and idf on training texts; `ridge_path` solves the
closed-form ridge for several penalties from one eigendecomposition.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from impressions.schemas import TRAITS

BLOCKS = ("word", "char")
"""Feature blocks: word n-grams and character n-grams within word boundaries (``char_wb``)."""
_ANALYZER = {"word": "word", "char": "char_wb"}


def _counter(block: str, ngrams: Sequence[int], vocabulary=None, max_features=None):
    from sklearn.feature_extraction.text import CountVectorizer

    return CountVectorizer(
        analyzer=_ANALYZER[block], ngram_range=tuple(ngrams), lowercase=True, vocabulary=vocabulary,
        max_features=max_features, dtype=np.float64,
    )  # fmt: skip


def fit_vocabulary(
    block: str, texts: Sequence[str], ngrams: Sequence[int], max_features: int, min_df: int = 1
) -> tuple[list[str], np.ndarray]:
    """(vocabulary, idf) of one block learnt on training texts (smooth idf, as scikit-learn's)."""
    counter = _counter(block, ngrams, max_features=max_features)
    counter.min_df = min_df
    counts = counter.fit_transform(texts)
    vocab = [str(t) for t in counter.get_feature_names_out()]
    df = np.asarray((counts > 0).sum(axis=0)).ravel()
    idf = np.log((1 + counts.shape[0]) / (1 + df)) + 1
    return vocab, idf


def tfidf(block: str, texts: Sequence[str], vocabulary: Sequence[str], idf: np.ndarray, ngrams):
    """Sparse (n, len(vocabulary)) TF-IDF rows, L2-normalised (a text with no known term: zeros)."""
    from sklearn.preprocessing import normalize

    counts = _counter(block, ngrams, vocabulary=list(vocabulary)).transform(texts).tocsr()
    counts.data = 1 + np.log(counts.data)
    return normalize(counts.multiply(np.asarray(idf)[None]).tocsr())


def ridge_path(x, y: np.ndarray, alphas: Sequence[float]) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """{alpha: (weights (d, 5), intercept (5,))} of ridge on sparse or dense x, centred in closed form.

    ``W = (Xc'Xc + alpha I)^-1 Xc'(y - mean y)`` with Xc the column-centred x, solved for every alpha
    from one eigendecomposition of the d x d Gram matrix (d is bounded by `max_features`, not by
    the number of clips)."""
    mu = np.asarray(x.mean(axis=0)).ravel()
    y = np.asarray(y, np.float64)
    y_mean = y.mean(axis=0)
    gram = np.asarray((x.T @ x).todense() if hasattr(x, "todense") else x.T @ x) - len(y) * np.outer(mu, mu)
    cross = np.asarray(x.T @ (y - y_mean))
    values, vectors = np.linalg.eigh(gram)
    projected = vectors.T @ cross
    out = {}
    for alpha in alphas:
        w = vectors @ (projected / np.maximum(values + alpha, 1e-12)[:, None])
        out[float(alpha)] = (w, y_mean - mu @ w)
    return out


class TextRidge(nn.Module):
    """TF-IDF blocks -> linear -> scores clipped to 0..1; `embed` gives the five unclipped scores (what
    a fusion reads: a sparse vector of thousands of n-grams is no fusion input)."""

    def __init__(
        self, blocks: Sequence[str] = ("word", "char"), word_vocabulary: Sequence[str] = (),
        char_vocabulary: Sequence[str] = (), word_ngrams: Sequence[int] = (1, 2),
        char_ngrams: Sequence[int] = (2, 5), n_outputs: int = len(TRAITS),
    ):  # fmt: skip
        super().__init__()
        unknown = [b for b in blocks if b not in BLOCKS]
        if unknown:
            raise ValueError(f"unknown text feature blocks {unknown}; known: {BLOCKS}")
        self.blocks = tuple(blocks)
        self.vocabulary = {"word": list(word_vocabulary), "char": list(char_vocabulary)}
        self.ngrams = {"word": tuple(word_ngrams), "char": tuple(char_ngrams)}
        dims = {b: len(self.vocabulary[b]) for b in self.blocks}
        self.feature_dim = sum(dims.values())
        for b in BLOCKS:
            self.register_buffer(f"idf_{b}", torch.ones(dims.get(b, 0), dtype=torch.float64))
        self.fc = nn.Linear(self.feature_dim, n_outputs).double()

    def vectorize(self, texts: Sequence[str]):
        """Sparse TF-IDF rows of `texts` over the model's blocks, in block order."""
        from scipy import sparse

        parts = [
            tfidf(b, texts, self.vocabulary[b], getattr(self, f"idf_{b}").cpu().numpy(), self.ngrams[b])
            for b in self.blocks
        ]
        return sparse.hstack(parts).tocsr()

    def set_weights(self, idf: dict[str, np.ndarray], w: np.ndarray, intercept: np.ndarray) -> TextRidge:
        with torch.no_grad():
            for b in self.blocks:
                getattr(self, f"idf_{b}").copy_(torch.from_numpy(np.asarray(idf[b], np.float64)))
            self.fc.weight.copy_(torch.from_numpy(np.asarray(w).T))
            self.fc.bias.copy_(torch.from_numpy(np.asarray(intercept)))
        return self

    def score_texts(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(scores in 0..1 (n, 5), unclipped scores (n, 5)) of `texts`, on the CPU (sparse rows) wherever
        the model's tensors are."""
        x = self.vectorize(texts)
        raw = np.asarray(x @ self.fc.weight.detach().cpu().numpy().T + self.fc.bias.detach().cpu().numpy())
        return np.clip(raw, 0, 1), raw

    def embed(self, x):
        return self.fc(x.double())

    def forward(self, x):
        return self.embed(x).clamp(0, 1)
