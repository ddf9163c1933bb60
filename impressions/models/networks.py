"""Model families for Big-Five regression, built by name (torchvision style: `build("face", ...)`).

Every model maps its input to five trait scores in 0..1 and exposes `embed(x)`, its penultimate
features (what late fusion consumes):

- ``image`` / ``face``: the CNNs of Zhang et al. (2016, "DAN"/"DAN+"): backbone conv features ->
  pooled descriptors, each L2-normalised on its own -> dropout -> linear -> sigmoid. ``head`` picks
  the descriptor (`DANPlus`): ``dan`` ([max, avg] of the last map), ``dan_plus`` (+ [avg, max] of the
  stage before: relu5_2 and pool5 of VGG) or ``cam`` (GAP -> linear: what class activation maps
  need, Ventura et al. 2017). Backbones: ``vgg16`` (the papers used VGG-Face: convert it with
  `impressions convert-vggface`), ``resnet18``, and ``small``, a four-block CNN that trains from
  scratch on a CPU. Every head is CAM-ready: `cam_layer` is the module whose output is the last map,
  `forward_features` returns that map, and `activation_maps` decomposes each trait's logit exactly
  over it (see there).
- ``audio``: a 1-D residual CNN on the raw 16 kHz waveform (after Guclu-turk et al., 2016: a wide,
  strided first convolution, then residual blocks of width-9 convolutions, global average pooling).
  The waveform is not normalised per clip: loudness is a cue.
- ``audio_fbank``: DAN+'s audio model, a linear regressor on the log filterbank (26 x 501), here
  after input batch normalisation and optional average pooling over time (``time_bins``; None keeps
  DAN+'s full resolution).
- ``fusion`` / ``fusion_handcrafted``: late fusion; the trained audio and visual models' per-clip
  penultimate features (and, for the handcrafted variant, age group, gender and mean emotion
  probabilities) are standardised with training statistics and pass three dense layers.
- ``au_linear_published``: Ventura et al.'s AU model, least squares on the 17 per-clip mean AUs.
- ``au_linear``: the richer variant, ridge regression on per-clip AU statistics (mean, std and max of
  each of the 17 AUs), fitted in closed form (numpy, float64) by `RidgeRegression.fit`, stored as a
  torch module so that it saves, loads and predicts like the others; the ridge penalty is chosen on
  validation.
- ``voice_linear``: the same ridge regression on the 14 per-clip voice descriptors (impressions.data.voice:
  pitch, jitter, shimmer, HNR, loudness, voicing and pauses). When the voice table is given,
  ``fusion_handcrafted`` appends the same descriptors to its handcrafted features.

Weights (``weights=`` for the torchvision backbones) are explicit: None (random init), a torchvision
weight name (``"IMAGENET1K_V1"`` or ``"VGG16_Weights.IMAGENET1K_V1"``), or a local file holding a
backbone state dict (e.g. VGG-Face converted to torchvision's vgg16 layout). Torchvision weights come
from torch's hub cache; when the file is not there and cannot be downloaded, `WeightsError` names the
file, its URL and the folder to put it in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from impressions.schemas import TRAITS

N_TRAITS = len(TRAITS)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class WeightsError(RuntimeError):
    """Requested weights are unknown or not available offline."""


# ----------------------------------------------------------------------------------------------------
# Weights


def _torchvision_weights(arch: str, name: str):
    from torchvision.models import get_model_weights

    enum = get_model_weights(arch)
    short = name.split(".", 1)[1] if "." in name else name
    try:
        return enum[short]
    except KeyError:
        raise WeightsError(
            f"unknown weights {name!r} for {arch}; torchvision has {[w.name for w in enum]}"
        ) from None


def resolve_weights(arch: str, weights: str | None):
    """`weights` as torchvision expects it: None, a weights enum (file in the hub cache) or a path.

    Returns ``(torchvision_weights_or_None, local_path_or_None)``.
    """
    if weights in (None, "", "none", "None"):
        return None, None
    path = Path(weights).expanduser()
    if path.suffix in (".pt", ".pth", ".bin", ".ckpt") or path.exists():
        if not path.is_file():
            hint = "give an existing file, a torchvision name or none"
            if "vgg" in path.name.lower() and "face" in path.name.lower():
                from impressions.models.vggface import where_from

                hint = f"VGG-Face is never downloaded at run time: {where_from()}"
            raise WeightsError(f"weights file {path} not found ({hint})")
        return None, path
    enum = _torchvision_weights(arch, weights)
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    cached = hub / Path(enum.url).name
    if not cached.is_file():
        try:
            torch.hub.load_state_dict_from_url(enum.url, progress=False)
        except Exception as err:  # noqa: BLE001 - any network failure means the same thing here
            raise WeightsError(
                f"{arch} weights {enum} are not in torch's cache and could not be downloaded ({err}). "
                f"Download {enum.url} on a machine with network access and put it at {cached} "
                "(or set TORCH_HOME to a folder holding hub/checkpoints/" + cached.name + ")"
            ) from None
    return enum, None


def _load_local(module: nn.Module, path: Path) -> dict | None:
    """Load a backbone state dict from `path`; return the input transform it carries, if any.

    A file written by `impressions.models.vggface.convert` holds ``{"state_dict", "input_transform"}``;
    the transform (``mean``, ``std`` in 0..1 RGB terms) replaces the ImageNet default."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    transform = state.get("input_transform") if isinstance(state, dict) else None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    state = {k.removeprefix("module."): v for k, v in state.items()}
    # The classifier is not used: drop it, so that another size (VGG-Face's 2622 identities) loads.
    state = {k: v for k, v in state.items() if not k.startswith(("fc.", "classifier."))}
    # Extra keys (another classifier) are ignored; the classifier is not used, so only missing backbone
    # parameters are an error.
    missing = [k for k in module.load_state_dict(state, strict=False).missing_keys
               if not k.startswith(("fc.", "classifier."))]  # fmt: skip
    if missing:
        raise WeightsError(f"{path} lacks backbone parameters {missing[:5]}... ({len(missing)} missing)")
    return dict(transform) if transform else None


