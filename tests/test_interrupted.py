"""SIGKILL to snakemake and its jobs mid-run, then a re-run: outputs identical to an uninterrupted run
(under each face search)."""

import json
import os
import signal
import subprocess
import time

import numpy as np
import polars as pl
import pytest
from workflow import REPO, SNAKEMAKE, run, write_config

from impressions.testing import face_clip, write_fi_annotations

pytestmark = [pytest.mark.workflow, pytest.mark.heavy]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("fi")
    names = [f"clip{i}.00{i}" for i in range(5)]
    for i, name in enumerate(names):
        face_clip(root / "videos" / f"{name}.mp4", start=1 + 3 * i, seconds=4)
    write_fi_annotations(root, {"train": names[:3], "val": names[3:4], "test": names[4:]})
    return root


MEASURED = ["seconds", "peak_mb"]  # differ from run to run


def outputs(work):
    """Every table (QC minus its measured columns: wall time, peak memory) and every array the run wrote."""
    found = {}
    for path in sorted((work / "out").rglob("*")):
        rel = str(path.relative_to(work / "out"))
        if rel.startswith(("logs", "benchmarks")) or not path.is_file():
            continue
        if path.suffix == ".parquet":
            table = pl.read_parquet(path)
            found[rel] = table.drop(MEASURED, strict=False)
        elif path.suffix == ".npy":
            found[rel] = np.load(path)
        elif path.suffix == ".tar":  # JPEG frames and faces: written deterministically, so bytes compare
            found[rel] = path.read_bytes()
        elif path.suffix == ".json":
            found[rel] = {k: v for k, v in json.loads(path.read_text()).items() if k not in MEASURED}
    return found


# Under both face searches (`faces.search`): a clip a tracked search half-processed when killed must
# come back the same as one it never left, as under full, the default.
@pytest.mark.parametrize("search", ["full", "tracked"])
def test_killed_run_resumes_to_identical_outputs(dataset, tmp_path, search):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    for work in (reference, killed):
        work.mkdir()
        write_config(work, data_root=str(dataset), results_dir="out", faces={"search": search})
    run(reference)

    proc = subprocess.Popen(
        [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(killed), "--cores", "2",
         "--configfile", str(killed / "test_config.yaml")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while len(list((killed / "out" / "clips").glob("*/qc.json"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # snakemake and every job it started
    proc.wait()
    assert not (killed / "out" / "tables" / "qc.parquet").exists(), "the run finished before it was killed"

    run(killed, "--unlock")
    run(killed, "--rerun-incomplete")
    got, want = outputs(killed), outputs(reference)
    assert sorted(got) == sorted(want)
    for name, value in want.items():
        if isinstance(value, pl.DataFrame):
            assert got[name].equals(value), name
        elif isinstance(value, np.ndarray):
            # bytes, not values: NaN (an identity descriptor not computed) equals itself only so
            assert (got[name].dtype, got[name].shape) == (value.dtype, value.shape), name
            assert got[name].tobytes() == value.tobytes(), name
        else:
            assert got[name] == value, name
