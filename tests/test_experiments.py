"""Every published experiment's config runs on the demo with experiments/demo-scale.yaml.

One working folder for all of them, so the demo and its preprocessing are shared (demo-scale fixes
frames and faces; only the Zhang et al. whole-clip audio window re-runs the audio stage), and each
run retrains only what its config changes."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from impressions.report import reproduction

pytestmark = pytest.mark.workflow

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
# The 5 s audio experiments first, the whole-clip one last: the audio window is shared until then.
EXPERIMENTS = ["hernandez_thesis", "belharbi2024_au_guided", "xiao2024_posthoc", "ventura2017",
               "ventura2017_100frames"]  # fmt: skip


def test_every_experiment_file_is_covered():
    found = {p.stem for p in (REPO / "experiments").glob("*.yaml")} - {"demo-scale"}
    assert found == set(EXPERIMENTS)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("experiments")


@pytest.mark.heavy  # what each plans is tests/test_experiments_plan.py (make test)
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_runs_on_the_demo(work, name):
    config = yaml.safe_load((REPO / "experiments" / f"{name}.yaml").read_text())
    files = [str(REPO / "experiments" / f"{name}.yaml"), str(REPO / "experiments" / "demo-scale.yaml")]
    proc = subprocess.run(
        [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(work), "--cores", "2",
         "--configfile", *files],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    md = (work / "results" / "report" / "report.md").read_text()
    assert f"## Reproduction: {config['experiment']['title']}" in md
    for item in config["experiment"]["reproduce"]:
        key, model = item.get("published"), item.get("model")
        if key in reproduction.PUBLISHED:
            assert reproduction.published_label(key) in md
        if model:  # this run's row, with its interval
            row = next(line for line in md.splitlines() if line.startswith(f"| this run | {model} |"))
            assert "not run" not in row and "[" in row
    assert (work / "results" / "report" / "forest.png").stat().st_size > 0
