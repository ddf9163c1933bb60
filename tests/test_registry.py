"""The model-family registry: every registered family is planned, trained, predicted, reported and (where
CAM-explainable) interpreted; a new family is one entry plus its builder; the input transform travels
with the checkpoint; the checked-in rule graph and the rule table in docs/workflow.md are current."""

import copy
import json
import os
import re
import subprocess
from pathlib import Path

import model_data
import numpy as np
import polars as pl
import pytest
import torch
import workflow
from model_data import inputs_for, tiny_options

from impressions import cluster, predict, rulegraph
from impressions.data import defaults
from impressions.models import networks as models
from impressions.models import registry, transforms, variants
from impressions.schemas import TRAITS
from impressions.testing import face_clip
from impressions.training import loop as training

REPO = Path(__file__).resolve().parents[1]
TRAINED = registry.names_where(lambda f: f.trained)
CAM = registry.names(cam=True)


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
    features = {
        m: out / m / "features.npz" for m in registry.names_where(lambda f: f.trainer in registry.FUSABLE)
    }
    for family in TRAINED:
        training.train_family(
            family, _inputs(data, family, features), training.Outputs.in_folder(out / family),
            {"seed": 0, "device": "cpu", "threads": 1}, tiny_options(family),
        )  # fmt: skip
    return out


def test_every_registered_family_trains_and_predicts(trained, tmp_path):
    for family in TRAINED:
        assert (trained / family / "checkpoint.pt").is_file(), family
    video = tmp_path / "new.000.mp4"
    face_clip(video, start=12.0, seconds=3.0)
    table = predict.predict_paths([video], trained, transcript="so this is my video").table  # text models too
    assert table["model"].to_list() == TRAINED  # one row each, in registry order
    assert table["has_input"].all()


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """A dry run of the demo config with every family configured and every CAM family explained."""
    work = tmp_path_factory.mktemp("plan")
    workflow.write_config(
        work,
        models={"families": list(registry.FAMILIES), "seeds": {"values": [0, 1], "families": CAM[:1]}},
        interpret={"models": CAM, "au_guidance": {"weight": 1.0, "models": CAM[:1], "sweep": [0, 1]},
                   "manifold": {"models": [], "method": "pca", "perplexity": 30, "neighbors": 5}},
    )  # fmt: skip
    return workflow.run(work, "--dry-run").stdout


def test_every_registered_family_is_planned_reported_and_interpreted(planned):
    jobs = {(rule, body) for rule, body in re.findall(r"^rule (\w+):\n(.*?)(?=^\S|\Z)", planned, re.M | re.S)}
    trains = {(rule, m[1]) for rule, body in jobs if (m := re.search(r"wildcards: model=(\S+)", body))}
    for family in TRAINED:
        assert ("train_model", family) in trains, family
    assert any(rule == "late_average" for rule, _ in jobs)
    (report,) = [body for rule, body in jobs if rule == "report"]
    for family in registry.FAMILIES:
        assert f"results/models/{family}/predictions.parquet" in report, family
    for analysis in ("cam", "units", "au_maps"):
        explained = {m[1] for rule, body in jobs if rule == f"interpret_{analysis}"
                     for m in [re.search(r"wildcards: explained=(\S+)", body)]}  # fmt: skip
        assert set(CAM) <= explained, analysis
        assert f"results/interpret/{analysis}/{CAM[0]}/section.json" in report
    # Its variants are jobs of the same rule: another seed, AU guidance, the cam head.
    for variant in (f"{CAM[0]}_seed1", f"{CAM[0]}_au_guided", f"{CAM[0]}_cam"):
        assert ("train_model", variant) in trains, variant
    # models.seeds lists the sweep's family: the sweep trains every weight at both seeds and reads them all
    sweep = {m[1] for rule, body in jobs if rule == "train_guidance_sweep"
             for m in [re.search(r"wildcards: sweep_run=(\S+)", body)]}  # fmt: skip
    assert sweep == {"0", "1", "0_seed1", "1_seed1"}
    (analysis,) = [body for rule, body in jobs if rule == "au_guidance_sweep"]
    for folder in ("w0", "w1", "w0_seed1", "w1_seed1"):
        assert f"results/interpret/au_guidance_sweep/{folder}/checkpoint.pt" in analysis, folder


