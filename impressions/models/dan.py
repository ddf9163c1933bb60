"""DAN+ (Zhang et al. 2016): the image and face networks, with CAM-ready heads."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from impressions.models.backbones import _backbone
from impressions.models.transforms import IMAGENET_MEAN, IMAGENET_STD
from impressions.schemas import TRAITS

N_TRAITS = len(TRAITS)

HEADS = ("dan", "dan_plus", "cam")
"""Descriptor heads of the image and face models (see `DANPlus`)."""

L2_EPS = 1e-12
"""Added under the square root of each descriptor's L2 norm (DAN+ used MATLAB eps, 2.2e-16, in
double precision; float32 needs a larger floor)."""


def l2_normalize(d: torch.Tensor) -> torch.Tensor:
    """``d / sqrt(sum_k d_k^2 + eps)`` over the channel dimension of one pooled descriptor."""
    return d / torch.sqrt((d * d).sum(dim=1, keepdim=True) + L2_EPS)


class DANPlus(nn.Module):
    """Backbone -> pooled descriptors -> dropout -> linear -> sigmoid, with one of three heads.

    With A the last feature map and B the DAN+ tap (see `_backbone`), each descriptor L2-normalised
    on its own (`l2_normalize`; `normalize=False` skips it) and then concatenated, in the published
    order (Zhang et al. 2016, APA code):

    - ``dan``: ``[max(A)', avg(A)']`` (2C);
    - ``dan_plus``: ``[max(A)', avg(A)', avg(B)', max(B)']`` (2C + 2C_B);
    - ``cam``: ``avg(A)`` without normalisation (GAP -> linear, what CAM needs).

    Inputs are images in 0..1 RGB; ``mean``/``std`` (buffers, saved with the model) are the weights'
    input transform: ImageNet statistics by default, or the transform a converted weights file carries
    (`impressions.models.vggface`; for VGG-Face ``mean = mu / 255`` and ``std = 1 / 255``, so the network sees
    0-255 values minus its per-channel mean, exactly as it was trained).
    """

    def __init__(
        self, backbone: str = "small", weights: str | None = None, head: str = "dan", width: int = 16,
        dropout: float = 0.5, normalize: bool = True, n_outputs: int = N_TRAITS,
    ):  # fmt: skip
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, not {head!r}")
        built = _backbone(backbone, weights, width, head)
        self.body, channels, (tap, tap_channels) = built[:3]
        transform = built[3] if len(built) > 3 else None
        self.head, self.normalize = head, normalize
        self.tap = tap if head == "dan_plus" else None
        self.feature_dim = {"dan": 2 * channels, "dan_plus": 2 * channels + 2 * tap_channels}.get(
            head, channels
        )
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.feature_dim, n_outputs)
        mean, std = (transform["mean"], transform["std"]) if transform else (IMAGENET_MEAN, IMAGENET_STD)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    @property
    def cam_layer(self) -> nn.Module:
        """The module whose output is the pooled feature map (hook it for CAM / Grad-CAM)."""
        return self.body[-1]

    def _features(self, x: torch.Tensor, keep: int | None = None):
        """(last feature map, DAN+ tap map or None, the output of body module `keep` or None) of
        images x in 0..1; `keep` counts like a list index (-1: the last map itself)."""
        h = (x - self.mean) / self.std
        if keep is not None:
            if not -len(self.body) <= keep < len(self.body):
                raise ValueError(f"layer {keep} is not a module of the body ({len(self.body)} modules)")
            keep %= len(self.body)
        if self.tap is None and keep in (None, len(self.body) - 1):
            h = self.body(h)
            return h, None, None if keep is None else h
        tapped = kept = None
        for i, layer in enumerate(self.body):
            h = layer(h)
            if i == self.tap:
                tapped = h
            if i == keep:
                kept = h
        return h, tapped, kept

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Conv feature maps (N, C, h, w) of images x (N, 3, H, W) with values in 0..1."""
        return self._features(x)[0]

    def _descriptors(self, maps: torch.Tensor, tapped: torch.Tensor | None) -> list[torch.Tensor]:
        """The pooled descriptors in concatenation order, before normalisation."""
        if self.head == "cam":
            return [maps.mean(dim=(2, 3))]
        out = [maps.amax(dim=(2, 3)), maps.mean(dim=(2, 3))]
        if self.head == "dan_plus":
            out += [tapped.mean(dim=(2, 3)), tapped.amax(dim=(2, 3))]
        return out

    def _pool(self, maps: torch.Tensor, tapped: torch.Tensor | None = None) -> torch.Tensor:
        parts = self._descriptors(maps, tapped)
        if self.normalize and self.head != "cam":
            parts = [l2_normalize(d) for d in parts]
        return torch.cat(parts, dim=1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self._pool(*self._features(x)[:2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc(self.dropout(self.embed(x))))

    def forward_with_features(self, x: torch.Tensor, layer: int = -1) -> tuple[torch.Tensor, torch.Tensor]:
        """(scores, the feature maps of body module `layer`) from one pass: what a loss on both (AU
        guidance) needs; -1 is the last feature map, the one the heads pool."""
        maps, tapped, kept = self._features(x, keep=layer)
        return torch.sigmoid(self.fc(self.dropout(self._pool(maps, tapped)))), kept

    @torch.no_grad()
    def activation_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-trait maps (N, 5, h, w) on the last map's grid that sum, with the bias, to each logit.

        Each descriptor's contribution is spread over the locations it comes from: an average-pooled
        descriptor d = avg(A) contributes ``w_d . A(x, y) / (h w |d|)`` at every location (with the cam
        head and no normalisation this is CAM), a max-pooled one ``w_d . A(x, y) / |d|`` only where a
        channel peaks. The DAN+ tap's contributions, on a grid an integer multiple of the last map's,
        are summed over the blocks that fall on each last-map cell, so the total is unchanged.
        Returns (maps, logits); sigmoid(logits) is the prediction (dropout is inactive in eval mode).
        """
        maps, tapped, _ = self._features(x)
        n, _, h, w = maps.shape
        weight = self.fc.weight  # (traits, features)
        kinds = {"cam": ["avg"], "dan": ["max", "avg"], "dan_plus": ["max", "avg", "avg", "max"]}[self.head]
        sources = [maps, maps, tapped, tapped][: len(kinds)]
        descriptors = self._descriptors(maps, tapped)
        total, start = torch.zeros(n, weight.shape[0], h, w, dtype=maps.dtype, device=maps.device), 0
        for kind, source, d in zip(kinds, sources, descriptors):
            c = source.shape[1]
            scale = (
                torch.sqrt((d * d).sum(dim=1) + L2_EPS)
                if self.normalize and self.head != "cam"
                else torch.ones(n, dtype=maps.dtype, device=maps.device)
            )
            if kind == "avg":
                part = source / (source.shape[2] * source.shape[3])
            else:
                flat = source.flatten(2)
                peak = torch.zeros_like(flat).scatter_(2, flat.argmax(dim=2, keepdim=True), 1.0)
                part = source * peak.view_as(source)
            contrib = torch.einsum("tc,nchw->nthw", weight[:, start : start + c], part) / scale.view(
                n, 1, 1, 1
            )
            if contrib.shape[2:] != (h, w):
                fy, fx = contrib.shape[2] // h, contrib.shape[3] // w
                if (fy * h, fx * w) != tuple(contrib.shape[2:]):
                    raise ValueError(
                        f"DAN+ tap grid {tuple(contrib.shape[2:])} is not a multiple of {(h, w)}"
                    )
                contrib = F.avg_pool2d(contrib, (fy, fx)) * (fy * fx)  # block sums
            total = total + contrib
            start += c
        return total, total.sum(dim=(2, 3)) + self.fc.bias
