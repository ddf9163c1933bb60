"""Transcripts as input (FI pickles, manifest column, the table) and the text_linear family."""

import pickle

import numpy as np
import polars as pl
import pytest

from impressions import metrics
from impressions.data import annotations, clip_index, demo, demo_text, transcripts
from impressions.data.fi_pickle import fi_transcript_bytes
from impressions.schemas import TABLES, TRAITS, frame
from impressions.training import degenerate
from impressions.training import loop as training


class _Payload:
    """A pickle that runs code when loaded: it creates a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_hostile_transcription_pickle_is_refused_and_its_payload_never_runs(tmp_path):
    marker = tmp_path / "payload_ran"
    path = tmp_path / transcripts.TRANSCRIPT_FILES["train"]
    path.write_bytes(pickle.dumps({"a.000.mp4": _Payload(marker)}, protocol=2))
    with pytest.raises(annotations.UnsafePickleError, match="refusing to load .*open.*transcription"):
        transcripts.read_fi(tmp_path)
    assert not marker.exists()
    # even the numpy scalars an annotation file may hold are refused: transcripts are strings only
    path.write_bytes(pickle.dumps({"a.000.mp4": np.float64(0.5)}, protocol=2))
    with pytest.raises(annotations.UnsafePickleError):
        transcripts.read_fi(tmp_path)


def test_fi_transcription_pickles_are_read_with_their_python2_strings(tmp_path):
    texts = {
        "-6otZ7M-Mro.003.mp4": "so I think this is great",
        "b.001.mp4": "caf\u00e9 na\u00efve",
        "c.002.mp4": "",
    }
    data = bytearray(fi_transcript_bytes(texts))
    # a Python 2 str holding UTF-8 bytes, as FI's files do for non-ASCII text: SHORT_BINSTRING
    utf8 = "d\u00e9j\u00e0 vu".encode()
    data[-2:-2] = b"U\x09d.003.mp4U" + bytes([len(utf8)]) + utf8
    (tmp_path / transcripts.TRANSCRIPT_FILES["val"]).write_bytes(bytes(data))
    read = transcripts.read_fi(tmp_path)
    assert read == {"-6otZ7M-Mro.003": "so I think this is great", "b.001": "caf\u00e9 na\u00efve",
                    "c.002": "", "d.003": "d\u00e9j\u00e0 vu"}  # fmt: skip
    (tmp_path / transcripts.TRANSCRIPT_FILES["test"]).write_bytes(pickle.dumps({"x.000.mp4": 3}, protocol=2))
    with pytest.raises(transcripts.TranscriptError, match="'x.000.mp4'"):
        transcripts.read_fi(tmp_path)


def test_language_is_named_from_function_words_or_left_undetermined():
    assert transcripts.language("So I think that you know the job is what I like") == "en"
    assert transcripts.language("Yo creo que el trabajo es muy bueno para mi familia") == "es"
    assert transcripts.language("Ich glaube dass die Arbeit für mich auch gut ist") == "de"
    assert transcripts.language("great great") is None  # too few function words to tell
    assert transcripts.language("") is None


def test_manifest_transcripts_and_the_table_notes(tmp_path):
    video = tmp_path / "one.000.mp4"
    video.write_bytes(b"")
    manifest = tmp_path / "clips.csv"
    manifest.write_text(
        "path,split,clip_id,transcript," + ",".join(TRAITS) + "\n"
        + f"{video.name},train,,hello and thank you all," + ",".join(["0.5"] * 5) + "\n"
        + "two.000.mp4,train,,," + ",".join(["0.5"] * 5) + "\n"
        + "three.000.mp4,test,,   ,,,,,\n"
        + "four.000.mp4,test,,... 123 ...,,,,,\n"
    )  # fmt: skip
    texts = transcripts.from_manifest(manifest)
    assert texts == {"one.000": "hello and thank you all", "four.000": "... 123 ..."}
    index = clip_index.from_manifest(manifest)  # the column does not disturb the index
    rows = transcripts.table_rows(index.clips + index.missing_files, texts)
    table = frame("transcripts", rows)
    assert table.columns == list(TABLES["transcripts"])
    notes = dict(zip(table["clip_id"], table["qc_note"]))
    assert notes == {"one.000": None, "two.000": "no transcript", "three.000": "no transcript",
                     "four.000": "empty transcript"}  # fmt: skip
    assert table.filter(pl.col("clip_id") == "one.000")["n_words"].item() == 5


def test_demo_transcripts_follow_the_labels_and_are_written_as_fi_pickles(tmp_path):
    labels = demo.demo_labels()
    texts = demo_text.demo_transcripts()
    # extraversion's high words appear more often in the more extraverted half of the voiced clips
    voiced = sorted((c for c, t in texts.items() if t), key=lambda c: labels[c]["extraversion"])
    high = set(demo_text.HIGH["extraversion"])

    def count(ids):
        return sum(w in high for c in ids for w in texts[c].split())

    half = len(voiced) // 2
    assert count(voiced[half:]) > 2 * count(voiced[:half])
    assert demo_text.demo_transcripts() == texts  # deterministic
    assert "" in texts.values() and len(texts) < len(demo.demo_clips())  # empty, and one not listed
    demo_text.write_transcripts(tmp_path)
    assert transcripts.read_fi(tmp_path) == texts


@pytest.fixture(scope="module")
def demo_text_run(tmp_path_factory):
    """text_linear trained on the demo's labels and transcripts (no video is rendered: the transcripts
    follow from the labels alone)."""
    root = tmp_path_factory.mktemp("demo_text")
    labels = demo.demo_labels()
    rows = [{c: None for c in TABLES["clips"]} | {"clip_id": clip.clip_id, "path": clip.relpath,
            "split": clip.split, "youtube_id": clip.youtube_id, **labels[clip.clip_id]}
            for clip in demo.demo_clips()]  # fmt: skip
    frame("clips", rows).write_parquet(root / "clips.parquet")
    transcripts.write_table(
        root / "clips.parquet", demo_text.demo_transcripts(), root / "transcripts.parquet"
    )
    inputs = training.Inputs(clips=root / "clips.parquet", transcripts=root / "transcripts.parquet")
    out = training.Outputs.in_folder(root / "text_linear")
    summary = training.train_family(
        "text_linear", inputs, out, {"seed": 0, "device": "cpu", "threads": 1}, {}
    )
    return root, out, summary


def test_text_linear_beats_the_train_mean_on_the_demo_test_split(demo_text_run):
    root, out, _ = demo_text_run
    clips = pl.read_parquet(root / "clips.parquet")
    preds = pl.read_parquet(out.predictions).filter(pl.col("split") == "test")
    y, p, joined = metrics.labels_and_predictions(preds, clips)
    base = metrics.train_mean_baseline(
        clips.filter(pl.col("split") == "train").select(TRAITS).to_numpy(), len(y)
    )
    c = metrics.paired_bootstrap(y, p, base, groups=joined["youtube_id"].to_list())
    print(f"demo test ({len(y)} clips): text_linear {metrics.accuracy(y, p).mean():.4f}, train mean "
          f"{metrics.accuracy(y, base).mean():.4f}, "
          f"difference {c.delta:+.4f} [{c.low:+.4f}, {c.high:+.4f}]")  # fmt: skip
    assert c.low > 0  # the whole 95% interval of the paired difference is above zero


def test_text_linear_records_its_choice_and_flags_clips_without_a_transcript(demo_text_run):
    root, out, summary = demo_text_run
    history = pl.read_csv(out.metrics)
    assert history.height == 3 * len(summary["settings"]["alphas"])  # the registry's three feature sets
    assert set(history["features"]) == {"word", "char", "word+char"}
    best = history.row(int(np.argmax(history["val_mean"].to_numpy())), named=True)
    assert summary["selected"]["features"] == best["features"] == summary["text_features"]
    assert summary["selected"]["alpha"] == best["alpha"]
    table = pl.read_parquet(root / "transcripts.parquet")
    missing = set(table.filter(~pl.col("has_transcript"))["clip_id"])
    flagged = {c for ids in summary["filled_with_train_mean"].values() for c in ids}
    assert flagged == missing and flagged
    train = pl.read_parquet(root / "clips.parquet").filter(pl.col("split") == "train").select(TRAITS)
    mean = metrics.train_mean(train.to_numpy())
    preds = pl.read_parquet(out.predictions)
    for row in preds.filter(pl.col("clip_id").is_in(list(missing))).iter_rows(named=True):
        assert np.allclose([row[t] for t in TRAITS], mean)


def test_no_transcript_for_any_train_clip_is_a_reason_not_a_crash(tmp_path, demo_text_run):
    root, _, _ = demo_text_run
    empty = pl.read_parquet(root / "transcripts.parquet").with_columns(pl.lit(False).alias("has_transcript"))
    empty.write_parquet(tmp_path / "transcripts.parquet")
    inputs = training.Inputs(clips=root / "clips.parquet", transcripts=tmp_path / "transcripts.parquet")
    clips = pl.read_parquet(root / "clips.parquet")
    reason = degenerate.why_not_trainable("text_linear", inputs, clips, {}, {})
    assert reason and "transcript" in reason


def test_ridge_path_is_scikit_learns_ridge_in_closed_form():
    from scipy import sparse
    from sklearn.linear_model import Ridge

    from impressions.models.text import ridge_path

    rng = np.random.default_rng(0)
    x = sparse.random(40, 12, density=0.3, random_state=1, format="csr")
    y = rng.uniform(0, 1, (40, 5))
    for alpha, (w, b) in ridge_path(x, y, [0.1, 10.0]).items():
        ref = Ridge(alpha=alpha, solver="cholesky").fit(x.toarray(), y)
        assert np.allclose(w.T, ref.coef_, atol=1e-8) and np.allclose(b, ref.intercept_, atol=1e-8)


def test_text_linear_checkpoint_loads_as_plain_data_and_scores_the_same(demo_text_run):
    from impressions.models import networks

    root, out, _ = demo_text_run
    model, ckpt = networks.load_checkpoint(out.checkpoint)  # torch.load(weights_only=True): no objects
    assert ckpt["family"] == "text_linear"
    table = pl.read_parquet(root / "transcripts.parquet").filter(
        (pl.col("split") == "test") & pl.col("has_transcript")
    )
    preds = pl.read_parquet(out.predictions).join(table.select("clip_id", "transcript"), on="clip_id")
    assert preds.height == table.height > 0
    scores, _ = model.score_texts(preds["transcript"].to_list())
    assert np.allclose(
        preds.select(TRAITS).to_numpy(), scores
    )  # the stored predictions are the loaded model's
