"""The report's result-first sections: forest plot, reproduction table, spread across seeds."""

import base64
import io
import os
import re
from pathlib import Path

import browser
import model_data
import numpy as np
import polars as pl
import pytest

from impressions.report import render as report
from impressions.report import reproduction
from impressions.schemas import TRAITS


def _predictions(clips, name, noise, seed):
    rng = np.random.default_rng(seed)
    part = clips.filter(pl.col("split").is_in(["val", "test"]))
    y = part.select(TRAITS).to_numpy()
    pred = np.clip(y + rng.normal(0, noise, y.shape), 0, 1)
    return pl.DataFrame({"clip_id": part["clip_id"], "split": part["split"], "model": [name] * part.height,
                         **{t: pred[:, i] for i, t in enumerate(TRAITS)}})  # fmt: skip


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    root = tmp_path_factory.mktemp("repro")
    data = model_data.build(root)
    t = data["tables"]
    clips = pl.read_parquet(t / "clips.parquet")
    preds, summaries, curves = [], [], []
    for name, noise, seed in (("image", 0.03, 0), ("image_seed1", 0.05, 1), ("image_seed2", 0.04, 2),
                              ("late_average", 0.2, 3)):  # fmt: skip
        folder = root / "models" / name
        folder.mkdir(parents=True)
        _predictions(clips, name, noise, seed).write_parquet(folder / "predictions.parquet")
        (folder / "summary.json").write_text(f'{{"model": "{name}", "selected": {{"epoch": 1}}}}')
        reproduction.forest_plot(pl.DataFrame(), folder / "curve.png")  # any PNG
        preds.append(folder / "predictions.parquet")
        summaries.append(folder / "summary.json")
        curves.append(folder / "curve.png")
    out = root / "report"
    names = {"html": "index.html", "markdown": "report.md", "metrics": "m.parquet", "breakdowns": "b.parquet",
             "comparisons": "c.parquet", "forest": "forest.png"}  # fmt: skip
    outputs = {k: out / v for k, v in names.items()}
    reproduce = [{"published": "ventura2017_img_10", "model": "image"},
                 {"published": "zhang2016_challenge", "model": "late_average"},
                 {"published": "ventura2017_face", "model": "face"},
                 {"published": "belharbi2024"}]  # fmt: skip
    report.write_report(t / "clips.parquet", t / "qc.parquet", t / "faces.parquet", t / "expressions.parquet",
                        preds, summaries, curves, outputs, n_boot=100, dataset="synthetic",
                        reproduce=reproduce, experiment="Ventura et al. 2017")  # fmt: skip
    return outputs


def test_reproduction_table_sets_published_beside_measured(page):
    md = page["markdown"].read_text()
    assert "## Reproduction: Ventura et al. 2017" in md
    assert "published (FI test): image only, 10 frames per clip (DAN+)" in md and "0.9090" in md
    assert reproduction.published_label("thesis_audio").startswith("published (FI, split not stated)")
    assert "| 0.9130 |" in md  # the challenge entry's published mean
    assert "| face |" in md and "not run" in md  # a mapped model this run did not train
    assert "RAF-DB" in md  # an experiment without a FI figure says so
    metrics = pl.read_parquet(page["metrics"])
    image = metrics.filter(
        (pl.col("model") == "image") & (pl.col("split") == "test") & (pl.col("metric") == "accuracy")
        & (pl.col("trait") == "mean")
    ).row(0, named=True)  # fmt: skip
    assert f"{image['value']:.4f} [{image['ci_low']:.4f}, {image['ci_high']:.4f}]" in md


def test_seed_spread_is_the_mean_and_sd_over_seeds(page):
    metrics = pl.read_parquet(page["metrics"])
    values = [
        metrics.filter((pl.col("model") == m) & (pl.col("split") == "test") & (pl.col("metric") == "accuracy")
                       & (pl.col("trait") == "mean"))["value"][0]
        for m in ("image", "image_seed1", "image_seed2")
    ]  # fmt: skip
    header, rows = reproduction.seed_rows(metrics)
    assert rows[0][:4] == ["image", 3, f"{np.mean(values):.4f}", f"{np.std(values, ddof=1):.4f}"]
    assert "Spread across training seeds" in page["markdown"].read_text()


