"""Every interpretation analysis on degenerate inputs: it completes, or writes its section saying what
could not be computed and why, with every declared output present; an exception only for an error
the data do not explain, and only in strict mode."""

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from analysis_data import checkpoint, dataset

from impressions.explain import analyses, interpret, sections, unit_analyses
from impressions.schemas import TRAITS

OPTIONS = {
    "splits": ["train", "val", "test"], "max_frames": 200, "top_k": 2, "cam_threshold": 0.2,
    "face_overlap": 0.9, "unit_layers": 2, "unit_top": 4, "detector_threshold": 0.5, "au_top_n": 5,
    "detector_margin": 0.25, "au_top_clips": 2, "box_scales": [1.0, 1.25, 1.5], "region_rule": "raw_max",
}  # fmt: skip


def run(tmp_path, analysis, inputs, ckpt, model="image_cam"):
    outputs = {k: str(tmp_path / "out" / analysis / name) for k, name in analyses.get(analysis).files.items()}
    section = interpret.run(
        analysis, model, {**{k: str(v) for k, v in inputs.items()}, "checkpoint": str(ckpt)}, outputs,
        {**OPTIONS, "clips_dir": str(tmp_path / "clips")},
    )  # fmt: skip
    for kind, path in outputs.items():
        assert Path(path).stat().st_size > 0, kind
    return section, json.loads((tmp_path / "out" / analysis / "section.json").read_text()), outputs


@pytest.mark.parametrize("analysis", ["cam", "cam_overlap", "units", "au_maps"])
def test_one_test_clip_every_analysis_completes(tmp_path, analysis):
    inputs = dataset(tmp_path, ["train", "train", "val", "test"])
    _, data, outputs = run(tmp_path, analysis, inputs, checkpoint(tmp_path))
    assert "not computed" not in data["title"], data["text"]
    if analysis == "cam_overlap":
        summary = pl.read_csv(outputs["overlap"])
        assert set(summary["variant"]) == {"every", "largest"} and set(summary["rule"]) == {
            "raw_max",
            "min_max",
        }
        assert set(summary["box_scale"]) == {1.0, 1.25, 1.5}
        assert "published" in data["text"].lower() and "matches what the paper states" in data["text"]
        regions = pl.read_parquet(outputs["regions"])
        assert set(regions["clip_id"]) == {"clip03"}  # test frames only
    if analysis == "units":
        em = pl.read_csv(outputs["emergence"])
        assert set(em["level"]) == {"frame", "clip"}
        assert set(em.filter(pl.col("level") == "clip")["n"]) == {4}  # one test clip among 4
        chance = pl.read_csv(outputs["chance"])
        assert chance["chance_share"].is_between(0, 1).all() and "lift" in " ".join(chance.columns)


def test_units_with_too_few_clips_skip_the_clip_level_and_say_why(tmp_path):
    inputs = dataset(tmp_path, ["train", "test"], frames_per_clip=4)
    _, data, outputs = run(tmp_path, "units", inputs, checkpoint(tmp_path))
    assert set(pl.read_csv(outputs["emergence"])["level"]) == {"frame"}
    assert "Clip-level AU emergence not computed: only 2 clip(s)" in data["text"]


def test_no_faces_in_the_test_split_the_overlap_section_says_so(tmp_path):
    inputs = dataset(tmp_path, ["train", "val", "test", "test"], faces_in_test=False)
    _, data, outputs = run(tmp_path, "cam_overlap", inputs, checkpoint(tmp_path))
    assert data["title"].endswith("(not computed)")
    assert "none of the 6 test frames has a detected face" in data["text"]
    assert pl.read_csv(outputs["overlap"])["not_computed"][0].startswith("none of the")


def test_model_with_no_detector_units_and_parts_without_units(tmp_path):
    inputs = dataset(tmp_path, ["train"] * 6 + ["test"] * 2)
    _, data, outputs = run(tmp_path, "units", inputs, checkpoint(tmp_path, dead=True))
    assert "not computed" not in data["title"]
    table = pl.read_parquet(outputs["units"])
    assert table["part"].null_count() == table.height and table.schema["part"] == pl.String
    counts = pl.read_csv(outputs["counts"])
    assert counts["detectors"].sum() == 0
    assert "No unit is a detector of: eyebrows, eyes, nose, mouth" in data["text"]


