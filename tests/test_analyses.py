"""The analysis registry: every registered analysis has its rule, its files and its report section; a
new analysis is one entry plus its function, planned, computed and reported like a built-in one."""

import json
import os
import re
import subprocess
import sys

import polars as pl
import pytest
import workflow

from impressions.explain import analyses, sections
from impressions.explain.analyses import Analysis
from impressions.report import render as report

# A new per-model analysis outside the package: this entry and its function are all it takes. The
# workflow's processes (planning, the interpretation script) import the registry afresh, so the test
# does what a user would: it puts the module on PYTHONPATH and names it in IMPRESSIONS_EXTRA_ANALYSES
# (the registry's extension point). Its own setting lives in its section, interpret.toy.
TOY_MODULE = '''"""A toy analysis: how many images of a model an analysis sees, and its settings."""

from impressions.explain.analyses import Analysis

ANALYSES = [
    Analysis(name="toy", function="toy_analysis:toy", scope="model", models=("explained",),
             files={"section": "section.json", "table": "toy.csv"}, options=("top_k",),
             settings={"scale": 1.0}, title="Toy analysis: {model}", order=55, mem_mb=1000, runtime=5,
             doc="a toy analysis: the images a model saw, counted"),
]


def toy(model, checkpoint, images, files, *, top_k=3, scale=1.0):
    import polars as pl

    from impressions.explain.sections import Section

    section = Section(f"Toy analysis: {model}", f"{len(images)} {images.kind} of {model}.", order=55)
    table = pl.DataFrame({"model": [model], "kind": [images.kind], "images": [len(images)],
                          "top_k": [top_k], "scale": [scale], "checkpoint": [checkpoint.name]})
    section.table(table, "What the toy analysis saw.", files["table"])
    section.write(files["section"])
    return section
'''

TOY = {"scale": 3.0}

# The models of each model set under the config of `planned` (see its interpret settings).
MODELS = {
    "explained": ["image", "face"],
    "guided": ["face_au_guided"],
    "cam_overlap": ["image_cam"],
    "manifold": ["face", "audio"],
    "sweep": ["face_w0", "face_w1"],
}


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plugin")
    (folder / "toy_analysis.py").write_text(TOY_MODULE)
    return folder


@pytest.fixture(scope="module")
def planned(plugin, tmp_path_factory):
    """A dry run of the demo config with every analysis on and the toy analysis added: its jobs."""
    work = tmp_path_factory.mktemp("plan")
    workflow.write_config(
        work,
        interpret={"models": ["image", "face"], "cam_overlap": {"enabled": True}, "toy": TOY,
                   "au_guidance": {"weight": 1.0, "models": ["face"], "sweep": [0, 1]},
                   "manifold": {"models": ["face", "audio"], "method": "pca", "perplexity": 5,
                                "neighbors": 3}},
    )  # fmt: skip
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PYTHONPATH", os.pathsep.join([str(plugin), os.environ.get("PYTHONPATH", "")]))
        env.setenv(analyses.EXTRA_ANALYSES, "toy_analysis")
        return workflow.plan(work, "results/report/index.html")


def _outputs(job) -> set[str]:
    return set(job["output"].split(", "))


def _expected_files(spec: Analysis, model: str | None) -> set[str]:
    folder = f"results/interpret/{spec.name}" + (f"/{model}" if model else "")
    files = {f"{folder}/{name}" for name in spec.files.values()}
    for m in [m for s in spec.models for m in MODELS[s]] if spec.model_files else []:
        files |= {f"{folder}/{name.format(model=m)}" for name in spec.model_files.values()}
    return files


def test_every_analysis_has_its_rule_files_and_section(planned):
    """Each registry entry is planned by its rule (one job per model of its sets, or one job), writes
    exactly the files the entry declares, and its section.json is an input of the report."""
    (report_job,) = [job for rule, job in planned if rule == "report"]
    sections_read = set(report_job["input"].split(", "))
    for spec in analyses.ANALYSES.values():
        jobs = [job for rule, job in planned if rule == spec.rule]
        models = list(dict.fromkeys(m for s in spec.models for m in MODELS[s]))
        if spec.scope == "model":
            by_model = {re.fullmatch(r"explained=(\S+)", job["wildcards"])[1]: job for job in jobs}
            assert sorted(by_model) == sorted(models), spec.name
            for model, job in by_model.items():
                assert _outputs(job) == _expected_files(spec, model), (spec.name, model)
                assert f"results/interpret/{spec.name}/{model}/section.json" in sections_read
        else:
            (job,) = jobs
            assert _outputs(job) == _expected_files(spec, None), spec.name
            assert f"results/interpret/{spec.name}/section.json" in sections_read
    # ... and nothing else: every interpretation section the report reads belongs to an entry
    read = {s for s in sections_read if s.startswith("results/interpret/")}
    assert {s.split("/")[2] for s in read} == set(analyses.ANALYSES) | {"toy"}


