"""The input transform of the image and face networks, carried with the model (torchvision style).

Stored images are uint8 ``(N, H, W, 3)``. `ImageTransform` turns them into what the network takes:
float ``(N, 3, size, size)`` in 0..1 (scaled, resized with antialiasing, optionally mirrored); the
network then subtracts ``mean`` and divides by ``std`` (its buffers, saved with its weights, so the
weights and their normalisation never part). Training, `impressions predict` and interpretation all
call the model's ``transform`` (`attach`), and the checkpoint records it (`ImageTransform.to_dict`).
torch is imported only when the transform runs, so the workflow's rules can import this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def prepare_images(x, size: int | None, flip=None):
    """uint8 (N, H, W, 3) -> float (N, 3, size, size) in 0..1, optionally mirrored where `flip` is true."""
    import torch
    import torch.nn.functional as F

    x = x.permute(0, 3, 1, 2).float().div_(255)
    if size and x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    if flip is not None:
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    return x


@dataclass(frozen=True)
class ImageTransform:
    """Resize to `size` (None: keep the stored side) and scale to 0..1; `mean` / `std` (0..1 RGB) are
    the normalisation the network applies next (ImageNet's, or the one its weights file carries)."""

    size: int | None = None
    mean: Sequence[float] = IMAGENET_MEAN
    std: Sequence[float] = IMAGENET_STD

    def __call__(self, images, flip=None):
        """uint8 images (a tensor or an array) -> the network's input tensor."""
        import numpy as np
        import torch

        if isinstance(images, np.ndarray):
            images = torch.from_numpy(np.ascontiguousarray(images))
        return prepare_images(images, self.size, flip)

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, Sequence) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, stored: Mapping) -> ImageTransform:
        return cls(stored.get("size"), tuple(stored["mean"]), tuple(stored["std"]))


def for_model(model, size: int | None) -> ImageTransform:
    """The transform of a network with ``mean`` / ``std`` buffers, at input side `size`."""
    return ImageTransform(size, tuple(model.mean.flatten().tolist()), tuple(model.std.flatten().tolist()))


def attach(model, size: int | None):
    """Give an image network its transform (``model.transform``); other models are left alone."""
    if hasattr(model, "mean") and hasattr(model, "std") and hasattr(model, "activation_maps"):
        model.transform = for_model(model, size)
    return model


def from_checkpoint(ckpt: Mapping) -> int | None | ImageTransform:
    """The recorded transform; a checkpoint from before it was recorded gives its input side only
    (``summary.settings.input_size``, where training kept it), to be completed by `for_model`."""
    if "transform" in ckpt:
        return ImageTransform.from_dict(ckpt["transform"])
    summary = ckpt.get("summary", {})
    return summary.get("input_size") or summary.get("settings", {}).get("input_size")
