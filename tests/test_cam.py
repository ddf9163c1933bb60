import matplotlib
import matplotlib.image
import numpy as np
import pytest
import torch
from torch import nn

from impressions.explain import cam, cam_overlap
from impressions.models import networks as models

# A fixed 2-channel 2x2 feature map and a hand-chosen linear head (five traits).
A1 = [[1.0, 2.0], [3.0, 4.0]]
A2 = [[0.0, 1.0], [0.0, 2.0]]
WEIGHTS = [[1.0, 0.0], [0.0, 1.0], [1.0, -1.0], [2.0, 1.0], [0.0, 0.0]]
BIAS = [0.5, 0.0, -1.0, 0.0, 2.0]
# CAM_t(x, y) = (w_t1 A1(x, y) + w_t2 A2(x, y)) / (h w), h w = 4, worked out by hand:
HAND_CAM = np.array(
    [
        [[0.25, 0.5], [0.75, 1.0]],  # A1 / 4
        [[0.0, 0.25], [0.0, 0.5]],  # A2 / 4
        [[0.25, 0.25], [0.75, 0.5]],  # (A1 - A2) / 4
        [[0.5, 1.25], [1.5, 2.5]],  # (2 A1 + A2) / 4
        [[0.0, 0.0], [0.0, 0.0]],
    ]
)
HAND_LOGITS = np.array([3.0, 0.75, 0.75, 5.75, 2.0])  # map sums plus bias


class FixedMap(nn.Module):
    """Ignores the image: every sample gets the same (2, 2, 2) feature map."""

    def forward(self, x):
        return torch.tensor([A1, A2]).expand(x.shape[0], 2, 2, 2)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def fixed_danplus() -> models.DANPlus:
    model = models.DANPlus(backbone="small", head="cam", width=2, normalize=False)
    model.body = nn.Sequential(FixedMap())
    model.fc = nn.Linear(2, 5)
    with torch.no_grad():
        model.fc.weight.copy_(torch.tensor(WEIGHTS))
        model.fc.bias.copy_(torch.tensor(BIAS))
    return model


def sigmoid_slope(z):
    s = 1 / (1 + np.exp(-z))
    return s * (1 - s)


def test_cam_of_a_hand_built_gap_linear_network():
    model = fixed_danplus().train()
    x = torch.rand(3, 3, 8, 8)
    maps, logits = cam.class_activation_maps(model, x)
    assert maps.dtype == np.float32 and maps.shape == (3, 5, 2, 2)
    np.testing.assert_allclose(maps, np.broadcast_to(HAND_CAM, maps.shape), atol=1e-6)
    np.testing.assert_allclose(logits, np.broadcast_to(HAND_LOGITS, (3, 5)), atol=1e-6)
    np.testing.assert_allclose(maps.sum(axis=(2, 3)) + np.array(BIAS), logits, atol=1e-6)
    # The logits are what the model predicts (dropout off: eval mode inside, training mode restored).
    assert model.training
    with torch.no_grad():
        np.testing.assert_allclose(torch.sigmoid(torch.from_numpy(logits)), model.eval()(x), atol=1e-6)


def test_cam_needs_activation_maps():
    with pytest.raises(TypeError, match="grad_cam"):
        cam.class_activation_maps(nn.Sequential(nn.Conv2d(3, 5, 3)), torch.rand(1, 3, 8, 8))


def test_grad_cam_of_the_hand_built_network():
    # d sigmoid(z_t) / d A_c = sigmoid'(z_t) w_tc / (h w) everywhere, so alpha_c = sigmoid'(z_t) w_tc / 4
    # and Grad-CAM = sigmoid'(z_t) relu(CAM_t): trait 2 stays positive, a negative weight would clip.
    maps = cam.grad_cam(fixed_danplus(), torch.rand(2, 3, 8, 8))
    expected = sigmoid_slope(HAND_LOGITS)[:, None, None] * np.maximum(HAND_CAM, 0)
    assert maps.shape == (2, 5, 2, 2)
    np.testing.assert_allclose(maps, np.broadcast_to(expected, maps.shape), rtol=1e-5, atol=1e-8)
    only = cam.grad_cam(fixed_danplus(), torch.rand(1, 3, 8, 8), outputs=[3, 1])
    np.testing.assert_allclose(only[0], expected[[3, 1]], rtol=1e-5, atol=1e-8)


