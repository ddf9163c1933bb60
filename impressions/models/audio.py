"""The audio networks: a residual CNN on the raw waveform and DAN+'s log-filterbank regressor."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from impressions.schemas import TRAITS

N_TRAITS = len(TRAITS)


class _ResBlock1d(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, kernel: int = 9):
        super().__init__()
        pad = kernel // 2
        self.conv1 = nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=pad, bias=False)
        self.bn1 = nn.BatchNorm1d(c_out)
        self.conv2 = nn.Conv1d(c_out, c_out, kernel, padding=pad, bias=False)
        self.bn2 = nn.BatchNorm1d(c_out)
        self.skip = (
            nn.Identity() if stride == 1 and c_in == c_out
            else nn.Sequential(nn.Conv1d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm1d(c_out))
        )  # fmt: skip

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.skip(x))


class WaveResNet(nn.Module):
    """Raw waveform (N, samples) -> strided conv (49 taps) -> residual stages -> GAP -> linear -> sigmoid."""

    def __init__(
        self, width: int = 16, stages: int = 4, blocks: int = 1, dropout: float = 0.3,
        n_outputs: int = N_TRAITS,
    ):  # fmt: skip
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv1d(1, width, 49, stride=4, padding=24, bias=False), nn.BatchNorm1d(width), nn.ReLU(),
            nn.MaxPool1d(9, stride=4, padding=4),
        ]  # fmt: skip
        c_in = width
        for s in range(stages):
            c_out = width * 2**s
            for b in range(blocks):
                layers.append(_ResBlock1d(c_in, c_out, stride=4 if s > 0 and b == 0 else 1))
                c_in = c_out
        self.body = nn.Sequential(*layers)
        self.feature_dim = c_in
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c_in, n_outputs)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.unsqueeze(1) if x.dim() == 2 else x)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x).mean(dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc(self.dropout(self.embed(x))))


class FbankRegressor(nn.Module):
    """Log filterbank (N, filters, frames) -> batch norm -> [time pooling] -> flatten -> linear -> sigmoid."""

    def __init__(
        self, n_filters: int = 26, n_frames: int = 501, time_bins: int | None = 50, dropout: float = 0.2,
        n_outputs: int = N_TRAITS,
    ):  # fmt: skip
        super().__init__()
        self.norm = nn.BatchNorm1d(n_filters, affine=False)
        self.pool = nn.AdaptiveAvgPool1d(time_bins) if time_bins else nn.Identity()
        self.feature_dim = n_filters * (time_bins or n_frames)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.feature_dim, n_outputs)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.norm(x)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc(self.dropout(self.embed(x))))