# Settings the demo config gives (config.yaml), and what each kind of model's training job passed on
# before the variants were one rule (the settings of train_seeded, train_au_guided, train_cam_twin and
# train_guidance_sweep, and of the per-family rules): the same dicts, so the same checkpoints; the
# AU-guided ones also carry the AU-map shape (interpret.au_map), which changes what they train toward.
DEMO = workflow.yaml.safe_load((REPO / "config.yaml").read_text())
COMMON = {"seed": 0, "device": "auto", "amp": True, "num_workers": 0}


def test_a_variant_passes_on_its_family_settings_with_its_overrides():
    config = {**DEMO, "interpret": {**DEMO["interpret"], "au_guidance": {"weight": 2, "models": ["face"]}}}
    face, audio = DEMO["models"]["face"], DEMO["models"]["audio"]
    expected = {
        "face": {"common": COMMON, "options": face},
        "audio_fbank": {"common": COMMON, "options": DEMO["models"].get("audio_fbank") or {}},
        "voice_linear": {"common": COMMON, "options": DEMO["models"].get("voice_linear") or {}},
        "audio_seed2": {"common": {**COMMON, "seed": 2}, "options": audio},
        "face_au_guided": {
            "common": COMMON,
            "options": {**face, "au_guidance_weight": 2, "au_map": "ellipse"},
        },
        "image_cam": {"common": COMMON, "options": {**DEMO["models"]["image"], "head": "cam"}},
        "face_w0.3": {"common": COMMON, "options": {**face, "au_guidance_weight": 0.3, "au_map": "ellipse"}},
        "face_w0.3_seed2": {
            "common": {**COMMON, "seed": 2},
            "options": {**face, "au_guidance_weight": 0.3, "au_map": "ellipse"},
        },
    }
    for model, settings in expected.items():
        got = variants.settings(model, config)
        assert got == settings and repr(got) == repr(settings), model  # the same order too: same params
    gaussian = {**config, "interpret": {**config["interpret"], "au_map": "gaussian"}}
    gaussian["interpret"]["au_guidance"] = {**config["interpret"]["au_guidance"], "layer": 6}
    for model in ("face_au_guided", "face_w0.3"):
        assert variants.settings(model, gaussian)["options"]["au_map"] == "gaussian"
        assert variants.settings(model, gaussian)["options"]["au_guidance_layer"] == 6
    split = {**config, "models": {**config["models"], "split": "identity_faces"}}
    expected_common = {**COMMON, "seed": 1, "split": "identity_faces"}
    assert variants.settings("fusion_seed1", split)["common"] == expected_common
    assert variants.parse("audio_fbank_seed1").family.name == "audio_fbank"
    assert variants.name("face", "sweep", weight=0.3) == "face_w0.3"
    assert variants.name("face", "sweep_seed", weight=0.3, seed=2) == "face_w0.3_seed2"


def test_the_sweep_plans_one_model_per_weight_and_seed():
    guidance = {"weight": 1.0, "models": ["face", "image"], "sweep": [0, 0.5]}
    config = {"models": {"seed": 3, "seeds": {"values": [1, 3], "families": []}},
              "interpret": {"au_guidance": guidance}}  # fmt: skip
    # the sweep's family not among models.seeds.families: one seed, the models and folders as before
    assert variants.sweep_seeds(config) == [3]
    assert variants.sweep_models(config) == ["face_w0", "face_w0.5"]
    config["models"]["seeds"]["families"] = ["face"]
    assert variants.sweep_seeds(config) == [3, 1]  # models.seed first, each seed once
    models = variants.sweep_models(config)
    assert models == ["face_w0", "face_w0_seed1", "face_w0.5", "face_w0.5_seed1"]
    assert [variants.sweep_folder(m) for m in models] == ["w0", "w0_seed1", "w0.5", "w0.5_seed1"]
    assert variants.sweep_models({**config, "interpret": {"au_guidance": {**guidance, "sweep": []}}}) == []
    with pytest.raises(ValueError, match="not a model of the AU-guidance sweep"):
        variants.sweep_folder("face_seed1")
    with pytest.raises(KeyError, match="no variant"):
        variants.parse("audio_au_guided")  # AU guidance needs CAM


