import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from filelock import FileLock

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


def pytest_collection_modifyitems(config, items):
    """Files with snakemake runs (marker `workflow`) first: with `make test`'s workers taking whole files,
    the longest files start first and short ones fill in beside them, instead of one long file running
    alone at the end. The order inside a file is kept."""
    long_files = {item.path for item in items if item.get_closest_marker("workflow")}
    items.sort(key=lambda item: item.path not in long_files)  # stable: files keep their order


def _shared(tmp_path_factory, name: str) -> tuple[Path, FileLock | None]:
    """A folder every pytest-xdist worker of this session sees, and the lock that guards building it
    (None in a run without workers: the folder is this process's own)."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return tmp_path_factory.getbasetemp() / name, None
    root = tmp_path_factory.getbasetemp().parent / name  # the session's base, above the workers' own
    return root, FileLock(str(root) + ".lock")


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

    root, lock = _shared(tmp_path_factory, "demo")  # built by the first worker that asks, once
    with lock or contextlib.nullcontext():
        built = root.with_name(root.name + ".built")  # beside it: the dataset folder holds only the demo
        if not built.is_file():
            shutil.rmtree(root, ignore_errors=True)  # a half-built folder from an interrupted worker
            demo.build_demo(root, progress=False)
            built.touch()
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
