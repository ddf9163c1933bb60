"""Identity: a 128-d face descriptor per tracked person and clip, and people clustered across clips.

Descriptor. dlib's face recognition network (`dlib_face_recognition_resnet_model_v1.dat`, a ResNet
trained for face verification; it ships in the `face-recognition-models` package beside the landmark
model) maps an aligned 150x150 face chip to a 128-d vector; dlib documents Euclidean distance < 0.6
as "same person" (99.38% on LFW, published figure).
Each clip stores the descriptor of its tracked person (`impressions.data.tracking`) from that person's most
confident successful frame: one network pass per clip (about 0.13 CPU-s here), not per frame.

Clusters. `cluster_people` treats each YouTube id as one person (FI's assumption), averages the
descriptors of its clips (averaging over clips removes most of the expression and lighting
variation), and links YouTube ids whose means lie within `THRESHOLD` (single linkage: connected
components of the "same person" graph), so clips of one person under several ids form one cluster.
Clips without a YouTube id are their own group. `leakage_rows` counts test (and validation) people,
by cluster, who also appear in training; `identity_groups` gives the groups that
`models.split: identity_faces` keeps within one split.
"""

from __future__ import annotations

from functools import cache

import numpy as np

DIM = 128
THRESHOLD = 0.3
"""Distance between two YouTube ids' mean descriptors below which they are one person (single
linkage). Measured on the demo (8 people under 11 YouTube ids, 10 frames per clip): one person's ids
(Wolfgang, 4 ids) differed by at most 0.17, different people by at least 0.41 (two Asian men; the
network is known to separate Asian faces less well). Per clip, without averaging, the two overlap
(one person's crying and laughing clips up to 0.60 apart, different people down to 0.43), which is
why people are clustered by YouTube id. Not validated on First Impressions: check
`impressions leakage --faces --threshold` at a few values there."""

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
    labels[idx] = _components(idx.size, zip(*np.nonzero(np.triu(dist < threshold, k=1))))
    return labels


def cluster_people(descriptors: np.ndarray, groups, threshold: float = THRESHOLD) -> np.ndarray:
    """Person label per clip: clips grouped (YouTube id; None: the clip alone), group means clustered.

    Clips without a descriptor (NaN) get -1; so does a group none of whose clips has one.
    """
    x = np.asarray(descriptors, dtype=np.float64).reshape(-1, DIM)
    valid = ~np.isnan(x).any(axis=1)
    keys = [("group", g) if g is not None else ("clip", i) for i, g in enumerate(groups)]
    names = sorted({k for k, ok in zip(keys, valid) if ok}, key=str)
    if not names:
        return np.full(len(x), -1, np.int64)
    index = {k: j for j, k in enumerate(names)}
    means = np.zeros((len(names), DIM))
    counts = np.zeros(len(names))
    for k, row, ok in zip(keys, x, valid):
        if ok:
            means[index[k]] += row
            counts[index[k]] += 1
    group_labels = cluster(means / counts[:, None], threshold)
    return np.array([group_labels[index[k]] if ok else -1 for k, ok in zip(keys, valid)], np.int64)


def _components(n: int, edges) -> np.ndarray:
    """Connected-component label per node 0..n-1 from (i, j) edges, numbered by first appearance."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    pairs = np.array(list(edges), np.int64).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1].astype(np.int64)


def identity_groups(clips, identities):
    """The clips table with `identity_group`: clips linked by a shared face cluster or YouTube id.

    What `models.split: identity_faces` keeps in one split (`impressions.data.splits.assign_splits`): a
    person filmed under several YouTube ids is one group, and so is a YouTube id whose clips show no
    face in some of them. Clips absent from `identities` keep their YouTube id (or clip id).
    """
    import polars as pl

    people = identities.select("clip_id", "person") if identities is not None else None
    table = clips.join(people, on="clip_id", how="left") if people is not None else clips
    ids = table["clip_id"].to_list()
    youtube = table["youtube_id"].to_list() if "youtube_id" in table.columns else [None] * len(ids)
    person = table["person"].to_list() if "person" in table.columns else [None] * len(ids)
    edges, first = [], {}
    for i, key in enumerate(zip(youtube, person)):
        for kind, value in zip(("youtube", "person"), key):
            if value is None or (kind == "person" and value < 0):
                continue
            j = first.setdefault((kind, value), i)
            if j != i:
                edges.append((i, j))
    labels = _components(len(ids), edges)
    component = np.unique(labels, return_index=True)[1][labels]  # each clip's group: its first clip
    group = [f"group:{ids[c]}" for c in component]
    return clips.with_columns(identity_group=pl.Series(group, dtype=pl.String))


def leakage_rows(identities) -> list[dict]:
    """Per split: clips, clips with a face, people (face clusters), people also in train and their clips.

    `identities` is the identities table (clip_id, youtube_id, split, person).
    """
    import polars as pl

    table = identities.filter(pl.col("split").is_not_null())
    train = set(table.filter((pl.col("split") == "train") & (pl.col("person") >= 0))["person"].to_list())
    rows = []
    for split in ("train", "val", "test"):
        part = table.filter(pl.col("split") == split)
        if part.height == 0:
            continue
        faced = part.filter(pl.col("person") >= 0)
        people = set(faced["person"].to_list())
        shared = people & train if split != "train" else set()
        rows.append({
            "split": split, "clips": part.height, "clips_with_face": faced.height, "people": len(people),
            "in_train": len(shared), "clips_in_train": int(faced["person"].is_in(list(shared)).sum()),
            "youtube_ids": part["youtube_id"].n_unique(),
        })  # fmt: skip
    return rows


def multi_id_people(identities) -> tuple[int, int]:
    """(people seen under more than one YouTube id, people in all)."""
    import polars as pl

    faced = identities.filter((pl.col("person") >= 0) & pl.col("youtube_id").is_not_null())
    per = faced.group_by("person").agg(pl.col("youtube_id").n_unique().alias("n"))
    return int((per["n"] > 1).sum()), per.height
