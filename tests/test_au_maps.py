import json

import model_data
import numpy as np
import polars as pl
import pytest
import torch
from model_data import tiny_options

from impressions.expressions import au_maps
from impressions.models import networks as models
from impressions.schemas import AUS, EMOTIONS
from impressions.training import datasets
from impressions.training import loop as training

SIZE = 64
COMMON = {"seed": 0, "device": "cpu", "threads": 1, "patience": 50}
GUIDED_CNN = tiny_options("face", epochs=4, input_size=32, lr=0.01)


def _face(size=SIZE, angle=0.0, shift=(0.0, 0.0)):
    """The mean face, rotated about the image centre and shifted: not tied to the template's pose."""
    lm = au_maps.mean_face(size).astype(np.float64)
    c, s = np.cos(angle), np.sin(angle)
    centre = (size - 1) / 2
    return (lm - centre) @ np.array([[c, s], [-s, c]]) + centre + np.asarray(shift)


def _at(m, point):
    x, y = np.round(point).astype(int)
    return m[y, x]


# ----------------------------------------------------------------------------------------------------
# Maps


def test_codebook_and_anchors_cover_the_schema():
    assert set(au_maps.AU_LANDMARKS) == set(AUS) and set(au_maps.CODEBOOK) == set(EMOTIONS)
    assert au_maps.CODEBOOK["happiness"] == ("AU06", "AU12") and au_maps.CODEBOOK["neutral"] == ()
    flat = [i for anchors in au_maps.AU_LANDMARKS.values() for a in anchors
            for i in (a if isinstance(a, tuple) else (a,))]  # fmt: skip
    assert min(flat) >= 0 and max(flat) < 68


@pytest.mark.parametrize("angle,shift", [(0.0, (0.0, 0.0)), (0.3, (4.3, -2.6))])
def test_au12_peaks_at_the_lip_corners(angle, shift):
    lm = _face(angle=angle, shift=shift)
    maps = au_maps.au_heatmaps(lm, SIZE, shape="gaussian")
    assert maps.shape == (len(AUS), SIZE, SIZE) and maps.dtype == np.float32
    assert maps.max() <= 1 and maps.min() >= 0
    au12 = maps[AUS.index("AU12")]
    y, x = np.unravel_index(au12.argmax(), au12.shape)
    assert min(np.hypot(*(lm[i] - (x, y))) for i in (48, 54)) <= 1.0
    # Both corners carry a peak, the eyes none.
    assert _at(au12, lm[48]) > 0.9 and _at(au12, lm[54]) > 0.9
    assert _at(au12, lm[36:42].mean(0)) < 1e-3
    # The brow AUs peak at the brows.
    au01 = maps[AUS.index("AU01")]
    y, x = np.unravel_index(au01.argmax(), au01.shape)
    assert min(np.hypot(*(lm[i] - (x, y))) for i in (21, 22)) <= 1.0


def test_blob_width_is_a_fraction_of_the_interocular_distance():
    lm = _face()
    centre = (lm[8] + lm[57]) / 2  # AU17's single centre
    lm = lm + (np.round(centre) - centre)  # put it on a pixel centre
    cx, cy = np.round((lm[8] + lm[57]) / 2).astype(int)
    iod = np.hypot(*(lm[36:42].mean(0) - lm[42:48].mean(0)))
    for sigma in (0.1, 0.25):
        au17 = au_maps.au_heatmaps(lm, SIZE, aus=["AU17"], sigma=sigma, shape="gaussian")[0]
        assert au17[cy, cx] == pytest.approx(1.0)
        assert au17[cy, cx + 3] == pytest.approx(np.exp(-9 / (2 * (sigma * iod) ** 2)), rel=1e-5)
        assert au17[cy - 2, cx] == pytest.approx(np.exp(-4 / (2 * (sigma * iod) ** 2)), rel=1e-5)


