"""AU guidance's training targets: one AU map per training frame (impressions.expressions.au_maps)."""

from __future__ import annotations

import numpy as np

from impressions.expressions import au_maps
from impressions.models import registry
from impressions.schemas import EMOTIONS
from impressions.training import datasets
from impressions.training.inputs import Inputs, _read

GUIDANCE_MAP_SIZE = 32
"""Side of the AU maps kept per training frame (float16): guidance resizes them to the feature map."""


def guidance_maps(
    family: str, inputs: Inputs, dataset: datasets.FrameDataset, size: int = GUIDANCE_MAP_SIZE,
    sigma: float = au_maps.SIGMA, shape: str = au_maps.SHAPE,
) -> np.ndarray:  # fmt: skip
    """(len(dataset), size, size) float16 AU maps of a frame dataset's items, in stored-image coordinates,
    each AU drawn in `shape` (`au_maps.SHAPES`).

    Landmarks come from the faces table (`inputs.faces`; for a family on face crops, its `frames`
    input is the faces table): `landmarks_aligned` for face crops (crop pixels; crops are stored at the
    aligner's size), `landmarks` for frames, rescaled from the decoded frame (`width`, `height` of the frames
    table) to the stored square. The emotion is the frame's most probable one in the expressions table.
    Items without a face, without an expressions row or with a neutral face get all-zero maps."""
    import polars as pl

    crops = registry.get(family).sample_kind == "faces"  # else whole frames
    faces_path = inputs.faces or (inputs.frames if crops else None)
    missing = [what for what, path in (("faces table (faces=, for landmarks)", faces_path),
                                       ("expressions table (expressions=, for emotions)", inputs.expressions))
               if path is None]  # fmt: skip
    if missing:
        raise ValueError(f"{family}: au_guidance_weight > 0 needs the {' and the '.join(missing)}")
    column = "landmarks_aligned" if crops else "landmarks"
    faces = _read(faces_path)
    if column not in faces.columns:
        raise ValueError(f"{faces_path} has no {column} column: AU guidance needs the faces table")
    keys = pl.DataFrame(
        {"clip_id": pl.Series(dataset.clips.ids, dtype=pl.String).gather(dataset.items[:, 0]),
         "frame_index": dataset.items[:, 1]},
        schema={"clip_id": pl.String, "frame_index": pl.Int32},
    ).with_row_index("item")  # fmt: skip
    on = ["clip_id", "frame_index"]
    expressions = _read(inputs.expressions).select(*on, *EMOTIONS)
    table = keys.join(faces.select(*on, column), on=on, how="left").join(expressions, on=on, how="left")
    if not crops:
        table = table.join(_read(inputs.frames).select(*on, "width", "height"), on=on, how="left")
    table = table.sort("item")
    points = np.full((len(keys), 68, 2), np.nan)
    for i, value in enumerate(table[column].to_list()):
        if value is not None and len(value) == 136:
            points[i] = np.asarray(value, dtype=np.float64).reshape(68, 2)
    image_shape = dataset.image_shape()
    if image_shape is not None:
        stored = np.array([image_shape[1], image_shape[0]], np.float64)  # (width, height)
        if not crops:
            points = au_maps.stored_landmarks(points, table.select("width", "height").to_numpy(), stored)
        points = au_maps.rescale_points(points, stored, (size, size))
    emotions = au_maps.dominant_emotions(table.select(EMOTIONS).to_numpy())
    return au_maps.frame_maps(points, emotions, size, sigma, shape=shape).astype(np.float16)
