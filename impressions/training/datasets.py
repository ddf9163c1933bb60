"""Datasets that feed the models from the workflow's outputs, and the loaders that keep a GPU busy.

Samples are frames, not clips: a clip's score is the mean of its frames' scores (`clip_means`).
Workers read uint8 frames from each clip's stored frames or faces (`impressions.data.image_store`:
JPEG decoded in the workers, a batch per call, or raw `.npy` through memory maps); conversion to
float, resizing and augmentation happen batched on the training device (`prepare_images`), so workers
stay cheap and host-to-device copies stay uint8.
"""

from __future__ import annotations

import os
import random
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from impressions.data import image_store
from impressions.models.transforms import prepare_images  # noqa: F401 - its home is the model's transform
from impressions.schemas import TRAITS

_OPEN_MAPS = 512  # per worker; a memory map costs a file descriptor and a mapping


class Clips:
    """The clips of one split: ids, labels (n, 5) float32 and their positions."""

    def __init__(self, clip_ids: Sequence[str], labels: np.ndarray):
        self.ids = list(clip_ids)
        labels = np.asarray(labels, dtype=np.float32)
        # A split without clips has (0,) or (0, k) labels; reshape(0, -1) cannot infer the width.
        if labels.ndim == 2:
            width = labels.shape[1]
        else:
            width = labels.size // len(self.ids) if self.ids else len(TRAITS)
        self.labels = labels.reshape(len(self.ids), width)
        self.position = {c: i for i, c in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_table(cls, clips, split: str, traits: Sequence[str] = TRAITS) -> Clips:
        """The clips of `split` with every trait labelled, sorted by clip id."""
        import polars as pl

        part = clips.filter(
            (pl.col("split") == split) & pl.all_horizontal(pl.col(list(traits)).is_not_null())
        )
        part = part.sort("clip_id")
        return cls(part["clip_id"].to_list(), part.select(traits).to_numpy())


class FrameDataset(Dataset):
    """(uint8 frame (H, W, 3), clip labels, clip position) for every (clip, frame) item.

    `array` names the stored kind, `frames` or `faces` (`faces.npy` and the like also do); each clip's
    file is read in whichever layout it has (`impressions.data.image_store`). A DataLoader fetches a
    whole batch with one `__getitems__` call, so a worker reads and decodes its batch in one go.
    """

    def __init__(self, clips: Clips, clip_dirs: Mapping[str, str | Path], items, array: str):
        self.clips, self.array = clips, array
        self.kind = Path(array).name.split(".")[0]
        self.dirs = {c: Path(clip_dirs[c]) for c in clips.ids if c in clip_dirs}
        self.items = _positions(items, clips, self.dirs)
        self._maps: OrderedDict[int, image_store.Images] = OrderedDict()
        if len(self.items):  # one reader opened here loads the decoder before workers fork (none in them)
            try:
                self._map(int(self.items[0, 0]))
            except OSError:
                pass  # a missing file fails where it is read, as it always did

    def __len__(self) -> int:
        return len(self.items)

    def _map(self, pos: int) -> image_store.Images:
        reader = self._maps.pop(pos, None)
        if reader is None:
            reader = image_store.read(self.dirs[self.clips.ids[pos]], self.kind)  # either layout
            if len(self._maps) >= _OPEN_MAPS:
                self._maps.popitem(last=False)
        self._maps[pos] = reader
        return reader

    def __getitem__(self, i: int):
        pos, k = (int(v) for v in self.items[i])
        frame = self._map(pos)[k]  # a fresh array: torch wants writable memory, not a memory map
        return torch.from_numpy(frame), torch.from_numpy(self.clips.labels[pos]), pos

    def __getitems__(self, indices: Sequence[int]) -> list:
        """Items `indices`, each clip's images in one reader call (the DataLoader then collates them)."""
        chosen = self.items[np.asarray(indices, dtype=np.int64)].tolist()
        if not chosen:
            return []
        by_clip: dict[int, list[int]] = {}
        for j, (pos, _) in enumerate(chosen):
            by_clip.setdefault(pos, []).append(j)
        images: list = [None] * len(chosen)
        for pos, js in by_clip.items():
            for j, image in zip(js, self._map(pos).tensors([chosen[j][1] for j in js])):
                images[j] = image  # no copy here: collation makes the batch's one copy
        return [
            (images[j], torch.from_numpy(self.clips.labels[pos]), pos) for j, (pos, _) in enumerate(chosen)
        ]

    def image_shape(self) -> tuple[int, int] | None:
        """(height, width) of the stored images (every clip's array has the same), None without items."""
        if not len(self.items):
            return None
        return tuple(int(n) for n in self._map(int(self.items[0, 0])).size)

    def __getstate__(self):
        # Workers open their own readers: a memory map or an open file does not survive pickling.
        return {**self.__dict__, "_maps": OrderedDict()}

    @property
    def clip_positions(self) -> np.ndarray:
        return self.items[:, 0].copy()


def _positions(items, clips: Clips, dirs: Mapping[str, Path]) -> np.ndarray:
    """(n, 2) int64 (clip position, frame index) of the items whose clip is in `clips` and `dirs`.

    `items` is a frame table (clip_id, frame_index) or (clip id, frame) pairs. One array, not a Python
    tuple per frame: FI at 100 frames has 600,000 training frames.
    """
    import polars as pl

    schema = {"clip_id": pl.String, "frame_index": pl.Int64}
    if not isinstance(items, pl.DataFrame):
        rows = [(str(c), int(k)) for c, k in items]
        items = pl.DataFrame(rows, schema=schema, orient="row")
    known = [c for c in clips.ids if c in dirs]
    pos = pl.DataFrame({"clip_id": known, "pos": [clips.position[c] for c in known]},
                       schema={"clip_id": pl.String, "pos": pl.Int64})  # fmt: skip
    kept = items.select("clip_id", pl.col("frame_index").cast(pl.Int64)).join(
        pos, on="clip_id", how="inner", maintain_order="left"
    )
    return kept.select("pos", "frame_index").to_numpy().astype(np.int64).reshape(-1, 2)


class AUMapDataset(Dataset):
    """A frame dataset whose samples also carry their AU map: (frame, labels, clip position, map).

    `maps` (len(frames), m, m), e.g. float16, holds each item's map in the stored frame's coordinates
    (all zero where the item has none); AU guidance trains on these (see `impressions.expressions.au_maps`).
    """

    def __init__(self, frames: FrameDataset, maps: np.ndarray):
        if len(maps) != len(frames):
            raise ValueError(f"{len(maps)} AU maps for {len(frames)} frames")
        self.frames, self.maps = frames, maps

    @property
    def clips(self) -> Clips:
        return self.frames.clips

    @property
    def items(self) -> np.ndarray:
        return self.frames.items

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int):
        x, y, pos = self.frames[i]
        return x, y, pos, torch.from_numpy(np.array(self.maps[i]))

    @property
    def clip_positions(self) -> np.ndarray:
        return self.frames.clip_positions


