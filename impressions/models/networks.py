"""Model families for Big-Five regression, built by name (torchvision style: `build("face", ...)`).

The families themselves are listed in `impressions.models.registry`; this module holds their
builders and the checkpoint format, and re-exports the networks (`dan`, `backbones`, `audio`,
`tabular`) and the image input transform (`transforms`).

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
- ``audio_fbank``: DAN+'s audio model, a linear regressor on the log filterbank (26 x 501 for 5 s;
  499 with `audio.fbank: python_speech_features`), here after input batch normalisation and optional
  average pooling over time (``time_bins``; None keeps DAN+'s full resolution).
- ``fusion`` / ``fusion_handcrafted``: late fusion; the trained audio and visual models' per-clip
  penultimate features (and, for the handcrafted variant, age group, gender and mean emotion
  probabilities) are standardised with training statistics and pass three dense layers.
- ``au_linear_published``: Ventura et al.'s AU model, least squares on the 17 per-clip mean AUs.
- ``au_linear``: the richer variant, ridge regression on per-clip AU statistics (mean, std and max of
  each of the 17 AUs), fitted in closed form (numpy, float64) by `RidgeRegression.fit`, stored as a
  torch module so that it saves, loads and predicts like the others; the ridge penalty is chosen on
  validation.
- ``voice_linear``: the same ridge regression on the per-clip voice descriptors, whichever
  ``voice.backend`` wrote the voice table: the builtin's 14 (impressions.data.voice: pitch, jitter,
  shimmer, HNR, loudness, voicing and pauses) or openSMILE's 88 eGeMAPSv02 functionals.
  ``fusion_handcrafted_voice`` (an extension, not the thesis's row) appends the same descriptors to
  fusion_handcrafted's inputs.

Weights (``weights=`` for the torchvision backbones) are explicit: None (random init), a torchvision
weight name (``"IMAGENET1K_V1"`` or ``"VGG16_Weights.IMAGENET1K_V1"``), or a local file holding a
backbone state dict (e.g. VGG-Face converted to torchvision's vgg16 layout). Torchvision weights come
from torch's hub cache; when the file is not there and cannot be downloaded, `WeightsError` names the
file, its URL and the folder to put it in.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from impressions.models import registry, transforms
from impressions.models.audio import FbankRegressor, WaveResNet, _ResBlock1d  # noqa: F401 - this module's API
from impressions.models.backbones import (  # noqa: F401 - this module's API
    WeightsError,
    _backbone,
    _conv_block,
    _load_local,
    resolve_weights,
)
from impressions.models.dan import HEADS, L2_EPS, N_TRAITS, DANPlus, l2_normalize  # noqa: F401 - this module's API
from impressions.models.tabular import FoldEnsemble, FusionMLP, RidgeRegression, Standardize  # noqa: F401 - this module's API
from impressions.models.transforms import IMAGENET_MEAN, IMAGENET_STD, ImageTransform  # noqa: F401

# ----------------------------------------------------------------------------------------------------
# Builders: each family's entry in impressions.models.registry names one of these.


def image(**options) -> DANPlus:
    """DAN+ on whole frames (scene, clothing, pose and face)."""
    return DANPlus(**options)


def face(**options) -> DANPlus:
    """DAN+ on aligned face crops."""
    return DANPlus(**options)


def audio(**options) -> WaveResNet:
    return WaveResNet(**options)


def audio_fbank(**options) -> FbankRegressor:
    return FbankRegressor(**options)


def _fusion(in_dim: int, members: int = 1, **options) -> nn.Module:
    """One FusionMLP, or (``members`` > 1) the k cross-fitted ones of `impressions.training.fusion`."""
    if members > 1:
        return FoldEnsemble([FusionMLP(in_dim, **options) for _ in range(members)])
    return FusionMLP(in_dim, **options)


def fusion(in_dim: int, **options) -> nn.Module:
    return _fusion(in_dim, **options)


def fusion_handcrafted(in_dim: int, **options) -> nn.Module:
    return _fusion(in_dim, **options)


def au_linear(in_dim: int = 51, **options) -> RidgeRegression:
    return RidgeRegression(in_dim, **options)


def voice_linear(in_dim: int = 14, **options) -> RidgeRegression:
    """Ridge regression on the per-clip voice descriptors (`in_dim` is the voice table's: 14 or 88)."""
    return RidgeRegression(in_dim, **options)


def au_linear_published(in_dim: int = 17, **options) -> RidgeRegression:
    """Ventura et al. (2017): linear least squares on the 17 per-clip mean AU intensities (no penalty;
    outputs clipped to 0..1 like every model here)."""
    return RidgeRegression(in_dim, **options)


def text_linear(**options):
    """TF-IDF over word and character n-grams into ridge (impressions.models.text)."""
    from impressions.models.text import TextRidge

    return TextRidge(**options)


def list_models() -> list[str]:
    """Families with a model to build (impressions.models.registry)."""
    return sorted(registry.names(trained=True))


def build(family: str, **options) -> nn.Module:
    """A model of `family` built with the builder's keyword options (see each class)."""
    if family not in registry.names(trained=True):
        raise KeyError(f"unknown model family {family!r}; known: {list_models()}")
    return registry.build(family, **options)


def save_checkpoint(path: str | Path, model: nn.Module, family: str, options: dict, **extra) -> None:
    """The weights and everything needed to rebuild the model without the training config, with an
    image network's input transform (``model.transform``, impressions.models.transforms)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if getattr(model, "transform", None) is not None:
        extra = {"transform": model.transform.to_dict(), **extra}
    torch.save({"family": family, "options": options, "state_dict": state, **extra}, path)


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> tuple[nn.Module, dict]:
    """(model in eval mode, checkpoint dict) from `save_checkpoint`; pretrained weights are not re-fetched.

    An image network gets back its input transform as ``model.transform``: the recorded one, or, for a
    checkpoint from before transforms were recorded, its input side from the training settings and the
    normalisation from its own buffers (which held it then too)."""
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    options = dict(ckpt["options"])
    if "weights" in options:
        options["weights"] = None  # the checkpoint holds every weight already
    model = build(ckpt["family"], **options)
    model.load_state_dict(ckpt["state_dict"])
    stored = transforms.from_checkpoint(ckpt)
    if isinstance(stored, transforms.ImageTransform):
        model.transform = stored
    else:
        transforms.attach(model, stored)
    return model.eval(), ckpt
