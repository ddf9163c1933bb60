"""AU guidance's training targets: one AU map per training frame (impressions.expressions.au_maps).

The maps are built a block of items at a time, reading only the block's clips from the faces and
expressions tables, and a training job writes them to a scratch `.npy` it reads back row by row
(`datasets.NpyRows`). At FI's 600,000 training frames the maps are 1.2 GB and the faces table's
landmark lists about 650 MB: held whole, they would put the dataset's size in the job's memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from impressions.expressions import au_maps
from impressions.models import registry
from impressions.schemas import EMOTIONS
from impressions.training import datasets
from impressions.training.inputs import Inputs

GUIDANCE_MAP_SIZE = 32
"""Side of the AU maps kept per training frame (float16): guidance resizes them to the feature map."""

BLOCK_ITEMS = 8192
"""Items whose maps are built together. The block, not the training frames, bounds the job's memory:
its maps (16 MB in float16, several times that while they are drawn), its landmarks and the row groups
read (`impressions.data.tables.ROW_GROUP_ROWS`); measured in `benchmarks/memory_scaling.py --tables`."""


def guidance_maps(
    family: str, inputs: Inputs, dataset: datasets.FrameDataset, size: int = GUIDANCE_MAP_SIZE,
    sigma: float = au_maps.SIGMA, shape: str = au_maps.SHAPE,
) -> np.ndarray:  # fmt: skip
    """(len(dataset), size, size) float16 AU maps of a frame dataset's items, in stored-image coordinates,
    each AU drawn in `shape` (`au_maps.SHAPES`), in memory; a training job writes them to a file
    instead (`write_guidance_maps`), block by block from the same code.

    Landmarks come from the faces table (`inputs.faces`; for a family on face crops, its `frames`
    input is the faces table): `landmarks_aligned` for face crops (crop pixels; crops are stored at the
    aligner's size), `landmarks` for frames, rescaled from the decoded frame (`width`, `height` of the frames
    table) to the stored square. The emotion is the frame's most probable one in the expressions table.
    Items without a face, without an expressions row or with a neutral face get all-zero maps."""
    blocks = [maps for _, maps in map_blocks(family, inputs, dataset, size, sigma, shape)]
    return np.concatenate(blocks) if blocks else np.zeros((0, size, size), np.float16)


def write_guidance_maps(
    path: str | Path, family: str, inputs: Inputs, dataset: datasets.FrameDataset,
    size: int = GUIDANCE_MAP_SIZE, sigma: float = au_maps.SIGMA, shape: str = au_maps.SHAPE,
) -> int:  # fmt: skip
    """Write `guidance_maps` to the `.npy` file `path` one block at a time; the number of items with a map.

    Plain sequential writes, not a writable memory map, whose dirty pages would count in the job's
    resident set until written back."""
    n, guided = len(dataset), 0
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float16)), "fortran_order": False,
              "shape": (n, size, size)}  # fmt: skip
    with open(path, "wb") as f:
        np.lib.format.write_array_header_2_0(f, header)
        for _, maps in map_blocks(family, inputs, dataset, size, sigma, shape):
            f.write(np.ascontiguousarray(maps).tobytes())
            guided += int(au_maps.has_target(maps).sum())
    return guided


def map_blocks(
    family: str, inputs: Inputs, dataset: datasets.FrameDataset, size: int, sigma: float, shape: str,
    block_items: int | None = None,
) -> Iterator[tuple[slice, np.ndarray]]:  # fmt: skip
    """(items, their float16 maps) for consecutive blocks of the dataset's items, in order."""
    import polars as pl

    crops = registry.get(family).sample_kind == "faces"  # else whole frames
    faces_path = inputs.faces or (inputs.frames if crops else None)
    missing = [what for what, path in (("faces table (faces=, for landmarks)", faces_path),
                                       ("expressions table (expressions=, for emotions)", inputs.expressions))
               if path is None]  # fmt: skip
    if missing:
        raise ValueError(f"{family}: au_guidance_weight > 0 needs the {' and the '.join(missing)}")
    column = "landmarks_aligned" if crops else "landmarks"
    if column not in pl.scan_parquet(faces_path).collect_schema().names():
        raise ValueError(f"{faces_path} has no {column} column: AU guidance needs the faces table")
    on = ["clip_id", "frame_index"]
    sources = [(faces_path, [column]), (inputs.expressions, list(EMOTIONS))]
    if not crops:
        sources.append((inputs.frames, ["width", "height"]))
    image_shape = dataset.image_shape()
    ids = pl.Series(dataset.clips.ids, dtype=pl.String)
    step = int(block_items or BLOCK_ITEMS)
    for start in range(0, len(dataset), step):
        block = slice(start, min(len(dataset), start + step))
        items = dataset.items[block]
        keys = pl.DataFrame(
            {"clip_id": ids.gather(items[:, 0]), "frame_index": items[:, 1]},
            schema={"clip_id": pl.String, "frame_index": pl.Int32},
        ).with_row_index("item")  # fmt: skip
        wanted = keys["clip_id"].unique()
        table = keys
        for path, columns in sources:  # only this block's clips are read
            rows = pl.scan_parquet(path).filter(pl.col("clip_id").is_in(wanted.implode()))
            rows = rows.select(*on, *columns).with_columns(pl.col("frame_index").cast(pl.Int32)).collect()
            table = table.join(rows, on=on, how="left")
        table = table.sort("item")
        points = np.full((len(keys), 68, 2), np.nan)
        for i, value in enumerate(table[column].to_list()):
            if value is not None and len(value) == 136:
                points[i] = np.asarray(value, dtype=np.float64).reshape(68, 2)
        if image_shape is not None:
            stored = np.array([image_shape[1], image_shape[0]], np.float64)  # (width, height)
            if not crops:
                points = au_maps.stored_landmarks(points, table.select("width", "height").to_numpy(), stored)
            points = au_maps.rescale_points(points, stored, (size, size))
        emotions = au_maps.dominant_emotions(table.select(EMOTIONS).to_numpy())
        yield block, au_maps.frame_maps(points, emotions, size, sigma, shape=shape).astype(np.float16)