def frame_items(table, clip_ids: Sequence[str], faces: bool):
    """The (clip_id, frame_index) rows to train on, as a table: every sampled frame, or only frames
    with a face, sorted by clip and frame."""
    import polars as pl

    part = table.filter(pl.col("clip_id").is_in(list(clip_ids)))
    if faces:
        part = part.filter(pl.col("has_face"))
    return part.sort("clip_id", "frame_index").select("clip_id", "frame_index")


def npy_header(f, name) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, Fortran order, dtype) of the `.npy` data in open file `f`, left at the data's start."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(f)
    raise ValueError(f"{name}: .npy format {version} is not supported here")


class NpyRows:
    """Rows of a C-ordered `.npy` file read with positioned reads, never mapped.

    A memory map's touched pages count in the job's resident set: scoring every clip of FI's audio
    array (5 s at 16 kHz, 320 KB a clip) would add its 3.2 GB to the job's peak. Positioned reads go
    through the page cache instead, so the job holds one batch of rows.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with open(self.path, "rb") as f:
            shape, fortran, dtype = npy_header(f, self.path)
            self._offset = f.tell()
        if fortran or dtype.hasobject:
            raise ValueError(f"{self.path}: rows need a C-ordered numeric array")
        self.shape, self.dtype = tuple(shape), dtype
        self._row_shape = self.shape[1:]
        self._row_bytes = int(np.prod(self._row_shape, dtype=np.int64)) * dtype.itemsize
        self._fd: int | None = None

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, row: int) -> np.ndarray:
        if not 0 <= row < self.shape[0]:
            raise IndexError(f"row {row} of {self.path} ({self.shape[0]} rows)")
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        data = os.pread(self._fd, self._row_bytes, self._offset + row * self._row_bytes)
        if len(data) != self._row_bytes:
            raise ValueError(f"{self.path} is truncated at row {row}")
        return np.frombuffer(data, dtype=self.dtype).reshape(self._row_shape)

    def __getstate__(self):
        return {**self.__dict__, "_fd": None}  # each worker opens its own descriptor

    def __del__(self):
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)


class RowDataset(Dataset):
    """(row of an array or `.npy` file, clip labels, clip position): audio arrays and clip features.

    `rows[i]` is the array row of clip i of `clips`; clips with row -1 (no data) are left out. A file
    is read row by row (`NpyRows`), so memory holds the batch, not the file.
    """

    def __init__(self, clips: Clips, array: np.ndarray | str | Path, rows: Sequence[int]):
        self.clips = clips
        self._path = None if isinstance(array, np.ndarray) else Path(array)
        self._array = array if isinstance(array, np.ndarray) else None
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        keep = np.flatnonzero(rows >= 0)
        self.items = np.stack([keep, rows[keep]], axis=1)  # (n, 2): clip position, array row

    @property
    def data(self) -> np.ndarray | NpyRows:
        if self._array is None:
            self._array = NpyRows(self._path)
        return self._array

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        pos, row = (int(v) for v in self.items[i])
        x = torch.from_numpy(np.array(self.data[row], dtype=np.float32))  # a writable copy of the row
        return x, torch.from_numpy(self.clips.labels[pos]), pos

    def __getstate__(self):
        return {**self.__dict__, "_array": None if self._path is not None else self._array}

    @property
    def clip_positions(self) -> np.ndarray:
        return self.items[:, 0].copy()


def rows_for(clip_ids: Sequence[str], row_ids: Sequence[str]) -> np.ndarray:
    """For each clip, its row in an array whose rows belong to `row_ids` (-1 where absent)."""
    index = {c: i for i, c in enumerate(row_ids)}
    return np.array([index.get(c, -1) for c in clip_ids], dtype=np.int64)


def _seed_worker(worker_id: int) -> None:
    # DataLoader seeds torch per worker from its generator; numpy and random follow it, reproducibly.
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def loader(
    dataset: Dataset, batch_size: int, *, shuffle: bool, seed: int, device: str, num_workers: int = 0,
    prefetch_factor: int = 4,
) -> DataLoader:  # fmt: skip
    """A seeded DataLoader; on a GPU with workers: pinned memory, persistent workers and prefetching."""
    cuda = device.startswith("cuda")
    extra = {"prefetch_factor": prefetch_factor, "persistent_workers": True} if num_workers > 0 else {}
    # The shuffle has a generator of its own: the loader also draws worker seeds from its generator, once
    # per epoch without persistent workers and once in all with them, which must not change the order.
    sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed)) if shuffle else None
    return DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers, pin_memory=cuda,
        generator=torch.Generator().manual_seed(seed + 1), worker_init_fn=_seed_worker, **extra,
    )  # fmt: skip


def clip_means(
    values: torch.Tensor, positions: torch.Tensor, n_clips: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-clip means of per-sample rows (n_clips, d), and the number of samples per clip."""
    sums = torch.zeros(n_clips, values.shape[1], dtype=torch.float64)
    counts = torch.zeros(n_clips, dtype=torch.int64)
    add_to_clips(sums, counts, values, positions)
    return means_of(sums, counts), counts


