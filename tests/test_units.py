"""Units as face-part detectors and AU emergence, on synthetic faces and rankings with known answers."""

from math import comb

import numpy as np
import pytest
import torch
from skimage.draw import polygon
from torch import nn

from impressions.explain import emergence
from impressions.explain import unit_detectors as units
from impressions.expressions import geometry
from impressions.models import networks as models

SIZE = 48


def template(size: int = SIZE) -> np.ndarray:
    """A plausible frontal 68-point dlib layout (x, y) scaled to a size x size aligned face."""
    pts = np.zeros((68, 2))
    t = np.linspace(0, np.pi, 17)
    pts[0:17] = np.c_[0.5 - 0.4 * np.cos(t), 0.35 + 0.6 * np.sin(t)]  # jaw, ear to ear via the chin
    pts[17:22] = np.c_[np.linspace(0.2, 0.42, 5), [0.3, 0.27, 0.26, 0.27, 0.3]]
    pts[22:27] = np.c_[np.linspace(0.58, 0.8, 5), [0.3, 0.27, 0.26, 0.27, 0.3]]
    pts[27:31] = np.c_[np.full(4, 0.5), np.linspace(0.4, 0.56, 4)]  # nose bridge
    pts[31:36] = np.c_[np.linspace(0.42, 0.58, 5), [0.6, 0.62, 0.63, 0.62, 0.6]]
    e = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    pts[36:42] = np.c_[0.32 - 0.06 * np.cos(e), 0.42 - 0.02 * np.sin(e)]
    pts[42:48] = np.c_[0.68 - 0.06 * np.cos(e), 0.42 - 0.02 * np.sin(e)]
    m = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    pts[48:60] = np.c_[0.5 - 0.12 * np.cos(m), 0.78 - 0.05 * np.sin(m)]
    m = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    pts[60:68] = np.c_[0.5 - 0.08 * np.cos(m), 0.78 - 0.02 * np.sin(m)]
    return pts * size


def synthetic_faces(n: int = 40, seed: int = 0):
    """Grey noise faces (landmarks jittered a few px) with a red mouth and a green dot placed anywhere."""
    rng = np.random.default_rng(seed)
    images = np.clip(rng.normal(128, 20, (n, SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
    landmarks = template()[None] + rng.integers(-4, 5, (n, 1, 2))
    dots = rng.integers(1, SIZE - 1, (n, 2))
    for img, lm, (x, y) in zip(images, landmarks, dots):
        img[polygon(lm[48:60, 1], lm[48:60, 0], shape=img.shape[:2])] = (255, 0, 0)
        img[y - 1 : y + 2, x - 1 : x + 2] = (0, 255, 0)
    return images, landmarks.astype(np.float64), dots


def colour_net() -> nn.Sequential:
    """1x1 units, pooled 2x2: red (R - (G+B)/2), green (G - (R+B)/2), blue (no blue object: noise)."""
    conv = nn.Conv2d(3, 3, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[1, -0.5, -0.5], [-0.5, 1, -0.5], [-0.5, -0.5, 1]]).view(3, 3, 1, 1))
    return nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(2))


