import numpy as np
import polars as pl
import pytest

from impressions import metrics
from impressions.explain import sections
from impressions.report import render as report
from impressions.schemas import TRAITS


def test_report_tables_and_pages(trained):
    data, outs = trained
    t = data["tables"]
    out_dir = data["root"] / "report"
    names = {"html": "index.html", "markdown": "report.md", "metrics": "metrics.parquet",
             "breakdowns": "b.parquet", "comparisons": "c.parquet", "bias_groups": "bias_groups.parquet",
             "bias_gaps": "bias_gaps.parquet", "bias_figure": "bias.png"}  # fmt: skip
    outputs = {k: out_dir / v for k, v in names.items()}
    report.write_report(
        t / "clips.parquet", t / "qc.parquet", t / "faces.parquet", t / "expressions.parquet",
        [o.predictions for o in outs], [o.summary for o in outs], [o.curve for o in outs], outputs,
        n_boot=200, dataset="synthetic test data", bias_settings={"min_people": 2, "permutations": 100},
    )  # fmt: skip
    table = pl.read_parquet(outputs["metrics"])
    assert set(table["model"]) == {"train_mean", "au_linear", "image"} and set(table["split"]) == {
        "val",
        "test",
    }
    # The baseline row is the train mean's accuracy, computed independently here.
    clips = pl.read_parquet(t / "clips.parquet")
    train_y = clips.filter(pl.col("split") == "train").select(TRAITS).to_numpy()
    test_y = clips.filter(pl.col("split") == "test").select(TRAITS).to_numpy()
    expected = metrics.accuracy(test_y, np.broadcast_to(train_y.mean(0), test_y.shape)).mean()
    test_mean = table.filter(
        (pl.col("split") == "test") & (pl.col("metric") == "accuracy") & (pl.col("trait") == "mean")
    )
    value = dict(zip(test_mean["model"], test_mean["value"]))
    row = test_mean.filter(pl.col("model") == "train_mean")
    assert value["train_mean"] == pytest.approx(expected) and row["ci_low"][0] < expected < row["ci_high"][0]
    # Paired comparisons: the delta is the difference of the two rows above, and the p-value a probability.
    comparisons = pl.read_parquet(outputs["comparisons"]).filter(pl.col("split") == "test")
    assert sorted(comparisons["model"]) == ["au_linear", "image"]
    for r in comparisons.iter_rows(named=True):
        assert r["delta"] == pytest.approx(value[r["model"]] - value["train_mean"])
        assert r["ci_low"] <= r["delta"] <= r["ci_high"] and 0 < r["p_value"] <= 1
    breakdowns = pl.read_parquet(outputs["breakdowns"])
    assert set(breakdowns.filter(pl.col("by") == "gender")["group"]) == {"male", "female", "unknown"}
    md = outputs["markdown"].read_text()
    assert "| model | O | C | E | A | N | mean |" in md and "NOT measured here" in md
    assert "(published" in md and "train-mean baseline" in md and "synthetic test data" in md
    assert "Split: official" in md  # models.split, the default
    # the training table names the tools behind each model's AU/emotion (and voice) inputs
    assert "| device | AU, emotion and voice source |" in md
    assert any(  # trained here without its run's preprocessing
        line.startswith("| au_linear |") and line.endswith("| AUs and emotions: not recorded |")
        for line in md.splitlines()
    )
    page = outputs["html"].read_text()
    assert page.count("data:image/png;base64,") == 4 and "<table>" in page  # forest, bias, 2 curves
    # The bias audit: every model with predictions, signed bias as computed here, its section and tables.
    groups, gaps = pl.read_parquet(outputs["bias_groups"]), pl.read_parquet(outputs["bias_gaps"])
    assert set(groups["model"]) == {"labels", "au_linear", "image"} and set(groups["split"]) == {
        "val",
        "test",
    }
    preds = pl.read_parquet(outs[0].predictions).filter(pl.col("split") == "test")
    women = preds.join(clips, on="clip_id", suffix="_y").filter(pl.col("gender") == "female")
    expected = (women["extraversion"] - women["extraversion_y"]).mean()
    row = groups.filter((pl.col("model") == "au_linear") & (pl.col("split") == "test")
                        & (pl.col("group") == "female") & (pl.col("trait") == "extraversion"))  # fmt: skip
    assert row["value"][0] == pytest.approx(expected) and row["tested"][0]
    gender = gaps.filter((pl.col("attribute") == "gender") & (pl.col("split") == "test"))
    assert gender["groups_tested"].unique().to_list() == [2] and (gender["p_holm"] >= gender["p_value"]).all()
    age = gaps.filter(pl.col("attribute") == "age_group")  # one age group: no gap to test
    assert (age["groups_tested"] == 1).all() and age["p_value"].is_nan().all()
    assert (
        "## Bias audit: whom the models over- and under-rate (test)" in md and "![Signed bias per group" in md
    )
    assert "| gender | extraversion |" in md and "Holm" in md and "too few" in md


