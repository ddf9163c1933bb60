"""Units of the last conv layers as semantic detectors (Action-Unit emergence:
`impressions.explain.emergence`).

Two analyses from the interpretation work behind First Impressions models (the second computed in
`impressions.explain.emergence`):

- *Units as detectors* (Zhou et al., 2015, "Object detectors emerge in deep scene CNNs"): every unit
  (channel) of a late conv layer is shown through the images that excite it most, each segmented by
  its upsampled activation map thresholded at half its maximum (`SEGMENTATION`, ``activation_threshold``:
  not Zhou et al.'s empirical receptive field, which they estimate by occluding image patches). On
  aligned faces the
  semantic label is found automatically: each unit's peak location on its top images is tested
  against face-part regions built from the 68 dlib landmarks; a unit whose peaks fall in one part in
  at least `threshold` of its top images is a detector of that part.
- *AU emergence* (Gucluturk et al.; Ventura et al., 2017): for each Action Unit, the frames where it
  is most intense against each unit's most activating frames. The best unit's overlap ``I_max`` is
  judged against chance: under random rankings the overlap of two top-``n`` sets out of ``F`` frames
  is hypergeometric, corrected over units x AUs.

Coordinates: landmarks and peaks are (x, y) image pixels; a point lies in pixel
``(floor(y), floor(x))`` of a mask. Activations are float32 numpy arrays (N, C, h, w).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from impressions.expressions import geometry

FACE_PARTS: dict[str, tuple[range, ...]] = {
    "eyebrows": (range(17, 22), range(22, 27)),
    "eyes": (range(36, 42), range(42, 48)),
    "nose": (range(27, 36),),
    "mouth": (range(48, 68),),
}
"""Face part -> groups of dlib 68-point landmark indices; its region is the union of the groups' hulls."""

RESIDUAL_BLOCKS = ("BasicBlock", "Bottleneck")


# ----------------------------------------------------------------------------------------------------
# Layers and activations


def _is_residual_stage(module: nn.Module) -> bool:
    children = list(module.children())
    return bool(children) and all(type(c).__name__ in RESIDUAL_BLOCKS for c in children)


def unit_layers(model: nn.Module, n_last: int = 2) -> dict[str, nn.Module]:
    """The last `n_last` conv layers' post-activation modules of a DANPlus body (or a bare body).

    Plain bodies (small, vgg16): the ReLU after each Conv2d, named ``conv{k}`` with k counting conv
    layers from 1. Residual bodies (resnet18): each block of the residual stages, named
    ``layer{s}.{i}`` (the block's output is already past its final ReLU).
    """
    if n_last < 1:
        raise ValueError("n_last must be at least 1")
    body = getattr(model, "body", model)
    found: list[tuple[str, nn.Module]] = []
    stage, convs, pending = 0, 0, False
    for child in body.children():
        if _is_residual_stage(child):
            stage += 1
            found += [(f"layer{stage}.{i}", block) for i, block in enumerate(child.children())]
        elif isinstance(child, nn.Conv2d):
            convs += 1
            pending = True
        elif isinstance(child, nn.ReLU) and pending:
            found.append((f"conv{convs}", child))
            pending = False
    if not found:
        raise ValueError("no conv layer with a following ReLU and no residual stage in the model body")
    return dict(found[-n_last:])