def test_every_image_of_the_page_loads(page):
    """Every <img> of the HTML must decode to a valid image (the browser check below also renders them),
    and every image the Markdown links must exist."""
    from PIL import Image

    html = page["html"].read_text()
    sources = re.findall(r"<img [^>]*src='([^']*)'", html)
    assert len(sources) >= 5  # forest plot + four curves
    for src in sources:
        assert src.startswith("data:image/png;base64,"), src[:40]
        Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).verify()
    md = page["markdown"].read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert "forest.png" in links
    for link in links:
        assert (page["markdown"].parent / link).resolve().is_file(), link
    assert html.index("forest plot") < html.index("Accuracy on test")  # the result before the tables


def _browser():
    """The Chromium binary; skip without one unless IMPRESSIONS_REQUIRE_BROWSER=1 (as in CI)."""
    binary = browser.find()
    if binary is None:
        if os.environ.get("IMPRESSIONS_REQUIRE_BROWSER") == "1":
            pytest.fail("IMPRESSIONS_REQUIRE_BROWSER=1 but no chromium on PATH: install Debian's chromium "
                        "(apt-get install chromium)")  # fmt: skip
        pytest.skip("no chromium on PATH (install Debian's chromium to render the report in a browser)")
    return binary


@pytest.mark.heavy  # starts Chromium (make test-all; CI requires it there)
def test_every_figure_renders_in_a_headless_browser(page):
    """The report as a browser shows it: every image loads with a real size, the forest plot included."""
    binary = _browser()
    html = page["html"].read_text()
    tags = re.findall(r"<img\b", html)
    result = browser.inspect(page["html"], binary=binary)
    assert len(result["images"]) >= len(tags) >= 5
    bad = browser.broken(result)
    assert not bad, f"broken images: {[(i['alt'], i['src']) for i in bad]}"
    assert "forest plot" in [i["alt"] for i in result["images"]]
    assert result["title"] and result["figures"] >= 1


def test_the_browser_check_catches_a_broken_image(tmp_path):
    """A page with one good and one truncated PNG: the helper names exactly the broken one."""
    binary = _browser()
    good = reproduction.forest_plot(pl.DataFrame(), tmp_path / "good.png")
    data = base64.b64encode(good.read_bytes()).decode()
    page = tmp_path / "page.html"
    page.write_text(f"<!doctype html><title>t</title><figure><img alt='good' src='data:image/png;base64,"
                    f"{data}'></figure><img alt='bad' src='data:image/png;base64,AAAA'>")  # fmt: skip
    result = browser.inspect(page, binary=binary)
    assert [i["alt"] for i in result["images"]] == ["good", "bad"]
    assert [i["alt"] for i in browser.broken(result)] == ["bad"]
    assert result["figures"] == 1


def test_forest_plot_orders_models_and_marks_the_baseline(tmp_path):
    table = pl.DataFrame({"model": ["train_mean", "a", "b"], "split": ["test"] * 3,
                          "metric": ["accuracy"] * 3, "trait": ["mean"] * 3, "value": [0.88, 0.9, 0.87],
                          "ci_low": [0.87, 0.89, 0.85],
                          "ci_high": [0.89, 0.91, 0.89], "n": [10] * 3})  # fmt: skip
    path = reproduction.forest_plot(table, tmp_path / "f.png")
    from PIL import Image

    assert Image.open(path).size[0] > 300
    with pytest.raises(KeyError, match="unknown published"):
        reproduction.reproduction_rows(table, [{"published": "nope", "model": "a"}])
    # A model that is not the published one says how it differs, in its own row
    _, rows, kinds = reproduction.reproduction_rows(
        table, [{"published": "zhang2016_challenge", "model": "a", "note": "two members"}]
    )
    assert kinds == ["published", ""] and rows[1][-1] == "10 test clips; differs: two members"


def test_published_figures_match_the_methods_tables():
    # Means are as printed; per-trait published rows average to their mean within rounding.
    for row in reproduction.PUBLISHED.values():
        if row["traits"]:
            assert np.mean(list(row["traits"].values())) == pytest.approx(row["mean"], abs=6e-4)
    assert Path(reproduction.__file__).is_file()


