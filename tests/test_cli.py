import pytest

from impressions import cli
from impressions.schemas import TRAITS

# Published facts about the official split (see ARCHITECTURE.md).
TEST_BASELINE = {"extraversion": 0.8781, "neuroticism": 0.8773, "agreeableness": 0.8935,
                 "conscientiousness": 0.8746, "openness": 0.8833}  # fmt: skip


def test_baseline_on_real_annotations(fi_annotations, capsys):
    rows = {r["split"]: r for r in cli.baseline_rows(fi_annotations)}
    assert {s: r["n"] for s, r in rows.items()} == {"train": 6000, "val": 2000, "test": 2000}
    for trait in TRAITS:
        assert rows["test"][trait] == pytest.approx(TEST_BASELINE[trait], abs=5e-5), trait
    assert rows["test"]["mean"] == pytest.approx(0.8814, abs=5e-5)
    assert cli.main(["baseline", str(fi_annotations)]) == 0
    test_line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("test"))
    assert test_line.split()[2:] == ["0.8781", "0.8773", "0.8935", "0.8746", "0.8833", "0.8814"]


def test_baseline_interval_brackets_the_mean(fi_annotations):
    test = next(r for r in cli.baseline_rows(fi_annotations, n_boot=200) if r["split"] == "test")
    assert test["ci_low"] < test["mean"] < test["ci_high"] and test["ci_high"] - test["ci_low"] < 0.02


def test_leakage_on_real_annotations(fi_annotations, capsys):
    rows = {r["split"]: r for r in cli.leakage_rows(fi_annotations)}
    assert rows["test"]["youtube_ids"] == 1455 and rows["test"]["in_train"] == 1201
    assert rows["train"]["in_train"] == rows["train"]["youtube_ids"]
    cli.main(["leakage", str(fi_annotations)])
    assert "test: 1,201 of 1,455 YouTube ids" in capsys.readouterr().out


def test_baseline_on_a_small_folder(tmp_path, capsys):
    from impressions.testing import write_fi_annotations

    write_fi_annotations(tmp_path, {"train": ["p.000", "p.001", "q.000"], "test": ["p.002", "r.000"]})
    rows = {r["split"]: r for r in cli.leakage_rows(tmp_path)}
    assert rows["test"] == {"split": "test", "clips": 2, "youtube_ids": 2, "in_train": 1, "clips_in_train": 1}
    assert "val" not in rows
    with pytest.raises(SystemExit, match="no annotation"):
        cli.main(["baseline", str(tmp_path / "empty")])


def test_config_show_names_each_value_source(capsys):
    from impressions import config_sources

    preset = config_sources.BASE.parent / "experiments" / "hernandez_thesis.yaml"
    assert cli.main(["config", "show", "--configfile", str(preset)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"models.face.lr: 0.0001  # {preset}" in lines
    assert "models.bootstrap: 1000  # config.yaml (run setting)" in lines
    assert "frames.max_side: 640  # schema default" in lines
    # No model value from the demo config (but settings that do not apply) and none left to code.
    models = [line for line in lines if line.startswith("models.")]
    demo = [line for line in models if line.endswith("# config.yaml")]
    assert not demo and not [line for line in models if "not set" in line]
    assert not [line for line in models if line.startswith(("models.image.", "models.audio_fbank."))]
    # The same command on the default config alone shows what a preset must not inherit.
    cli.main(["config", "show"])
    out = capsys.readouterr().out
    assert "models.audio.batch_size: 4  # config.yaml" in out and "models.audio.dropout: -  # not set" in out