def test_emotion_maps():
    lm = _face()
    happy = au_maps.emotion_map(lm, "happiness", SIZE, shape="gaussian")
    assert _at(happy, lm[48]) > 0.9 and _at(happy, lm[54]) > 0.9  # lip corners (AU12)
    cheeks = au_maps.au_centres(lm[None], ["AU06"])[0]
    assert all(_at(happy, c) > 0.9 for c in cheeks)  # cheeks (AU06)
    assert max(_at(happy, lm[i]) for i in (17, 19, 21, 22, 24, 26)) < 0.02  # nothing on the brows
    assert happy.max() <= 1
    # The map is the max of the codebook AUs' maps.
    parts = au_maps.au_heatmaps(lm, SIZE, aus=["AU06", "AU12"], shape="gaussian")
    assert np.allclose(happy, parts.max(axis=0), atol=1e-6)
    surprise = au_maps.emotion_map(lm, "surprise", SIZE, shape="gaussian")
    assert _at(surprise, lm[21]) > 0.9 and _at(surprise, lm[57]) > 0.9 and _at(surprise, lm[30]) < 0.02
    assert not au_maps.emotion_map(lm, "neutral", SIZE).any()
    assert not au_maps.emotion_map(lm, None, SIZE).any()
    assert not au_maps.emotion_map(np.full((68, 2), np.nan), "happiness", SIZE).any()
    assert not au_maps.au_heatmaps(np.full((68, 2), np.nan), SIZE).any()
    with pytest.raises(ValueError, match="unknown emotions"):
        au_maps.emotion_map(lm, "joy", SIZE)


def _inside(lm, centre, axes, size):
    """Known answer: the pixels (x, y) with ((x - cx) / a)^2 + ((y - cy) / b)^2 <= 1."""
    y, x = np.mgrid[:size, :size]
    return ((x - centre[0]) / axes[0]) ** 2 + ((y - centre[1]) / axes[1]) ** 2 <= 1


def test_ellipse_maps_are_filled_at_belharbis_anchors():
    size = 128
    lm = au_maps.mean_face(size).astype(np.float64)
    iod = np.hypot(*(lm[36:42].mean(0) - lm[42:48].mean(0)))
    side = iod * au_maps.CROP_SIDE  # the face crop Belharbi et al.'s sizes refer to
    px = side / au_maps.CROP_PIXELS
    maps = au_maps.au_heatmaps(lm, size)  # the default shape is the published one
    assert au_maps.SHAPE == "ellipse" and set(np.unique(maps)) == {0.0, 1.0}  # filled: 1 in, 0 out
    # AU12: two ellipses of 20 x 20 px at the lip corners (landmarks 48, 54)
    au12 = maps[AUS.index("AU12")].astype(bool)
    expected = _inside(lm, lm[48], (20 * px, 20 * px), size) | _inside(lm, lm[54], (20 * px, 20 * px), size)
    assert (au12 == expected).all() and au12.sum() > 50
    # AU01: (w/8, h/10) at landmarks 20 and 23 (theirs, not this project's 21, 22)
    au01 = maps[AUS.index("AU01")].astype(bool)
    axes = (side / 8, side / 10)
    assert (au01 == (_inside(lm, lm[20], axes, size) | _inside(lm, lm[23], axes, size))).all()
    # AU06: (w/10, h/10) below the lower lids (landmarks 41, 46) by h/6
    au06 = maps[AUS.index("AU06")].astype(bool)
    down = np.array([0, side / 6])
    assert (au06 == (_inside(lm, lm[41] + down, (side / 10,) * 2, size)
                     | _inside(lm, lm[46] + down, (side / 10,) * 2, size))).all()  # fmt: skip
    # AU25: (25, 10) px at the lips' middles (51, 57); AU23: the mouth box
    au25 = maps[AUS.index("AU25")].astype(bool)
    assert (au25 == (_inside(lm, lm[51], (25 * px, 10 * px), size)
                     | _inside(lm, lm[57], (25 * px, 10 * px), size))).all()  # fmt: skip
    lo, hi = np.array([lm[48, 0], lm[51, 1]]), np.array([lm[54, 0], lm[57, 1]])
    assert (
        maps[AUS.index("AU23")].astype(bool) == _inside(lm, (lo + hi) / 2, np.abs(hi - lo) / 2, size)
    ).all()
    # an emotion's map is the max of its AUs' maps, still 0/1
    happy = au_maps.emotion_map(lm, "happiness", size)
    assert np.array_equal(happy, maps[[AUS.index(a) for a in au_maps.CODEBOOK["happiness"]]].max(axis=0))