# ----------------------------------------------------------------------------------------------------
# Image and face models (DAN+)


def _conv_block(c_in: int, c_out: int, pool: bool) -> list[nn.Module]:
    layers = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
    return layers + ([nn.MaxPool2d(2)] if pool else [])


HEADS = ("dan", "dan_plus", "cam")
"""Descriptor heads of the image and face models (see `DANPlus`)."""

L2_EPS = 1e-12
"""Added under the square root of each descriptor's L2 norm (DAN+ used MATLAB eps, 2.2e-16, in
double precision; float32 needs a larger floor)."""


def _backbone(name: str, weights: str | None, width: int, head: str = "dan"):
    """A conv body ending in the feature map to pool, its channel count, and the DAN+ tap.

    The tap is ``(index, channels)``: the body module whose output is DAN+'s second pooled layer.
    vgg16: relu5_2 (``features[27]``) and pool5 (``features[30]``, kept for the dan heads; the cam head
    drops it so its map stays 14x14 at 224 px); resnet18: ``layer3`` and ``layer4``; small: the ReLU
    of the third block (before its max pool) and the fourth block, i.e. the last two stages, the tap
    at twice the last map's resolution as relu5_2 is to pool5.
    """
    if name == "small":
        if weights not in (None, "", "none", "None"):
            raise WeightsError("the small backbone has no pretrained weights; use weights: none")
        chans = [width, 2 * width, 4 * width, 8 * width]
        layers, c_in = [], 3
        for i, c in enumerate(chans):
            layers += _conv_block(c_in, c, pool=i < len(chans) - 1)
            c_in = c
        return nn.Sequential(*layers), chans[-1], (10, chans[2])
    import torchvision

    if name not in ("vgg16", "resnet18"):
        raise ValueError(f"unknown backbone {name!r}; choose vgg16, resnet18 or small")
    enum, local = resolve_weights(name, weights)
    net = getattr(torchvision.models, name)(weights=enum)
    transform = _load_local(net, local) if local is not None else None
    if name == "vgg16":
        body = list(net.features.children())
        if head == "cam":
            body = body[:-1]  # drop pool5: a 14x14 map at 224 px
        tap = (27, 512)
    else:
        body = [net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4]
        tap = (6, 256)
    # In-place activations break backward hooks on the CAM layer (Grad-CAM) and would overwrite the
    # DAN+ tap: make them out-of-place.
    for m in body:
        for sub in m.modules():
            if isinstance(sub, nn.ReLU):
                sub.inplace = False
    return nn.Sequential(*body), 512, tap, transform


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

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(last feature map, DAN+ tap map or None) of images x in 0..1."""
        h = (x - self.mean) / self.std
        if self.tap is None:
            return self.body(h), None
        tapped = None
        for i, layer in enumerate(self.body):
            h = layer(h)
            if i == self.tap:
                tapped = h
        return h, tapped

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
        return self._pool(*self._features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc(self.dropout(self.embed(x))))

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(scores, last feature maps) from one pass: what a loss on both (AU guidance) needs."""
        maps, tapped = self._features(x)
        return torch.sigmoid(self.fc(self.dropout(self._pool(maps, tapped)))), maps

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
        maps, tapped = self._features(x)
        n, _, h, w = maps.shape
        weight = self.fc.weight  # (traits, features)
        kinds = {"cam": ["avg"], "dan": ["max", "avg"], "dan_plus": ["max", "avg", "avg", "max"]}[self.head]
        sources = [maps, maps, tapped, tapped][: len(kinds)]
        descriptors = self._descriptors(maps, tapped)
        total, start = torch.zeros(n, weight.shape[0], h, w, dtype=maps.dtype), 0
        for kind, source, d in zip(kinds, sources, descriptors):
            c = source.shape[1]
            scale = (
                torch.sqrt((d * d).sum(dim=1) + L2_EPS)
                if self.normalize and self.head != "cam"
                else torch.ones(n, dtype=maps.dtype)
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


# ----------------------------------------------------------------------------------------------------
# Audio models


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


# ----------------------------------------------------------------------------------------------------
# Fusion and AU models


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


# ----------------------------------------------------------------------------------------------------
# Registry

FAMILIES: dict[str, Callable[..., nn.Module]] = {}
INPUTS: dict[str, str] = {}
"""What each family reads: frames, faces, waveform, logfbank, features, features+handcrafted, au_stats."""


def register(name: str, input_kind: str):
    def wrap(fn):
        FAMILIES[name] = fn
        INPUTS[name] = input_kind
        return fn

    return wrap


@register("image", "frames")
def image(**options) -> DANPlus:
    """DAN+ on whole frames (scene, clothing, pose and face)."""
    return DANPlus(**options)


@register("face", "faces")
def face(**options) -> DANPlus:
    """DAN+ on aligned face crops."""
    return DANPlus(**options)


@register("audio", "waveform")
def audio(**options) -> WaveResNet:
    return WaveResNet(**options)


@register("audio_fbank", "logfbank")
def audio_fbank(**options) -> FbankRegressor:
    return FbankRegressor(**options)


def _fusion(in_dim: int, members: int = 1, **options) -> nn.Module:
    """One FusionMLP, or (``members`` > 1) the k cross-fitted ones of `impressions.training.fusion`."""
    if members > 1:
        from impressions.training.fusion import FoldEnsemble

        return FoldEnsemble([FusionMLP(in_dim, **options) for _ in range(members)])
    return FusionMLP(in_dim, **options)


@register("fusion", "features")
def fusion(in_dim: int, **options) -> nn.Module:
    return _fusion(in_dim, **options)


@register("fusion_handcrafted", "features+handcrafted")
def fusion_handcrafted(in_dim: int, **options) -> nn.Module:
    return _fusion(in_dim, **options)


@register("au_linear", "au_stats")
def au_linear(in_dim: int = 51, **options) -> RidgeRegression:
    return RidgeRegression(in_dim, **options)


@register("voice_linear", "voice_stats")
def voice_linear(in_dim: int = 14, **options) -> RidgeRegression:
    """Ridge regression on the per-clip voice descriptors (impressions.data.voice)."""
    return RidgeRegression(in_dim, **options)


@register("au_linear_published", "au_means")
def au_linear_published(in_dim: int = 17, **options) -> RidgeRegression:
    """Ventura et al. (2017): linear least squares on the 17 per-clip mean AU intensities (no penalty;
    outputs clipped to 0..1 like every model here)."""
    return RidgeRegression(in_dim, **options)


def list_models() -> list[str]:
    return sorted(FAMILIES)


def build(family: str, **options) -> nn.Module:
    """A model of `family` built with the builder's keyword options (see each class)."""
    if family not in FAMILIES:
        raise KeyError(f"unknown model family {family!r}; known: {list_models()}")
    return FAMILIES[family](**options)


def save_checkpoint(path: str | Path, model: nn.Module, family: str, options: dict, **extra) -> None:
    """The weights and everything needed to rebuild the model without the training config."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"family": family, "options": options, "state_dict": state, **extra}, path)


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> tuple[nn.Module, dict]:
    """(model in eval mode, checkpoint dict) from `save_checkpoint`; pretrained weights are not re-fetched."""
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    options = dict(ckpt["options"])
    if "weights" in options:
        options["weights"] = None  # the checkpoint holds every weight already
    model = build(ckpt["family"], **options)
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt
