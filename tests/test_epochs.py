"""The final prediction pass: per-clip means streamed batch by batch."""

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from impressions.training import epochs


class Net(nn.Module):
    feature_dim = 6

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed, self.fc = nn.Linear(3, 6), nn.Linear(6, 5)


def test_clip_means_do_not_depend_on_the_batch_and_clips_without_frames_are_nan():
    x = torch.rand(23, 3)
    clip = torch.tensor([0] * 5 + [2] * 10 + [3] * 8)  # clip 1 has no frames
    data = TensorDataset(x, torch.zeros(23, 5), clip)
    net = Net().eval()
    runs = [epochs.predict_clips(net, data, 4, lambda x, d, train: x, "cpu", b) for b in (1, 4, 100)]
    for scores, feats, counts in runs[1:]:  # float32 matmuls may round differently per batch shape
        np.testing.assert_allclose(scores, runs[0][0], rtol=1e-6)
        np.testing.assert_allclose(feats, runs[0][1], rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(counts, runs[0][2])
    scores, feats, counts = runs[0]
    assert counts.tolist() == [5, 0, 10, 8]
    assert np.isnan(scores[1]).all() and np.isnan(feats[1]).all()
    with torch.no_grad():
        emb = net.embed(x)
        expected = torch.sigmoid(net.fc(emb))
    for c in (0, 2, 3):
        np.testing.assert_allclose(scores[c], expected[clip == c].double().mean(0).numpy(), rtol=1e-6)
        np.testing.assert_allclose(feats[c], emb[clip == c].mean(0).numpy(), rtol=1e-5)


def test_an_empty_dataset_gives_nan_rows_and_zero_counts():
    data = TensorDataset(torch.zeros(0, 3), torch.zeros(0, 5), torch.zeros(0, dtype=torch.long))
    scores, feats, counts = epochs.predict_clips(Net(), data, 2, lambda x, d, train: x, "cpu", 8)
    assert scores.shape == (2, 5) and feats.shape == (2, 6) and np.isnan(scores).all()
    assert counts.tolist() == [0, 0]
