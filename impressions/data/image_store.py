"""Storage of a clip's frames and aligned faces: JPEG in one tar per clip and kind, or raw `.npy`.

Decision (measured in benchmarks/history/storage.md, "Storage of frames and faces at FI scale"): JPEG at
quality 90 by default (`frames.storage: jpeg`, `frames.jpeg_quality: 90`). Raw uint8 `.npy` projects
to about 280 GiB for FI (10,000 clips) at 100 frames per clip, frames plus faces; JPEG q90 to about
22 GiB. JPEG is lossy: expression/AU estimates and training see JPEG-decoded images. `frames.storage:
npy` keeps today's lossless, memory-mapped layout.

One container file per clip and kind (`frames.tar`, `faces.tar`), not per shard: the clip folder is
the unit of the per-clip cache and of its atomic write (`impressions.data.preprocess_shard`), so a
per-clip file keeps reuse and the atomic rename simple, and FI still has 2 image files per clip
(20,000 in all) instead of about 2 million with a file per frame, which is what cluster file systems
suffer from. The container is an uncompressed POSIX tar (stdlib `tarfile`; inspect with `tar tvf`)
of JPEG members named by frame index (`000000.jpg`, ...) after a small `images.json` (count, height,
width, quality: a reader knows (n, H, W) without decoding, and an empty clip keeps its size), written
deterministically (fixed mtime, uid, gid, mode and order) so the same images give the same bytes.
Readers find members by offset (an index built once per open file) and decode with simplejpeg
(libjpeg-turbo): bit-identical to torchvision's `decode_jpeg` on these files, 1.5x faster (0.24 against
0.36 ms of CPU per 224 px face, benchmarks/history/storage.md), and not deprecated (torchvision's image
io is, since 0.29).

Readers detect the layout from the file present, so clip folders of either layout read the same way:
`read(clip_dir, kind)` or `open_path(path)`.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np

KINDS = ("frames", "faces")
SUFFIXES = {"jpeg": ".tar", "npy": ".npy"}
"""File suffix per storage layout (`frames.storage`)."""

HEADER = "images.json"
"""The container's first member: image count, height, width and JPEG quality."""


def filename(kind: str, storage: str = "jpeg") -> str:
    """`frames.tar` / `faces.npy` ...: the file a clip folder holds for `kind` in `storage`."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    if storage not in SUFFIXES:
        raise ValueError(f"frames.storage must be one of {sorted(SUFFIXES)}, not {storage!r}")
    return kind + SUFFIXES[storage]


def write(
    clip_dir: str | Path, kind: str, images: np.ndarray, storage: str = "jpeg", quality: int = 90
) -> Path:
    """Store (n, H, W, 3) uint8 RGB `images` as the clip's `kind` file; returns its path.

    A file of the other layout is removed, so a folder never holds two versions of the same images.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be (n, H, W, 3) uint8, not {images.shape} {images.dtype}")
    path = Path(clip_dir) / filename(kind, storage)
    for other in SUFFIXES.values():
        if other != path.suffix:
            path.with_suffix(other).unlink(missing_ok=True)
    if storage == "npy":
        np.save(path, images)
        return path
    n, height, width = images.shape[:3]
    header = json.dumps({"count": n, "height": height, "width": width, "quality": int(quality)}).encode()
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        _add(tar, HEADER, header)
        for k, image in enumerate(images):
            _add(tar, f"{k:06d}.jpg", encode(image, quality))
    return path


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    # fixed metadata, so the same images always give the same bytes
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uid, info.gid = len(data), 0, 0o644, 0, 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def encode(image: np.ndarray, quality: int = 90) -> bytes:
    """One (H, W, 3) uint8 image as JPEG (Pillow's libjpeg, 4:2:0; 0.5 ms at 224 px, ~2x torchvision's)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=int(quality))
    return buf.getvalue()


def decode(blob: bytes | bytearray) -> np.ndarray:
    """One JPEG as (H, W, 3) uint8 RGB (simplejpeg: libjpeg-turbo, accurate DCT, fancy upsampling)."""
    import simplejpeg

    return simplejpeg.decode_jpeg(blob, colorspace="RGB")


def _decode(blob: bytes | bytearray):
    """(H, W, 3) uint8 tensor sharing the decoded array's memory."""
    import torch

    return torch.from_numpy(decode(blob))


