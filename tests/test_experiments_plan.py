"""Every published experiment's config, planned on the demo (a dry run each): what it trains, explains
and reports. Running each on the demo is tests/test_experiments.py (make test-all)."""

from pathlib import Path

import pytest
import yaml
from workflow import REPO, plan

from impressions.models import registry

EXPERIMENTS = sorted(p.stem for p in (REPO / "experiments").glob("*.yaml") if p.stem != "demo-scale")


@pytest.fixture(scope="module", params=EXPERIMENTS)
def planned(request, tmp_path_factory):
    """(the experiment's config, its dry-run plan) with experiments/demo-scale.yaml layered on top."""
    name = request.param
    work = tmp_path_factory.mktemp(name)
    (work / "test_config.yaml").write_text("{}\n")  # the harness passes --configfile test_config.yaml
    files = [REPO / "experiments" / f"{name}.yaml", REPO / "experiments" / "demo-scale.yaml"]
    jobs = plan(work, configfiles=files)
    return yaml.safe_load(files[0].read_text()), jobs


def _trained(jobs) -> set[str]:
    """The models whose checkpoint or predictions a job of the plan writes."""
    return {Path(out).parent.name for _, job in jobs for out in job.get("output", "").split(", ")
            if out.startswith("results/models/") and Path(out).name == "predictions.parquet"}  # fmt: skip


def _one(jobs, rule) -> dict[str, str]:
    (job,) = [j for r, j in jobs if r == rule]
    return job


def test_every_listed_family_is_trained_by_the_training_rule(planned):
    config, jobs = planned
    families = config["models"]["families"]
    planned_rules = {(rule, job.get("wildcards", "")) for rule, job in jobs}
    for family in families:
        spec = registry.get(family)
        if spec.trained:
            assert ("train_model", f"model={family}") in planned_rules, family
        else:
            assert any(rule == family for rule, _ in planned_rules), family
    # Nothing else is trained but the twins that analyses ask for (AU-guided, CAM head).
    extra = _trained(jobs) - set(families)
    guided = {f"{m}_au_guided" for m in config["interpret"]["au_guidance"]["models"]}
    assert all(m in guided or m.endswith("_cam") for m in extra), extra


def test_the_report_reads_every_reproduced_model(planned):
    config, jobs = planned
    report = _one(jobs, "report")["input"].split(", ")
    reproduced = [item["model"] for item in config["experiment"]["reproduce"] if "model" in item]
    assert reproduced, "an experiment reproduces at least one row with a model of this run"
    for model in reproduced:
        assert f"results/models/{model}/predictions.parquet" in report, model


def test_every_explained_model_has_its_analyses_planned(planned):
    config, jobs = planned
    interpret = config["interpret"]
    explained = {(rule, job.get("wildcards", "")) for rule, job in jobs if rule.startswith("interpret_")}
    for model in interpret["models"]:
        for rule in ("interpret_cam", "interpret_units", "interpret_au_maps"):
            assert (rule, f"explained={model}") in explained, (rule, model)
    if not interpret["models"]:
        assert not {r for r, _ in explained} - {"interpret_manifold"}, explained
    assert any(r == "interpret_manifold" for r, _ in explained) == bool(interpret["manifold"]["models"])
    weight = interpret["au_guidance"]["weight"]
    for model in interpret["au_guidance"]["models"]:
        assert (f"{model}_au_guided" in _trained(jobs)) == (weight > 0), model


def test_the_whole_workflow_is_planned_once(planned):
    _, jobs = planned
    counts = {}
    for rule, _ in jobs:
        counts[rule] = counts.get(rule, 0) + 1
    assert counts["report"] == counts["clip_index"] == counts["splits"] == counts["all"] == 1
    assert counts["preprocess_shard"] == counts["audio_shard"] == counts["expression_shard"] >= 1