def test_the_shape_setting_switches_the_maps():
    faces = np.stack([_face(), _face(angle=0.2)])
    ellipse = au_maps.frame_maps(faces, ["anger", "happiness"], 32)
    gaussian = au_maps.frame_maps(faces, ["anger", "happiness"], 32, shape="gaussian")
    assert np.array_equal(ellipse, au_maps.frame_maps(faces, ["anger", "happiness"], 32, shape="ellipse"))
    assert set(np.unique(ellipse)) == {0.0, 1.0}
    assert len(np.unique(gaussian)) > 10 and not np.allclose(ellipse, gaussian)
    with pytest.raises(ValueError, match="unknown AU map shape 'disc'"):
        au_maps.frame_maps(faces, ["anger", "happiness"], 32, shape="disc")


def test_frame_maps_are_each_frames_emotion_map():
    faces = np.stack([_face(), _face(angle=0.2), np.full((68, 2), np.nan), _face(shift=(3, 1))])
    emotions = ["anger", "fear", "happiness", None]
    maps = au_maps.frame_maps(faces, emotions, 32)
    assert maps.shape == (4, 32, 32)
    for m, lm, e in zip(maps, faces, emotions):
        assert np.allclose(m, au_maps.emotion_map(lm, e, 32), atol=1e-6)
    assert maps[0].any() and maps[1].any() and not maps[2].any() and not maps[3].any()


def test_rescale_points_maps_pixel_centres():
    points = np.array([[0.0, 0.0], [7.5, 7.5], [15.0, 3.0]])
    out = au_maps.rescale_points(points, (16, 16), (32, 8))
    assert np.allclose(out, [[0.5, -0.25], [15.5, 3.5], [30.5, 1.25]])
    assert np.allclose(au_maps.rescale_points(out, (32, 8), (16, 16)), points)


# ----------------------------------------------------------------------------------------------------
# Attention and the guidance term


def _features_for(attention_maps: torch.Tensor, channels: int = 3) -> torch.Tensor:
    """Features whose channel mean of A^2 is `attention_maps` (N, h, w)."""
    return attention_maps.sqrt()[:, None].repeat(1, channels, 1, 1)


def _blob(h, w, y, x):
    m = torch.zeros(h, w)
    m[y, x] = 1.0
    return m


def test_attention_is_normalised_channel_energy():
    feats = torch.rand(2, 5, 4, 6)
    att = au_maps.attention(feats)
    assert att.shape == (2, 4, 6)
    assert torch.allclose(att.flatten(1).norm(dim=1), torch.ones(2))
    expected = feats.pow(2).mean(1)
    assert torch.allclose(att, expected / expected.flatten(1).norm(dim=1).view(-1, 1, 1))


def test_guidance_loss_known_answers():
    target = torch.rand(2, 4, 4)
    assert float(au_maps.guidance_loss(_features_for(3 * target), target)) == pytest.approx(0, abs=1e-6)
    # Disjoint supports: two orthogonal unit vectors, squared distance 2.
    top, bottom = _blob(4, 4, 0, 0)[None], _blob(4, 4, 3, 3)[None]
    assert float(au_maps.guidance_loss(_features_for(top), bottom)) == pytest.approx(2.0)
    partly = torch.rand(1, 4, 4)
    loss = float(au_maps.guidance_loss(_features_for(partly), bottom))
    assert 0 < loss < 2
    # Samples without a target are ignored; without any, the loss is 0.
    feats = _features_for(torch.cat([top, top]))
    assert float(au_maps.guidance_loss(feats, torch.cat([top, torch.zeros(1, 4, 4)]))) == pytest.approx(
        0, abs=1e-6
    )
    assert float(au_maps.guidance_loss(feats, torch.cat([bottom, torch.zeros(1, 4, 4)]))) == pytest.approx(
        2.0
    )
    assert float(au_maps.guidance_loss(feats, torch.zeros(2, 4, 4))) == 0.0
    # Targets at another resolution are resized to the feature map first.
    big = torch.zeros(1, 16, 16)
    big[:, :4, :4] = 1.0  # the top-left cell of a 4 x 4 map
    assert float(au_maps.guidance_loss(_features_for(top), big)) == pytest.approx(0, abs=1e-6)
    assert float(au_maps.guidance_loss(_features_for(bottom), big)) == pytest.approx(2.0)