def test_every_analysis_function_is_importable_and_its_settings_are_in_the_config():
    demo = workflow.yaml.safe_load((workflow.REPO / "config.yaml").read_text())["interpret"]
    for spec in analyses.ANALYSES.values():
        assert callable(analyses.function(spec.name)), spec.name
        common = analyses.COMMON_OPTIONS if spec.scope == "model" else ()
        missing = [k for k in common + spec.options if k not in demo]
        assert not missing, (spec.name, missing)
        assert set(spec.settings) <= set(demo.get(spec.name, {})), spec.name  # each setting documented
        for key, default in spec.settings.items():  # ... with the entry's default: one value, not two
            assert demo[spec.name][key] == default, (spec.name, key)
    # the units analysis's galleries are the face parts the detectors know
    from impressions.explain import unit_detectors

    assert tuple(unit_detectors.FACE_PARTS) == analyses.FACE_PARTS


def test_a_new_analysis_is_one_entry_plus_its_function(planned, plugin, trained, tmp_path, monkeypatch):
    """One registry entry and its function, in a module named by IMPRESSIONS_EXTRA_ANALYSES: the workflow
    plans its job per explained model, the interpretation entry point computes it on a checkpoint, and
    its section reaches the report."""
    # Planned: one interpret_toy job per explained model, its section read by the report.
    jobs = {job["wildcards"]: job for rule, job in planned if rule == "interpret_toy"}
    assert sorted(jobs) == ["explained=face", "explained=image"]
    assert "results/models/image/checkpoint.pt" in jobs["explained=image"]["input"]
    assert _outputs(jobs["explained=image"]) == {
        "results/interpret/toy/image/section.json", "results/interpret/toy/image/toy.csv",
    }  # fmt: skip
    (report_job,) = [job for rule, job in planned if rule == "report"]
    assert "results/interpret/toy/face/section.json" in report_job["input"]

    # Computed: the interpretation entry point in a fresh process (as the workflow's script runs it),
    # with the settings the rule passes on (the entry's job_options).
    monkeypatch.syspath_prepend(str(plugin))
    import toy_analysis

    (toy,) = toy_analysis.ANALYSES
    data, outs = trained
    tables = data["tables"]
    inputs = {k: str(tables / f"{k}.parquet") for k in ("clips", "frames", "faces", "expressions")}
    inputs["checkpoint"] = str(outs[1].checkpoint)  # the image model
    outputs = {kind: str(tmp_path / "toy" / "image" / name) for kind, name in toy.files.items()}
    interpret = {"splits": ["train", "val", "test"], "max_frames": 40, "top_k": 2, "toy": TOY}
    options = toy.job_options(interpret, {}) | {
        "clips_dir": str(data["clips"]),
        "split": "official",
        "seed": 0,
    }
    assert options == {"splits": ["train", "val", "test"], "max_frames": 40, "top_k": 2, "scale": 3.0,
                       "clips_dir": str(data["clips"]), "split": "official", "seed": 0}  # fmt: skip
    code = "import json, sys; from impressions.explain import interpret; interpret.run(*json.load(sys.stdin))"
    env = {**os.environ, analyses.EXTRA_ANALYSES: "toy_analysis",
           "PYTHONPATH": os.pathsep.join([str(plugin), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    subprocess.run([sys.executable, "-c", code], input=json.dumps(["toy", "image", inputs, outputs, options]),
                   env=env, text=True, check=True, capture_output=True)  # fmt: skip
    table = pl.read_csv(outputs["table"]).row(0, named=True)
    assert table == {"model": "image", "kind": "frames", "images": 40, "top_k": 2, "scale": 3.0,
                     "checkpoint": "checkpoint.pt"}  # fmt: skip
    assert (
        json.loads((tmp_path / "toy" / "image" / "section.json").read_text())["title"]
        == "Toy analysis: image"
    )

    # Reported: its section among the interpretation sections.
    t = tables
    names = {"html": "index.html", "markdown": "report.md", "metrics": "m.parquet", "breakdowns": "b.parquet",
             "comparisons": "c.parquet"}  # fmt: skip
    files = {k: tmp_path / "report" / v for k, v in names.items()}
    report.write_report(
        t / "clips.parquet", t / "qc.parquet", t / "faces.parquet", t / "expressions.parquet",
        [o.predictions for o in outs], [o.summary for o in outs], [o.curve for o in outs], files,
        n_boot=20, sections=[outputs["section"]],
    )  # fmt: skip
    md = files["markdown"].read_text()
    assert "## Toy analysis: image" in md and "What the toy analysis saw." in md

    # Not computable: its section still has the entry's title, saying why.
    monkeypatch.setitem(analyses.ANALYSES, "toy", toy)
    failed = sections.not_computed(
        "toy", "face", "no faces here", {k: tmp_path / "f" / v for k, v in toy.files.items()}
    )
    assert failed.title == "Toy analysis: face (not computed)" and failed.order == 55


def test_config_sections_are_checked_against_the_registry():
    analyses.check_config({"interpret": {"models": [], "manifold": {"models": []}, "cam_overlap": {}}})
    with pytest.raises(ValueError, match=r"\['manifould'\] name no analysis"):
        analyses.check_config({"interpret": {"manifould": {"models": []}}})
    with pytest.raises(KeyError, match="unknown analysis"):
        analyses.get("saliency")
    with pytest.raises(ValueError, match="models must name some of"):
        Analysis(name="bad", function="m:f", scope="model", models=("manifold",),
                 files={"section": "section.json"}, title="Bad", order=90)  # fmt: skip


def test_the_registry_imports_nothing_heavy():
    code = "import sys; from impressions.explain import analyses; "
    code += (
        "assert not [m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy', 'polars', 'matplotlib')]"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=workflow.REPO)
