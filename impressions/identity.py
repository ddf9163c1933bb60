"""Identity: a 128-d face descriptor per tracked person and clip, and people clustered across clips.

Descriptor. dlib's face recognition network (`dlib_face_recognition_resnet_model_v1.dat`, a ResNet
trained for face verification; it ships in the `face-recognition-models` package beside the landmark
model) maps an aligned 150x150 face chip to a unit-scale 128-d vector; two faces of one person lie
within Euclidean distance 0.6 of each other, dlib's documented threshold (99.38% on LFW, published).
Each clip stores the descriptor of its tracked person (`impressions.tracking`) from that person's most
confident successful frame: one network pass per clip (about 0.13 CPU-s here), not per frame.

Clusters. `cluster` links clips whose descriptors lie within `threshold` (single linkage: connected
components of the "same person" graph), so clips of one person under several YouTube ids end up in
one cluster. `leakage_rows` counts test (and validation) people, by cluster, who also appear in
training; `assign_identity_splits` re-splits so that no cluster spans two splits.
"""

from __future__ import annotations

from functools import cache

import numpy as np

DIM = 128
THRESHOLD = 0.6
"""dlib's same-person distance threshold for this network."""

CHIP_SIZE = 150
"""The network's input side (px), as dlib's `compute_face_descriptor` aligns it."""


def missing() -> np.ndarray:
    """The descriptor of a clip with no tracked person: NaN."""
    return np.full(DIM, np.nan, np.float32)


@cache
def _model():
    import dlib

    from impressions import media

    path = (
        media.package_dir("face_recognition_models") / "models" / "dlib_face_recognition_resnet_model_v1.dat"
    )
    if not path.is_file():
        raise media.MissingResourceError(
            f"{path} is missing from the installed 'face_recognition_models' package"
        )
    return dlib.face_recognition_model_v1(str(path))


def descriptor(image: np.ndarray, shape) -> np.ndarray:
    """128-d descriptor (float32) of the face with 68-point dlib `shape` in an RGB uint8 frame."""
    return np.asarray(_model().compute_face_descriptor(np.ascontiguousarray(image), shape), np.float32)


def cluster(descriptors: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """Cluster label per row (N, 128): connected components of pairwise distance < threshold.

    Rows with NaN (no face) get -1. Labels are numbered by first appearance.
    """
    x = np.asarray(descriptors, dtype=np.float64)
    valid = ~np.isnan(x).any(axis=1) if x.size else np.zeros(len(x), bool)
    labels = np.full(len(x), -1, np.int64)
    idx = np.flatnonzero(valid)
    if idx.size == 0:
        return labels
    v = x[idx]
    sq = (v**2).sum(axis=1)
    dist = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * v @ v.T, 0.0))
    parent = np.arange(idx.size)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(dist < threshold, k=1))):
        ri, rj = root(i), root(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    roots = np.array([root(i) for i in range(idx.size)])
    _, first = np.unique(roots, return_index=True)
    order = {r: k for k, r in enumerate(roots[np.sort(first)])}
    labels[idx] = [order[r] for r in roots]
    return labels