def _summary(family, **changes):
    """A summary.json as training writes it: the demo's small CNN, unless `changes` say otherwise."""
    summary = {
        "model": family, "family": family, "input_size": 64,
        "options": {"backbone": "small", "weights": None, "head": "dan", "width": 16},
        "settings": {"split": "official", "optimizer": "adamw", "inputs": ["image", "face", "audio"]},
        "preprocessing": {"frames": {"per_clip": 10}, "expressions": {"backend": "builtin"},
                          "audio": {"seconds": 5.0}},
    }  # fmt: skip
    for key, value in changes.items():
        summary[key] = {**summary[key], **value} if isinstance(value, dict) else value
    return summary


def test_a_row_says_how_its_model_differs_from_the_papers():
    from impressions.report import differences

    small = differences.differences("ventura2017_img_10", _summary("image"))
    assert "backbone small (paper: vgg16)" in small and "weights random init (paper: VGG-Face)" in small
    assert "optimizer adamw (paper: sgd)" in small and "input size 64 (paper: 224)" in small
    # the DAN+ preset's model: nothing left to say but the frames it was given
    dan = _summary("image", input_size=224, options={"backbone": "vgg16", "weights": "weights/vgg_face.pth",
                   "head": "dan_plus"}, settings={"optimizer": "sgd"})  # fmt: skip
    assert differences.differences("ventura2017_img_10", dan) == []
    hundred = {**dan, "preprocessing": {**dan["preprocessing"], "frames": {"per_clip": 100}}}
    assert differences.differences("ventura2017_img_10", hundred) == ["frames 100 (paper: 10)"]
    # The AU row names its AU source; the note changes with the backend.
    au = differences.differences("ventura2017_au17", _summary("au_linear_published"))
    openface = _summary("au_linear_published", preprocessing={"expressions": {"backend": "openface"}})
    assert au != differences.differences("ventura2017_au17", openface) and "openface" in str(
        differences.differences("ventura2017_au17", openface)
    )
    # The thesis's +handcrafted row names where its emotions came from (the thesis does not say)
    thesis = _summary("fusion_handcrafted", settings={"inputs": ["face", "audio"]})
    emotions = "emotions from builtin fer CNN fused with builtin AUs"
    assert differences.differences("thesis_av_handcrafted", thesis) == [emotions]
    assert differences.differences("thesis_audio", _summary("audio", options={})) == [
        "network the raw-waveform residual CNN (paper: 3 dense layers on the raw waveform)"
    ]
    voice = {**thesis, "family": "fusion_handcrafted_voice"}
    assert differences.differences("thesis_av_handcrafted", voice) == [
        "extra inputs age, gender, emotions, 14 voice descriptors (paper: age, gender, emotions)",
        emotions,
    ]


def test_the_reproduction_note_follows_the_optimizer():
    table = pl.DataFrame({"model": ["image"] * 6, "split": ["test"] * 6, "metric": ["accuracy"] * 6,
                          "trait": [*TRAITS, "mean"], "value": [0.9] * 6, "ci_low": [0.89] * 6,
                          "ci_high": [0.91] * 6, "n": [10] * 6})  # fmt: skip
    item = [{"published": "ventura2017_img_10", "model": "image"}]
    notes = {
        optimizer: reproduction.reproduction_rows(
            table, item, summaries={"image": _summary("image", settings={"optimizer": optimizer})}
        )[1][1][-1]
        for optimizer in ("adamw", "sgd")
    }
    assert "optimizer adamw (paper: sgd)" in notes["adamw"] and "optimizer" not in notes["sgd"]
    assert notes["sgd"].startswith("10 test clips; differs: backbone small (paper: vgg16)")


def test_models_reading_expressions_name_their_sources():
    """The report's training table column: where a model's AUs and emotions came from, or nothing."""
    from impressions.report import differences

    openface = _summary("au_linear_published", preprocessing={"expressions": {"backend": "openface"}})
    note = "AUs: openface (OpenFace 2 FeatureExtraction AUxx_r); emotions: builtin fer CNN fused with"
    assert differences.expression_note(openface) == f"{note} OpenFace AUs"
    assert differences.expression_note(_summary("image")) == ""  # reads no expressions
    # the dominant-emotion breakdown: the run's backend, from any summary that records it
    assert differences.run_emotion_source([{}, openface]) == "builtin fer CNN fused with OpenFace AUs"