def test_gpu_training_jobs_go_to_the_gpu_partition(monkeypatch):
    monkeypatch.setenv(cluster.PARTITION, "cpu")
    monkeypatch.setenv(cluster.GPU_PARTITION, "gpu")
    monkeypatch.setenv(cluster.GPU_MODEL, "a100")
    assert (cluster.partition("image_seed1"), cluster.gpu_model("image_seed1")) == ("gpu", "a100")
    assert (cluster.partition("au_linear"), cluster.gpu_model("au_linear")) == ("cpu", "")
    assert cluster.partition("face_w0.1") == "gpu"  # the sweep trains a CAM family
    monkeypatch.delenv(cluster.GPU_PARTITION)
    assert cluster.partition("image_seed1") == "cpu"


def test_training_requests_grow_with_the_run_and_the_attempt():
    image = {**DEMO["models"]["image"], "input_size": 224}
    config = {**DEMO, "models": {**DEMO["models"], "num_workers": 8, "threads": 2, "image": image}}
    config = defaults.fill(copy.deepcopy(config))  # the schema's defaults, as the Snakefile's validate
    small = cluster.Work(clips=100, train_clips=60, eval_clips=40, shard_clips=25)
    fi = cluster.Work(clips=10_000, train_clips=6_000, eval_clips=4_000, shard_clips=120)
    for model in ("image_seed1", "face_w0.3", "audio", "au_linear", "fusion"):
        family = variants.parse(model).family
        # demo-sized runs get the registry's values, the floor
        assert cluster.train_mem_mb(model, config, small, 1) >= family.mem_mb
        assert cluster.train_runtime(model, config, small, 1) >= family.runtime
        for resource in (cluster.train_mem_mb, cluster.train_runtime):
            assert resource(model, config, fi, 2) == 2 * resource(model, config, fi, 1), model
            assert resource(model, config, fi, 1) >= resource(model, config, small, 1), model
    assert cluster.train_threads("image", config) == 9 and cluster.train_threads("au_linear", config) == 1
    more_frames = {**config, "frames": {**config["frames"], "per_clip": 100}}
    assert cluster.train_mem_mb("image", more_frames, fi) > cluster.train_mem_mb("image", config, fi)
    assert cluster.train_runtime("image", more_frames, fi) > cluster.train_runtime("image", config, fi)


def test_text_linear_counts_its_scores_in_a_fusion_and_its_n_grams_in_its_own_memory():
    config = defaults.fill(copy.deepcopy(DEMO))
    fi = cluster.Work(clips=10_000, train_clips=6_000, eval_clips=4_000, shard_clips=120)
    # a fusion reads text_linear's five unclipped scores (TextRidge.embed), not its n-grams
    assert cluster.feature_width("text_linear", config) == len(TRAITS)
    with_text = {**config, "models": {**config["models"], "fusion_text": {"inputs": ["face", "text_linear"]}}}
    assert cluster.feature_width("fusion_text", with_text) == cluster.DAN_PLUS_WIDTH + len(TRAITS)
    # its own job holds the Gram matrix of its widest feature set: word + char, max_features each
    options = registry.get("text_linear").settings(config["models"].get("text_linear"))
    assert cluster.text_vocabulary_width("text_linear", config) == 2 * options["max_features"]
    wide = {**config, "models": {**config["models"], "text_linear": {"max_features": 20_000}}}
    assert cluster.text_vocabulary_width("text_linear", wide) == 40_000
    assert cluster.train_mem_mb("text_linear", config, fi) == registry.get("text_linear").mem_mb  # the floor
    # 4 x 40,000^2 float64 = 48,828 MiB, beyond the floor: the request follows the setting
    assert cluster.train_mem_mb("text_linear", wide, fi) > 4 * 40_000**2 * 8 / cluster.MB
    assert cluster.train_mem_mb("text_linear", wide, fi, 2) == 2 * cluster.train_mem_mb(
        "text_linear", wide, fi
    )


