"""Action-Unit maps from facial landmarks, and the AU-guidance term that trains attention toward them.

Interpretable facial-expression work (e.g. AU-guided attention) turns the 68 dlib landmarks of a
frame and an emotion -> AU codebook into a heatmap of where that emotion shows on the face, and then
compares a network's attention (or CAM) with it, or trains the attention toward it:

- `AU_LANDMARKS`: each AU's centres on the face, as landmark indices (see there);
- `CODEBOOK`: each emotion's prototypic AUs (`impressions.expressions.codebook`), neutral has none;
- `au_heatmaps` / `emotion_map` / `frame_maps`: each AU drawn in one of `SHAPES`: ``ellipse`` (the
  default), Belharbi et al.'s filled ellipses at their landmark anchors (`au_ellipses`, METHODS 7.2),
  or ``gaussian``, this project's earlier variant: Gaussian blobs (peak 1) at the `AU_LANDMARKS`
  centres; sizes are fractions of the inter-ocular distance (IOD: mean of points 36-41 to mean of
  42-47), so the same face gets the same map at any resolution;
- `attention` / `guidance_loss`: activation-based attention (Zagoruyko & Komodakis, 2017: channel
  mean of A^2, L2-normalised) and its squared distance to the normalised AU map;
- `attention_au_correlation`: how well a layer's attention matches the AU map, per sample;
- `plot_examples`: images, AU maps and CAMs side by side.

Coordinates follow the landmarks' pixel convention (dlib: a point at (x, y) lies on the centre of
pixel column x, row y), and maps are evaluated at pixel centres: map[y, x] is the value at (x, y).

The maps belong to the expression stage (landmarks and the codebook), below both of their users:
training's AU guidance and the analyses that compare CAMs with them (`impressions.explain`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from impressions.expressions import codebook, geometry
from impressions.schemas import AUS, EMOTIONS

Anchor = int | tuple[int, ...]
"""A landmark index, or a tuple of indices whose mean is the point (a midpoint, a centroid)."""

AU_LANDMARKS: dict[str, tuple[Anchor, ...]] = {
    "AU01": (21, 22),  # inner brow raiser: inner ends of the brows
    "AU02": ((17, 18), (25, 26)),  # outer brow raiser: lateral brow segments
    "AU04": (21, 22, (21, 22, 27)),  # brow lowerer: inner brows and the glabella between them
    "AU05": (37, 38, 43, 44),  # upper lid raiser: upper eyelids
    "AU06": ((1, 31, 41), (15, 35, 46)),  # cheek raiser: infraorbital cheek, below each lower lid
    "AU07": (40, 41, 46, 47),  # lid tightener: lower eyelids
    "AU09": (28, (29, 31), (29, 35)),  # nose wrinkler: nose bridge and the sides of the nose
    "AU10": (50, 52),  # upper lip raiser: upper lip either side of the philtrum
    "AU12": (48, 54),  # lip corner puller: lip corners
    "AU14": (48, 54),  # dimpler: lip corners (the dimples form beside them)
    "AU15": (48, 54),  # lip corner depressor: lip corners
    "AU17": ((8, 57),),  # chin raiser: chin boss, between lower lip and chin
    "AU20": (48, 54),  # lip stretcher: lip corners
    "AU23": (51, 57),  # lip tightener: red of the upper and lower lip
    "AU25": (62, 66),  # lips part: inner lips at the mouth centre
    "AU26": (57, 8),  # jaw drop: lower lip and chin
    "AU45": (tuple(range(36, 42)), tuple(range(42, 48))),  # blink: eye centres
}
"""AU (`schemas.AUS`) -> its centres, each a dlib-68 landmark index or a tuple of indices whose mean
is the centre (midpoints and centroids place centres where no landmark lies, e.g. the cheeks)."""

CODEBOOK = codebook.CODEBOOK  # the one emotion -> AU table (impressions/expressions/codebook.py)

SIGMA = 0.2
"""Blob width of the ``gaussian`` shape (Gaussian sigma) in inter-ocular distances: about 1.3 cm on an
adult face, the size of the skin area an AU moves."""

SHAPES = ("ellipse", "gaussian")
"""How an AU is drawn: Belharbi et al.'s filled ellipses (value 1 inside, 0 outside) or Gaussians."""

SHAPE = "ellipse"
"""The default shape (the published one); the config's ``interpret.au_map`` picks another."""

CROP_SIDE = 1 / 0.31
"""Side of the face crop Belharbi et al.'s sizes refer to, in IODs (an eye-aligned crop whose IOD is
0.31 of its side, `mean_face`): their image-size fractions (w/8) become fractions of this side, so a
whole frame gets the same ellipses as a crop of its face."""

