"""VGG-Face (Parkhi et al., BMVC 2015) weights converted to torchvision's vgg16 layout.

Every seed result on First Impressions starts from VGG-Face. The public files name their layers
``conv1_1 ... fc8`` (or ``conv_1_1 ...``) and expect 0-255 inputs minus a per-channel mean, while
this project's networks take [0, 1] RGB images and normalise them with a ``(mean, std)`` carried by
the model. `convert` renames the keys (`KEY_MAP`), reorders conv1_1's input channels when the source
is BGR, and stores the weights' input transform beside them: ``mean = mu / 255`` and
``std = 1 / 255`` (in RGB order), so that ``(x - mean) / std = 255 x - mu`` exactly, with nothing
folded into conv1_1 (folding is exact only away from the zero-padded border). `impressions.models.networks`
loads the file and keeps the transform as the model's ``mean``/``std`` buffers; they are saved in
every checkpoint, so training, prediction and interpretation feed the network the same values.

Files (`KNOWN_FILES`; none is downloaded at run time):

- ``vgg_face_dag.pth``: S. Albanie's PyTorch conversion of the MatConvNet model,
  https://www.robots.ox.ac.uk/~albanie/models/pytorch-mcn/vgg_face_dag.pth ; keys ``conv1_1.weight``
  ... ``fc8.bias``; RGB, mean (129.186279296875, 104.76238250732422, 93.59396362304688), std 1.
- ``vgg_face.pth`` from prlz77/vgg-face.pytorch (a conversion of Oxford's Lua-Torch ``VGG_FACE.t7``,
  https://www.robots.ox.ac.uk/~vgg/software/vgg_face/): keys ``conv_1_1.weight`` ...; the channel
  order these weights expect is not documented, so ``--channel-order`` must be given.

No published checksum is known to us for either file; pass ``--sha256`` to verify a download against
one you trust. The converted file records the source's SHA-256 either way.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch loads where weights are converted, not for `impressions --help`
    import torch

VGGFACE_MEAN_RGB = (129.186279296875, 104.76238250732422, 93.59396362304688)
"""Per-channel mean of the VGG-Face training images, 0-255 scale, RGB (MatConvNet/DAG meta)."""

CONVS = ("1_1", "1_2", "2_1", "2_2", "3_1", "3_2", "3_3", "4_1", "4_2", "4_3", "5_1", "5_2", "5_3")
FEATURE_INDEX = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
KEY_MAP = {f"conv{c}": f"features.{i}" for c, i in zip(CONVS, FEATURE_INDEX)} | {
    "fc6": "classifier.0",
    "fc7": "classifier.3",
    "fc8": "classifier.6",
}
"""Published layer name (DAG naming) -> torchvision vgg16 module."""

KNOWN_FILES = {
    "vgg_face_dag.pth": {
        "url": "https://www.robots.ox.ac.uk/~albanie/models/pytorch-mcn/vgg_face_dag.pth",
        "origin": "S. Albanie's pytorch-mcn conversion of the Oxford VGG-Face MatConvNet model",
        "channel_order": "rgb",
        "sha256": None,  # no published checksum known
    },
    "vgg_face.pth": {
        "url": "https://github.com/prlz77/vgg-face.pytorch (converts VGG_FACE.t7 from "
        "https://www.robots.ox.ac.uk/~vgg/software/vgg_face/)",
        "origin": "prlz77/vgg-face.pytorch's conversion of the Oxford VGG-Face Lua-Torch model",
        "channel_order": None,  # not documented: the user must say
        "sha256": None,
    },
}

DEFAULT_OUTPUT = "weights/vgg_face_torchvision.pth"
"""Where docs/reproduction.md tells users to write the converted file (set ``weights:`` to this path)."""


class ConversionError(ValueError):
    """The source file is missing, unknown or does not hold VGG-Face weights."""


def where_from(name: str = "vgg_face_dag.pth") -> str:
    """One sentence: where a user gets the published file and how to convert it."""
    known = KNOWN_FILES.get(Path(name).name, KNOWN_FILES["vgg_face_dag.pth"])
    return (
        f"download {known['url']} ({known['origin']}) on a machine with network access, then run "
        f"`impressions convert-vggface vgg_face_dag.pth -o {DEFAULT_OUTPUT}` and set the model's "
        f"`weights:` to {DEFAULT_OUTPUT}"
    )


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _canonical(key: str) -> str:
    """``conv_1_1.weight`` (prlz) -> ``conv1_1.weight`` (DAG); other names unchanged."""
    layer, _, param = key.removeprefix("module.").rpartition(".")
    if layer.startswith("conv_"):
        layer = "conv" + layer[len("conv_") :]
    return f"{layer}.{param}"


def convert_state_dict(state: dict, channel_order: str = "rgb") -> dict[str, torch.Tensor]:
    """A published-naming state dict -> torchvision vgg16 keys, conv1_1 taking RGB input.

    Every source key must map exactly once; every conv layer must be present; fc6..fc8 are optional
    (the image and face models drop the classifier). Values are copied, not folded."""
    if channel_order not in ("rgb", "bgr"):
        raise ConversionError(f"channel_order must be rgb or bgr, not {channel_order!r}")
    import torch

    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in state.items():
        canon = _canonical(key)
        layer, _, param = canon.rpartition(".")
        if layer not in KEY_MAP or param not in ("weight", "bias"):
            unknown.append(key)
            continue
        target = f"{KEY_MAP[layer]}.{param}"
        if target in out:
            raise ConversionError(f"two source keys map to {target} (one of them {key})")
        out[target] = torch.as_tensor(value).detach().clone().float()
    if unknown:
        raise ConversionError(f"keys that are not VGG-Face layers: {unknown[:5]} ({len(unknown)} in all)")
    missing = [
        f"conv{c}.{p}" for c in CONVS for p in ("weight", "bias") if f"{KEY_MAP['conv' + c]}.{p}" not in out
    ]
    if missing:
        raise ConversionError(f"VGG-Face conv parameters missing from the source: {missing[:5]}")
    first = out["features.0.weight"]
    if first.shape[1] != 3:
        raise ConversionError(f"conv1_1 has {first.shape[1]} input channels, not 3")
    if channel_order == "bgr":
        out["features.0.weight"] = first.flip(1).contiguous()  # W_rgb[:, c] = W_bgr[:, 2 - c]
    return out


def input_transform(mean_rgb=VGGFACE_MEAN_RGB) -> dict:
    """The transform that turns [0, 1] RGB x into the 0-255, mean-subtracted input: (x - m) / s."""
    return {
        "mean": [float(m) / 255.0 for m in mean_rgb],
        "std": [1.0 / 255.0] * 3,
        "channel_order": "rgb",
        "scale": 255.0,
        "mean_0_255": [float(m) for m in mean_rgb],
    }


def convert(
    source: str | Path, output: str | Path, channel_order: str | None = None,
    expected_sha256: str | None = None, mean_rgb=VGGFACE_MEAN_RGB,
) -> dict:  # fmt: skip
    """Convert a published VGG-Face file; write ``{"state_dict", "input_transform", "source"}``.

    Returns the written metadata. Offline, a missing source stops with its name, where to put it and
    where it comes from."""
    source = Path(source)
    known = KNOWN_FILES.get(source.name)
    if not source.is_file():
        raise ConversionError(f"VGG-Face file {source} not found. Put it there: {where_from(source.name)}")
    digest = sha256(source)
    wanted = expected_sha256 or (known or {}).get("sha256")
    if wanted and digest.lower() != wanted.lower():
        raise ConversionError(f"{source}: SHA-256 {digest} does not match the expected {wanted}")
    order = channel_order or (known or {}).get("channel_order")
    if order is None:
        raise ConversionError(
            f"{source.name}: the channel order its weights expect is not documented; "
            "give --channel-order rgb or bgr"
        )
    import torch

    state = torch.load(source, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ConversionError(f"{source} holds a {type(state).__name__}, not a state dict")
    converted = convert_state_dict(state, order)
    meta = {
        "input_transform": input_transform(mean_rgb),
        "source": {
            "file": source.name,
            "sha256": digest,
            "channel_order": order,
            "checksum_verified": bool(wanted),
        },  # fmt: skip
    }
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": converted, **meta}, output)
    return meta


def torchvision_vgg16(state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """A torchvision vgg16 holding a converted state dict, classifier sized to its fc layers."""
    import torchvision
    from torch import nn

    net = torchvision.models.vgg16(weights=None)
    for index in (0, 3, 6):
        key = f"classifier.{index}.weight"
        if key in state:
            out_f, in_f = state[key].shape
            net.classifier[index] = nn.Linear(in_f, out_f)
    net.load_state_dict(state, strict=all(f"classifier.{i}.weight" in state for i in (0, 3, 6)))
    return net.eval()