def test_units_table_schema_does_not_depend_on_the_first_rows():
    parts = ["eyebrows", "eyes", "nose", "mouth"]
    row = {"model": "m", "layer": "conv1", "unit": 0, "top_value": 1.0}
    row |= {f"{k}_{p}": 0.1 for k in ("mass", "chance", "lift") for p in parts} | {"part": None}
    rows = [dict(row, unit=u) for u in range(150)] + [dict(row, unit=150, part="eyebrows")]
    with pytest.raises(pl.exceptions.ComputeError):  # the crash: types inferred from the first rows
        pl.DataFrame(rows, infer_schema_length=100)
    table = pl.DataFrame(rows, schema=unit_analyses._unit_schema(parts, True))
    assert table["part"].to_list()[-1] == "eyebrows"


def test_a_failing_analysis_writes_its_section_and_placeholders(tmp_path):
    inputs = dataset(tmp_path, ["train", "test"])
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    _, data, outputs = run(tmp_path, "units", inputs, bad, model="face")
    # Not a property of the data: the section says the analysis failed, with the error.
    assert data["title"] == "Units as face-part and Action-Unit detectors: face (failed)"
    assert "failed with an error" in data["text"] and "strict=true" in data["text"]


def _boom(*args, **kwargs):
    raise ZeroDivisionError("injected bug")


def _no_faces(*args, **kwargs):
    from impressions.explain.sections import NotComputable

    raise NotComputable("no clip of this split has a face")


def test_strict_fails_on_an_injected_error_and_keeps_data_conditions_as_not_computed(tmp_path, monkeypatch):
    inputs = dataset(tmp_path, ["train", "test"])
    files = {k: str(tmp_path / "o" / name) for k, name in analyses.get("units").files.items()}
    args = ("units", "image_cam", {**{k: str(v) for k, v in inputs.items()}, "checkpoint": "x.pt"}, files,
            {**OPTIONS, "clips_dir": str(tmp_path / "clips")})  # fmt: skip
    monkeypatch.setattr(interpret, "_run", _boom)
    with pytest.raises(ZeroDivisionError, match="injected bug"):
        interpret.run(*args, strict=True)
    assert not Path(files["section"]).exists()  # no section: the job fails and snakemake says so
    failed = interpret.run(*args)  # not strict: a failed section naming the error
    assert failed.title.endswith("(failed)") and "ZeroDivisionError: injected bug" in failed.text
    rendered = sections.read_sections([files["section"]])
    assert "ZeroDivisionError: injected bug" in rendered[0]["text"]
    from impressions.report import document, render

    doc = document.Document("t")  # the report renders it: the section's title and its reason
    render._interpretation_sections(doc, [Path(files["section"])], tmp_path)
    assert "(failed)" in "\n".join(doc.md) and "ZeroDivisionError: injected bug" in "\n".join(doc.md)
    monkeypatch.setattr(interpret, "_run", _no_faces)
    for strict in (True, False):  # a data condition is "not computed", strict or not, with its reason
        section = interpret.run(*args, strict=strict)
        assert section.title.endswith("(not computed)") and "no clip of this split has a face" in section.text