def test_grad_cam_is_relu_cam_times_the_sigmoid_slope_on_a_real_body():
    model = models.DANPlus(backbone="small", head="cam", width=4, normalize=False)
    with torch.no_grad():  # some traits with negative weights, so relu matters
        model.fc.weight.mul_(20)
    x = torch.rand(3, 3, 32, 32)
    maps, logits = cam.class_activation_maps(model, x)
    grads = cam.grad_cam(model, x)
    assert grads.shape == maps.shape == (3, 5, 4, 4)
    assert (maps < 0).any() and (maps > 0).any()
    expected = sigmoid_slope(logits.astype(np.float64))[:, :, None, None] * np.maximum(maps, 0)
    np.testing.assert_allclose(grads, expected, rtol=1e-4, atol=1e-9)
    # Each sample's map is its own: explaining one sample alone gives the same map.
    np.testing.assert_allclose(cam.grad_cam(model, x[1:2]), grads[1:2], rtol=1e-4, atol=1e-9)


# The dan heads of vgg16 pool pool5 as published (2x2 at 64 px); the cam head drops it (4x4).
@pytest.mark.parametrize(("backbone", "side"), [("resnet18", 2), ("vgg16", 2)])
def test_grad_cam_on_torchvision_backbones(backbone, side):
    model = models.build("image", backbone=backbone, weights=None)
    x = torch.rand(1, 3, 64, 64)
    maps = cam.grad_cam(model, x)
    assert maps.shape == (1, 5, side, side) and maps.dtype == np.float32
    assert np.isfinite(maps).all() and (maps >= 0).all() and maps.max() > 0
    # Any layer inside the body: resnet18's layer2 and vgg16's conv4_3 ReLU give 8x8 at 64 px.
    inner = model.body[5] if backbone == "resnet18" else model.body[22]
    assert cam.grad_cam(model, x, layer=inner, outputs=[0]).shape == (1, 1, 8, 8)


def test_upsample_is_bilinear_without_corner_alignment():
    out = cam.upsample(np.array([[0.0, 1.0]]), (1, 4))
    np.testing.assert_allclose(out, [[0.0, 0.25, 0.75, 1.0]])
    many = cam.upsample(np.ones((2, 5, 3, 3)), 12)
    assert many.shape == (2, 5, 12, 12) and many.dtype == np.float32
    np.testing.assert_allclose(many, 1.0)


def two_blobs() -> np.ndarray:
    m = np.zeros((20, 20), np.float32)
    m[2:6, 2:6] = 1.0  # inside the box (0, 0, 9, 9)
    m[12:16, 12:16] = 0.5  # outside it
    return m


def _overlaps(m, box, threshold=0.2):
    """(regions, overlaps at box scale 1) of the default (raw-max) rule, as the workflow computes them."""
    rows = cam_overlap.frame_regions(m, box, threshold, scales=(1.0,), rules=("raw_max",))
    return len(rows), [r["overlap_1"] for r in rows]


def test_regions_and_face_overlap_known_answers():
    m = two_blobs()
    regions = cam.cam_regions(m)
    assert [r.sum() for r in regions] == [16, 16] and regions[0][3, 3] and regions[1][13, 13]
    assert _overlaps(m, (0, 0, 9, 9)) == (2, [1.0, 0.0])
    # Above 0.6 of the maximum only the strong blob is a region.
    assert _overlaps(m, (0, 0, 9, 9), threshold=0.6) == (1, [1.0])
    # A blob half inside the box: overlap 0.5 (columns 8..11, box to column 9).
    half = np.zeros((20, 20), np.float32)
    half[2:6, 8:12] = 1.0
    assert _overlaps(half, (0, 0, 9, 9)) == (1, [0.5])
    # A region 90% inside: 10 columns, 9 of them in the box (inclusive right edge).
    ninety = np.zeros((20, 20), np.float32)
    ninety[5, 1:11] = 1.0
    assert _overlaps(ninety, (0, 0, 9, 9)) == (1, [0.9])
    assert _overlaps(ninety, (0, 0, 8, 9)) == (1, [0.8])


