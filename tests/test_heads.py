"""Known-answer tests of the image/face heads: dan, dan_plus (Zhang et al. 2016) and cam."""

import numpy as np
import pytest
import torch
from torch import nn

from impressions.models import networks as models

# A fixed two-layer "backbone": the tap B (2 channels, 4x4) and the last map A (3 channels, 2x2).
B = np.arange(32, dtype=np.float64).reshape(2, 4, 4) / 10.0 - 1.0
A = np.array([[[1.0, 2.0], [3.0, 4.0]], [[0.5, -1.0], [0.0, 2.5]], [[-2.0, -1.0], [-3.0, -0.5]]])


class Fixed(nn.Module):
    def __init__(self, value):
        super().__init__()
        self.value = torch.tensor(value, dtype=torch.float32)

    def forward(self, x):
        return self.value.expand(x.shape[0], *self.value.shape)


def fixed_model(head: str) -> models.DANPlus:
    model = models.DANPlus(backbone="small", head=head, width=1, dropout=0.0)
    model.body = nn.Sequential(Fixed(B), Fixed(A))
    model.tap = 0 if head == "dan_plus" else None
    dim = {"cam": 3, "dan": 6, "dan_plus": 10}[head]
    model.fc = nn.Linear(dim, 5)
    with torch.no_grad():
        model.fc.weight.copy_(torch.linspace(-1, 1, 5 * dim).view(5, dim))
        model.fc.bias.copy_(torch.tensor([0.1, -0.2, 0.0, 0.3, -0.1]))
    return model.eval()


def by_hand(head: str, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """The published descriptor: each pooled vector divided by its own L2 norm, then concatenated."""

    def unit(d):
        return d / np.sqrt((d**2).sum())

    max_a, avg_a = A.reshape(3, -1).max(axis=1), A.reshape(3, -1).mean(axis=1)
    max_b, avg_b = B.reshape(2, -1).max(axis=1), B.reshape(2, -1).mean(axis=1)
    if head == "cam":
        d = avg_a  # GAP -> linear, no normalisation
    elif head == "dan":
        d = np.concatenate([unit(max_a), unit(avg_a)])
    else:  # [pool5-max, pool5-avg, relu5_2-avg, relu5_2-max]
        d = np.concatenate([unit(max_a), unit(avg_a), unit(avg_b), unit(max_b)])
    return 1 / (1 + np.exp(-(weight @ d + bias)))


@pytest.mark.parametrize("head", ["dan", "dan_plus", "cam"])
def test_head_output_matches_the_hand_computation(head):
    model = fixed_model(head)
    x = torch.rand(2, 3, 8, 8)
    expected = by_hand(
        head, model.fc.weight.detach().double().numpy(), model.fc.bias.detach().double().numpy()
    )
    with torch.no_grad():
        out = model(x).double().numpy()
    np.testing.assert_allclose(out, np.broadcast_to(expected, (2, 5)), atol=1e-6)
    # The descriptor norms: sqrt(2) for DAN, 2 for DAN+ (four unit vectors), not jointly normalised.
    if head != "cam":
        norm = model.embed(x).detach().norm(dim=1)
        np.testing.assert_allclose(norm.numpy(), np.sqrt(2 if head == "dan" else 4), rtol=1e-6)
    # The per-location decomposition sums, with the bias, to the logits exactly.
    maps, logits = model.activation_maps(x)
    assert maps.shape == (2, 5, 2, 2)
    torch.testing.assert_close(torch.sigmoid(logits).double(), torch.from_numpy(out), atol=1e-6, rtol=0)
    torch.testing.assert_close(maps.sum(dim=(2, 3)) + model.fc.bias, logits)


def test_dan_plus_on_the_small_backbone_pools_the_last_two_stages():
    torch.manual_seed(0)
    model = models.build("face", backbone="small", width=2, head="dan_plus").eval()
    assert model.feature_dim == 2 * 16 + 2 * 8
    seen = {}
    model.body[10].register_forward_hook(lambda m, i, o: seen.update(tap=o.double().numpy()))
    model.body[-1].register_forward_hook(lambda m, i, o: seen.update(last=o.double().numpy()))
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        emb = model.embed(x).double().numpy()
    tap, last = seen["tap"], seen["last"]
    assert tap.shape[2:] == (8, 8) and last.shape[2:] == (4, 4)  # the tap before the third pool

    def unit(d):
        return d / np.sqrt((d**2).sum(axis=1, keepdims=True))

    expected = np.concatenate(
        [unit(last.max(axis=(2, 3))), unit(last.mean(axis=(2, 3))),
         unit(tap.mean(axis=(2, 3))), unit(tap.max(axis=(2, 3)))], axis=1,
    )  # fmt: skip
    np.testing.assert_allclose(emb, expected, atol=1e-5)
    maps, logits = model.activation_maps(x)
    with torch.no_grad():
        torch.testing.assert_close(torch.sigmoid(logits), model(x), atol=1e-6, rtol=0)


def test_vgg16_taps_are_relu5_2_and_pool5():
    model = models.build("image", backbone="vgg16", weights=None, head="dan_plus")
    assert model.tap == 27 and isinstance(model.body[27], nn.ReLU)
    assert isinstance(model.body[-1], nn.MaxPool2d) and len(model.body) == 31
    assert model.feature_dim == 2048
    with torch.no_grad():
        maps, tapped, _ = model._features(torch.rand(1, 3, 64, 64))
    assert maps.shape[2:] == (2, 2) and tapped.shape[2:] == (4, 4)
    cam_model = models.build("image", backbone="vgg16", weights=None, head="cam")
    assert len(cam_model.body) == 30 and cam_model.feature_dim == 512


def test_unknown_head_is_refused():
    with pytest.raises(ValueError, match="dan_plus"):
        models.build("image", backbone="small", head="danplus")


def test_euclidean_loss_is_the_batch_mean_of_unsquared_distances():
    from impressions.training import loop as training

    out = torch.tensor([[0.5] * 5, [0.0] * 5])
    target = torch.tensor([[0.5] * 5, [0.3, 0.4, 0.0, 0.0, 0.0]])
    assert float(training._loss_fn("l2dist")(out, target)) == pytest.approx((0.0 + 0.5) / 2, abs=1e-6)


@pytest.mark.parametrize("head", ["dan", "dan_plus", "cam"])
def test_activation_maps_stay_on_the_models_device(head):
    # The meta device stands in for a GPU: a tensor made on the CPU inside the method cannot mix with it.
    model = models.build("face", backbone="small", width=2, head=head).eval().to("meta")
    maps, logits = model.activation_maps(torch.rand(2, 3, 32, 32, device="meta"))
    assert maps.device.type == logits.device.type == "meta"