def test_the_workflow_scripts_pass_the_configs_strict_on(tmp_path, monkeypatch):
    """The interpretation script as snakemake runs it (a `snakemake` object in its globals): it hands
    the config's strict to the entry point."""
    import runpy
    from types import SimpleNamespace

    seen = []
    monkeypatch.setattr(interpret, "run", lambda *a, strict=False: seen.append(strict))
    script = Path(__file__).resolve().parents[1] / "workflow_scripts" / "interpret.py"
    for config in ({"strict": True}, {}):
        fake = SimpleNamespace(
            log=[str(tmp_path / "log.txt")], params=SimpleNamespace(analysis="units", options={}),
            wildcards=SimpleNamespace(explained="image"), input={}, output={}, config=config,
        )  # fmt: skip
        runpy.run_path(str(script), init_globals={"snakemake": fake})
    assert seen == [True, False]
    # the workflow-wide AU-guidance analyses' scripts too
    from impressions.explain import au_analyses, guidance_sweep

    for module, function, name in ((au_analyses, "guidance_run", "au_guidance_effect"),
                                   (guidance_sweep, "run", "au_guidance_sweep")):  # fmt: skip
        seen.clear()
        monkeypatch.setattr(module, function, lambda *a, strict=False: seen.append(strict))
        for config in ({"strict": True}, {}):
            fake = SimpleNamespace(
                log=[str(tmp_path / "log.txt")], params=SimpleNamespace(pairs=[], family="face", options={}),
                input={}, output={}, config=config,
            )  # fmt: skip
            runpy.run_path(str(script.parent / f"{name}.py"), init_globals={"snakemake": fake})
        assert seen == [True, False], name


def test_manifold_on_test_clips_only_and_too_few_is_said(tmp_path):
    splits = ["train"] * 10 + ["test"] * 6
    clips = pl.DataFrame({"clip_id": [f"c{i}" for i in range(16)], "split": splits, "gender": ["m", "f"] * 8,
                          **{t: np.linspace(0, 1, 16) for t in TRAITS}})  # fmt: skip
    rng = np.random.default_rng(0)
    feats = {}
    for name, n in (("image", 16), ("audio", 16)):
        path = tmp_path / name / "features.npz"
        path.parent.mkdir()
        has = np.ones(n, bool)
        if name == "audio":
            has[10:13] = False  # only 3 test clips with input: too few to embed
        np.savez(path, clip_id=np.array(clips["clip_id"].to_list()), features=rng.normal(size=(n, 8)),
                 has_input=has)  # fmt: skip
        feats[name] = path
    files = {"section": tmp_path / "m" / "section.json", "table": tmp_path / "m" / "trust.csv",
             "coordinates": tmp_path / "m" / "coords.parquet",
             **{f"figure_{n}": tmp_path / "m" / f"{n}.png" for n in feats}}  # fmt: skip
    interpret.manifold_analysis(feats, clips, None, files, perplexity=2, neighbors=2)
    coords = pl.read_parquet(files["coordinates"])
    assert set(coords["clip_id"]) == {f"c{i}" for i in range(10, 16)}  # held-out clips only
    trust = pl.read_csv(files["table"])
    assert trust["clips"].to_list() == [6, 3] and np.isnan(trust["trustworthiness"][1])
    assert 0 <= trust["trustworthiness"][0] <= 1
    assert "Not computed for audio: 3 held-out clips" in json.loads(files["section"].read_text())["text"]
    assert files["figure_audio"].stat().st_size > 0


def test_an_analysis_runs_on_the_configured_device(tmp_path, monkeypatch):
    """interpret.run places the model and its input on `options["device"]` (models.device: a GPU when
    there is one); the analysis sees that device while it computes."""
    from impressions.explain import images

    seen = []
    real = images.load_model

    def load_model(checkpoint):
        seen.append(images._DEVICE.get())
        return real(checkpoint)

    monkeypatch.setattr(images, "load_model", load_model)
    monkeypatch.setattr("impressions.explain.cam_analyses.load_model", load_model)
    inputs = dataset(tmp_path, ["train", "train", "val", "test"])
    monkeypatch.setitem(OPTIONS, "device", "cpu")
    run(tmp_path, "cam", inputs, checkpoint(tmp_path))
    assert seen == ["cpu"]
    monkeypatch.setattr("impressions.devices.resolve_device", lambda name: "meta")  # stands in for a GPU
    _, data, _ = run(tmp_path, "cam", inputs, checkpoint(tmp_path))
    assert seen[-1] == "meta"  # the model went there (and the analysis, on meta, is not computed)
