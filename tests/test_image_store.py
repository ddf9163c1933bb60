"""Frames and faces storage: JPEG in a per-clip tar or raw npy, read the same way from either."""

import tarfile

import numpy as np
import pytest
import torch

from impressions.data import image_store
from impressions.training import datasets


def smooth_images(n, height=40, width=48, seed=0):
    """Photo-like images (gradients plus mild noise): what JPEG is made for."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    out = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        base = np.stack([x * 4 + 10 * i, y * 5, (x + y) * 2], -1) % 200 + 20
        out[i] = np.clip(base + rng.integers(-6, 7, base.shape), 0, 255)
    return out


def test_jpeg_round_trip_is_close_and_npy_exact(tmp_path):
    images = smooth_images(5)
    (tmp_path / "j").mkdir()
    path = image_store.write(tmp_path / "j", "frames", images)
    assert path.name == "frames.tar"
    stored = image_store.read(tmp_path / "j", "frames")
    assert len(stored) == 5 and stored.size == (40, 48) and stored.shape == (5, 40, 48, 3)
    decoded = stored.all()
    assert decoded.dtype == np.uint8 and decoded.shape == images.shape
    error = np.abs(decoded.astype(int) - images).mean()
    assert 0 < error < 4  # lossy, but close at quality 90
    assert np.array_equal(stored[3], decoded[3])
    assert np.array_equal(stored.batch([4, 0, 4]), decoded[[4, 0, 4]])
    assert np.array_equal(stored[-1], decoded[4])
    with pytest.raises(IndexError):
        stored[5]
    (tmp_path / "n").mkdir()
    assert image_store.write(tmp_path / "n", "faces", images, storage="npy").name == "faces.npy"
    raw = image_store.read(tmp_path / "n", "faces")
    assert np.array_equal(raw.all(), images) and np.array_equal(raw.batch([2, 1]), images[[2, 1]])
    assert raw.size == (40, 48)


def test_the_container_is_a_plain_deterministic_tar(tmp_path):
    images = smooth_images(3)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    image_store.write(a, "faces", images, quality=90)
    image_store.write(b, "faces", images, quality=90)
    assert (a / "faces.tar").read_bytes() == (b / "faces.tar").read_bytes()
    with tarfile.open(a / "faces.tar") as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["images.json", "000000.jpg", "000001.jpg", "000002.jpg"]
        assert {(m.mtime, m.uid, m.gid, m.mode) for m in members} == {(0, 0, 0, 0o644)}
        blob = tar.extractfile("000001.jpg").read()
    assert blob[:2] == b"\xff\xd8"  # a JPEG any viewer opens
    assert np.array_equal(image_store.decode(blob), image_store.read(a, "faces")[1])
    # a lower quality is smaller: the setting reaches the encoder
    image_store.write(b, "faces", images, quality=50)

    def jpeg_bytes(folder):
        with tarfile.open(folder / "faces.tar") as tar:
            return sum(m.size for m in tar.getmembers() if m.name.endswith(".jpg"))

    assert jpeg_bytes(b) < jpeg_bytes(a)


def test_layout_is_detected_from_the_file_present(tmp_path):
    images = smooth_images(2)
    image_store.write(tmp_path, "frames", images, storage="npy")
    assert image_store.find(tmp_path, "frames").name == "frames.npy"
    # the other layout's name finds the file there is
    assert np.array_equal(image_store.open_path(tmp_path / "frames.tar").all(), images)
    # writing the other layout replaces the file: never two versions of the same images
    image_store.write(tmp_path, "frames", images, storage="jpeg")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames.tar"]
    assert isinstance(image_store.open_path(tmp_path / "frames.npy"), image_store.JpegImages)
    with pytest.raises(FileNotFoundError, match="faces.tar or faces.npy"):
        image_store.read(tmp_path, "faces")
    with pytest.raises(ValueError, match="storage"):
        image_store.write(tmp_path, "frames", images, storage="png")
    with pytest.raises(ValueError, match="uint8"):
        image_store.write(tmp_path, "frames", images.astype(np.float32))
    (tmp_path / "faces.tar").write_bytes(b"")
    with pytest.raises((ValueError, tarfile.TarError)):
        image_store.read(tmp_path, "faces")


def test_an_empty_clip_keeps_its_image_size(tmp_path):
    image_store.write(tmp_path, "faces", np.zeros((0, 32, 32, 3), np.uint8))
    stored = image_store.read(tmp_path, "faces")
    assert len(stored) == 0 and stored.shape == (0, 32, 32, 3) and stored.all().shape == (0, 32, 32, 3)


@pytest.mark.parametrize("storage", ["jpeg", "npy"])
def test_frame_dataset_batches_equal_single_items(tmp_path, storage):
    ids = ["a.000", "b.001", "c.002"]
    dirs = {}
    for i, clip in enumerate(ids):
        dirs[clip] = tmp_path / clip
        dirs[clip].mkdir()
        image_store.write(dirs[clip], "faces", smooth_images(4, seed=i), storage=storage)
    clips = datasets.Clips(ids, np.arange(15, dtype=np.float32).reshape(3, 5))
    items = [(c, k) for c in ids for k in range(4) if (c, k) != ("b.001", 2)]
    data = datasets.FrameDataset(clips, dirs, items, "faces")
    assert len(data) == 11 and data.image_shape() == (40, 48)
    order = [7, 0, 3, 10, 1, 7]
    batch = data.__getitems__(order)
    for i, (x, y, pos) in zip(order, batch):
        x1, y1, pos1 = data[i]
        assert torch.equal(x, x1) and torch.equal(y, y1) and pos == pos1
    # what the training loader delivers: the same images, batched by __getitems__ in a worker
    loader = datasets.loader(data, 4, shuffle=False, seed=0, device="cpu", num_workers=1)
    xs = torch.cat([x for x, _, _ in loader])
    assert torch.equal(xs, torch.stack([data[i][0] for i in range(len(data))]))
