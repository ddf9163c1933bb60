"""The model-family registry: every registered family is planned, trained, predicted, reported and (where
CAM-explainable) interpreted; a new family is one entry plus its builder; the input transform travels
with the checkpoint; the checked-in rule graph and the rule table in docs/workflow.md are current."""

import re
import subprocess
from pathlib import Path

import model_data
import numpy as np
import pytest
import torch
import workflow
from model_data import inputs_for

from impressions import predict, rulegraph
from impressions.models import networks as models
from impressions.models import registry, transforms
from impressions.models.registry import Family
from impressions.testing import face_clip
from impressions.training import loop as training

REPO = Path(__file__).resolve().parents[1]
TRAINED = registry.names_where(lambda f: f.trained)
CAM = registry.names(cam=True)


def tiny_options(spec: Family) -> dict:
    """Settings small enough to train any registered family on the synthetic results in seconds."""
    if spec.sample_kind in registry.IMAGE_KINDS:
        return {"backbone": "small", "width": 4, "input_size": 16, "epochs": 1, "batch_size": 8}
    if spec.sample_kind == "waveform":
        return {"width": 4, "stages": 2, "epochs": 1}
    if spec.sample_kind == "logfbank":
        return {"time_bins": 1, "epochs": 1}
    if spec.trainer == "fusion":
        return {"inputs": registry.names(trainer="samples"), "hidden": [8, 8], "epochs": 2}
    return {}


