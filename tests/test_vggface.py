"""VGG-Face conversion: a synthetic state dict in the published naming, converted, must give the
original network's output on its own preprocessing (0-255, channel order, mean subtraction)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from impressions import cli
from impressions.models import networks as models
from impressions.models import vggface

POOL_AFTER = {"1_2", "2_2", "3_3", "4_3", "5_3"}
CHANNELS = {"1": 64, "2": 128, "3": 256, "4": 512, "5": 512}


def published_state(seed: int = 0, naming: str = "dag", fc=(16, 12, 10)) -> dict:
    """Random VGG-Face weights under the published names (small fc layers: only names matter there)."""
    g = torch.Generator().manual_seed(seed)
    state, c_in = {}, 3
    for c in vggface.CONVS:
        c_out = CHANNELS[c[0]]
        name = f"conv{c}" if naming == "dag" else f"conv_{c}"
        # He-style scale with 0-255 inputs scaled down at the first layer, so activations stay O(1).
        scale = (2 / (9 * c_in)) ** 0.5 / (100 if c == "1_1" else 1)
        state[f"{name}.weight"] = torch.randn(c_out, c_in, 3, 3, generator=g) * scale
        state[f"{name}.bias"] = torch.randn(c_out, generator=g) * 0.01
        c_in = c_out
    dims = [512 * 7 * 7, *fc]
    for i, layer in enumerate(("fc6", "fc7", "fc8")):
        state[f"{layer}.weight"] = torch.randn(dims[i + 1], dims[i], generator=g) / dims[i] ** 0.5
        state[f"{layer}.bias"] = torch.randn(dims[i + 1], generator=g) * 0.01
    return state


def original_network(state: dict, image_0_255: torch.Tensor, naming: str = "dag") -> tuple:
    """The published network on its own input (N, 3, 224, 224), written from the layer names:
    conv3x3 pad 1 + ReLU, 2x2 max pools, flatten (C, H, W), fc6 ReLU fc7 ReLU fc8. -> (pool5, fc8)."""
    x = image_0_255
    for c in vggface.CONVS:
        name = f"conv{c}" if naming == "dag" else f"conv_{c}"
        x = F.relu(F.conv2d(x, state[f"{name}.weight"], state[f"{name}.bias"], padding=1))
        if c in POOL_AFTER:
            x = F.max_pool2d(x, 2, 2)
    pool5 = x
    x = F.relu(F.linear(x.flatten(1), state["fc6.weight"], state["fc6.bias"]))
    x = F.relu(F.linear(x, state["fc7.weight"], state["fc7.bias"]))
    return pool5, F.linear(x, state["fc8.weight"], state["fc8.bias"])


@pytest.mark.parametrize(("naming", "order"), [("dag", "rgb"), ("prlz", "bgr")])
def test_converted_network_reproduces_the_original(tmp_path, naming, order):
    state = published_state(naming=naming)
    source = tmp_path / ("vgg_face_dag.pth" if naming == "dag" else "vgg_face.pth")
    torch.save(state, source)
    meta = vggface.convert(
        source, tmp_path / "converted.pth", channel_order=None if naming == "dag" else order
    )
    assert meta["source"]["channel_order"] == order and len(meta["source"]["sha256"]) == 64
    saved = torch.load(tmp_path / "converted.pth", weights_only=True)
    # Key coverage: every published key mapped once; the torchvision net loads it strictly.
    assert len(saved["state_dict"]) == len(state) == 32
    net = vggface.torchvision_vgg16(saved["state_dict"])

    rgb = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))  # [0, 1] RGB
    mu = torch.tensor(vggface.VGGFACE_MEAN_RGB).view(1, 3, 1, 1)
    own = rgb * 255 - mu  # the original preprocessing, in RGB order
    if order == "bgr":
        own = own.flip(1)  # the BGR network sees B, G, R
    with torch.no_grad():
        ref_pool5, ref_out = original_network(state, own, naming)
        t = saved["input_transform"]
        mean, std = torch.tensor(t["mean"]).view(1, 3, 1, 1), torch.tensor(t["std"]).view(1, 3, 1, 1)
        out = net((rgb - mean) / std)
    scale = ref_out.abs().max()
    assert float((out - ref_out).abs().max() / scale) < 1e-5

    # The image/face model built on the converted file carries the transform and sees the same pool5.
    model = models.build("face", backbone="vgg16", weights=str(tmp_path / "converted.pth"), head="dan_plus")
    torch.testing.assert_close(model.mean, mean)
    torch.testing.assert_close(model.std, std)
    with torch.no_grad():
        pool5 = model.forward_features(rgb)
    assert float((pool5 - ref_pool5).abs().max() / ref_pool5.abs().max()) < 1e-5

    # ... and so does a checkpoint of it (what prediction and interpretation load).
    options = {"backbone": "vgg16", "head": "dan_plus", "weights": str(tmp_path / "converted.pth")}
    models.save_checkpoint(tmp_path / "ckpt.pt", model, "face", options)
    loaded, _ = models.load_checkpoint(tmp_path / "ckpt.pt")
    torch.testing.assert_close(loaded.mean, mean)
    torch.testing.assert_close(loaded.std, std)


def test_unconverted_input_scale_is_the_pitfall():
    # ImageNet-normalised [0,1] inputs are about 58x smaller than what VGG-Face expects (METHODS 9.5).
    t = vggface.input_transform()
    x = torch.rand(3, 10000)
    mean, std = torch.tensor(t["mean"]).view(3, 1), torch.tensor(t["std"]).view(3, 1)
    imagenet = (x - torch.tensor(models.IMAGENET_MEAN).view(3, 1)) / torch.tensor(models.IMAGENET_STD).view(
        3, 1
    )
    ratio = ((x - mean) / std).std() / imagenet.std()
    assert 40 < float(ratio) < 80


def test_missing_files_name_the_file_the_place_and_the_origin(tmp_path):
    with pytest.raises(vggface.ConversionError) as err:
        vggface.convert(tmp_path / "vgg_face_dag.pth", tmp_path / "out.pth")
    message = str(err.value)
    assert str(tmp_path / "vgg_face_dag.pth") in message and "robots.ox.ac.uk/~albanie" in message
    with pytest.raises(models.WeightsError) as err:
        models.build("face", backbone="vgg16", weights=str(tmp_path / "weights" / "vgg_face_torchvision.pth"))
    message = str(err.value)
    assert "vgg_face_torchvision.pth" in message and "convert-vggface" in message and "albanie" in message


def test_checksum_channel_order_and_bad_keys_are_checked(tmp_path):
    state = published_state(fc=(4, 4, 2))
    torch.save(state, tmp_path / "vgg_face_dag.pth")
    with pytest.raises(vggface.ConversionError, match="does not match"):
        vggface.convert(tmp_path / "vgg_face_dag.pth", tmp_path / "o.pth", expected_sha256="0" * 64)
    good = vggface.sha256(tmp_path / "vgg_face_dag.pth")
    meta = vggface.convert(tmp_path / "vgg_face_dag.pth", tmp_path / "o.pth", expected_sha256=good)
    assert meta["source"]["checksum_verified"]
    torch.save(state, tmp_path / "vgg_face.pth")
    with pytest.raises(vggface.ConversionError, match="channel-order"):
        vggface.convert(tmp_path / "vgg_face.pth", tmp_path / "o.pth")
    with pytest.raises(vggface.ConversionError, match="not VGG-Face layers"):
        vggface.convert_state_dict({**state, "conv6_1.weight": torch.zeros(1)})
    with pytest.raises(vggface.ConversionError, match="missing"):
        vggface.convert_state_dict({k: v for k, v in state.items() if not k.startswith("conv5_3")})


def test_cli_converts(tmp_path, capsys):
    torch.save(published_state(fc=(4, 4, 2)), tmp_path / "vgg_face_dag.pth")
    out = tmp_path / "weights" / "vggface.pth"
    assert cli.main(["convert-vggface", str(tmp_path / "vgg_face_dag.pth"), "-o", str(out)]) == 0
    assert out.is_file() and "not verified" in capsys.readouterr().out
    np.testing.assert_allclose(torch.load(out, weights_only=True)["input_transform"]["std"], [1 / 255] * 3)
