"""Whole-clip audio (seconds: null), random-crop training and whole-clip scoring of the waveform model."""

import model_data
import numpy as np
import pytest
import torch
from model_data import tiny_options, train

from impressions.data import audio, preprocess
from impressions.training import datasets


def test_whole_clip_window_pads_without_flagging():
    assert audio.window_seconds(5.0) == 5.0 and audio.window_seconds(None) == audio.WHOLE_CLIP_MAX_SECONDS
    assert audio.window_seconds(None, 16.0) == 16.0
    samples = np.ones(8000, np.float32) * 0.1  # 0.5 s
    clip = audio.features(samples, seconds=None, max_seconds=1.0)
    assert clip.waveform.shape == (16000,) and clip.n_samples == 8000 and not clip.padded
    assert audio.features(samples, seconds=1.0).padded  # a fixed window shorter than asked is flagged
    long = audio.features(np.ones(40000, np.float32), seconds=None, max_seconds=2.0)  # 2.5 s: cut at 2 s
    assert long.n_samples == 32000
    settings = preprocess.Settings.from_config(
        {"frames": {"per_clip": 1, "size": 32, "max_side": 64},
         "faces": {"upsample": 0, "min_score": 0.0, "size": 32, "padding": 0.25},
         "audio": {"seconds": None, "sample_rate": 16000, "max_seconds": 16.0}}
    )  # fmt: skip
    assert settings.audio_window == 16.0


def rows(lengths, width=100):
    clips = datasets.Clips([f"c{i}" for i in range(len(lengths))], np.zeros((len(lengths), 5)))
    array = np.stack([np.where(np.arange(width) < n, np.arange(width) + 1.0, 0.0) for n in lengths])
    return datasets.RowDataset(clips, array.astype(np.float32), np.arange(len(lengths)))


def test_random_crops_stay_inside_the_real_samples():
    base = rows([100, 40, 10])
    crops = datasets.RandomCrop(base, [100, 40, 10], crop=20)
    torch.manual_seed(0)
    starts = {0: set(), 1: set()}
    for _ in range(50):
        for i in (0, 1):
            x, _, pos = crops[i]
            assert x.shape == (20,) and pos == i
            assert (x > 0).all() and torch.equal(x, torch.arange(x[0], x[0] + 20))  # contiguous, real
            starts[i].add(int(x[0]))
        short, _, _ = crops[2]
        assert (
            short.shape == (20,)
            and torch.equal(short[:10], torch.arange(1.0, 11.0))
            and (short[10:] == 0).all()
        )
    assert max(starts[0]) <= 81 and max(starts[1]) <= 21 and len(starts[0]) > 10  # random, within bounds
    with pytest.raises(ValueError, match="shorter than the crop"):
        datasets.RandomCrop(base, [100, 40, 10], crop=200)[0]


def test_whole_clips_are_their_real_samples():
    whole = datasets.WholeClip(rows([100, 40, 0]), [100, 40, 0], min_samples=20)
    assert [whole[i][0].shape[0] for i in range(3)] == [100, 40, 20]  # silence: the minimum window


def test_waveform_model_trains_on_crops_and_scores_whole_clips(tmp_path):
    data = model_data.build(tmp_path / "data")
    options = tiny_options("audio", epochs=2, blocks=2, batch_size=8, crop_seconds=0.05)
    out, summary = train(data, tmp_path, "audio", options)
    assert summary["settings"]["crop_seconds"] == 0.05 and "whole clips" in summary["audio_samples"]
    assert summary["options"]["blocks"] == 2
    import polars as pl

    preds = pl.read_parquet(out.predictions)
    assert preds.height == 12 and preds.select(pl.all().is_null().any()).row(0) == (False,) * preds.width

    # impressions predict scores a crop-trained model on the clip's real samples, as evaluation does:
    # digital silence inside the clip is kept, only the window's padding after the real samples is cut
    from impressions import predict
    from impressions.models import networks as models

    model, ckpt = models.load_checkpoint(out.checkpoint)
    model.eval()
    x = torch.zeros(1, 4000)
    x[0, :1000] = torch.sin(torch.arange(1000) / 5.0)
    with torch.no_grad():
        score, _ = predict._network_scores(model, ckpt, x, "waveform", "cpu", n_samples=3000)
        expected = torch.sigmoid(model.fc(model.embed(x[:, :3000]))).mean(0).double().numpy()
        trimmed = torch.sigmoid(model.fc(model.embed(x[:, :1000]))).mean(0).double().numpy()
    assert np.allclose(score, expected, atol=1e-6)
    assert not np.allclose(score, trimmed, atol=1e-6)  # the silence inside the clip matters