# A new family outside impressions/models/registry.py: this entry and its builder are all it takes. The
# workflow's processes (planning, the training script) and `impressions predict` import the registry
# afresh, so the test does what a user would: it puts the module on PYTHONPATH and names it in
# IMPRESSIONS_EXTRA_FAMILIES (the registry's extension point).
TOY_MODULE = '''"""A toy model family: ridge on the 17 mean AUs, with its own builder."""

from impressions.models.registry import Family

FAMILIES = [
    Family(name="toy", inputs=("au_table",), builder="toy_family:build", trainer="ridge", kind="au_means",
           fixed={"alphas": [1.0]}, doc="a toy family: ridge on the 17 mean AUs, with its own builder"),
]


def build(in_dim=17, **options):
    from impressions.models import networks

    return networks.RidgeRegression(in_dim, **options)
'''


@pytest.mark.workflow  # plans, trains and reports through snakemake
def test_a_new_family_is_one_entry_plus_its_builder(monkeypatch, tmp_path):
    """One registry entry and its builder, in a module named by IMPRESSIONS_EXTRA_FAMILIES: the workflow
    plans its training job, trains it, reports it, and `impressions predict` scores a new clip with it."""
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "toy_family.py").write_text(TOY_MODULE)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(plugin), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv(registry.EXTRA_FAMILIES, "toy_family")
    work = tmp_path / "work"
    data = model_data.build(work / "out")
    clips = pl.read_parquet(data["tables"] / "clips.parquet")
    (work / "v").mkdir()
    for c in clips["clip_id"]:
        (work / "v" / f"{c}.mp4").write_bytes(b"placeholder: never decoded here")
    columns = ["clip_id", "split", *TRAITS, "youtube_id"]
    clips.select(pl.concat_str(pl.lit("v/"), "clip_id", pl.lit(".mp4")).alias("path"), *columns).write_csv(
        work / "manifest.csv"
    )
    # (a family with settings of its own would also need a section in impressions/config.schema.yaml)
    models_cfg = {"families": ["toy"], "bootstrap": 20}
    workflow.write_config(work, manifest=str(work / "manifest.csv"), results_dir="out", models=models_cfg)
    args = ["--nolock", "out/report/index.html", "--allowed-rules", "splits", "train_model", "report"]
    # Planned: its training job, with its inputs, and the report reading its predictions.
    jobs = workflow.plan(work, *args)
    (train,) = [job for rule, job in jobs if rule == "train_model"]
    assert train["wildcards"] == "model=toy"
    assert "out/tables/expressions.parquet" in train["input"]
    assert "out/models/toy/checkpoint.pt" in train["output"]
    (report,) = [job for rule, job in jobs if rule == "report"]
    assert "out/models/toy/predictions.parquet" in report["input"]
    # Trained and reported.
    workflow.run(work, *args)
    summary = json.loads((work / "out" / "models" / "toy" / "summary.json").read_text())
    assert summary["family"] == "toy" and summary["selected"]["alpha"] == 1.0
    assert "toy" in set(pl.read_parquet(work / "out" / "report" / "metrics.parquet")["model"])
    monkeypatch.syspath_prepend(str(plugin))
    import toy_family

    monkeypatch.setitem(registry.FAMILIES, "toy", toy_family.FAMILIES[0])
    model, ckpt = models.load_checkpoint(work / "out" / "models" / "toy" / "checkpoint.pt")
    assert isinstance(model, models.RidgeRegression) and ckpt["family"] == "toy"
    # Predicted: `impressions predict` on a new clip.
    video = tmp_path / "new.000.mp4"
    face_clip(video, start=12.0, seconds=3.0)
    out = tmp_path / "scores.csv"
    subprocess.run([str(Path(workflow.SNAKEMAKE).parent / "impressions"), "predict", str(video), "--models",
                    str(work / "out" / "models"), "--device", "cpu", "--output", str(out)], check=True,
                   capture_output=True, text=True)  # fmt: skip
    scores = pl.read_csv(out)
    assert scores["model"].to_list() == ["toy"] and scores["has_input"].all()


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
