"""Fitting `text_linear`: TF-IDF blocks and a ridge penalty chosen on validation, closed form on train.

Every combination of `feature_sets` (e.g. ``[word]``, ``[char]``, ``[word, char]``) and `alphas` is
fitted on the training clips that have a transcript and scored on the validation clips that have one;
the best validation mean accuracy wins (the test split is never looked at). The whole grid is the
model's history (``metrics.csv``, one row per combination) and the choice is in its summary.

A clip without a usable transcript (`impressions.data.transcripts.note`) is left out of the fit and
predicted as the training mean, flagged in the summary's ``filled_with_train_mean`` like every other
family's clips without input.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import torch

from impressions import metrics
from impressions.models import registry
from impressions.models.text import BLOCKS, TextRidge, fit_vocabulary, ridge_path
from impressions.schemas import SPLITS, TRAITS

log = logging.getLogger(__name__)


def read_texts(path) -> dict[str, str]:
    """{clip_id: transcript} of the clips whose transcript is usable (the transcripts table)."""
    import polars as pl

    table = pl.read_parquet(path, columns=["clip_id", "has_transcript", "transcript"]).filter(
        "has_transcript"
    )
    return dict(zip(table["clip_id"].to_list(), table["transcript"].to_list()))


def train_text(inputs, splits: Mapping, settings, builder: Mapping):
    """(model, builder options, history, preds, feats, filled, extra) for `text_linear`."""
    if inputs.transcripts is None:
        raise ValueError("text_linear needs the transcripts table (results/tables/transcripts.parquet)")
    options = registry.get("text_linear").settings(builder)  # the registry defaults, then the config's
    texts = read_texts(inputs.transcripts)
    has = {s: np.array([c in texts for c in splits[s].ids], bool) for s in SPLITS}
    for s in ("train", "val"):
        if not has[s].any():
            raise ValueError(f"text_linear: no {s} clip has a transcript")
    train_texts = [texts[c] for c, h in zip(splits["train"].ids, has["train"]) if h]
    val_texts = [texts[c] for c, h in zip(splits["val"].ids, has["val"]) if h]
    y_train, y_val = splits["train"].labels[has["train"]], splits["val"].labels[has["val"]]
    vocab = {}
    for b in BLOCKS:
        vocab[b] = fit_vocabulary(b, train_texts, options[f"{b}_ngrams"], int(options["max_features"]),
                                  int(options["min_df"]))  # fmt: skip
    history, best = [], None
    for blocks in options["feature_sets"]:
        model = _model(blocks, vocab, options)
        x_train, x_val = model.vectorize(train_texts), model.vectorize(val_texts)
        for alpha, (w, b0) in ridge_path(x_train, y_train, sorted(settings.alphas)).items():
            pred = np.clip(np.asarray(x_val @ w) + b0, 0, 1)
            train_pred = np.clip(np.asarray(x_train @ w) + b0, 0, 1)
            acc = metrics.accuracy(y_val, pred)
            row = {"setting": len(history), "features": "+".join(blocks), "alpha": alpha,
                   "train_loss": float(((train_pred - y_train) ** 2).mean()),
                   "val_loss": float(((pred - y_val) ** 2).mean()),
                   **{f"val_{t}": float(a) for t, a in zip(TRAITS, acc)},
                   "val_mean": float(acc.mean())}  # fmt: skip
            history.append(row)
            if best is None or row["val_mean"] > best[0]["val_mean"]:
                best = (row, blocks, w, b0)
    row, blocks, w, b0 = best
    model = _model(blocks, vocab, options).set_weights({b: vocab[b][1] for b in blocks}, w, b0)
    log.info("text_linear: features %s, alpha %g, validation mean accuracy %.4f (%d settings tried)",
             row["features"], row["alpha"], row["val_mean"], len(history))  # fmt: skip
    train_mean = metrics.train_mean(splits["train"].labels)
    preds, feats, filled = {}, {}, {}
    for s in SPLITS:
        ids = splits[s].ids
        scores, raw = model.score_texts([texts.get(c, "") for c in ids]) if ids else (np.zeros((0, 5)),) * 2
        filled[s] = ~has[s]
        preds[s] = np.where(filled[s][:, None], train_mean, scores)
        feats[s] = np.where(filled[s][:, None], train_mean, raw)
    extra = {
        "text_features": row["features"], "text_alpha": row["alpha"],
        "transcripts": {s: int(has[s].sum()) for s in SPLITS},
        "vocabulary_size": {b: len(vocab[b][0]) for b in blocks},
    }  # fmt: skip
    fills = {"feature_fill": train_mean.astype(float).tolist()}
    return model, _builder(blocks, vocab, options), history, preds, feats, filled, fills, extra


def _builder(blocks, vocab, options) -> dict:
    """TextRidge's keyword options: what the checkpoint rebuilds the model from."""
    return {"blocks": list(blocks), "word_vocabulary": vocab["word"][0] if "word" in blocks else [],
            "char_vocabulary": vocab["char"][0] if "char" in blocks else [],
            "word_ngrams": list(options["word_ngrams"]),
            "char_ngrams": list(options["char_ngrams"])}  # fmt: skip


def _model(blocks, vocab, options) -> TextRidge:
    model = TextRidge(**_builder(blocks, vocab, options))
    for b in blocks:
        getattr(model, f"idf_{b}").copy_(torch.from_numpy(vocab[b][1]))
    return model
