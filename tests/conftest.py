import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from impressions import testing

sys.path.insert(0, str(Path(__file__).parent))  # the tests' own helpers: workflow, model_data

import workflow  # noqa: E402

SHARED_FI = Path(__file__).resolve().parents[2] / "shared" / "fi_annotations"


def pytest_configure(config):
    """Put an `scontrol` that fails at once first on PATH for the whole session.

    snakemake-executor-plugin-slurm runs `scontrol show config` (10 s timeout) when Snakemake loads it,
    which is at every Snakemake start. Where SLURM's client tools are installed but no controller
    answers (any machine after tests/test_slurm.py has installed them), each of the suite's Snakemake
    runs would wait those 10 s. The plugin treats a failing `scontrol` as "no value" and carries on.
    tests/test_slurm.py takes the shim off PATH while its own controller runs.
    """
    shim = Path(tempfile.mkdtemp(prefix="impressions-scontrol-"))
    script = shim / "scontrol"
    script.write_text("#!/bin/sh\n# tests/conftest.py: fail fast where no SLURM controller answers\nexit 1\n")
    script.chmod(0o755)
    os.environ["PATH"] = f"{shim}{os.pathsep}{os.environ['PATH']}"
    os.environ[workflow.SCONTROL_SHIM_VAR] = str(shim)


def pytest_unconfigure(config):
    shim = os.environ.pop(workflow.SCONTROL_SHIM_VAR, None)
    if shim:
        shutil.rmtree(shim, ignore_errors=True)


@pytest.fixture(scope="session")
def bad_media(tmp_path_factory) -> dict[str, Path]:
    """Every kind of bad input plus awkwardly named good clips (built once per session)."""
    return testing.bad_media(tmp_path_factory.mktemp("media"))


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """The demo dataset, rendered once per session (about a minute on 2 cores). Read it only: a test
    that changes the dataset works on a copy (shutil.copytree)."""
    from impressions.data import demo

    root = tmp_path_factory.mktemp("demo")
    demo.build_demo(root, progress=False)
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A synthetic results folder with two trained models (au_linear, image): the report tests'."""
    from model_data import SMALL_CNN, build, train

    root = tmp_path_factory.mktemp("results")
    data = build(root)
    models_dir = root / "models"
    outs = [train(data, models_dir, "au_linear", {"alphas": [0.1, 10.0]})[0],
            train(data, models_dir, "image", SMALL_CNN)[0]]  # fmt: skip
    return data, outs


@pytest.fixture(scope="session")
def fi_annotations() -> Path:
    """The real First Impressions annotation pickles, when this checkout has them beside it."""
    if not (SHARED_FI / "annotation_training.pkl").is_file():
        pytest.skip(f"real FI annotations not found at {SHARED_FI}")
    return SHARED_FI