def unit_activations(
    model: nn.Module, layers: Mapping[str, nn.Module], images: torch.Tensor, batch_size: int = 64
) -> dict[str, np.ndarray]:
    """Layer name -> (N, C, h, w) float32 activations of images (N, 3, S, S) in 0..1 (eval mode, no grad).

    Runs ``model.forward_features`` when the model has it (the head is not needed), else the model.
    """
    store: dict[str, list[np.ndarray]] = {name: [] for name in layers}

    def hook(name):
        def record(_module, _inputs, output):
            store[name].append(output.detach().float().cpu().numpy())

        return record

    handles = [module.register_forward_hook(hook(name)) for name, module in layers.items()]
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    run = getattr(model, "forward_features", model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                run(images[start : start + batch_size].to(device=device, dtype=torch.float32))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return {name: np.concatenate(chunks).astype(np.float32, copy=False) for name, chunks in store.items()}


def peaks(acts: np.ndarray, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, C) peak values and (N, C, 2) peak (x, y) in image pixels: the centre of the peak map cell."""
    n, c, h, w = acts.shape
    flat = acts.reshape(n, c, h * w)
    index = flat.argmax(axis=2)
    values = np.take_along_axis(flat, index[..., None], axis=2)[..., 0].astype(np.float32)
    row, col = np.divmod(index, w)
    xy = np.stack([(col + 0.5) * image_size / w, (row + 0.5) * image_size / h], axis=-1)
    return values, xy.astype(np.float32)


# ----------------------------------------------------------------------------------------------------
# Face parts and detectors


def _hull_mask(points: np.ndarray, size: int) -> np.ndarray:
    from scipy.spatial import ConvexHull, QhullError
    from skimage.draw import polygon, polygon_perimeter

    try:
        vertices = points[ConvexHull(points).vertices]
    except (QhullError, ValueError):  # collinear or repeated points: their polyline is the region
        vertices = points
    mask = np.zeros((size, size), dtype=bool)
    x, y = vertices[:, 0], vertices[:, 1]
    mask[polygon(y, x, shape=mask.shape)] = True
    # The fill leaves out pixels on the boundary and thin hulls entirely; draw the outline as well.
    rr, cc = polygon_perimeter(y, x)
    inside = (rr >= 0) & (rr < size) & (cc >= 0) & (cc < size)
    mask[rr[inside], cc[inside]] = True
    return mask


def part_masks(landmarks: np.ndarray, size: int, margin: float = 0.1) -> dict[str, np.ndarray]:
    """Part -> bool (size, size) region: union of the convex hulls of the part's landmark groups,
    dilated by `margin` x the inter-ocular distance. All-False masks where landmarks are NaN.

    `landmarks` may also be a stack (N, 68, 2); the masks are then (N, size, size).
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim == 3:
        per_face = [part_masks(one, size, margin) for one in lm]
        return {
            part: np.stack([m[part] for m in per_face]) if per_face else np.zeros((0, size, size), bool)
            for part in FACE_PARTS
        }
    if lm.shape != (68, 2):
        raise ValueError(f"landmarks must be (68, 2) or (N, 68, 2), not {lm.shape}")
    masks = {part: np.zeros((size, size), dtype=bool) for part in FACE_PARTS}
    if not np.isfinite(lm).all():
        return masks
    radius = margin * float(geometry.interocular(lm))
    for part, groups in FACE_PARTS.items():
        mask = masks[part]
        for group in groups:
            mask |= _hull_mask(lm[list(group)], size)
        if radius > 0 and mask.any():
            from scipy.ndimage import distance_transform_edt

            masks[part] = distance_transform_edt(~mask) <= radius
    return masks


def top_images(values: np.ndarray, top: int, clip_ids=None) -> np.ndarray:
    """(top, C) indices of each column's `top` largest values, ties broken by order (NaN last). With
    `clip_ids` (one per row) at most one image per clip, its best: frames of one clip are one piece of
    evidence, so `top` is at most the number of clips."""
    order = np.argsort(-np.asarray(values), axis=0, kind="stable")
    if clip_ids is None:
        return order[:top]
    codes = np.unique(np.asarray(clip_ids), return_inverse=True)[1].ravel()
    k = min(top, int(codes.max()) + 1 if len(codes) else 0)
    out = np.empty((k, order.shape[1]), dtype=np.int64)
    for u in range(order.shape[1]):
        _, first = np.unique(codes[order[:, u]], return_index=True)
        out[:, u] = order[np.sort(first)[:k], u]
    return out


def null_pass_probability(k: int, chance: float, required: float) -> float:
    """P(a unit with uniformly placed peaks has at least `required` of its `k` top images' peaks in a
    part of chance share `chance`): the binomial tail, the null of the detector rule."""
    from scipy.stats import binom

    if not (k > 0 and np.isfinite(chance)):
        return float("nan")
    need = int(np.ceil(required * k - 1e-9))
    return float(binom.sf(need - 1, k, chance))


def chance_shares(masks: Mapping[str, np.ndarray], grid: tuple[int, int]) -> dict[str, float]:
    """Part -> the share of peaks a part collects by its area alone.

    A unit's peak lies at the centre of one cell of its layer's (h, w) grid (`peaks`); a unit whose
    peak cell is uniform over the grid lands in a part with probability equal to the share of cell
    centres inside the part's mask. That share, averaged over the images (masks part -> (N, S, S)),
    is the chance baseline a detector's mass must clear. Images without a face (empty masks) count 0.
    """
    h, w = (int(v) for v in grid)
    out = {}
    for part, mask in masks.items():
        mask = np.asarray(mask)
        if mask.ndim == 2:
            mask = mask[None]
        n, size_y, size_x = mask.shape
        if n == 0:
            out[part] = float("nan")
            continue
        iy = np.clip(np.floor((np.arange(h) + 0.5) * size_y / h).astype(int), 0, size_y - 1)
        ix = np.clip(np.floor((np.arange(w) + 0.5) * size_x / w).astype(int), 0, size_x - 1)
        out[part] = float(mask[:, iy][:, :, ix].mean())
    return out


def find_detectors(
    values: np.ndarray,
    xy: np.ndarray,
    masks: Mapping[str, np.ndarray],
    top: int = 20,
    threshold: float = 0.5,
    chance: Mapping[str, float] | None = None,
    margin: float = 0.0,
    clip_ids=None,
) -> list[dict]:
    """One row per unit: which face part (if any) its peaks on its `top` images fall in.

    values (N, C) peak values, xy (N, C, 2) peak locations, masks part -> bool (N, S, S) (from
    `part_masks` of each image's landmarks). mass[part] is the share of the unit's top images whose
    peak lies in that image's part mask; ``part`` is the best part when its mass reaches `threshold`
    (None otherwise, and for a unit that never fires). ``top_value`` is the unit's highest peak value.
    Images without a face have empty masks and count as misses: drop them first.

    With `chance` (part -> share expected by area, `chance_shares`) each row also has chance_<part>
    and lift_<part> (mass / chance), the best part is the one with the largest excess mass - chance,
    and it is a detector only when, besides reaching `threshold`, its mass exceeds its chance share by
    at least `margin` (a share, e.g. 0.25); ``p_<part>`` is then the binomial P(mass at least this
    large) under uniformly placed peaks (`null_pass_probability`), for a correction over units x parts
    by the caller. With `clip_ids` the top images come from distinct clips (`top_images`);
    ``n_images`` is how many there are.
    """
    from scipy.stats import binom

    values = np.asarray(values)
    n, c = values.shape
    parts = list(masks)
    size_y, size_x = next(iter(masks.values())).shape[1:] if parts else (0, 0)
    order = top_images(values, min(top, n), clip_ids)  # (k, C)
    k = order.shape[0]
    units = np.arange(c)[None, :]
    loc = np.asarray(xy)[order, units]  # (k, C, 2)
    ix = np.clip(np.floor(loc[..., 0]).astype(int), 0, size_x - 1)
    iy = np.clip(np.floor(loc[..., 1]).astype(int), 0, size_y - 1)
    mass = {part: np.asarray(masks[part])[order, iy, ix].mean(axis=0) for part in parts}  # part -> (C,)
    rows = []
    for u in range(c):
        top_value = float(values[order[0, u], u])
        row = {"unit": u, "top_value": top_value, "n_images": int(k),
               **{f"mass_{p}": float(mass[p][u]) for p in parts}}  # fmt: skip
        fires = np.isfinite(top_value) and top_value > 0
        if chance is None:
            best = max(parts, key=lambda p: mass[p][u]) if parts else None  # first part on ties
            clears = best is not None and mass[best][u] >= threshold
        else:
            for p in parts:
                row[f"chance_{p}"] = float(chance[p])
                row[f"lift_{p}"] = float(mass[p][u] / chance[p]) if chance[p] > 0 else float("nan")
                hits = int(round(mass[p][u] * k))
                row[f"p_{p}"] = float(binom.sf(hits - 1, k, chance[p])) if np.isfinite(chance[p]) else 1.0
            excess = {p: mass[p][u] - (chance[p] if np.isfinite(chance[p]) else 1.0) for p in parts}
            best = max(parts, key=lambda p: excess[p]) if parts else None
            clears = best is not None and mass[best][u] >= threshold and excess[best] >= margin
        row["part"] = best if fires and clears else None
        rows.append(row)
    return rows


def peak_histogram(xy_top: np.ndarray, size: int, bins: int = 16) -> np.ndarray:
    """(bins, bins) counts of peak locations (..., 2) over the image; rows are y, columns x."""
    pts = np.asarray(xy_top, dtype=np.float64).reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(axis=1)]
    counts, _, _ = np.histogram2d(pts[:, 1], pts[:, 0], bins=bins, range=[[0, size], [0, size]])
    return counts.astype(np.int64)