def test_guidance_loss_gradient_moves_attention_toward_the_target():
    torch.manual_seed(0)
    target = torch.zeros(3, 8, 8)
    target[:, 2:4, 5:7] = 1.0
    target[2] = 0.0  # no face: no gradient for it
    feats = torch.rand(3, 4, 4, 4, requires_grad=True)
    loss = au_maps.guidance_loss(feats, target)
    loss.backward()
    assert feats.grad is not None and feats.grad[:2].abs().sum() > 0
    assert feats.grad[2].abs().sum() == 0
    before = au_maps.attention_au_correlation(feats.detach(), target)
    with torch.no_grad():
        stepped = feats - 0.5 * feats.grad
    assert float(au_maps.guidance_loss(stepped, target)) < loss.item()
    after = au_maps.attention_au_correlation(stepped, target)
    assert (after[:2] > before[:2]).all() and np.isnan(after[2]) and np.isnan(before[2])
    # No target at all: a zero loss that still backpropagates.
    empty = au_maps.guidance_loss(feats, torch.zeros(3, 8, 8))
    empty.backward()


def test_attention_au_cosine_known_answers():
    target = torch.zeros(3, 4, 4)
    target[0, 1, 1] = target[1, 2, 3] = 1.0  # sample 2 has no map
    features = torch.zeros(3, 2, 4, 4)
    features[0, :, 1, 1] = 3.0  # attention all at the map's one cell: cosine 1
    features[1, :, 0, 0] = 1.0  # attention elsewhere: cosine 0
    features[2] = 1.0
    cos = au_maps.attention_au_cosine(features, target)
    assert cos[0] == pytest.approx(1.0) and cos[1] == pytest.approx(0.0) and np.isnan(cos[2])


def test_attention_au_correlation():
    target = torch.rand(2, 4, 4)
    r = au_maps.attention_au_correlation(_features_for(target), target)
    assert np.allclose(r, 1.0)
    r = au_maps.attention_au_correlation(_features_for(target.max() - target + 0.01), target)
    assert np.allclose(r, -1.0)


def test_maps_flip_with_their_images():
    torch.manual_seed(0)
    n = 64
    images = torch.zeros(n, 8, 8, 3, dtype=torch.uint8)
    maps = torch.zeros(n, 8, 8, dtype=torch.float16)
    for i in range(n):
        images[i, i % 8, (3 * i) % 8] = 255
        maps[i, i % 8, (3 * i) % 8] = 1
    prepare = training.Prepare("faces", None, augment=True, seed=0)
    x, m = prepare(images, "cpu", train=True, maps=maps)
    assert m.dtype == torch.float32
    flipped = x[:, 0].flatten(1).argmax(1) != images[..., 0].flatten(1).argmax(1)
    assert 0 < int(flipped.sum()) < n  # some flipped, some not
    assert torch.equal(x[:, 0].flatten(1).argmax(1), m.flatten(1).argmax(1))
    # The same generator state draws the same flips with or without maps.
    again = training.Prepare("faces", None, augment=True, seed=0)(images, "cpu", train=True)
    assert torch.equal(again, x)


def test_plot_examples(tmp_path):
    images = np.full((2, 32, 32, 3), 128, np.uint8)
    maps = au_maps.frame_maps(np.stack([_face(32)] * 2), ["happiness", "anger"], 16)
    cams = np.random.default_rng(0).random((2, 4, 4))
    au_maps.plot_examples(images, maps, cams, ["happy", "angry"], tmp_path / "examples.png")
    assert (tmp_path / "examples.png").read_bytes()[:4] == b"\x89PNG"
    au_maps.plot_examples([], [], None, [], tmp_path / "none.png")  # no frame to show: still a figure
    assert (tmp_path / "none.png").read_bytes()[:4] == b"\x89PNG"


# ----------------------------------------------------------------------------------------------------
# Training with AU guidance


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return model_data.build(tmp_path_factory.mktemp("results"), landmarks=True)


def _inputs(data, family, **changes):
    t = data["tables"]
    fields = {
        "clips": t / "clips.parquet",
        "frames": t / ("faces.parquet" if family == "face" else "frames.parquet"),
        "clip_dirs": {p.name: p for p in data["clips"].iterdir()},
        "expressions": t / "expressions.parquet",
        "faces": t / "faces.parquet",
        "audio_table": t / "audio.parquet",
        "audio_array": data["arrays"] / "audio_waveform.npy",
    }
    return training.Inputs(**(fields | changes))


def _train_set(data, family, inputs=None):
    inputs = inputs or _inputs(data, family)
    clips = datasets.Clips.from_table(pl.read_parquet(inputs.clips), "train")
    table = pl.read_parquet(inputs.frames)
    items = datasets.frame_items(table, clips.ids, family == "face")
    return datasets.FrameDataset(
        clips, inputs.clip_dirs, items, "faces.npy" if family == "face" else "frames.npy"
    )


