import model_data
import numpy as np
import polars as pl
import pytest
from model_data import SMALL_CNN, inputs_for, tiny_options

from impressions import cli, predict, schemas
from impressions.data import defaults
from impressions.schemas import TRAITS
from impressions.testing import face_clip
from impressions.training import loop as training


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    data = model_data.build(tmp_path_factory.mktemp("results"))
    out = tmp_path_factory.mktemp("models")
    prep = defaults.preprocessing()  # config.yaml's, as the workflow resolves them
    prep["frames"] = {**prep["frames"], "per_clip": 3}
    fusion = tiny_options("fusion_handcrafted", epochs=3, inputs=["face", "audio"])
    text_fusion = tiny_options("fusion_text", epochs=3, inputs=["audio", "text_linear"])
    runs = [("image", SMALL_CNN), ("face", SMALL_CNN), ("audio", tiny_options("audio", epochs=2)),
            ("au_linear", {"alphas": [1.0]}), ("text_linear", {"alphas": [1.0]}),
            ("fusion_handcrafted", fusion), ("fusion_text", text_fusion)]  # fmt: skip
    for family, options in runs:
        features = {m: out / m / "features.npz" for m in ("face", "audio", "text_linear")}
        training.train_family(
            family, inputs_for(data, family, features), training.Outputs.in_folder(out / family),
            {"seed": 0, "device": "cpu", "threads": 1}, options, preprocessing=prep,
        )  # fmt: skip
    return out


def test_predict_a_new_clip(models_dir, tmp_path, capsys):
    video = tmp_path / "-new.clip.000.mp4"  # a name that starts with a dash and has dots
    face_clip(video, start=12.0, seconds=3.0)
    table = predict.predict_videos([video], models_dir)
    # The training outputs' columns first (split null for a new video), then the notes on the clip.
    assert table.schema == schemas.polars_schema("predict")
    assert table.columns[: len(schemas.OUTPUTS["predictions"])] == list(schemas.OUTPUTS["predictions"])
    assert table["split"].null_count() == table.height
    assert table["clip_id"].unique().to_list() == ["-new.clip.000"]
    assert sorted(table["model"]) == ["au_linear", "audio", "face", "fusion_handcrafted", "fusion_text",
                                      "image", "text_linear"]  # fmt: skip
    # no transcript given: the text rows say so and carry no scores
    text_rows = table.filter(pl.col("model").is_in(["text_linear", "fusion_text"]))
    assert text_rows["note"].to_list() == ["no transcript"] * 2 and not text_rows["has_input"].any()
    assert text_rows.select(TRAITS).null_count().sum_horizontal().item() == 2 * len(TRAITS)
    table = table.filter(~pl.col("model").is_in(["text_linear", "fusion_text"]))
    scores = table.select(TRAITS).to_numpy()
    assert np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()  # ridge output is clipped
    assert table.filter(pl.col("model") == "face")["has_input"][0]  # the laughing woman is found
    # Only the named model is reported (the CLI, which prints and writes the table).
    out = tmp_path / "scores.csv"
    assert (
        cli.main(
            ["predict", str(video), "--models", str(models_dir), "--model", "audio", "--output", str(out)]
        )
        == 0
    )
    assert "-new.clip.000  audio" in capsys.readouterr().out
    assert pl.read_csv(out)["model"].to_list() == ["audio"]


def test_predict_with_a_transcript_scores_the_text_rows(models_dir, tmp_path, capsys):
    video = tmp_path / "talk.000.mp4"
    face_clip(video, start=12.0, seconds=3.0)
    names = ["audio", "text_linear", "fusion_text"]
    great = predict.predict_paths([video], models_dir, names, transcript="so great great great great").table
    poor = predict.predict_paths([video], models_dir, names, transcript="so poor poor poor poor").table
    for table in (great, poor):
        rows = table.filter(pl.col("model").is_in(["text_linear", "fusion_text"]))
        assert rows["has_input"].all() and rows["note"].null_count() == rows.height
    # the synthetic transcripts say "great" more often the higher the cue, and extraversion grows with it
    score = {
        name: t.filter(pl.col("model") == "text_linear")["extraversion"].item()
        for name, t in (("great", great), ("poor", poor))
    }
    assert score["great"] > score["poor"]
    # the CLI: a transcript file, then none
    text = tmp_path / "talk.txt"
    text.write_text("so great great and the video", encoding="utf-8")
    argv = ["predict", str(video), "--models", str(models_dir), "--model", "text_linear", "--model", "audio"]
    code, out, _ = _run([*argv, "--transcript", str(text)], capsys)
    assert code == 0 and "talk.000  text_linear" in out and "no transcript" not in out
    code, out, _ = _run(argv, capsys)
    assert code == 0 and "no transcript: no scores" in out
    with pytest.raises(ValueError, match="one video"):
        predict.predict_paths([video, video], models_dir, names, transcript="hello")