def test_mouth_unit_is_a_mouth_detector_and_nothing_else():
    images, landmarks, _ = synthetic_faces()
    net = colour_net()
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    acts = units.unit_activations(net, {"pool": net[2]}, x, batch_size=16)["pool"]
    assert acts.shape == (40, 3, SIZE // 2, SIZE // 2) and acts.dtype == np.float32
    values, xy = units.peaks(acts, SIZE)
    masks = units.part_masks(landmarks, SIZE)
    assert set(masks) == set(units.FACE_PARTS) and masks["mouth"].shape == (40, SIZE, SIZE)
    rows = units.find_detectors(values, xy, masks, top=20, threshold=0.5)
    red, green, blue = rows
    assert red["part"] == "mouth" and red["mass_mouth"] == 1.0
    assert all(red[f"mass_{p}"] < 0.5 for p in ("eyebrows", "eyes", "nose"))
    assert red["top_value"] == pytest.approx(1.0)
    # The green dot is anywhere: its unit's peaks follow it, not a face part.
    assert green["part"] is None and max(green[f"mass_{p}"] for p in units.FACE_PARTS) < 0.5
    assert blue["part"] is None


def test_detector_threshold_and_dead_units():
    images, landmarks, dots = synthetic_faces(n=10, seed=1)
    masks = units.part_masks(landmarks, SIZE)
    xy = np.zeros((10, 2, 2), np.float32)
    xy[:, 0] = landmarks[:, 51]  # upper lip centre: mouth on every image
    xy[:6, 0] = landmarks[:6, 30]  # ... except 6 images on the nose tip
    values = np.ones((10, 2), np.float32)
    values[:, 1] = 0  # a unit that never fires
    xy[:, 1] = landmarks[:, 51]
    rows = units.find_detectors(values, xy, masks, top=10, threshold=0.5)
    assert rows[0]["mass_nose"] == pytest.approx(0.6) and rows[0]["mass_mouth"] == pytest.approx(0.4)
    assert rows[0]["part"] == "nose"
    assert units.find_detectors(values, xy, masks, top=10, threshold=0.7)[0]["part"] is None
    assert rows[1]["mass_mouth"] == 1.0 and rows[1]["part"] is None
    # top: only the highest-valued images count (the last four, all on the mouth)
    values[6:, 0] = 2
    assert units.find_detectors(values, xy, masks, top=4)[0]["part"] == "mouth"


def test_part_masks_known_regions():
    lm = template()
    masks = units.part_masks(lm, SIZE)
    mouth_c, left_eye, right_eye = lm[48:60].mean(0), lm[36:42].mean(0), lm[42:48].mean(0)

    def at(mask, p):
        return bool(mask[int(p[1]), int(p[0])])

    assert at(masks["mouth"], mouth_c) and not at(masks["mouth"], left_eye)
    assert at(masks["eyes"], left_eye) and at(masks["eyes"], right_eye)
    assert not at(masks["eyes"], (left_eye + right_eye) / 2)  # two hulls, not one across the nose
    assert at(masks["nose"], lm[30]) and at(masks["eyebrows"], lm[19]) and at(masks["eyebrows"], lm[24])
    assert not (masks["mouth"] & masks["nose"]).any()
    # Margin dilates by a share of the inter-ocular distance (0.36 * 48 px here).
    assert geometry.interocular(lm) == pytest.approx(0.36 * SIZE)
    bare = units.part_masks(lm, SIZE, margin=0)["mouth"]
    wide = units.part_masks(lm, SIZE, margin=0.3)["mouth"]
    assert bare.sum() < masks["mouth"].sum() < wide.sum() and (bare <= masks["mouth"]).all()
    gap = geometry.interocular(lm) * 0.3
    below = lm[48:60, 1].max()
    assert wide[int(below + gap - 1), int(mouth_c[0])] and not wide[int(below + gap + 2), int(mouth_c[0])]
    nan = units.part_masks(np.full((68, 2), np.nan), SIZE)
    assert all(m.shape == (SIZE, SIZE) and not m.any() for m in nan.values())


def test_peaks_centre_of_peak_cell():
    acts = np.zeros((2, 3, 4, 4), np.float32)
    acts[0, 1, 1, 2] = 5.0
    acts[1, 2, 3, 0] = 2.0
    values, xy = units.peaks(acts, 32)
    assert values.shape == (2, 3) and xy.shape == (2, 3, 2)
    assert values[0, 1] == 5.0 and values[1, 2] == 2.0
    np.testing.assert_allclose(xy[0, 1], [20.0, 12.0])  # column 2, row 1 of 8 px cells
    np.testing.assert_allclose(xy[1, 2], [4.0, 28.0])
    _, xy = units.peaks(np.pad(acts, ((0, 0), (0, 0), (0, 0), (0, 4))), 32)  # 4 rows x 8 columns
    np.testing.assert_allclose(xy[0, 1], [10.0, 12.0])


def test_peak_histogram_counts_bins():
    xy = np.array([[1.0, 30.0], [1.5, 31.0], [17.0, 3.0], [np.nan, np.nan]])
    h = units.peak_histogram(xy, 32, bins=4)
    assert h.shape == (4, 4) and h.sum() == 3
    assert h[3, 0] == 2 and h[0, 2] == 1


def test_segment_keeps_strong_pixels_darkens_the_rest():
    image = np.full((4, 4, 3), 200, np.uint8)
    out = units.segment(image, np.array([[1.0, 0.0], [0.0, 0.0]]), level=0.5)
    assert out.dtype == np.uint8
    # Bilinear 2 -> 4 profile is [1, .75, .25, 0]: the top-left 2x2 block stays above half the max.
    assert (out[:2, :2] == 200).all() and (out[2:] == 50).all() and (out[:, 2:] == 50).all()
    assert (units.segment(image, np.zeros((2, 2))) == 50).all()


def test_unit_layers_per_backbone():
    small = models.build("face", backbone="small", weights=None)
    layers = units.unit_layers(small)
    assert list(layers) == ["conv3", "conv4"]
    assert layers["conv3"] is small.body[10] and layers["conv4"] is small.body[14]
    assert list(units.unit_layers(small, n_last=4)) == ["conv1", "conv2", "conv3", "conv4"]
    resnet = models.build("face", backbone="resnet18", weights=None)
    layers = units.unit_layers(resnet)
    assert list(layers) == ["layer4.0", "layer4.1"] and layers["layer4.1"] is resnet.body[7][1]
    assert list(units.unit_layers(resnet, n_last=3)) == ["layer3.1", "layer4.0", "layer4.1"]
    vgg = models.build("face", backbone="vgg16", weights=None, head="cam")
    layers = units.unit_layers(vgg)
    assert list(layers) == ["conv12", "conv13"]
    assert layers["conv13"] is vgg.body[-1] and isinstance(vgg.body[26], nn.Conv2d)
    assert layers["conv12"] is vgg.body[27]
    assert len(units.unit_layers(vgg, n_last=20)) == 13


def test_unit_activations_match_the_body():
    torch.manual_seed(0)
    model = models.build("face", backbone="small", weights=None).train()
    x = torch.rand(5, 3, 32, 32)
    acts = units.unit_activations(model, units.unit_layers(model), x, batch_size=2)
    assert acts["conv3"].shape == (5, 64, 8, 8) and acts["conv4"].shape == (5, 128, 4, 4)
    assert model.training  # mode restored
    with torch.no_grad():
        expected = model.eval().forward_features(x).numpy()
    np.testing.assert_allclose(acts["conv4"], expected, rtol=1e-5, atol=1e-6)
    assert (acts["conv3"] >= 0).all()


def test_hypergeometric_p_hand_values():
    # The workflow's emergence (impressions.explain.emergence), on hand-checkable rankings.
    au = np.arange(10, 0, -1, dtype=float)[:, None]  # top 3 frames: 0, 1, 2
    unit = au.copy()
    (row,) = emergence.emergence(au, unit, n_top=3)
    assert (row["unit"], row["i_max"], row["n"]) == (0, 3, 10)
    assert row["p_value"] == pytest.approx(1 / 120) and row["p_bonferroni"] == pytest.approx(1 / 120)
    assert row["expected"] == pytest.approx(0.9)
    # Three more units (top frames elsewhere) make four tests; the copy is still best.
    others = np.stack([np.roll(au[:, 0], k) for k in (3, 5, 7)], axis=1)
    rows = emergence.emergence(au, np.hstack([others, unit]), n_top=3)
    assert rows[0]["unit"] == 3 and rows[0]["i_max"] == 3 and rows[0]["tests"] == 4
    assert rows[0]["p_bonferroni"] == pytest.approx(4 / 120) and rows[0]["p_corrected"] == pytest.approx(
        4 / 120
    )
    shifted = np.roll(au[:, 0], 3)  # top frames 3, 4, 5: overlap 0 with the AU's, P(X >= 0) = 1
    (row,) = emergence.emergence(au, np.stack([shifted] * 40, axis=1), n_top=3)
    assert row["i_max"] == 0 and row["p_value"] == pytest.approx(1.0) and row["p_bonferroni"] == 1.0
    two = (comb(3, 2) * comb(7, 1) + 1) / 120  # P(X >= 2)
    partial = np.array([10, 9, 0.5, 8, 0.4, 0.3, 0.2, 0.1, 0.05, 0.01])  # top 3: frames 0, 1, 3
    (row,) = emergence.emergence(au, partial[:, None], n_top=3)
    assert row["i_max"] == 2 and row["p_value"] == pytest.approx(two)


def test_gallery_ranking_breaks_ties_by_frame_order():
    levels = np.random.default_rng(0).integers(0, 3, (200, 1)).astype(float)  # many ties
    np.testing.assert_array_equal(units.top_images(levels, 30)[:, 0], np.flatnonzero(levels[:, 0] == 2)[:30])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_unit_copying_an_au_gets_a_tiny_p_and_random_units_do_not(seed):
    rng = np.random.default_rng(seed)
    frames, n_top, n_units = 500, 50, 20
    au = rng.gamma(2.0, 1.0, (frames, 1))
    random_units = rng.normal(size=(frames, n_units))
    copy = np.exp(au) + rng.normal(0, 1e-9, (frames, 1))  # monotone transform, tiny noise
    (row,) = emergence.emergence(au, np.hstack([random_units[:, :7], copy, random_units[:, 7:]]), n_top)
    assert row["unit"] == 7 and row["i_max"] == n_top and row["p_corrected"] < 1e-10
    (row,) = emergence.emergence(au, random_units, n_top)
    assert row["expected"] == pytest.approx(5.0)
    # The best of 20 random overlaps (mean 5, sd ~2) is a little above chance, never significant.
    assert row["expected"] <= row["i_max"] <= 13 and row["p_corrected"] > 0.01


def test_au_emergence_several_aus():
    rng = np.random.default_rng(5)
    au = rng.random((200, 3))
    unit = np.hstack([rng.random((200, 4)), au[:, [2]], au[:, [0]]])
    rows = emergence.emergence(au, unit, n_top=20)
    assert [r["au_index"] for r in rows] == [0, 1, 2]
    assert rows[0]["unit"] == 5 and rows[2]["unit"] == 4 and rows[1]["i_max"] < 20
    with pytest.raises(ValueError):
        emergence.emergence(au, unit, n_top=0)


def test_plots_write_pngs(tmp_path):
    images, landmarks, _ = synthetic_faces(n=8)
    net = colour_net()
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    acts = units.unit_activations(net, {"pool": net[2]}, x)["pool"]
    values, xy = units.peaks(acts, SIZE)
    masks = units.part_masks(landmarks, SIZE)
    rows = units.find_detectors(values, xy, masks, top=5)
    names = ["top.png", "gallery/mouth.png", "empty.png", "h.png"]
    paths = [tmp_path / name for name in names]
    units.plot_top_units(images, acts, values, [0, 1, 2], paths[0], k=3)
    mouth = [r for r in rows if r["part"] == "mouth"]
    assert [r["unit"] for r in mouth] == [0]
    units.plot_part_gallery(images, acts, values, mouth, "mouth", paths[1])
    units.plot_part_gallery(images, acts, values, [], "eyes", paths[2])
    hists = {f"unit {u}": units.peak_histogram(xy[:, u], SIZE, bins=8) for u in range(3)}
    units.plot_histograms(hists, paths[3], masks_mean={p: m.mean(0) for p, m in masks.items()})
    units.plot_histograms(hists, tmp_path / "h2.png", masks_mean=masks["mouth"].mean(0))
    for path in [*paths, tmp_path / "h2.png"]:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mouth_detector_and_random_unit_against_the_chance_baseline():
    images, landmarks, _ = synthetic_faces()
    net = colour_net()
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    acts = units.unit_activations(net, {"pool": net[2]}, x, batch_size=16)["pool"]
    values, xy = units.peaks(acts, SIZE)
    masks = units.part_masks(landmarks, SIZE)
    chance = units.chance_shares(masks, acts.shape[-2:])
    assert 0 < chance["mouth"] < 0.2 and all(0 <= c < 1 for c in chance.values())
    rows = units.find_detectors(values, xy, masks, top=20, threshold=0.5, chance=chance, margin=0.25)
    red, green, blue = rows
    assert red["part"] == "mouth" and red["lift_mouth"] == pytest.approx(1 / chance["mouth"])
    assert red["lift_mouth"] > 5
    # The green dot lands anywhere: its shares stay near chance, so no part.
    assert green["part"] is None and blue["part"] is None
    assert max(green[f"mass_{p}"] - chance[p] for p in units.FACE_PARTS) < 0.25