def test_interpretation_sections_follow_the_results_in_order(trained, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data, outs = trained
    t = data["tables"]
    small, photo = tmp_path / "small.png", tmp_path / "photo.png"
    plt.figure(figsize=(1, 1)).savefig(small)
    plt.imsave(photo, np.random.default_rng(0).uniform(size=(400, 400, 3)))  # noise: a large PNG
    late, early = sections.Section("Late", "second", order=60), sections.Section("Early", "first", order=10)
    early.figure(small, "What the small figure shows.")
    early.figure(photo, "What the photo grid shows.")
    early.table(pl.DataFrame({"unit": [1], "p": [1e-6]}), "A table.", tmp_path / "t.csv")
    late.write(tmp_path / "late.json")
    early.write(tmp_path / "early.json")
    assert pl.read_csv(tmp_path / "t.csv")["unit"].to_list() == [1]
    names = {"html": "index.html", "markdown": "report.md", "metrics": "m.parquet", "breakdowns": "b.parquet",
             "comparisons": "c.parquet"}  # fmt: skip
    outputs = {k: tmp_path / "report" / v for k, v in names.items()}
    report.write_report(
        t / "clips.parquet", t / "qc.parquet", t / "faces.parquet", t / "expressions.parquet",
        [o.predictions for o in outs], [o.summary for o in outs], [o.curve for o in outs], outputs,
        n_boot=20, sections=[tmp_path / "late.json", tmp_path / "early.json"],
    )  # fmt: skip
    md, page = outputs["markdown"].read_text(), outputs["html"].read_text()
    assert md.index("Accuracy on test") < md.index("# What the networks look at")
    assert md.index("## Early") < md.index("## Late") and "*What the small figure shows.*" in md
    assert page.count("<figure>") == page.count("<figcaption>") == 3  # 2 + the forest plot
    assert "<figcaption>What the photo grid shows.</figcaption>" in page and "1e-06" in page
    # Small figures stay PNG; photo grids are embedded as JPEG to keep the page small.
    assert page.count("data:image/jpeg") == 1


def test_the_qc_section_counts_transcript_notes_only_where_the_dataset_has_transcripts():
    clips = pl.DataFrame({"clip_id": ["a", "b", "c", "d"]})
    notes = [None, "no transcript", "empty transcript", "no transcript", None]
    qc = pl.DataFrame({"clip_id": ["a", "b", "c", "d", "gone"], "transcript_note": notes})
    # the missing file's row (not in the clips table) is not counted as usable
    assert report.transcript_rows(clips, qc) == [["usable", 1], ["no transcript", 2], ["empty transcript", 1]]
    none = qc.with_columns(pl.lit("no transcript").alias("transcript_note"))
    assert report.transcript_rows(clips, none) == []  # a dataset without transcripts: no table
    assert (
        report.transcript_rows(clips, qc.drop("transcript_note")) == []
    )  # a QC table from before the column