def test_predict_errors(models_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="no video file"):
        predict.predict_videos([tmp_path / "missing.mp4"], models_dir)
    with pytest.raises(FileNotFoundError, match="no checkpoint for"):
        predict.load_models(models_dir, ["transformer"])


def _run(argv, capsys):
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_predict_text_file_and_missing_file_fail_with_one_line_each(models_dir, tmp_path, capsys):
    text, missing = tmp_path / "notes.mp4", tmp_path / "gone.mp4"
    text.write_text("this is not a video\n")
    code, out, err = _run(["predict", str(text), str(missing), "--models", str(models_dir)], capsys)
    assert code == 1 and out == ""
    lines = [ln for ln in err.splitlines() if not ln.startswith("[")]  # progress lines start with [i/n]
    assert len(lines) == 2 and lines[0] == f"{missing}: cannot predict: no such file or folder"
    assert lines[1].startswith(f"{text}: cannot predict: corrupt: ffmpeg cannot read the file: "), err
    assert "Traceback" not in err


def test_predict_face_less_clip_says_so_instead_of_scores(models_dir, bad_media, tmp_path, capsys):
    out_csv = tmp_path / "scores.csv"
    argv = ["predict", str(bad_media["no_face"]), "--models", str(models_dir), "--output", str(out_csv)]
    code, out, err = _run(argv, capsys)
    assert code == 0, err
    lines = {ln.split()[1]: ln for ln in out.splitlines()}
    assert lines["face"].endswith("face                 no face found: no scores  [qc: no_face]")
    assert "no face found: no scores" in lines["au_linear"]
    assert "E 0." in lines["image"] and lines["image"].endswith("[qc: no_face]")
    assert (
        "imputed with training means (face: no face found; AUs: no face found)" in lines["fusion_handcrafted"]
    )
    assert "[1/1] noface.000: preprocessing" in err
    table = pl.read_csv(out_csv)
    face = table.filter(pl.col("model") == "face").row(0, named=True)
    assert face["has_input"] is False and face["note"] == "no face found" and face["openness"] is None
    assert set(table["status"]) == {"no_face"} and "no face found in any" in face["qc_reason"]


def test_predict_a_folder_reports_each_clip_and_each_bad_file(models_dir, bad_media, tmp_path, capsys):
    folder = tmp_path / "batch"
    (folder / "sub").mkdir(parents=True)
    for kind, name in (("good", "a.mp4"), ("no_audio", "sub/b.mp4")):
        (folder / name).write_bytes(bad_media[kind].read_bytes())
    (folder / "c.mp4").write_text("not a video")
    (folder / "readme.txt").write_text("ignored: not a video suffix")
    code, out, err = _run(["predict", str(folder), "--models", str(models_dir), "--model", "audio"], capsys)
    assert code == 1
    assert (
        out.splitlines()[0].startswith("a  audio                E 0.") and "[qc: ok]" in out.splitlines()[0]
    )
    assert out.splitlines()[1] == "b  audio                no audio found: no scores  [qc: no_audio]"
    assert "[1/3] a: preprocessing" in err and "[2/3] c: preprocessing" in err  # sorted by path
    assert f"{folder / 'c.mp4'}: cannot predict: corrupt" in err and "readme" not in err + out


def test_predict_setup_errors_are_one_line_unless_debug(tmp_path, bad_media, capsys):
    code, out, err = _run(["predict", str(bad_media["good"]), "--models", str(tmp_path)], capsys)
    assert (
        code == 2
        and err.strip() == f"impressions predict: error: no trained models (*/checkpoint.pt) under {tmp_path}"
    )
    with pytest.raises(FileNotFoundError):
        cli.main(["predict", str(bad_media["good"]), "--models", str(tmp_path), "--debug"])
