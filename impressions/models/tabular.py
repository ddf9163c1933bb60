"""Models on one row of features per clip: late fusion (dense layers, one or a cross-fitted ensemble of
them) and closed-form ridge regression."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from impressions.schemas import TRAITS

N_TRAITS = len(TRAITS)


class Standardize(nn.Module):
    """x -> (x - mean) / std with statistics set from training data (saved with the model)."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def fit(self, x: np.ndarray | torch.Tensor) -> Standardize:
        x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
        self.mean.copy_(x.mean(dim=0))
        self.std.copy_(x.std(dim=0, unbiased=False).clamp_min(1e-6))
        return self

    def forward(self, x):
        return (x - self.mean) / self.std


class FusionMLP(nn.Module):
    """Late fusion: standardised per-clip features -> three dense layers -> sigmoid."""

    def __init__(
        self, in_dim: int, hidden: Sequence[int] = (256, 128), dropout: float = 0.3, n_outputs: int = N_TRAITS
    ):  # fmt: skip
        super().__init__()
        if len(hidden) != 2:
            raise ValueError("the fusion network has three dense layers: give two hidden sizes")
        self.scale = Standardize(in_dim)
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden[0]), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden[0], hidden[1]), nn.ReLU(), nn.Dropout(dropout),
        )  # fmt: skip
        self.feature_dim = hidden[1]
        self.fc = nn.Linear(hidden[1], n_outputs)

    def embed(self, x):
        return self.net(self.scale(x))

    def forward(self, x):
        return torch.sigmoid(self.fc(self.embed(x)))


class FoldEnsemble(nn.Module):
    """The k fusion networks of a cross-fit: scores are their mean, features their concatenation."""

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.feature_dim = sum(m.feature_dim for m in members)

    def embed(self, x):
        return torch.cat([m.embed(x) for m in self.members], dim=1)

    def forward(self, x):
        return torch.stack([m(x) for m in self.members]).mean(dim=0)


class RidgeRegression(nn.Module):
    """Standardised features -> linear; fitted in closed form, outputs clipped to 0..1."""

    def __init__(self, in_dim: int, n_outputs: int = N_TRAITS):
        super().__init__()
        self.scale = Standardize(in_dim)
        self.fc = nn.Linear(in_dim, n_outputs)
        self.register_buffer("alpha", torch.tensor(0.0))
        self.feature_dim = in_dim

    def fit(self, x: np.ndarray, y: np.ndarray, alpha: float) -> RidgeRegression:
        """``W = (Z'Z + alpha I)^-1 Z'(y - mean y)`` on standardised features Z; the intercept is mean y."""
        self.scale.fit(x)
        z = (np.asarray(x, np.float64) - self.scale.mean.double().numpy()) / self.scale.std.double().numpy()
        y = np.asarray(y, np.float64)
        y_mean = y.mean(axis=0)
        if alpha == 0:  # ordinary least squares (minimum-norm where a column is constant)
            w = np.linalg.lstsq(z, y - y_mean, rcond=None)[0]
        else:
            w = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ (y - y_mean))
        with torch.no_grad():
            self.fc.weight.copy_(torch.from_numpy(w.T))
            self.fc.bias.copy_(torch.from_numpy(y_mean))
            self.alpha.fill_(alpha)
        return self

    def embed(self, x):
        return self.scale(x)

    def forward(self, x):
        return self.fc(self.scale(x)).clamp(0, 1)