CROP_PIXELS = 224
"""Their fixed radii (20 px ...) are read as pixels of a crop of this side (their input size): METHODS
7.2 asks for them to scale with the face."""

assert set(AU_LANDMARKS) == set(AUS) and set(CODEBOOK) == set(EMOTIONS)


# ----------------------------------------------------------------------------------------------------
# Maps


def au_centres(landmarks: np.ndarray, aus: Sequence[str]) -> np.ndarray:
    """(..., K, 2) pixel centres of the given AUs (landmarks (..., 68, 2)), in the order of `aus` and
    of their anchors in `AU_LANDMARKS` (tuple anchors resolved to the mean of their points)."""
    points = []
    for au in aus:
        for anchor in AU_LANDMARKS[au]:
            idx = list(anchor) if isinstance(anchor, tuple) else [anchor]
            points.append(landmarks[..., idx, :].mean(axis=-2))
    if not points:
        return np.zeros((*landmarks.shape[:-2], 0, 2))
    return np.stack(points, axis=-2)


def au_ellipses(landmarks: np.ndarray, au: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Belharbi et al.'s ellipses of one AU (METHODS 7.2) on faces `landmarks` (N, 68, 2): a list of
    (centres (N, 2), semi-axes (N, 2)) in pixels, one per ellipse. Anchors, shifts and axes follow
    their table; sizes given as fractions of the image or in pixels are scaled to the face (`CROP_SIDE`,
    `CROP_PIXELS`). AU45 (blink) is drawn as their AU43 (eyes closed)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    side = CROP_SIDE * geometry.interocular(lm)[:, None]  # (N, 1): the face crop's side in pixels
    px = side / CROP_PIXELS  # one of their pixels in ours

    def p(i):
        return lm[:, i]

    def xy(x, y):  # (x of one landmark, y of another)
        return np.stack([lm[:, x, 0], lm[:, y, 1]], axis=-1)

    def box(x0, x1, y0, y1):  # the box between two x and two y coordinates: centre, half sides
        lo = np.stack([lm[:, x0, 0], lm[:, y0, 1]], -1)
        hi = np.stack([lm[:, x1, 0], lm[:, y1, 1]], -1)
        return (lo + hi) / 2, np.abs(hi - lo) / 2

    def fixed(a, b):
        return px * np.array([a, b], np.float64)

    def gap(i, j, floor=None):  # midpoint of two landmarks, and half their x and y gaps
        half = np.abs(p(j) - p(i)) / 2
        if floor is not None:  # their "10 if 0": a zero gap gets 10 px
            half = np.where(half > 0, half, floor * px)
        return (p(i) + p(j)) / 2, half

    brows, cheeks, lips = side * np.array([1 / 8, 1 / 10]), side * np.array([1 / 10, 1 / 10]), fixed(20, 20)
    down = np.concatenate([np.zeros_like(side), side / 6], axis=-1)  # h/6 below
    shift = np.concatenate([20 * px, np.zeros_like(px)], axis=-1)  # 20 px sideways
    lids = fixed(0, 10)
    eyes = [box(36, 39, 38, 41), box(42, 45, 44, 47)]
    mouth = box(48, 54, 51, 57)
    table = {
        "AU01": [(p(20), brows), (p(23), brows)],
        "AU02": [(p(18), brows), (p(25), brows)],
        "AU04": [gap(19, 24, floor=10)],
        "AU05": eyes,
        "AU06": [(p(41) + down, cheeks), (p(46) + down, cheeks)],
        "AU07": [(c, a + lids) for c, a in eyes],
        "AU09": [(xy(31, 29), lips), (xy(35, 29), lips)],
        "AU10": [(xy(48, 50), lips), (xy(52, 54), lips)],
        "AU12": [(p(48), lips), (p(54), lips)],
        "AU14": [(p(48) - shift, lips), (p(54) + shift, lips)],
        "AU15": [(p(48), lips), (p(54), lips)],
        "AU17": [gap(59, 8)],
        "AU20": [((p(48) + p(6)) / 2, lips), ((p(50) + p(10)) / 2, lips)],
        "AU23": [mouth],
        "AU25": [(p(51), fixed(25, 10)), (p(57), fixed(25, 10))],
        "AU26": [mouth],
        "AU45": [(c, a + lids) for c, a in eyes],
    }
    return [(np.broadcast_to(c, lm.shape[:1] + (2,)), np.broadcast_to(a, lm.shape[:1] + (2,)))
            for c, a in table[au]]  # fmt: skip


def _ellipses(landmarks: np.ndarray, aus: Sequence[str], size: int) -> np.ndarray:
    """(N, size, size): 1 inside any of the AUs' filled ellipses (`au_ellipses`), 0 outside (the
    max-combination of the maps)."""
    grid = np.arange(size, dtype=np.float64)
    out = np.zeros((len(landmarks), size, size), np.float32)
    for au in aus:
        for centre, axes in au_ellipses(landmarks, au):
            axes = np.maximum(axes, 1e-6)  # a zero gap draws nothing rather than dividing by zero
            u = ((grid[None, :] - centre[:, 0, None]) / axes[:, 0, None]) ** 2  # (N, size) along x
            v = ((grid[None, :] - centre[:, 1, None]) / axes[:, 1, None]) ** 2  # along y
            out = np.maximum(out, (v[:, :, None] + u[:, None, :] <= 1.0).astype(np.float32))
    return out


def _draw(landmarks: np.ndarray, aus: Sequence[str], size: int, shape: str, sigma: float) -> np.ndarray:
    """(N, size, size) map of the AUs on valid faces (N, 68, 2), drawn in `shape`."""
    if shape == "ellipse":
        return _ellipses(landmarks, aus, size)
    if shape == "gaussian":
        return _blobs(au_centres(landmarks, aus), sigma * geometry.interocular(landmarks), size)
    raise ValueError(f"unknown AU map shape {shape!r}; known: {list(SHAPES)}")


def _blobs(centres: np.ndarray, scale: np.ndarray, size: int) -> np.ndarray:
    """(N, size, size): max over K Gaussians at centres (N, K, 2) with sigmas scale (N,)."""
    grid = np.arange(size, dtype=np.float64)
    dx = grid[None, None, :] - centres[..., 0, None]  # (N, K, size)
    dy = grid[None, None, :] - centres[..., 1, None]
    var = 2.0 * scale[:, None, None] ** 2
    gx, gy = np.exp(-(dx**2) / var), np.exp(-(dy**2) / var)  # separable: exp(-(dx²+dy²)/2s²)
    out = np.einsum("nky,nkx->nkyx", gy, gx)
    return out.max(axis=1) if out.shape[1] else np.zeros((len(centres), size, size))


def _valid(landmarks: np.ndarray) -> np.ndarray:
    """Faces whose 68 points are all finite and whose eyes are apart (N,)."""
    flat = landmarks.reshape(len(landmarks), -1)
    ok = np.isfinite(flat).all(axis=1)
    iod = np.where(ok, geometry.interocular(np.nan_to_num(landmarks)), 0.0)
    return ok & (iod > 0)


def au_heatmaps(
    landmarks: np.ndarray, size: int, aus: Sequence[str] = AUS, sigma: float = SIGMA, shape: str = SHAPE
) -> np.ndarray:
    """(len(aus), size, size) float32: each AU drawn in `shape` (filled ellipses of value 1, or
    Gaussian blobs of peak 1 at its centres, sigma in inter-ocular distances).

    `landmarks` (68, 2) are (x, y) pixels of a size x size image. All zeros when the landmarks are
    missing (NaN: a frame without a face).
    """
    lm = np.asarray(landmarks, dtype=np.float64).reshape(1, 68, 2)
    out = np.zeros((len(aus), size, size), np.float32)
    if shape not in SHAPES:
        raise ValueError(f"unknown AU map shape {shape!r}; known: {list(SHAPES)}")
    if not _valid(lm)[0]:
        return out
    for i, au in enumerate(aus):
        out[i] = _draw(lm, [au], size, shape, sigma)[0]
    return out


def emotion_map(
    landmarks: np.ndarray, emotion: str | None, size: int, sigma: float = SIGMA, shape: str = SHAPE
) -> np.ndarray:
    """(size, size) float32: max over the maps of the emotion's codebook AUs.

    Zeros for neutral, for no emotion (None) and for missing (NaN) landmarks."""
    return frame_maps(np.asarray(landmarks, dtype=np.float64)[None], [emotion], size, sigma, shape=shape)[0]


def frame_maps(
    landmarks: np.ndarray, emotions: Sequence[str | None], size: int, sigma: float = SIGMA, chunk: int = 512,
    shape: str = SHAPE,
) -> np.ndarray:  # fmt: skip
    """(N, size, size) float32 emotion maps of N frames: landmarks (N, 68, 2), one emotion per frame,
    each AU drawn in `shape` (`SHAPES`).

    Frames without a face (NaN landmarks), without an emotion (None) or neutral get all-zero maps."""
    if shape not in SHAPES:
        raise ValueError(f"unknown AU map shape {shape!r}; known: {list(SHAPES)}")
    lm = np.asarray(landmarks, dtype=np.float64).reshape(-1, 68, 2)
    if len(emotions) != len(lm):
        raise ValueError(f"{len(lm)} landmark sets but {len(emotions)} emotions")
    unknown = {e for e in emotions if e is not None and e not in CODEBOOK}
    if unknown:
        raise ValueError(f"unknown emotions {sorted(unknown)}; known: {list(CODEBOOK)}")
    out = np.zeros((len(lm), size, size), np.float32)
    valid = _valid(lm)
    for emotion, aus in CODEBOOK.items():
        rows = np.flatnonzero(valid & np.array([e == emotion for e in emotions], dtype=bool))
        if not aus or not len(rows):
            continue
        for start in range(0, len(rows), chunk):  # (chunk, K, size, size) stays small
            part = rows[start : start + chunk]
            out[part] = _draw(lm[part], aus, size, shape, sigma)
    return out


def rescale_points(points: np.ndarray, from_size: tuple[float, float], to_size: tuple[float, float]):
    """Pixel coordinates (..., 2) of an image of (width, height) `from_size` in the same image resized
    (squashed) to `to_size`; pixel centres map to pixel centres."""
    points = np.asarray(points, dtype=np.float64)
    ratio = np.asarray(to_size, np.float64) / np.asarray(from_size, np.float64)
    return (points + 0.5) * ratio - 0.5


def stored_landmarks(points: np.ndarray, decoded, stored: tuple[float, float]) -> np.ndarray:
    """Landmarks (..., 68, 2) of frames decoded at (width, height) `decoded` ((..., 2) or (2,)), moved
    into the stored frames of (width, height) `stored` (squashed like the frames were, `rescale_points`);
    NaN where the decoded size is unknown or not positive. Training's AU guidance and the analyses
    both place landmarks with this."""
    decoded = np.array(decoded, dtype=np.float64)
    decoded[~np.isfinite(decoded).all(axis=-1) | (decoded <= 0).any(axis=-1)] = np.nan
    return rescale_points(points, decoded[..., None, :], stored)


def dominant_emotions(probs: np.ndarray) -> list[str | None]:
    """The most probable emotion (`schemas.EMOTIONS` order) of each row of (n, 7) probabilities; None
    where any probability is missing. The emotion whose codebook AUs a frame's map shows."""
    probs = np.asarray(probs, dtype=np.float64).reshape(-1, len(EMOTIONS))
    known = np.isfinite(probs).all(axis=1)
    return [EMOTIONS[int(np.argmax(p))] if ok else None for p, ok in zip(probs, known)]


def mean_face(size: int, iod: float = 0.31) -> np.ndarray:
    """(68, 2) landmarks of a neutral frontal face centred in a size x size image (an eye-aligned
    crop's proportions: IOD = `iod` * size); for tests, demos and codebook figures."""
    from impressions.face_template import TEMPLATE  # IOD units, origin at the eye midpoint

    xy = TEMPLATE[:, :2]
    centre = (xy.min(axis=0) + xy.max(axis=0)) / 2
    return ((xy - centre) * iod * size + (size - 1) / 2).astype(np.float32)


# ----------------------------------------------------------------------------------------------------
# Attention and the guidance term


def resize_maps(maps: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """(N, H, W) -> (N, h, w) float32: area means when shrinking (each feature cell gets the mean of the
    map over the pixels it covers), bilinear otherwise (align_corners=False)."""
    maps = torch.as_tensor(maps).float()
    shape = tuple(int(n) for n in shape)
    if tuple(maps.shape[-2:]) == shape:
        return maps
    if shape[0] <= maps.shape[-2] and shape[1] <= maps.shape[-1]:
        return F.adaptive_avg_pool2d(maps[:, None], shape)[:, 0]
    return F.interpolate(maps[:, None], size=shape, mode="bilinear", align_corners=False, antialias=True)[
        :, 0
    ]


def _unit(maps: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    return maps / maps.flatten(1).norm(dim=1).clamp_min(eps).view(-1, 1, 1)


def attention(features: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) -> (N, h, w): the channel mean of A^2, L2-normalised per sample (float32)."""
    return _unit(features.float().pow(2).mean(dim=1))


def has_target(target_maps: torch.Tensor | np.ndarray) -> torch.Tensor:
    """(N,) bool: which samples have an AU map (not all zero)."""
    t = torch.as_tensor(target_maps)
    return t.flatten(1).float().amax(dim=1) > 0


def guidance_loss(features: torch.Tensor, target_maps: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Mean over samples with a target of ||attention(features) - target / ||target|| ||^2.

    `target_maps` (N, H, W), any resolution, is resized to the feature map. Both maps are unit
    vectors with non-negative entries, so a sample's term lies in 0..2 (0: same spatial pattern).
    Samples whose target is all zero (no face, no emotion, neutral) are left out; with none left the
    loss is a zero that still backpropagates."""
    target = torch.as_tensor(target_maps, device=features.device).float()
    keep = has_target(target)
    if not bool(keep.any()):
        return features.float().sum() * 0.0
    target = _unit(resize_maps(target[keep], features.shape[-2:]))
    return (attention(features[keep]) - target).pow(2).flatten(1).sum(dim=1).mean()


@torch.no_grad()
def attention_au_correlation(features: torch.Tensor, target_maps: torch.Tensor | np.ndarray) -> np.ndarray:
    """(N,) Pearson r between each sample's attention and its AU map at the feature resolution;
    NaN where the AU map is empty or either map is constant."""
    att = attention(features).flatten(1).double().cpu()
    target = resize_maps(torch.as_tensor(target_maps), features.shape[-2:]).flatten(1).double().cpu()
    a, t = att - att.mean(1, keepdim=True), target - target.mean(1, keepdim=True)
    denom = a.norm(dim=1) * t.norm(dim=1)
    r = (a * t).sum(1) / denom
    r[(denom == 0) | ~has_target(target)] = float("nan")
    return r.numpy()


@torch.no_grad()
def attention_au_cosine(features: torch.Tensor, target_maps: torch.Tensor | np.ndarray) -> np.ndarray:
    """(N,) cosine between each sample's attention (`attention`) and its AU map at the feature
    resolution: ATT-COS (Belharbi et al.), on the attention guidance trains; NaN where the map is empty."""
    att = attention(features).flatten(1).double().cpu()  # already unit length
    target = resize_maps(torch.as_tensor(target_maps), features.shape[-2:]).flatten(1).double().cpu()
    cos = (att * target).sum(1) / target.norm(dim=1).clamp_min(1e-12)
    cos[~has_target(target)] = float("nan")
    return cos.numpy()


# ----------------------------------------------------------------------------------------------------
# Figures


def _overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """uint8 RGB: the map upsampled to the image, scaled to its own min..max, in 'jet', blended."""
    from matplotlib import colormaps

    h, w = image.shape[:2]
    heat = resize_maps(torch.as_tensor(np.asarray(heat, np.float32))[None], (h, w))[0].numpy()
    span = heat.max() - heat.min()
    heat = (heat - heat.min()) / span if span > 0 else np.zeros_like(heat)
    colour = colormaps["jet"](heat)[..., :3] * 255
    return np.clip((1 - alpha) * image + alpha * colour, 0, 255).astype(np.uint8)


def plot_examples(
    images: np.ndarray, au_maps: np.ndarray, cams: np.ndarray | None, titles: Sequence[str], path,
    extra: Mapping[str, np.ndarray] | None = None,
) -> None:  # fmt: skip
    """One row per example: the image, its AU map over it, its CAM over it (when `cams` is given) and
    any `extra` maps (name -> (N, h, w)). Images uint8 (N, S, S, 3); maps at any resolution."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [("AU map", au_maps), *([("CAM", cams)] if cams is not None else []), *(extra or {}).items()]
    n = len(images)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if not n:  # nothing to show: still a figure, so the workflow's output exists
        fig, ax = plt.subplots(figsize=(4, 1), dpi=100)
        ax.axis("off")
        ax.text(0.5, 0.5, "no examples", ha="center", va="center")
        fig.savefig(path)
        plt.close(fig)
        return
    fig, axes = plt.subplots(n, 1 + len(columns), figsize=(2.2 * (1 + len(columns)), 2.3 * n), dpi=100,
                             squeeze=False)  # fmt: skip
    for i in range(n):
        axes[i, 0].imshow(images[i])
        axes[i, 0].set_title(titles[i] if i < len(titles) else "", fontsize=8)
        for j, (name, maps) in enumerate(columns, start=1):
            axes[i, j].imshow(_overlay(images[i], maps[i]))
            if i == 0:
                axes[i, j].set_title(name, fontsize=8)
        for ax in axes[i]:
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
