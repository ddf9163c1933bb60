"""Where the image and face models look: class activation maps, Grad-CAM and the face-overlap test.

- CAM (Zhou et al., 2016): for a GAP -> linear network each trait's logit is a sum over locations
  of ``w_t . A(x, y) / (h w)``; that per-location term is the trait's map. `DANPlus.activation_maps`
  gives this decomposition exactly (for ``head="cam"`` it is CAM; for ``head="dan"`` it adds the
  max-pooled half at each channel's peak), so `class_activation_maps` only calls it.
- Grad-CAM (Selvaraju et al., 2017) works on any backbone and layer:
  ``relu(sum_c alpha_c A_c)`` with ``alpha_c`` the spatial mean of ``d output / d A_c``. On a
  GAP -> linear network the gradient is ``w_c / (h w)`` everywhere, so Grad-CAM is relu(CAM) up to a
  positive factor (the sigmoid's slope).
- The quantitative test of Ventura et al. (2017): CAM upsampled to the image, thresholded at 0.2 of
  its maximum, split into connected components; a region is "on the face" when at least 90% of it
  lies in the detected face box (they report 72.8% of regions on First Impressions).

Maps are numpy float32 (N, T, h, w) with T the model's outputs (the five traits, schemas.TRAITS).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@contextmanager
def _eval_mode(model: nn.Module):
    """Eval mode for the duration (dropout off, batch norm on running statistics, so samples are
    independent), then the caller's mode back."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def class_activation_maps(model: nn.Module, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-trait maps (N, T, h, w) and logits (N, T) of images x (N, 3, S, S) in 0..1.

    Uses ``model.activation_maps(x) -> (maps, logits)`` (DANPlus, or any module providing that exact
    decomposition: maps summed over locations plus the bias give the logits). The model runs in eval
    mode.
    """
    if not hasattr(model, "activation_maps"):
        raise TypeError(
            f"{type(model).__name__} has no activation_maps(x); CAM needs a GAP -> linear model "
            "(models.DANPlus), use grad_cam for other networks"
        )
    with _eval_mode(model), torch.no_grad():
        maps, logits = model.activation_maps(x)
    return maps.float().cpu().numpy(), logits.float().cpu().numpy()


def grad_cam(
    model: nn.Module, x: torch.Tensor, layer: nn.Module | None = None, outputs: Sequence[int] | None = None
) -> np.ndarray:
    """Grad-CAM maps (N, len(outputs), h, w) of model outputs on `layer`'s output (N, C, h, w).

    `model(x)` must return (N, T); `outputs` are the output indices to explain (None: all T);
    `layer` defaults to ``model.cam_layer``. Gradients are taken of the model's outputs as returned
    (DANPlus: sigmoid scores, whose maps are the logits' maps times the positive sigmoid slope).
    The model runs in eval mode so that each sample's map depends on that sample only.
    """
    # Hand-written (a forward hook and torch.autograd.grad) rather than pytorch-grad-cam, which would
    # bring OpenCV and ttach into the environment for these few lines.
    layer = model.cam_layer if layer is None else layer
    seen: list[torch.Tensor] = []

    def keep(module, inputs, output):
        if not output.requires_grad:  # a frozen body on an input without grad: start the graph here
            output = output.detach().requires_grad_(True)
        seen.append(output)
        return output

    handle = layer.register_forward_hook(keep)
    try:
        with _eval_mode(model), torch.enable_grad():
            scores = model(x)
            if len(seen) != 1:
                raise ValueError(f"the layer ran {len(seen)} times in one forward pass; expected once")
            acts = seen[0]
            if acts.dim() != 4:
                raise ValueError(f"Grad-CAM needs a (N, C, h, w) layer output, got {tuple(acts.shape)}")
            index = range(scores.shape[1]) if outputs is None else outputs
            cams = []
            for t in index:
                # Summing over the batch keeps samples apart: in eval mode sample i's output depends
                # on sample i's activations only.
                (grad,) = torch.autograd.grad(scores[:, t].sum(), acts, retain_graph=True)
                alpha = grad.mean(dim=(2, 3), keepdim=True)
                cams.append(F.relu((alpha * acts).sum(dim=1)))
    finally:
        handle.remove()
    return torch.stack(cams, dim=1).detach().float().cpu().numpy()


def upsample(maps: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """(..., h, w) -> (..., H, W) bilinear (torch interpolate, align_corners=False), float32."""
    maps = np.asarray(maps, dtype=np.float32)
    size = (size, size) if isinstance(size, int) else tuple(size)
    lead, (h, w) = maps.shape[:-2], maps.shape[-2:]
    flat = torch.from_numpy(np.ascontiguousarray(maps.reshape(-1, 1, h, w)))
    out = F.interpolate(flat, size=size, mode="bilinear", align_corners=False)
    return out.numpy().reshape(*lead, *size)


def cam_regions(cam: np.ndarray, threshold: float = 0.2) -> list[np.ndarray]:
    """Boolean masks of the connected components (8-connectivity) of ``cam >= threshold * max(cam)``.

    Only a positive maximum defines regions: a map that is nowhere above zero has none.
    """
    from scipy import ndimage

    cam = np.asarray(cam, dtype=np.float64)
    if cam.ndim != 2:
        raise ValueError(f"cam_regions takes one (H, W) map, got shape {cam.shape}")
    peak = np.nanmax(cam) if np.isfinite(cam).any() else np.nan
    if not peak > 0:
        return []
    labels, n = ndimage.label(cam >= threshold * peak, structure=np.ones((3, 3), dtype=bool))
    return [labels == k for k in range(1, n + 1)]


def box_mask(box: Sequence[float], shape: tuple[int, int]) -> np.ndarray:
    """Boolean (H, W) mask of the pixels whose centre lies in box (left, top, right, bottom).

    Pixel (row r, column c) has its centre at (x, y) = (c, r), the convention of landmark and dlib
    box coordinates (dlib's right and bottom are inclusive).
    """
    left, top, right, bottom = (float(v) for v in box)
    cols, rows = np.arange(shape[1]), np.arange(shape[0])
    return ((rows >= top) & (rows <= bottom))[:, None] & ((cols >= left) & (cols <= right))[None, :]


def map_cosine(cam: np.ndarray, target: np.ndarray) -> float:
    """Cosine similarity of a CAM, min-max normalised to 0..1 (as CAMR's ``returnCAM``), and a target map
    (Belharbi et al.'s CAM-COS, per image); NaN for a constant CAM or an all-zero target."""
    a, b = np.asarray(cam, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"maps differ in shape: {a.shape} vs {b.shape}")
    if not np.isfinite(a).all() or np.ptp(a) == 0 or not np.isfinite(b).all():
        return float("nan")
    a = (a - a.min()) / np.ptp(a)
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float(np.clip((a * b).sum() / denom, -1.0, 1.0)) if denom > 0 else float("nan")


def map_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r of two equally shaped maps over their finite pixels; NaN if either is constant."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"maps differ in shape: {a.shape} vs {b.shape}")
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float(np.clip((a * b).sum() / denom, -1.0, 1.0))


def overlay(image_uint8: np.ndarray, cam: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """uint8 RGB (H, W, 3): the image blended with the 'jet'-coloured map (upsampled to the image,
    scaled to its own min..max; a constant map is drawn as its minimum colour)."""
    import matplotlib

    image = np.asarray(image_uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    heat = upsample(np.asarray(cam, dtype=np.float32), image.shape[:2]).astype(np.float64)
    span = heat.max() - heat.min()
    heat = (heat - heat.min()) / span if span > 0 else np.zeros_like(heat)
    colour = matplotlib.colormaps["jet"](heat)[..., :3] * 255.0
    blend = (1.0 - alpha) * image[..., :3].astype(np.float64) + alpha * colour
    return np.clip(np.rint(blend), 0, 255).astype(np.uint8)


def _figure(rows: int, columns: int, panel: float = 2.0, top: float = 0.0):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        rows, columns, figsize=(panel * columns, panel * rows + top), dpi=100, squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    return plt, fig, axes


def _save(plt, fig, path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_overlays(
    images: np.ndarray, cams: np.ndarray, titles: Sequence[str], path, columns: int = 5, suptitle: str = ""
) -> None:
    """Grid of overlays, one panel per (image, map, title), `columns` panels a row (2 x 2 in each)."""
    n = len(images)
    if not (len(cams) == len(titles) == n):
        raise ValueError(f"{n} images, {len(cams)} maps and {len(titles)} titles: give one of each per panel")
    columns = max(1, min(columns, n))
    rows = max(1, -(-n // columns))
    plt, fig, axes = _figure(rows, columns, top=0.4 if suptitle else 0.0)
    for ax, image, cam, title in zip(axes.flat, images, cams, titles):
        ax.imshow(overlay(image, cam))
        ax.set_title(title, fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    _save(plt, fig, path)


def plot_cam_vs_gradcam(
    images: np.ndarray, cams: np.ndarray, gradcams: np.ndarray, titles: Sequence[str], path
) -> None:
    """One row per image: the image, its CAM and its Grad-CAM overlays, with the maps' Pearson r
    (at the image's resolution)."""
    n = len(images)
    if not (len(cams) == len(gradcams) == len(titles) == n):
        raise ValueError("give one CAM, one Grad-CAM and one title per image")
    plt, fig, axes = _figure(max(n, 1), 3)
    for row, (image, cam, grad, title) in enumerate(zip(images, cams, gradcams, titles)):
        size = np.asarray(image).shape[:2]
        r = map_correlation(upsample(cam, size), upsample(grad, size))
        axes[row, 0].imshow(np.asarray(image))
        axes[row, 0].set_title(title, fontsize=8)
        axes[row, 1].imshow(overlay(image, cam))
        axes[row, 1].set_title("CAM", fontsize=8)
        axes[row, 2].imshow(overlay(image, grad))
        axes[row, 2].set_title(f"Grad-CAM (r = {r:.2f})", fontsize=8)
    fig.tight_layout()
    _save(plt, fig, path)