def test_guidance_maps_follow_faces_and_emotions(data, tmp_path):
    faces_set = _train_set(data, "face")
    maps = training.guidance_maps("face", _inputs(data, "face"), faces_set, size=32)
    assert maps.shape == (len(faces_set), 32, 32) and maps.dtype == np.float16
    # Frames 0 and 1 are happy, frame 2 neutral (no map).
    expected = au_maps.emotion_map(
        au_maps.rescale_points(au_maps.mean_face(model_data.SIZE), (model_data.SIZE,) * 2, (32, 32)),
        "happiness", 32,
    )  # fmt: skip
    for (_, k), m in zip(faces_set.items, maps):
        if k == 2:
            assert not m.any()
        else:
            assert np.allclose(m, expected, atol=1e-3)
    # Whole frames: frames without a face have no map, the others the same as their face crop.
    frames_set = _train_set(data, "image")
    frame_maps = training.guidance_maps("image", _inputs(data, "image"), frames_set, size=32)
    by_item = dict(zip(map(tuple, faces_set.items.tolist()), maps))
    for item, m in zip(map(tuple, frames_set.items.tolist()), frame_maps):
        assert np.array_equal(m, by_item[item]) if item in by_item else not m.any()
    assert len(frames_set) > len(faces_set)
    # Landmarks of a wider decoded frame are squashed to the stored square like the frame was.
    t = data["tables"]
    wide = tmp_path / "frames.parquet"
    pl.read_parquet(t / "frames.parquet").with_columns(pl.col("width") * 2).write_parquet(wide)
    stretched = tmp_path / "faces.parquet"
    lm = pl.read_parquet(t / "faces.parquet")
    points = [None if v is None else (((np.reshape(v, (68, 2)) + 0.5) * (2, 1)) - 0.5).ravel().tolist()
              for v in lm["landmarks"].to_list()]  # fmt: skip
    lm.with_columns(pl.Series("landmarks", points, dtype=pl.List(pl.Float32))).write_parquet(stretched)
    wide_maps = training.guidance_maps(
        "image", _inputs(data, "image", frames=wide, faces=stretched), frames_set, 32
    )
    assert np.allclose(wide_maps.astype(np.float32), frame_maps.astype(np.float32), atol=2e-3)