def add_to_clips(
    sums: torch.Tensor, counts: torch.Tensor | None, values: torch.Tensor, positions: torch.Tensor
) -> None:
    """Add per-sample rows to their clips' float64 sums (and counts) in place: a streaming `clip_means`."""
    positions = positions.cpu()
    sums.index_add_(0, positions, values.double().cpu())
    if counts is not None:
        counts += torch.bincount(positions, minlength=len(counts))


def means_of(sums: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Per-clip sums divided by their sample counts; NaN rows for clips without samples."""
    means = sums / counts.clamp_min(1).unsqueeze(1)
    means[counts == 0] = float("nan")
    return means


class RandomCrop(Dataset):
    """Training waveforms: a random `crop`-sample window inside each clip's real samples (Guclu-turk
    et al. 2016 trained on random audio crops). A clip shorter than the crop gives its start, zero-
    padded as stored. Crops are drawn from torch's generator, seeded by `training.seed_everything`."""

    def __init__(self, base: RowDataset, n_samples: Sequence[int], crop: int):
        self.base, self.clips, self.crop = base, base.clips, int(crop)
        self.lengths = [int(n_samples[row]) for _, row in base.items]
        if self.crop < 1:
            raise ValueError(f"crop must be at least one sample, not {crop}")

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        x, y, pos = self.base[i]
        if x.shape[0] < self.crop:
            raise ValueError(
                f"the stored window ({x.shape[0]} samples) is shorter than the crop ({self.crop})"
            )
        spare = self.lengths[i] - self.crop
        start = int(torch.randint(0, spare + 1, ())) if spare > 0 else 0
        return x[start : start + self.crop], y, pos


class WholeClip(Dataset):
    """Test waveforms: each clip's real samples only (no padding; at least `min_samples`), so a
    network with global pooling scores the whole clip. Lengths differ: load with batch size 1."""

    def __init__(self, base: RowDataset, n_samples: Sequence[int], min_samples: int):
        self.base, self.clips, self.min_samples = base, base.clips, int(min_samples)
        self.lengths = [int(n_samples[row]) for _, row in base.items]

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        x, y, pos = self.base[i]
        return x[: max(self.lengths[i], self.min_samples)], y, pos

    @property
    def clip_positions(self) -> np.ndarray:
        return self.base.clip_positions