def _inputs(data, family, features):
    inputs = inputs_for(data, family, features)
    inputs.voice = data["tables"] / "voice.parquet"
    return inputs


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Every family of the registry with a checkpoint, trained in registry order (components first)."""
    data = model_data.build(tmp_path_factory.mktemp("results"))
    # The synthetic filterbank has 4 filters; a new clip's has the preprocessing's 26 (audio.n_fbank).
    rows = np.load(data["arrays"] / "audio_logfbank.npy").shape[0]
    fbank = np.random.default_rng(0).normal(0, 1, (rows, 26, 20)).astype(np.float32)
    np.save(data["arrays"] / "audio_logfbank.npy", fbank)
    out = tmp_path_factory.mktemp("models")
    features = {m: out / m / "features.npz" for m in registry.names(trainer="samples")}
    for family in TRAINED:
        training.train_family(
            family, _inputs(data, family, features), training.Outputs.in_folder(out / family),
            {"seed": 0, "device": "cpu", "threads": 1}, tiny_options(registry.get(family)),
        )  # fmt: skip
    return out


def test_every_registered_family_trains_and_predicts(trained, tmp_path):
    for family in TRAINED:
        assert (trained / family / "checkpoint.pt").is_file(), family
    video = tmp_path / "new.000.mp4"
    face_clip(video, start=12.0, seconds=3.0)
    table = predict.predict_videos([video], trained)
    assert table["model"].to_list() == TRAINED  # one row each, in registry order
    assert table["has_input"].all()


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """A dry run of the demo config with every family configured and every CAM family explained."""
    work = tmp_path_factory.mktemp("plan")
    workflow.write_config(
        work,
        models={"families": list(registry.FAMILIES), "seeds": {"values": [0, 1], "families": CAM[:1]}},
        interpret={"models": CAM, "au_guidance": {"weight": 1.0, "models": CAM[:1], "sweep": []},
                   "manifold": {"models": [], "method": "pca", "perplexity": 30, "neighbors": 5}},
    )  # fmt: skip
    return workflow.run(work, "--dry-run").stdout


def test_every_registered_family_is_planned_reported_and_interpreted(planned):
    jobs = {(rule, body) for rule, body in re.findall(r"^rule (\w+):\n(.*?)(?=^\S|\Z)", planned, re.M | re.S)}
    trains = {(rule, m[1]) for rule, body in jobs if (m := re.search(r"wildcards: family=(\S+)", body))}
    for family in TRAINED:
        assert (registry.get(family).rule, family) in trains, family
    assert any(rule == "late_average" for rule, _ in jobs)
    (report,) = [body for rule, body in jobs if rule == "report"]
    for family in registry.FAMILIES:
        assert f"results/models/{family}/predictions.parquet" in report, family
    for analysis in ("cam", "units", "au_maps"):
        explained = {m[1] for rule, body in jobs if rule == f"interpret_{analysis}"
                     for m in [re.search(r"wildcards: explained=(\S+)", body)]}  # fmt: skip
        assert set(CAM) <= explained, analysis
        assert f"results/interpret/{analysis}/{CAM[0]}/section.json" in report
    assert any(rule == "train_seeded" for rule, _ in jobs)


# A new family: this entry and its builder are the only two edits it takes.
TOY = Family("toy", ("au_table",), "test_registry:toy_builder", "ridge", "train_toy", "au_means",
             doc="a toy family: least squares on the 17 mean AUs, with its own builder")  # fmt: skip


def toy_builder(in_dim: int = 17, **options):
    return models.RidgeRegression(in_dim, **options)


def test_a_new_family_is_one_entry_plus_its_builder(monkeypatch, tmp_path):
    monkeypatch.setitem(registry.FAMILIES, "toy", TOY)
    data = model_data.build(tmp_path / "results")
    summary = training.train_family(
        "toy", _inputs(data, "toy", None), training.Outputs.in_folder(tmp_path / "toy"),
        {"seed": 0, "device": "cpu", "threads": 1}, {"alphas": [1.0]},
    )  # fmt: skip
    assert summary["family"] == "toy" and summary["selected"]["alpha"] == 1.0
    model, ckpt = models.load_checkpoint(tmp_path / "toy" / "checkpoint.pt")
    assert isinstance(model, models.RidgeRegression) and ckpt["family"] == "toy"
    # The workflow plans a training rule for it, named by its entry, with its inputs (`all` is named:
    # a default target is not taken from an included Snakefile).
    folder = tmp_path / "workflow"
    folder.mkdir()
    for name in ("config.yaml", "impressions"):
        (folder / name).symlink_to(REPO / name)
    (folder / "Snakefile").write_text(
        "from impressions.models import registry\n"
        f"registry.FAMILIES['toy'] = registry.Family{tuple(TOY.__dict__.values())[:6]!r}\n"
        f"include: {str(REPO / 'Snakefile')!r}\n"
    )
    work = tmp_path / "work"
    work.mkdir()
    workflow.write_config(work, models={"families": ["toy"]})
    out = subprocess.run(
        [workflow.SNAKEMAKE, "all", "-s", str(folder / "Snakefile"), "--directory", str(work), "--dry-run",
         "--configfile", str(work / "test_config.yaml")], capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    (body,) = re.findall(r"^rule train_toy:\n(.*?)(?=^\S|\Z)", out, re.M | re.S)
    assert "results/tables/expressions.parquet" in body and "results/models/toy/checkpoint.pt" in body
    assert "results/models/toy/predictions.parquet" in re.search(r"^rule report:\n(.*?)(?=^\S|\Z)", out,
                                                                 re.M | re.S)[1]  # fmt: skip


def test_config_names_are_checked_against_the_registry():
    registry.check_config({"models": {"families": list(registry.FAMILIES)}, "interpret": {"models": CAM}})
    with pytest.raises(ValueError, match=r"interpret.models: 'audio' is not one of"):
        registry.check_config({"models": {"families": ["audio"]}, "interpret": {"models": ["audio"]}})
    with pytest.raises(ValueError, match=r"models.families: 'transformer'"):
        registry.check_config({"models": {"families": ["transformer"]}})
    with pytest.raises(KeyError, match="unknown model family"):
        registry.get("transformer")


def test_the_registry_imports_no_torch():
    code = "import sys; from impressions.models import registry, transforms; from impressions import layout; "
    code += "assert not [m for m in sys.modules if m.split('.')[0] == 'torch']"
    subprocess.run([workflow.sys.executable, "-c", code], check=True, cwd=REPO)


def test_the_input_transform_travels_with_the_checkpoint(tmp_path):
    model = transforms.attach(models.build("face", backbone="small", width=4).eval(), 24)
    models.save_checkpoint(tmp_path / "m.pt", model, "face", {"backbone": "small", "width": 4})
    loaded, ckpt = models.load_checkpoint(tmp_path / "m.pt")
    recorded = ckpt["transform"]
    assert recorded["size"] == 24 and recorded["mean"] == pytest.approx(transforms.IMAGENET_MEAN)
    assert recorded["std"] == pytest.approx(transforms.IMAGENET_STD)
    assert loaded.transform == model.transform
    images = np.random.default_rng(0).integers(0, 256, (2, 40, 40, 3), dtype=np.uint8)
    x = loaded.transform(images)
    assert x.shape == (2, 3, 24, 24)
    assert torch.equal(x, transforms.prepare_images(torch.from_numpy(images), 24))
    assert torch.equal(training.Prepare("faces", loaded.transform)(torch.from_numpy(images), "cpu", False), x)
    # A checkpoint from before transforms were recorded: its input side from the training settings.
    old = torch.load(tmp_path / "m.pt", weights_only=True)
    del old["transform"]
    old["summary"] = {"settings": {"input_size": 24}}
    torch.save(old, tmp_path / "old.pt")
    assert models.load_checkpoint(tmp_path / "old.pt")[0].transform == model.transform


@pytest.fixture(scope="module")
def listed_rules():
    out = subprocess.run([workflow.SNAKEMAKE, "--list-rules"], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    return {line.split()[0] for line in out.splitlines() if line and not line[0].isspace()}


def test_the_checked_in_rule_graph_is_current(listed_rules):
    """docs/rulegraph.dot is what `make rulegraph` writes for the default (demo) config."""
    dot = subprocess.run([workflow.SNAKEMAKE, "--rulegraph"], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    assert rulegraph.canonical(dot) == (REPO / "docs" / "rulegraph.dot").read_text(), (
        "docs/rulegraph.dot is stale: run `make rulegraph` and commit docs/rulegraph.dot and .svg"
    )
    assert rulegraph.rules(rulegraph.canonical(dot)) <= listed_rules


def test_the_readme_lists_every_rule(listed_rules):
    readme = (REPO / "docs" / "workflow.md").read_text()
    table = readme[readme.index("## What runs") :]
    table = table[: table.index("\n\n", table.index("| rule |"))]
    first_cells = [row.split("|")[1] for row in table.splitlines() if row.startswith("| `")]
    documented = {name for cell in first_cells for name in re.findall(r"`(\w+)`", cell)}
    assert listed_rules - {"all"} <= documented, sorted(listed_rules - documented)
    assert documented <= listed_rules | {"gather_*"}
