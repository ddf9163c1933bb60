import numpy as np
import pytest
import torch

from impressions.models import networks as models


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("head", ["dan", "cam"])
def test_dan_outputs_scores_and_exact_activation_maps(head):
    model = models.build("face", backbone="small", width=4, head=head).eval()
    x = torch.rand(2, 3, 32, 32)
    out = model(x)
    assert out.shape == (2, 5) and ((out > 0) & (out < 1)).all()
    assert model.embed(x).shape == (2, model.feature_dim) == (2, 64 if head == "dan" else 32)
    maps, logits = model.activation_maps(x)
    assert maps.shape == (2, 5, 4, 4)  # three 2x poolings of 32 px
    assert torch.allclose(torch.sigmoid(logits), out, atol=1e-6)


@pytest.mark.parametrize("head", ["dan", "dan_plus"])
def test_the_guided_layer_is_a_body_module(head):
    """forward_with_features(x, layer): the scores and the output of body module `layer` in one pass."""
    model = models.build("face", backbone="small", width=4, head=head).eval()
    x = torch.rand(2, 3, 56, 56)
    seen = {}
    model.body[6].register_forward_hook(lambda m, i, o: seen.update(map=o))  # block 2's ReLU, before its pool
    out, maps = model.forward_with_features(x, layer=6)
    assert torch.equal(maps, seen["map"]) and maps.shape == (2, 8, 28, 28)  # 28 x 28, Belharbi et al.'s size
    assert torch.allclose(out, model(x), atol=1e-6)  # the same scores as without the map
    out_last, last = model.forward_with_features(x)  # default: the last feature map
    assert torch.equal(last, model.forward_features(x)) and last.shape == (2, 32, 7, 7)
    assert torch.equal(model.forward_with_features(x, layer=len(model.body) - 1)[1], last)
    with pytest.raises(ValueError, match="layer 15 is not a module of the body"):
        model.forward_with_features(x, layer=len(model.body))


def test_cam_layer_output_is_the_pooled_map():
    model = models.build("image", backbone="small", width=4).eval()
    seen = {}
    model.cam_layer.register_forward_hook(lambda m, i, o: seen.update(map=o))
    x = torch.rand(1, 3, 32, 32)
    maps = model.forward_features(x)
    assert torch.equal(seen["map"], maps)
    # Backward hooks (Grad-CAM) need an out-of-place last layer.
    model.cam_layer.register_full_backward_hook(lambda m, gi, go: seen.update(grad=go[0]))
    model(x).sum().backward()
    assert seen["grad"].shape == seen["map"].shape


def test_torchvision_backbones_build_without_weights():
    model = models.build("image", backbone="resnet18", weights=None).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 64)).shape == (1, 5)
    assert model.feature_dim == 1024
    vgg = models.build("face", backbone="vgg16", weights=None, head="cam")
    assert isinstance(vgg.cam_layer, torch.nn.ReLU) and not vgg.cam_layer.inplace


def test_weights_errors_are_explicit(tmp_path, monkeypatch):
    with pytest.raises(models.WeightsError, match="not found"):
        models.build("image", backbone="resnet18", weights=str(tmp_path / "vggface.pth"))
    with pytest.raises(models.WeightsError, match="unknown weights"):
        models.resolve_weights("resnet18", "NOPE_V9")
    with pytest.raises(models.WeightsError, match="no pretrained"):
        models.build("image", backbone="small", weights="IMAGENET1K_V1")
    # Offline with an empty cache: the message names the file, its URL and where to put it.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(models.WeightsError) as err:
        models.resolve_weights("resnet18", "ResNet18_Weights.IMAGENET1K_V1")
    message = str(err.value)
    assert "resnet18-f37072fd.pth" in message and "download.pytorch.org" in message
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in message


def test_local_weights_file_is_loaded(tmp_path):
    import torchvision

    net = torchvision.models.resnet18(weights=None)
    with torch.no_grad():
        net.conv1.weight.fill_(0.5)
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, tmp_path / "w.pth")
    model = models.build("image", backbone="resnet18", weights=str(tmp_path / "w.pth"))
    assert torch.all(model.body[0].weight == 0.5)
    torch.save({"conv1.weight": net.conv1.weight}, tmp_path / "partial.pth")
    with pytest.raises(models.WeightsError, match="lacks backbone parameters"):
        models.build("image", backbone="resnet18", weights=str(tmp_path / "partial.pth"))


def test_audio_models_shapes():
    wave = models.build("audio", width=4).eval()
    with torch.no_grad():
        assert wave(torch.randn(2, 16000)).shape == (2, 5)
        assert wave.embed(torch.randn(2, 16000)).shape == (2, wave.feature_dim)
    fbank = models.build("audio_fbank", n_filters=26, n_frames=501, time_bins=10).eval()
    assert fbank(torch.randn(3, 26, 501)).shape == (3, 5) and fbank.feature_dim == 260
    assert models.build("audio_fbank", time_bins=None).feature_dim == 26 * 501


def test_fusion_has_three_dense_layers():
    model = models.build("fusion", in_dim=12, hidden=[8, 6])
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(12, 8), (8, 6), (6, 5)]
    with pytest.raises(ValueError, match="three dense layers"):
        models.build("fusion_handcrafted", in_dim=4, hidden=[8])


def test_ridge_closed_form_matches_least_squares():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6))
    w = rng.normal(size=(6, 5)) * 0.05
    y = 0.5 + x @ w
    model = models.build("au_linear", in_dim=6).fit(x, y, alpha=0.0)
    pred = model(torch.from_numpy(x).float()).detach().numpy()
    assert np.allclose(pred, np.clip(y, 0, 1), atol=1e-4)
    shrunk = models.RidgeRegression(6).fit(x, y, alpha=1e6)
    assert np.abs(shrunk.fc.weight.detach().numpy()).max() < 1e-3  # all shrunk to the mean


def test_registry_and_checkpoints(tmp_path):
    assert set(models.list_models()) == {
        "image", "face", "audio", "audio_fbank", "fusion", "fusion_handcrafted", "fusion_handcrafted_voice",
        "au_linear", "au_linear_published", "voice_linear", "text_linear", "fusion_text",
    }  # fmt: skip
    with pytest.raises(KeyError, match="unknown model family"):
        models.build("transformer")
    model = models.build("face", backbone="small", width=4).eval()
    models.save_checkpoint(
        tmp_path / "m.pt", model, "face", {"backbone": "small", "width": 4}, train_mean=[0.5] * 5
    )
    loaded, ckpt = models.load_checkpoint(tmp_path / "m.pt")
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(loaded(x), model(x)) and ckpt["train_mean"] == [0.5] * 5
