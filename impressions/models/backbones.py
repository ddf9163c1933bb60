"""Convolutional bodies of the image and face networks, and the pretrained weights they load.

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