def test_regions_use_8_connectivity_and_positive_maxima():
    diagonal = np.zeros((5, 5))
    diagonal[1, 1] = diagonal[2, 2] = diagonal[3, 3] = 1.0
    assert len(cam.cam_regions(diagonal)) == 1
    assert _overlaps(np.zeros((8, 8)), (0, 0, 3, 3)) == (0, [])
    assert cam.cam_regions(-np.ones((8, 8))) == []
    with pytest.raises(ValueError, match="no face"):
        _overlaps(two_blobs(), (np.nan,) * 4)


def test_map_correlation():
    a = np.random.default_rng(0).normal(size=(7, 7))
    assert cam.map_correlation(a, a) == pytest.approx(1.0)
    assert cam.map_correlation(a, -a) == pytest.approx(-1.0)
    assert cam.map_correlation(a, 3 * a + 2) == pytest.approx(1.0)
    assert np.isnan(cam.map_correlation(a, np.full_like(a, 2.0)))
    b = np.zeros((3, 3))
    b[0, 0] = 1.0
    c = np.zeros((3, 3))
    c[0, 1] = 1.0
    assert cam.map_correlation(b, c) == pytest.approx(-1 / 8)  # two one-hot maps of 9 pixels
    with pytest.raises(ValueError):
        cam.map_correlation(a, a[:3])


def test_overlay_shape_dtype_and_colours():
    image = np.full((20, 30, 3), 100, np.uint8)
    m = np.array([[0.2, 0.2, 1.0], [0.2, 0.2, 0.2]])  # scaled to its own min..max: 0.2 is the bottom
    out = cam.overlay(image, m)
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(cam.overlay(image, m, alpha=0.0), image)
    full = cam.overlay(image, m, alpha=1.0)
    jet = matplotlib.colormaps["jet"]
    np.testing.assert_array_equal(full[0, -1], np.rint(255 * np.array(jet(1.0)[:3])))  # the peak corner
    np.testing.assert_array_equal(full[-1, 0], np.rint(255 * np.array(jet(0.0)[:3])))  # the minimum
    assert (out[0, -1] == np.rint(0.5 * 100 + 0.5 * full[0, -1])).all()


def test_plots_write_pngs_of_the_expected_size(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 32, 32, 3), dtype=np.uint8)
    maps = rng.random((7, 4, 4)).astype(np.float32)
    path = tmp_path / "figs" / "overlays.png"
    cam.plot_overlays(images, maps, [f"clip {i}" for i in range(7)], path, columns=4, suptitle="CAM")
    assert matplotlib.image.imread(path).shape[:2] == (440, 800)  # 2 rows x 4 columns of 2 in + title
    path = tmp_path / "cam_vs_gradcam.png"
    cam.plot_cam_vs_gradcam(images[:2], maps[:2], maps[:2] ** 2, ["a", "b"], path)
    assert matplotlib.image.imread(path).shape[:2] == (400, 600)
    with pytest.raises(ValueError):
        cam.plot_overlays(images, maps[:3], ["x"] * 7, tmp_path / "bad.png")


def test_map_cosine_is_belharbis_cam_cos_on_the_normalised_cam():
    target = np.zeros((4, 4))
    target[:2, :2] = 1.0
    # A signed CAM: min-max normalised first, so its cosine with the map is that of its 0..1 version.
    signed = np.where(target > 0, 3.0, -1.0)
    assert cam.map_cosine(signed, target) == pytest.approx(1.0)
    assert cam.map_cosine(-signed, target) == pytest.approx(0.0)
    half = np.zeros((4, 4))
    half[0, :2], half[2, :] = 1.0, 1.0  # 2 of its 6 pixels on the map's 4
    assert cam.map_cosine(half, target) == pytest.approx(2 / np.sqrt(6 * 4))
    assert np.isnan(cam.map_cosine(np.ones((4, 4)), target)) and np.isnan(cam.map_cosine(signed, 0 * target))