def _upsample(act_map: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    import torch.nn.functional as F

    t = torch.as_tensor(np.asarray(act_map, dtype=np.float32))[None, None]
    return F.interpolate(t, size=shape, mode="bilinear", align_corners=False)[0, 0].numpy()


SEGMENTATION = "activation_threshold"
"""How a unit's top images are segmented (`segment`): its activation map upsampled to the image, pixels
under `SEGMENTATION_LEVEL` x its maximum darkened. Zhou et al. (ICLR 2015) segment by an *empirical
receptive field* estimated by occlusion; that is not computed here, so the figures say which it is."""

SEGMENTATION_LEVEL = 0.5

SEGMENTATION_TEXT = (
    f"segmented by {SEGMENTATION} (the unit's activation map upsampled to the image, pixels under "
    f"{SEGMENTATION_LEVEL:g} x its maximum darkened; not Zhou et al. 2015's empirical receptive field, "
    "which is estimated by occlusion)"
)
"""The segmentation as the report's captions describe it."""


def segment(image_uint8: np.ndarray, act_map: np.ndarray, level: float = SEGMENTATION_LEVEL) -> np.ndarray:
    """`SEGMENTATION` (activation threshold): pixels where the upsampled map is below `level` x its max are
    darkened to 25% brightness (all of them when the map never rises above 0); uint8 RGB."""
    image = np.asarray(image_uint8)
    up = _upsample(act_map, image.shape[:2])
    peak = float(up.max())
    keep = up >= level * peak if peak > 0 else np.zeros(up.shape, dtype=bool)
    dark = (image.astype(np.float32) * 0.25).round().astype(np.uint8)
    return np.where(keep[..., None], image, dark).astype(np.uint8)


# ----------------------------------------------------------------------------------------------------
# Figures


def _unit_index(unit) -> int:
    return int(unit["unit"]) if isinstance(unit, Mapping) else int(unit)


def _plot_unit_rows(images, acts, values, units, path, k: int, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    units = [_unit_index(u) for u in units]
    values = np.asarray(values)
    k = max(1, min(k, len(values)))
    if not units:
        fig, ax = plt.subplots(figsize=(4, 1.5))
        ax.text(0.5, 0.5, f"{title}: no units", ha="center", va="center")
        ax.axis("off")
    else:
        order = top_images(values[:, units], k)  # (k, units)
        fig, axes = plt.subplots(len(units), k, figsize=(1.7 * k, 1.8 * len(units)), squeeze=False)
        for r, u in enumerate(units):
            for j in range(k):
                i = int(order[j, r])
                ax = axes[r, j]
                ax.imshow(segment(images[i], acts[i, u]))
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title(f"{values[i, u]:.2f}", fontsize=7)
            axes[r, 0].set_ylabel(f"unit {u}", fontsize=8)
        fig.suptitle(title, fontsize=9)
        fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_top_units(images, acts, values, units, path, k: int = 5, title: str = "top images") -> None:
    """One row per unit: its `k` top images (uint8 (N, S, S, 3)), segmented by its activation map."""
    _plot_unit_rows(images, acts, values, units, path, k, title)


def plot_part_gallery(images, acts, values, units, part: str, path, k: int = 5) -> None:
    """The detectors of one face part (`units`: indices or `find_detectors` rows), as `plot_top_units`."""
    _plot_unit_rows(images, acts, values, units, path, k, f"{part} detectors")


def plot_histograms(hists: Mapping[str, np.ndarray], path, masks_mean=None) -> None:
    """One panel per peak histogram; `masks_mean` ((S, S) or part -> (S, S) mean masks) drawn as contours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(hists)
    columns = max(1, min(4, len(names)))
    rows = max(1, -(-len(names) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.6 * rows), squeeze=False)
    if masks_mean is None:
        outlines: dict[str, np.ndarray] = {}
    elif isinstance(masks_mean, Mapping):
        outlines = {p: np.asarray(m, dtype=np.float64) for p, m in masks_mean.items()}
    else:
        outlines = {"": np.asarray(masks_mean, dtype=np.float64)}
    colours = ("cyan", "lime", "magenta", "white", "yellow", "orange")
    for ax in axes.ravel():
        ax.axis("off")
    for ax, name in zip(axes.ravel(), names):
        ax.imshow(np.asarray(hists[name]), cmap="hot", extent=(0, 1, 1, 0), interpolation="nearest")
        for mask, colour in zip(outlines.values(), colours * len(outlines)):
            if mask.max() > mask.min():
                s = (np.arange(mask.shape[0]) + 0.5) / mask.shape[0]
                ax.contour(s, s, mask, levels=[0.5], colors=colour, linewidths=0.8)
        ax.set_title(name, fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