def test_guidance_maps_built_in_blocks_and_written_to_a_file_are_the_same(data, tmp_path):
    """A training job builds the maps a block of items at a time (only the block's clips read) and
    writes them to a file: any block size, and the file, give the maps built in one go."""
    from impressions.training import guidance

    for family in ("face", "image"):
        dataset, inputs = _train_set(data, family), _inputs(data, family)
        whole = training.guidance_maps(family, inputs, dataset, size=32)
        blocks = list(
            guidance.map_blocks(family, inputs, dataset, 32, au_maps.SIGMA, au_maps.SHAPE, block_items=2)
        )
        assert len(blocks) == -(-len(dataset) // 2) and all(len(m) <= 2 for _, m in blocks)
        assert np.array_equal(np.concatenate([m for _, m in blocks]), whole)
        path = tmp_path / f"{family}.npy"
        guided = training.write_guidance_maps(path, family, inputs, dataset, size=32)
        assert np.array_equal(np.load(path), whole) and whole.any()
        assert guided == int(au_maps.has_target(whole).sum()) < len(dataset)
        rows = datasets.NpyRows(path)
        assert len(rows) == len(dataset) and np.array_equal(rows[len(dataset) - 1], whole[-1])


def _train(data, tmp_path, family, options, common=COMMON, **changes):
    out = training.Outputs.in_folder(tmp_path / family)
    summary = training.train_family(family, _inputs(data, family, **changes), out, common, options)
    return out, summary


def _guidance_on_train_faces(data, out):
    """Mean attention-AU correlation and guidance loss of a trained face model on its training faces."""
    model, ckpt = models.load_checkpoint(out.checkpoint)
    train_set = _train_set(data, "face")
    maps = torch.from_numpy(training.guidance_maps("face", _inputs(data, "face"), train_set)).float()
    x = torch.stack([train_set[i][0] for i in range(len(train_set))])
    with torch.no_grad():
        feats = model.forward_features(datasets.prepare_images(x, ckpt["summary"]["settings"]["input_size"]))
    return np.nanmean(au_maps.attention_au_correlation(feats, maps)), float(
        au_maps.guidance_loss(feats, maps)
    )


def test_guided_face_model_attends_to_the_au_map(data, tmp_path):
    plain, plain_summary = _train(data, tmp_path / "plain", "face", GUIDED_CNN)
    # The raw term (no normalisation): this test is about the mechanism, at a weight that dominates.
    raw = {**GUIDED_CNN, "au_guidance_weight": 1.0, "au_guidance_scale": "none"}
    guided, summary = _train(data, tmp_path / "guided", "face", raw)
    assert summary["au_guidance_weight"] == 1.0 and plain_summary["au_guidance_weight"] == 0.0
    assert json.loads(guided.summary.read_text())["settings"]["au_guidance_weight"] == 1.0
    # Frames 0 and 1 of each training clip with a face there (frame 2 is neutral).
    train_set = _train_set(data, "face")
    assert summary["au_guidance_samples"] == sum(k < 2 for _, k in train_set.items)
    history = pl.read_csv(guided.metrics)
    assert "guidance_loss" in history.columns and "guidance_loss" not in pl.read_csv(plain.metrics).columns
    assert history["guidance_loss"][-1] < 0.5 * history["guidance_loss"][0]
    r_plain, loss_plain = _guidance_on_train_faces(data, plain)
    r_guided, loss_guided = _guidance_on_train_faces(data, guided)
    assert r_guided > r_plain + 0.05 and r_guided > 0.9
    assert loss_guided < 0.5 * loss_plain
    # It still learns the traits.
    assert history["train_loss"][-1] < history["train_loss"][0]


def test_guidance_term_is_normalised_at_initialisation(data, tmp_path):
    options = {**GUIDED_CNN, "epochs": 2, "input_size": 16}
    init, _ = _train(data, tmp_path / "init", "face", {**options, "au_guidance_weight": 1.0})
    raw, _ = _train(
        data, tmp_path / "raw", "face", {**options, "au_guidance_weight": 1.0, "au_guidance_scale": "none"}
    )
    scale = pl.read_csv(init.metrics)["guidance_scale"]
    # One factor for the whole run: trait loss / guidance term on the first batch (MSE of sigmoid
    # scores, a few hundredths, against a term near 1).
    assert scale.n_unique() == 1 and 0 < scale[0] < 0.5
    assert pl.read_csv(raw.metrics)["guidance_scale"].to_list() == [1.0, 1.0]
    # The AU-map shape is a training setting: recorded, and another shape trains toward other maps.
    blobs, _ = _train(
        data, tmp_path / "gaussian", "face", {**options, "au_guidance_weight": 1.0, "au_map": "gaussian"}
    )
    shapes = [json.loads(out.summary.read_text())["settings"]["au_map"] for out in (init, blobs)]
    assert shapes == ["ellipse", "gaussian"]
    # So is the guided layer: an earlier body module (block 2's ReLU, 8 x 8 at 16 px) trains another term.
    early, _ = _train(
        data, tmp_path / "early", "face", {**options, "au_guidance_weight": 1.0, "au_guidance_layer": 6}
    )
    assert json.loads(early.summary.read_text())["settings"]["au_guidance_layer"] == 6
    assert json.loads(init.summary.read_text())["settings"]["au_guidance_layer"] == -1
    assert pl.read_csv(early.metrics)["guidance_loss"][0] != pl.read_csv(init.metrics)["guidance_loss"][0]
    assert pl.read_csv(blobs.metrics)["guidance_loss"][0] != pl.read_csv(init.metrics)["guidance_loss"][0]
    with pytest.raises(ValueError, match="au_guidance_scale"):
        _train(
            data, tmp_path / "bad", "face", {**options, "au_guidance_weight": 1.0, "au_guidance_scale": "x"}
        )


def test_guided_training_is_reproducible_with_workers(data, tmp_path):
    options = {**GUIDED_CNN, "epochs": 2, "au_guidance_weight": 0.5, "input_size": 16}
    a, _ = _train(data, tmp_path / "a", "image", options)
    b, _ = _train(data, tmp_path / "b", "image", options, common={**COMMON, "num_workers": 2})
    history_a, history_b = (pl.read_csv(o.metrics).drop("seconds") for o in (a, b))
    assert history_a.equals(history_b) and history_a["guidance_loss"].is_finite().all()


def test_guidance_needs_landmarks_emotions_and_an_image_family(data, tmp_path):
    options = {**GUIDED_CNN, "epochs": 1, "au_guidance_weight": 1.0}
    with pytest.raises(ValueError, match=r"needs the faces table"):
        _train(data, tmp_path, "image", options, faces=None)
    with pytest.raises(ValueError, match=r"needs the expressions table"):
        _train(data, tmp_path, "face", options, expressions=None)
    with pytest.raises(ValueError, match=r"faces table .* and the expressions table"):
        _train(data, tmp_path, "image", options, faces=None, expressions=None)
    with pytest.raises(ValueError, match="image and face families only"):
        _train(data, tmp_path, "audio", tiny_options("audio", au_guidance_weight=1.0))
    with pytest.raises(ValueError, match=">= 0"):
        _train(data, tmp_path, "face", {**options, "au_guidance_weight": -1.0})
    # The face family's frames input is the faces table: no separate faces input needed.
    _, summary = _train(data, tmp_path / "ok", "face", options, faces=None)
    assert summary["au_guidance_weight"] == 1.0
    # fit refuses a training set without maps.
    train_set = _train_set(data, "face")
    settings = training.Settings(au_guidance_weight=1.0, epochs=1)
    with pytest.raises(ValueError, match="AU maps"):
        training.fit(models.build("face", backbone="small", width=4), train_set, train_set, train_set.clips,
                     settings, training.Prepare("faces"), "cpu")  # fmt: skip


def test_inputs_from_files_reads_the_faces_table():
    inputs = training.Inputs.from_files(
        {"clips": "t/clips.parquet", "frames": "t/frames.parquet", "faces": "t/faces.parquet"}
    )
    assert inputs.faces.name == "faces.parquet"
    assert training.Inputs.from_files({"clips": "t/clips.parquet"}).faces is None
    assert "au_guidance_weight" in training.TRAIN_KEYS


def test_the_analyses_and_guidance_build_the_same_maps(data, tmp_path):
    """One builder: the frames the analyses read get the AU maps training's guidance trains toward,
    here for frames decoded 3x wider than stored (landmarks squashed like the frames)."""
    from impressions.explain import images as loader

    t = data["tables"]
    frames = pl.read_parquet(t / "frames.parquet").with_columns(pl.col("width") * 3)
    faces = pl.read_parquet(t / "faces.parquet")
    points = [None if v is None else (((np.reshape(v, (68, 2)) + 0.5) * (3, 1)) - 0.5).ravel().tolist()
              for v in faces["landmarks"].to_list()]  # fmt: skip
    faces = faces.with_columns(pl.Series("landmarks", points, dtype=pl.List(pl.Float32)))
    frames.write_parquet(tmp_path / "frames.parquet")
    faces.write_parquet(tmp_path / "faces.parquet")
    inputs = _inputs(data, "image", frames=tmp_path / "frames.parquet", faces=tmp_path / "faces.parquet")
    frames_set = _train_set(data, "image")
    tables = [pl.read_parquet(t / "clips.parquet"), frames, faces, pl.read_parquet(t / "expressions.parquet")]
    images = loader.load_images("frames", *tables, data["clips"], splits=["train"])
    items = [(frames_set.clips.ids[pos], k) for pos, k in frames_set.items.tolist()]
    for shape in au_maps.SHAPES:  # each shape the same on both sides
        guidance = training.guidance_maps("image", inputs, frames_set, size=model_data.SIZE, shape=shape)
        analysed = au_maps.frame_maps(images.landmarks, images.emotions, images.size, shape=shape)
        by_item = {(c, int(k)): m for c, k, m in zip(images.clip_ids, images.frame_index, analysed)}
        assert set(items) <= set(by_item) and any(m.any() for m in guidance)
        for item, m in zip(items, guidance):
            assert np.allclose(m.astype(np.float32), by_item[item], atol=2e-3), (shape, item)


def test_dominant_emotions_and_stored_landmarks():
    probs = np.eye(len(EMOTIONS))[[EMOTIONS.index("anger"), EMOTIONS.index("neutral")]]
    assert au_maps.dominant_emotions(np.vstack([probs, np.full(len(EMOTIONS), np.nan)])) == [
        "anger", "neutral", None,
    ]  # fmt: skip
    points = au_maps.stored_landmarks(np.full((2, 68, 2), 31.5), [[64, 32], [0, 32]], (32, 32))
    assert points[0, 0].tolist() == [15.5, 31.5] and np.isnan(points[1]).all()