def find(clip_dir: str | Path, kind: str) -> Path:
    """The clip's stored `kind` file, whichever layout it is in."""
    for storage in SUFFIXES:
        path = Path(clip_dir) / filename(kind, storage)
        if path.is_file():
            return path
    names = " or ".join(filename(kind, s) for s in SUFFIXES)
    raise FileNotFoundError(f"{clip_dir} holds no {names}: was the clip preprocessed?")


def read(clip_dir: str | Path, kind: str) -> Images:
    """A reader of the clip's stored `kind` images (frames or faces), either layout."""
    return open_path(find(clip_dir, kind))


def open_path(path: str | Path) -> Images:
    """A reader of a stored images file; a path of the other layout's name finds its sibling."""
    path = Path(path)
    if not path.is_file():
        kind = path.name.split(".")[0]
        path = find(path.parent, kind)
    return NpyImages(path) if path.suffix == ".npy" else JpegImages(path)


class Images:
    """A clip's stored images: `len`, `images[k]` (H, W, 3) uint8, `batch(indices)`, `all()`, `size`."""

    path: Path

    def __len__(self) -> int:
        raise NotImplementedError

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of every stored image, known without decoding."""
        raise NotImplementedError

    def batch(self, indices) -> np.ndarray:
        """(len(indices), H, W, 3) uint8 images, a fresh writable array."""
        raise NotImplementedError

    def __getitem__(self, k: int) -> np.ndarray:
        return self.batch([k])[0]

    def tensors(self, indices) -> list:
        """Images `indices` as (H, W, 3) uint8 torch tensors (what a data loader collates)."""
        import torch

        return list(torch.from_numpy(self.batch(indices)))

    def all(self) -> np.ndarray:
        return self.batch(range(len(self)))

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self), *self.size, 3)


class NpyImages(Images):
    """Raw uint8 (n, H, W, 3) `.npy`, memory-mapped: only the pages a read touches are loaded."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._array = np.load(self.path, mmap_mode="r")

    def __len__(self) -> int:
        return len(self._array)

    @property
    def size(self) -> tuple[int, int]:
        return int(self._array.shape[1]), int(self._array.shape[2])

    def batch(self, indices) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64)
        if len(indices) == 0:
            return np.zeros((0, *self.size, 3), np.uint8)
        return np.array(self._array[indices])  # a copy: fancy indexing of a memory map


class JpegImages(Images):
    """JPEG members of a tar, read by offset: the index is built once, the file kept open."""

    def __init__(self, path: Path):
        # imported here: a process that opens a reader before forking its data-loader workers gives
        # them the decoder (and torch, which `tensors` returns) already loaded
        import simplejpeg  # noqa: F401
        import torch  # noqa: F401

        self.path, self._fd = Path(path), None
        with tarfile.open(self.path, "r:") as tar:
            members = tar.getmembers()
            try:
                header = json.loads(tar.extractfile(HEADER).read())
            except KeyError:
                raise ValueError(f"{self.path} is not an image container (it has no {HEADER})") from None
        count, height, width = header["count"], header["height"], header["width"]
        by_index = {
            int(m.name.split(".")[0]): (m.offset_data, m.size) for m in members if m.name.endswith(".jpg")
        }
        if sorted(by_index) != list(range(count)):
            raise ValueError(f"{self.path} holds {len(by_index)} images, its {HEADER} says {count}")
        self._index = [by_index[k] for k in range(count)]
        self._size = (height, width)

    def __len__(self) -> int:
        return len(self._index)

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def blob(self, k: int) -> bytearray:
        """The JPEG bytes of image k."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        offset, size = self._index[k]
        data = bytearray(size)
        if os.preadv(self._fd, [data], offset) != size:
            raise OSError(f"{self.path}: short read of image {k}")
        return data

    def batch(self, indices) -> np.ndarray:
        indices = [int(k) for k in indices]
        for k in indices:
            if not -len(self) <= k < len(self):
                raise IndexError(f"image {k} of {len(self)} in {self.path}")
        out = np.empty((len(indices), *self._size, 3), np.uint8)
        for i, k in enumerate(indices):
            out[i] = _decode(self.blob(k)).numpy()
        return out

    def tensors(self, indices) -> list:
        # no copy into one array: the loader's collation makes the batch's one copy
        for k in indices:
            if not -len(self) <= int(k) < len(self):
                raise IndexError(f"image {k} of {len(self)} in {self.path}")
        return [_decode(self.blob(int(k))) for k in indices]

    def close(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self):
        self.close()

    def __getstate__(self):
        # a file descriptor does not survive pickling to a worker: each process opens its own
        return {**self.__dict__, "_fd": None}
